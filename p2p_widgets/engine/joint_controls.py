"""Rules for MM-DiT joint attention (SD3 / Flux) beyond Prompt-to-Prompt's maps.

:class:`KVInjection`: in chosen blocks and steps, the edit's image-token keys and/or values are the
source's, so the edit's queries (image and text) read the source's picture while its text stays
its own. That is how these models' editing papers inject:

- Stable Flow (Avrahami et al. 2025): image keys and values in its "vital layers" of Flux.1-dev,
  every step (:meth:`KVInjection.stable_flow`; its block indices are for the 19 + 38 block model);
- RF-Solver-Edit (Wang et al. 2024): values only, in the later single-stream blocks, for the first
  steps (:meth:`KVInjection.rf_solver_edit`);
- mutual self-attention (MasaCtrl's idea, Cao et al. 2023) is the same copy in every block from a
  start step: the edit's image queries attend to the source's image keys and values;
- Shin et al. (ICCV 2025, "Exploring MM-DiT for prompt-based image editing") replace the edit's
  image queries and keys instead (:meth:`KVInjection.queries_and_keys`).

Copying after the per-token norms and the rotary embedding equals copying the raw projections (both
act per token and position, and the positions are the same).

Blocks are the model's indices (``"17"``), or ``"all"``. A block the model does not have is a
P2PError when the run starts (with the model's sites), never a run that injects nothing. Indices
written for a model of another depth say so with ``double_of`` / ``single_of`` (the block count
they are given for, e.g. RF-Solver-Edit's single blocks 20-37 with ``single_of=38``, Flux.1's);
each run places them at the same depth of the model's blocks (:func:`place_blocks`: on Flux.1
itself the same blocks, on the pocket flow model's 4 single blocks 2 and 3). ``to_dict`` keeps the
blocks as given, so the saved edit means the same on every model it reruns on.
"""

from __future__ import annotations

from ..errors import P2PError
from .params import Param
from .rules import ParamRule, register_rule
from .sites import IMAGE

FLUX_DOUBLE, FLUX_SINGLE = 19, 38  # Flux.1's double- and single-stream blocks (dev and schnell)
STABLE_FLOW_DOUBLE = ("0", "1", "17", "18")  # Flux.1-dev's vital double-stream blocks (Stable Flow)
STABLE_FLOW_SINGLE = ("9", "34", "35", "37", "6")  # its vital single blocks 28, 53, 54, 56, 25 minus 19
PLACES = ("double", "single")


def _blocks(value, place: str, of) -> tuple:
    """A block list: "all", or block indices (as words, e.g. ["0", "17"]), below ``of`` when given."""
    for word in value:
        if word != "all" and not word.isdigit():
            raise P2PError(f"{place} blocks must be 'all' or block indices such as '0' or '17', got {word!r}")
        if of is not None and word != "all" and int(word) >= of:
            raise P2PError(f"{place} block {int(word)} is past {place}_of {of} (blocks 0-{of - 1})")
    return tuple(value)


def layout_of(sites) -> str:
    """What a model's sites show of its blocks, for messages: its layout (SD3's joint attention over
    [image; text], Flux's over [text; image]) and its double- and single-stream block counts."""
    counts = {place: len({s.depth for s in sites if s.place == place}) for place in PLACES}
    stream = next((s for s in sites if s.kind in ("joint", "single")), None)
    if stream is None:
        return "no joint-attention blocks"
    family = "SD3" if stream.queries[0] == IMAGE else "Flux"
    return (
        f"{family} layout, [{'; '.join(stream.queries)}] joint attention: {counts['double']} double-stream "
        f"blocks, {counts['single']} single-stream"
    )


