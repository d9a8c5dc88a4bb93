"""Plotly figures for notebooks: image rows, per-token attention maps, M, alpha schedules.

Every function returns a ``plotly.graph_objects.Figure`` (exports to HTML or PNG like any figure).
"""

from __future__ import annotations

import numpy as np


def _go():
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    return go, make_subplots


_CHAR_PX = 7.5  # a generous average width of one character of a subplot title (plotly's 16 px font is ~8)


def _wrap(text: str, width_px: float) -> str:
    """A title broken into lines that fit ``width_px`` (plotly does not wrap or shrink titles, it
    clips them); ``<`` and ``>`` become entities, so a prompt is never read as plotly's markup."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
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
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=titles, horizontal_spacing=0.01)
    top = max(float(np.max(m)) for m in maps) if maps else 1.0
    for c, m in enumerate(maps, start=1):
        fig.add_trace(
            go.Heatmap(
                z=m[::-1],
                coloraxis="coloraxis",
                hovertemplate=f"{titles[c - 1]}: %{{z:.3f}}<extra></extra>",
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
    labels = lambda p: [f"{i}:{t}" for i, t in enumerate(p.tokens)]  # noqa: E731
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
            y=[f"{i}:{t}" for i, t in enumerate(target.tokens)],
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
