"""Plotly figures for notebooks: image rows, per-token attention maps, M, alpha schedules, and
the UNet drawn with what an edit rule changed in it (:func:`unet_diagram`).

Every function returns a ``plotly.graph_objects.Figure`` (exports to HTML or PNG like any figure).
"""

from __future__ import annotations

import numpy as np


def _go():
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    return go, make_subplots


_CHAR_PX = 7.5  # a generous average width of one character of a subplot title (plotly's 16 px font is ~8)


def as_text(text) -> str:
    """``text`` for a plotly title, label or hover: plotly reads ``<b>``, ``<br>``, ``<a href>``
    as markup, so ``&``, ``<`` and ``>`` become entities (a prompt is shown, never read)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _wrap(text: str, width_px: float) -> str:
    """A title broken into lines that fit ``width_px`` (plotly does not wrap or shrink titles, it
    clips them), as text (:func:`as_text`)."""
    text = as_text(text)
    per_line = max(8, int(width_px / _CHAR_PX))
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > per_line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "<br>".join(lines)


def images(images, titles=None, height=260, columns=None):
    """PIL images / uint8 arrays in a grid of ``columns`` (default: one row); long titles wrap to
    the width of their image."""
    go, make_subplots = _go()
    columns = len(images) if columns is None else max(1, min(int(columns), len(images)))
    rows = -(-len(images) // columns)
    width = max(260, 220 * columns)
    col = width / columns
    titles = [_wrap(t, col - 10) for t in (titles or [""] * len(images))]
    n_lines = max(t.count("<br>") + 1 for t in titles)
    top = 22 + 20 * n_lines
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=titles,
        horizontal_spacing=0.02,
        vertical_spacing=min(0.3, (20 * n_lines + 12) / (rows * height)) if rows > 1 else 0.0,
    )
    for k, img in enumerate(images):
        fig.add_trace(go.Image(z=np.asarray(img)), row=k // columns + 1, col=k % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=rows * (height + top - 40), width=width, margin=dict(l=5, r=5, t=top, b=5))
    return fig


def token_maps(store, prompt, prompt_index=0, words=None, side=None, step=None, height=230, place=None, head=None):
    """Heat maps of each word's cross-attention (mean over its tokens) for one prompt of a run.

    ``step`` None: the average over all steps; an int: that evaluation only. ``place`` / ``head``:
    one UNet part / one head (a store made with ``detail=True``).
    """
    words = [w.text for w in prompt.words] if words is None else list(words)
    maps = [
        store.token_maps(prompt_index, prompt.positions(w), side=side, step=step, place=place, head=head)
        .mean(0)
        .numpy()
        for w in words
    ]
    return _heatmap_row(maps, words, height)


def head_maps(store, prompt, word, prompt_index=0, side=None, place=None, height=230):
    """One word's map per attention head (a store made with ``detail=True``), over all steps."""
    n_heads = store.n_heads(side, place)
    maps = [
        store.token_maps(prompt_index, prompt.positions(word), side=side, place=place, head=h).mean(0).numpy()
        for h in range(n_heads)
    ]
    return _heatmap_row(maps, [f"{word}: head {h}" for h in range(n_heads)], height)