def place_blocks(indices, of: int, count: int) -> frozenset:
    """The blocks of a model with ``count`` blocks at the depth of blocks ``indices`` of an ``of``-block
    model. Block ``i`` of ``of`` spans the share ``[i / of, (i + 1) / of)`` of the depth: it becomes the
    model's blocks that start inside that share, or, where none does (a shallower model), the block
    holding its start. So the same count gives the same blocks, a choice never vanishes, and a range
    stays a range (single 20-37 of 38: 2-3 of 4, 40-75 of 76)."""
    chosen = set()
    for i in indices:
        first, end = -(-i * count // of), -(-(i + 1) * count // of)  # ceil(i count / of), ceil((i + 1) count / of)
        chosen.update(range(first, end) if end > first else (i * count // of,))
    return frozenset(chosen)


@register_rule
class KVInjection(ParamRule):
    """The source's image-token keys and/or values in the edit's joint attention (see the module docstring)."""

    label = "K/V injection (Stable Flow, RF-Solver-Edit)"
    branches = "both"  # with classifier-free guidance, each half's edit reads its own half's source
    params = (
        Param("double", "words", ("all",), "double-stream blocks: 'all' or indices (empty: none)"),
        Param("single", "words", ("all",), "single-stream blocks (Flux): 'all' or indices (empty: none)"),
        Param(
            "double_of",
            "int",
            None,
            "the double-stream block count the indices are for (Flux.1: 19), placed at the same depth "
            "of the model's (empty: the model's own indices)",
            low=1,
            optional=True,
        ),
        Param(
            "single_of",
            "int",
            None,
            "the single-stream block count the indices are for (Flux.1: 38), placed at the same depth "
            "of the model's (empty: the model's own indices)",
            low=1,
            optional=True,
        ),
        Param("start_step", "int", 0, "first step under control (0 = noisiest)", low=0),
        Param("end_step", "int", None, "step where control ends (empty: the end of the run)", low=0, optional=True),
        Param("copy_queries", "bool", False, "copy the source's image queries"),
        Param("copy_keys", "bool", True, "copy the source's image keys"),
        Param("copy_values", "bool", True, "copy the source's image values"),
    )

    _chosen: dict | None = None  # place -> the model's block indices; set for each run by on_sites

    def __init__(self, **values):
        super().__init__(**values)
        _blocks(self.double, "double", self.double_of), _blocks(self.single, "single", self.single_of)
        if not (self.copy_queries or self.copy_keys or self.copy_values):
            raise P2PError(
                "KVInjection copies queries, keys or values: copy_queries, copy_keys and copy_values are off"
            )

    @classmethod
    def check_data(cls, data):
        cls(**{k: v for k, v in data.items() if k != "rule"})  # the blocks against their counts too

    @classmethod
    def stable_flow(cls, **values):
        """Stable Flow's vital layers of Flux.1-dev, every step (at the same depth on other models)."""
        blocks = {"double": STABLE_FLOW_DOUBLE, "single": STABLE_FLOW_SINGLE}
        return cls(**{**blocks, "double_of": FLUX_DOUBLE, "single_of": FLUX_SINGLE, **values})

    @classmethod
    def rf_solver_edit(cls, steps: int = 2, first_single: int = 20, n_single: int = FLUX_SINGLE, **values):
        """RF-Solver-Edit's rule: values only, single blocks ``first_single`` to ``n_single - 1`` of
        ``n_single`` (Flux.1's 20-37 of 38, at the same depth on other models), the first ``steps``."""
        single = tuple(str(i) for i in range(first_single, n_single))
        return cls(
            **{"double": (), "single": single, "single_of": n_single, "copy_keys": False, "end_step": steps, **values}
        )

    @classmethod
    def queries_and_keys(cls, **values):
        """Shin et al.'s edit: the source's image queries and keys (values stay the edit's)."""
        return cls(**{"copy_queries": True, "copy_keys": True, "copy_values": False, **values})

    def check_run(self, n_evals):
        if self.end_step is not None and self.start_step > self.end_step:
            raise P2PError(f"KVInjection start_step {self.start_step} is after end_step {self.end_step}")

    def on_sites(self, sites):
        counts = {place: len({s.depth for s in sites if s.place == place}) for place in PLACES}
        self._chosen = {place: self.blocks_on(place, counts[place], layout_of(sites)) for place in PLACES}

    def blocks_on(self, place: str, count: int, layout: str | None = None) -> frozenset:
        """The indices of the ``place`` ("double" / "single") blocks this rule edits on a model with
        ``count`` of them, or a P2PError naming the blocks it does not have (``layout``: the model's,
        :func:`layout_of` its sites, for that message)."""
        words, of = getattr(self, place), getattr(self, f"{place}_of")
        if "all" in words:
            return frozenset(range(count))
        indices = sorted({int(w) for w in words})
        if not indices:
            return frozenset()
        named = ", ".join(map(str, indices if len(indices) <= 6 else [*indices[:3], "...", *indices[-2:]]))
        if count == 0:
            raise P2PError(
                f"KVInjection: {place} block(s) {named} chosen, but this model has no {place}-stream blocks"
                f"{f' ({layout})' if layout else ''}: leave {place} empty"
            )
        if of is not None:
            return place_blocks(indices, of, count)
        missing = [i for i in indices if i >= count]
        if missing:
            flux = FLUX_DOUBLE if place == "double" else FLUX_SINGLE
            raise P2PError(
                f"KVInjection: {place} block(s) {', '.join(map(str, missing))} do not exist on this model, which "
                f"has {count} {place}-stream blocks (0-{count - 1}); to place blocks of a model with N of them "
                f"at the same depth here give {place}_of=N (Flux.1: {flux})"
            )
        return frozenset(indices)

    def joint_kv(self, ctx):
        if self._chosen is None:
            raise P2PError("KVInjection: its blocks are placed on the model's sites when a run starts (on_sites)")
        in_block = ctx.depth in self._chosen.get(ctx.place, ())
        in_steps = self.start_step <= ctx.step and (self.end_step is None or ctx.step < self.end_step)
        return (self.copy_queries, self.copy_keys, self.copy_values) if in_block and in_steps else None
