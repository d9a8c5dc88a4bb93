"""A model's attention sites as *cells* in execution order, and which of them a rule controlled per step.

A cell is one attention site of the model (:meth:`ModelBackend.sites`, see
:mod:`p2p_widgets.engine.sites`) or one hooked module whose output a rule edits (e.g.
Plug-and-Play's ``up_blocks.1.resnets.1.conv2``, placed where the UNet runs it)::

    {"name": "up_blocks.1.attentions.0.transformer_blocks.0.attn1.processor",
     "kind": "self",                       # the site's kind (CELL_KINDS) or "feature"
     "block": "up 1",                      # the site's block: "down i", "mid", "up i"; "double i", "single i"
     "depth": 0}                           # UNet: how far down the U (0 = full resolution); DiT: the block index

A UNet's cells draw as a U (down, mid, up by depth); a DiT's (kinds ``joint``, ``single``,
``image-self``) as a flat row of double-stream then single-stream blocks by index.

What a rule controlled comes from the sampler (``StepEvent.controlled`` while a run streams,
``EditResult.controlled`` afterwards): per step a set of ``(site or module name, kind)``, the kind
``"cross"`` / ``"self"`` (on a joint site: its image -> text or image -> image part) or
``"feature"``. Here it becomes plain lists of cell indices (the player's strip) or shares of steps
(``plots.unet_diagram``). Pure data: no widgets, no plotting, no torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ..errors import P2PError

KINDS = ("self", "cross", "feature")  # what a step's controlled pairs name
CELL_KINDS = ("self", "cross", "feature", "joint", "single", "image-self")  # what a cell is
JOINT_KINDS = ("joint", "single", "image-self")  # a DiT's sites: a controlled pair names them with "cross" / "self"
_PLACES = {"down_blocks": 1, "mid_block": 2, "up_blocks": 3}  # conv_in & co. before (0), conv_out after (4)
# inside a block, resnet i runs before attention i (diffusers' down, mid and up blocks), resamplers last
_PARTS = {"resnets": 0, "attentions": 1, "downsamplers": 2, "upsamplers": 2}


def execution_key(name: str) -> tuple:
    """Sort key putting UNet layer and module names in the order the UNet runs them."""
    parts = name.split(".")
    place = _PLACES.get(parts[0], 4 if parts[0].startswith("conv_out") else 0)
    rest = parts[1:] if place == 2 else parts[2:]
    block = int(parts[1]) if place in (1, 3) and len(parts) > 1 and parts[1].isdigit() else 0
    within: tuple = (0, 0)
    if len(rest) > 1 and rest[0] in _PARTS and rest[1].isdigit():
        within, rest = (int(rest[1]), _PARTS[rest[0]]), rest[2:]
    tail = tuple(int(d) for d in re.findall(r"\d+", ".".join(rest)))
    return place, block, *within, tail, name


def cell_kind(name: str) -> str:
    """ "cross" for a cross-attention processor (``attn2``), "self" for another attention
    processor, "feature" for any other module."""
    if name.endswith(".processor"):
        return "cross" if ".attn2." in name else "self"
    return "feature"


def _block(name: str) -> tuple[str, str, int]:
    """(place, label, index) of the UNet block holding ``name``."""
    parts = name.split(".")
    if parts[0] == "mid_block":
        return "mid", "mid", 0
    if parts[0] in ("down_blocks", "up_blocks") and len(parts) > 1 and parts[1].isdigit():
        place = parts[0][: -len("_blocks")]
        return place, f"{place} {parts[1]}", int(parts[1])
    return "other", parts[0], 0


def attention_layers(model) -> list[str]:
    """The attention processor names of ``model``: a diffusers pipeline, an :class:`Editor` (both
    have ``.unet``) or a UNet."""
    backend = getattr(model, "model", None)  # an Editor holds its model's backend
    unet = backend.denoiser if backend is not None else getattr(model, "unet", model)
    processors = getattr(unet, "attn_processors", None)
    if not isinstance(processors, dict):
        raise P2PError(
            f"model must be a pipeline, an Editor or a UNet with attention processors, got {type(model).__name__}"
        )
    return list(processors)


def unet_cells(layers: Iterable[str], modules: Iterable[str] = (), n_blocks: int | None = None) -> list[dict]:
    """Cells of the attention ``layers`` and hooked ``modules`` in execution order (see the module
    docstring). ``n_blocks``: the UNet's number of down (= up) blocks, for the depth of up blocks
    (default: the most any name shows)."""
    names = sorted(dict.fromkeys([*layers, *modules]), key=execution_key)
    blocks = [_block(n) for n in names]
    if n_blocks is None:
        n_blocks = max([i + 1 for place, _, i in blocks if place in ("down", "up")], default=1)
    cells = []
    for name, (place, label, index) in zip(names, blocks):
        depth = {"down": index, "mid": n_blocks, "up": n_blocks - 1 - index}.get(place, 0)
        cells.append({"name": name, "kind": cell_kind(name), "block": label, "depth": max(0, depth)})
    return cells


def unet_layout(model) -> tuple[list[str], int | None]:
    """``(attention layer names, number of down blocks)`` of a pipeline / Editor / UNet: what
    :func:`unet_cells` needs, kept instead of the model (a widget holding it would keep it alive)."""
    backend = getattr(model, "model", None)
    down = getattr(backend.denoiser if backend is not None else getattr(model, "unet", model), "down_blocks", None)
    return attention_layers(model), (len(down) if down is not None else None)


def model_sites(model) -> tuple:
    """The attention sites of a pipeline, an Editor, a model backend or a denoiser (UNet or DiT)."""
    from ..engine.sites import sites_of

    backend = getattr(model, "model", model)  # an Editor holds its model's backend
    if callable(getattr(backend, "sites", None)):
        return tuple(backend.sites())
    denoiser = getattr(model, "unet", None) or getattr(model, "transformer", None) or model
    if not isinstance(getattr(denoiser, "attn_processors", None), dict):
        raise P2PError(
            "model must be a pipeline, an Editor or a denoiser (UNet or transformer) with attention "
            f"processors, got {type(model).__name__}"
        )
    try:
        return sites_of(denoiser)
    except TypeError as exc:
        raise P2PError(str(exc)) from None


def model_layout(model) -> tuple:
    """The sites of ``model`` as plain ``(name, kind, block, depth)`` tuples (what :func:`site_cells`
    needs, kept instead of the model: a widget holding it would keep it alive)."""
    return tuple((s.name, s.kind, s.block, int(s.depth)) for s in model_sites(model))


def is_dit(cells_or_layout) -> bool:
    """Whether cells (or a layout) are a DiT's: joint-attention kinds, drawn as a flat row of blocks."""
    return any((c["kind"] if isinstance(c, dict) else c[1]) in JOINT_KINDS for c in cells_or_layout)