def _heatmap_row(maps, titles, height):
    """One heat map per title on one shared colour scale (zero to the largest value), shown once."""
    go, make_subplots = _go()
    titles = [as_text(t) for t in titles]
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=titles, horizontal_spacing=0.01)
    top = max(float(np.max(m)) for m in maps) if maps else 1.0
    for c, m in enumerate(maps, start=1):
        fig.add_trace(
            go.Heatmap(
                z=m[::-1],
                coloraxis="coloraxis",
                meta=titles[c - 1],  # hover text through meta: a word is never read as a %{...} template
                hovertemplate="%{meta}: %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=c,
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(
        coloraxis=dict(colorscale="Inferno", cmin=0, cmax=top, colorbar=dict(title="attention", thickness=12)),
        height=height,
        width=max(300, 130 * len(maps) + 90),
        margin=dict(l=5, r=5, t=40, b=5),
    )
    return fig


def mapper_matrix(mapper, height=380):
    """M over the used rows (source tokens) and columns (target tokens)."""
    go, _ = _go()
    rows, cols = mapper.source.n_tokens, mapper.target.n_tokens
    m = mapper.matrix[:rows, :cols].numpy()
    labels = lambda p: [as_text(f"{i}:{t}") for i, t in enumerate(p.tokens)]  # noqa: E731
    fig = go.Figure(
        go.Heatmap(
            z=m,
            x=labels(mapper.target),
            y=labels(mapper.source),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            hovertemplate="source %{y} -> target %{x}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", title="source token")
    fig.update_xaxes(title="target token")
    fig.update_layout(height=height, title=f"M ({mapper.kind})", margin=dict(l=5, r=5, t=40, b=5))
    return fig


def schedule(schedule, target, height=300):
    """Which target tokens take the source's cross-attention at each evaluation (1 = injected)."""
    go, _ = _go()
    alpha = schedule.cross_alpha(target)[:, : target.n_tokens].numpy().T
    fig = go.Figure(
        go.Heatmap(
            z=alpha,
            y=[as_text(f"{i}:{t}") for i, t in enumerate(target.tokens)],
            colorscale="Greens",
            zmin=0,
            zmax=1,
            showscale=False,
        )
    )
    lo, hi = schedule.self_attn
    fig.add_shape(type="rect", x0=lo - 0.5, x1=hi - 0.5, y0=-1.4, y1=-0.6, fillcolor="orange", line_width=0)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="UNet evaluation (noisy -> clean); orange bar: self-attention injection")
    fig.update_layout(height=height, margin=dict(l=5, r=5, t=30, b=5), title="alpha schedule")
    return fig


def curve(xs, ys, names, title, xtitle, ytitle, height=300):
    """Lines ``ys[k]`` over ``xs`` named ``names[k]``."""
    go, _ = _go()
    fig = go.Figure([go.Scatter(x=list(xs), y=list(y), name=n, mode="lines+markers") for y, n in zip(ys, names)])
    fig.update_layout(
        height=height, title=title, xaxis_title=xtitle, yaxis_title=ytitle, margin=dict(l=5, r=5, t=40, b=5)
    )
    return fig


# -- what a rule controls, on a drawing of the UNet ------------------------------------------------

_KIND_STYLE = {  # kind -> (legend name, colour, letter); the colours of the timeline's rows
    "self": ("self-attention", (46, 125, 50), "S"),
    "cross": ("cross-attention", (25, 118, 210), "C"),
    "feature": ("module output", (239, 108, 0), "F"),
    # a DiT's sites (the player's strip uses the same colours)
    "joint": ("joint attention", (106, 27, 154), "J"),
    "single": ("single-stream attention", (0, 131, 143), "1"),
    "image-self": ("image self-attention", (130, 119, 23), "I"),
}
_IDLE = (224, 224, 224)  # a cell no rule touched


def _cell_positions(cells) -> list[float]:
    """x of each cell: execution order, one free slot between blocks."""
    xs, x, previous = [], 0.0, None
    for cell in cells:
        if previous is not None and cell["block"] != previous:
            x += 1.0
        xs.append(x)
        x, previous = x + 1.0, cell["block"]
    return xs


def _draw_blocks(fig, cells, xs, dit: bool = False) -> None:
    """A box and a label per block at its depth, the U's path between blocks, and dashed skip
    connections between the down and up blocks of one resolution. A DiT (``dit``): one row, each
    block labelled by its index, each stream (double, single) named above its first block."""
    spans: dict = {}
    for cell, x in zip(cells, xs):
        lo, hi, depth = spans.get(cell["block"], (x, x, cell["depth"]))
        spans[cell["block"]] = (min(lo, x), max(hi, x), depth)
    previous, stream = None, None
    for label, (lo, hi, depth) in spans.items():
        y = -depth
        if dit:
            kind, _, index = label.partition(" ")
            if kind != stream:
                stream = kind
                name = {"double": "double-stream blocks", "single": "single-stream blocks"}.get(kind, kind)
                fig.add_annotation(
                    x=lo - 0.6, y=y + 0.38, text=as_text(name), showarrow=False, xanchor="left", yanchor="bottom"
                )
            label = index or label
        fig.add_shape(
            type="rect",
            x0=lo - 0.6,
            x1=hi + 0.6,
            y0=y - 0.38,
            y1=y + 0.38,
            line=dict(color="#888", width=1),
            layer="below",
        )
        fig.add_annotation(
            x=(lo + hi) / 2, y=y - 0.38, text=as_text(label), showarrow=False, yanchor="top", font_size=11
        )
        if previous is not None:
            fig.add_shape(type="line", x0=previous[0] + 0.6, y0=previous[1], x1=lo - 0.6, y1=y, line=dict(color="#aaa"))
        previous = (hi, y)
    for label, (_, hi, depth) in spans.items():
        ups = [lo for name, (lo, _, d) in spans.items() if name.startswith("up ") and d == depth]
        if label.startswith("down ") and ups:
            y = -depth + 0.3
            line = dict(color="#bbb", dash="dot")
            fig.add_shape(type="line", x0=hi + 0.6, x1=ups[0] - 0.6, y0=y, y1=y, line=line, layer="below")


def unet_diagram(pipe_or_unet, controlled, step=None, height=None):
    """The UNet's blocks in execution order (down, mid, up, drawn as a U by resolution), one cell per
    attention layer and per module a rule hooks, coloured by what a rule changed there. A DiT (SD3,
    Flux: ``pipe_or_unet`` its pipeline, Editor or transformer) is drawn as one row of its
    double-stream then single-stream blocks, one cell per joint / single-stream / image-only site.

    ``controlled``: an :class:`~p2p_widgets.engine.sampler.EditResult` (its ``controlled``; the
    modules its rules hook get cells even where they were left alone) or a list of per-step sets
    of ``(layer or module name, "self" | "cross" | "feature")``. ``step``: show that step (a cell
    is coloured where a rule changed it); None: the share of the run's steps (darker = more).
    """
    from .errors import P2PError, is_int
    from .stream.unet_layers import (
        cell_indices,
        check_known,
        control_shares,
        controlled_steps,
        is_dit,
        model_cells,
        rule_modules,
        step_modules,
    )

    steps = controlled_steps(controlled)
    if step is not None and not (is_int(step) and 0 <= step < len(steps)):
        raise P2PError(f"step must be None or a step of the run in [0, {len(steps) - 1}], got {step!r}")
    cells = model_cells(pipe_or_unet, rule_modules(getattr(controlled, "rules", ())) + step_modules(steps))
    check_known(cells, steps)
    dit = is_dit(cells)
    if dit:  # a DiT is drawn flat: double- then single-stream blocks in one row, by index
        cells = [{**c, "depth": 0} for c in cells]
    if step is None:
        values = control_shares(cells, steps)
    else:
        on = set(cell_indices(cells, steps[step]))
        values = [1.0 if k in on else 0.0 for k in range(len(cells))]
    fig = _cells_figure(cells, values, step, len(steps), dit)
    depths = [c["depth"] for c in cells] or [0]
    fig.update_layout(height=height or 200 + 70 * (max(depths) - min(depths)))
    return fig


def _cells_figure(cells, values, step, n_steps, dit=False):
    """The figure of :func:`unet_diagram`: one trace per kind (the legend toggles kinds)."""
    go, _ = _go()
    xs = _cell_positions(cells)
    fig = go.Figure()
    slots = (xs[-1] + 1) if xs else 1
    width = int(min(1600, max(520, 16 * slots + 140)))
    size = max(5.0, min(16.0, 0.8 * (width - 140) / slots))
    for kind, (name, rgb, letter) in _KIND_STYLE.items():
        ks = [k for k, c in enumerate(cells) if c["kind"] == kind]
        if not ks:
            continue
        mix = [tuple(round(i + (c - i) * values[k]) for i, c in zip(_IDLE, rgb)) for k in ks]
        if step is None:
            said = [f"changed in {values[k]:.0%} of the {n_steps} steps" for k in ks]
        else:
            said = ["changed at this step" if values[k] else "left alone at this step" for k in ks]
        square = dict(symbol="square", size=size, line=dict(color=f"rgb{rgb}", width=1.5))
        # the legend's entry in the kind's full colour (the cells' colours say how much); it toggles them
        fig.add_trace(
            go.Scatter(
                x=[None], y=[None], mode="markers", marker={**square, "color": f"rgb{rgb}"}, name=name, legendgroup=kind
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[xs[k] for k in ks],
                y=[-cells[k]["depth"] for k in ks],
                mode="markers+text" if size >= 12 else "markers",
                text=[letter] * len(ks),
                textfont=dict(size=9, color="#222"),
                marker={**square, "color": [f"rgb{m}" for m in mix]},
                name=name,
                legendgroup=kind,
                showlegend=False,
                customdata=[[as_text(cells[k]["name"]), s] for k, s in zip(ks, said)],
                hovertemplate=f"%{{customdata[0]}}<br>{name}: %{{customdata[1]}}<extra></extra>",
            )
        )
    _draw_blocks(fig, cells, xs, dit)
    title = (
        f"what the rule changed at step {step}" if step is not None else f"what the rule changed over {n_steps} steps"
    )
    fig.update_xaxes(visible=False, range=[-1.5, slots + 0.5])
    depths = [c["depth"] for c in cells] or [0]
    fig.update_yaxes(visible=False, range=[-max(depths) - 1.0, -min(depths) + 0.7])
    fig.update_layout(
        title=title,
        width=width,
        margin=dict(l=10, r=10, t=70, b=10),
        plot_bgcolor="white",
        legend=dict(orientation="h", x=0, xanchor="left", y=1.0, yanchor="bottom"),
    )
    return fig