def site_cells(layout, modules: Iterable[str] = ()) -> list[dict]:
    """Cells of a model's sites (:func:`model_layout`) and hooked ``modules`` in execution order. On
    a UNet a module sits where the UNet runs it (between the attention layers of its block); on a
    DiT the sites keep their order and modules (none of its built-in rules hooks one) come last."""
    layout = list(layout)
    modules = [m for m in dict.fromkeys(modules) if m not in {name for name, *_ in layout}]
    cells = [{"name": n, "kind": k, "block": b, "depth": max(0, int(d))} for n, k, b, d in layout]
    if is_dit(layout):
        return cells + [{"name": m, "kind": "feature", "block": _block(m)[1], "depth": 0} for m in modules]
    # the UNet's number of down (= up) blocks, for the depth of a module's up block: "up i" sits at n - 1 - i
    ups = [int(b.split()[1]) + d + 1 for _, _, b, d in layout if b.startswith("up ")]
    n_blocks = max(ups, default=1 + max([d for *_, d in layout], default=0))
    extra = {c["name"]: c for c in unet_cells([], modules, n_blocks)}
    return sorted([*cells, *extra.values()], key=lambda c: execution_key(c["name"]))


def model_cells(model, modules: Iterable[str] = ()) -> list[dict]:
    """:func:`site_cells` of a pipeline / Editor / backend / denoiser, plus the hooked ``modules``."""
    return site_cells(model_layout(model), modules)


def rule_modules(rules: Iterable) -> list[str]:
    """Module names the ``rules`` hook (``feature_modules()``), in order, once each."""
    return list(dict.fromkeys(m for r in rules or () for m in r.feature_modules()))


def controlled_steps(controlled) -> list[frozenset]:
    """Per step the set of ``(name, kind)`` pairs a rule controlled, from an ``EditResult`` (its
    ``.controlled``), a list of such sets (one per step), or one set (a single step)."""
    steps = getattr(controlled, "controlled", controlled)
    if isinstance(steps, (set, frozenset)):
        steps = [steps]
    if not isinstance(steps, Sequence) or isinstance(steps, (str, bytes)):
        raise P2PError(
            f"controlled must be an EditResult or a list of per-step sets of (layer, kind), got {type(steps).__name__}"
        )
    out = []
    for i, step in enumerate(steps):
        if not isinstance(step, (set, frozenset, list, tuple)):
            raise P2PError(f"controlled step {i} must be a set of (layer, kind) pairs, got {type(step).__name__}")
        for pair in step:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str) and pair[1] in KINDS):
                raise P2PError(
                    f"controlled step {i}: {pair!r} is not a (layer name, 'self' | 'cross' | 'feature') pair"
                )
        out.append(frozenset(step))
    return out


def step_modules(steps: Iterable[frozenset]) -> list[str]:
    """Module (non-attention) names that appear in the steps."""
    return list(dict.fromkeys(name for step in steps for name, kind in sorted(step) if kind == "feature"))


def _known_pairs(cells: Sequence[dict]) -> dict:
    """(name, kind) of a controlled pair -> the index of the cell it falls on (a joint site's cell
    takes both its image -> text ("cross") and image -> image ("self") part)."""
    found = {}
    for k, c in enumerate(cells):
        kinds = ("cross", "self") if c["kind"] in JOINT_KINDS else (c["kind"],)
        for kind in kinds:
            found.setdefault((c["name"], kind), k)
    return found


def check_known(cells: Sequence[dict], steps: Iterable[frozenset]) -> None:
    """A P2PError if the steps name layers or modules that are not among the cells (a result of
    another model)."""
    known = _known_pairs(cells)
    unknown = sorted({pair for s in steps for pair in s} - set(known))
    if unknown:
        raise P2PError(
            f"controlled names layers this model does not have, e.g. {unknown[:3]}: pass the model it ran on"
        )


def cell_indices(cells: Sequence[dict], step: frozenset) -> list[int]:
    """Indices of the cells a rule controlled in one step."""
    known = _known_pairs(cells)
    return sorted({known[pair] for pair in step if pair in known})


def control_shares(cells: Sequence[dict], steps: Sequence[frozenset]) -> list[float]:
    """Per cell, the share of the steps in which a rule controlled it (0 for no steps)."""
    if not steps:
        return [0.0] * len(cells)
    counts = [0] * len(cells)
    for s in steps:
        for k in cell_indices(cells, s):
            counts[k] += 1
    return [n / len(steps) for n in counts]
