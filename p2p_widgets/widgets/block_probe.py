"""BlockProbe: which transformer blocks matter, as one bar per block; click bars to pick a K/V rule's blocks.

>>> from p2p_widgets.widgets.block_probe import BlockProbe
>>> probe = BlockProbe()
>>> prompt = "a big red circle left of a small blue square on a gray background"
>>> probe.run(editor, prompt, seed=0, steps=4, guidance=3.5)  # or BlockProbe(block_importance(...))
>>> probe                         # hover a bar for its block and score; click bars to select them
>>> probe.rule()                  # KVInjection(double=[...], single=[...]) over the selected blocks
>>> probe.rule_params             # {"double": ["0", "1"], "single": ["9"]}

The bars are the records of :func:`p2p_widgets.engine.probe.block_importance` (double-stream blocks,
then single-stream ones, each by depth), each as tall as its score relative to the highest. The
page writes only ``selected`` (indices into ``blocks``); Python checks every write (integers in
range, no repeats) and keeps it in block order. A refused write shows its error and the page goes
back to the Python value.
"""

from __future__ import annotations

import math

import traitlets

from ..errors import P2PError, is_int, is_number
from ._base import P2PWidget

PLACES = ("double", "single")
MAX_BLOCKS = 512


def _check_blocks(blocks) -> list:
    """The ``blocks`` trait's value: dicts with label, place, depth, score; double before single."""
    if not isinstance(blocks, (list, tuple)) or len(blocks) > MAX_BLOCKS:
        raise traitlets.TraitError(f"blocks must be a list of at most {MAX_BLOCKS} block records")
    out, seen = [], set()
    for k, b in enumerate(blocks):
        if hasattr(b, "to_dict"):
            b = b.to_dict()
        if not isinstance(b, dict) or set(b) != {"label", "place", "depth", "score"}:
            raise traitlets.TraitError(f"block {k} must have exactly label, place, depth and score, got {b!r}")
        label, place, depth, score = b["label"], b["place"], b["depth"], b["score"]
        if place not in PLACES or not is_int(depth) or depth < 0 or label != f"{place} {depth}":
            raise traitlets.TraitError(f"block {k}: place must be double or single, label '<place> <depth>'; got {b!r}")
        if not is_number(score) or score < 0:
            raise traitlets.TraitError(f"block {k} ({label}): score must be a finite number >= 0, got {score!r}")
        if label in seen:
            raise traitlets.TraitError(f"block {label} appears twice")
        seen.add(label)
        out.append({"label": label, "place": place, "depth": int(depth), "score": float(score)})
    order = [(PLACES.index(b["place"]), b["depth"]) for b in out]
    if order != sorted(order):
        raise traitlets.TraitError("blocks must come double-stream first, then single-stream, each by depth")
    return out


class _Index(traitlets.Int):
    """An int, not a bool (``True == 1`` would pass a cross-validator that never runs on an equal list)."""

    def validate(self, obj, value):
        if isinstance(value, bool):
            self.error(obj, value)
        return super().validate(obj, value)


class BlockProbe(P2PWidget):
    """A bar per transformer block (height = score); clicking bars selects them (see the module docstring)."""

    _bundle = "block_probe"
    _frontend_keys = frozenset({"selected"})

    blocks = traitlets.List(help="One record per block: label, place, depth, score.").tag(sync=True)
    selected = traitlets.List(_Index(), help="Indices into blocks of the selected bars, in order.").tag(sync=True)
    metric = traitlets.Unicode("", help="What the scores measure (shown above the bars).").tag(sync=True)
    status = traitlets.Unicode("", help="Progress of a probe run, or ''.").tag(sync=True)

    def __init__(self, result=None, **kwargs):
        super().__init__(**kwargs)
        if result is not None:
            self.show(result)

    @traitlets.validate("blocks")
    def _valid_blocks(self, proposal):
        return _check_blocks(proposal["value"])

    @traitlets.validate("selected")
    def _valid_selected(self, proposal):
        value, n = proposal["value"], len(self.blocks)
        for i in value:
            if not is_int(i) or not 0 <= i < n:
                raise traitlets.TraitError(f"selected: {i!r} is not a block index (0 to {n - 1})")
        if len(set(value)) != len(value):
            raise traitlets.TraitError(f"selected: an index appears twice in {list(value)}")
        return sorted(int(i) for i in value)

    @traitlets.observe("blocks")
    def _blocks_changed(self, change):
        if self.selected:
            old = {b["label"] for k, b in enumerate(change["old"] or []) if k in set(self.selected)}
            self.selected = [k for k, b in enumerate(self.blocks) if b["label"] in old]

    # -- Python side ---------------------------------------------------------------------------
    def show(self, result) -> None:
        """Show a :class:`~p2p_widgets.engine.probe.BlockImportance` (or a list of block records)."""
        from ..engine.probe import METRIC_TEXT

        records = getattr(result, "records", result)
        metric = getattr(result, "metric", "")
        metric = METRIC_TEXT.get(metric, metric)
        with self.hold_sync():
            self.selected = []
            self.blocks = [r.to_dict() if hasattr(r, "to_dict") else r for r in records]
            self.metric = str(metric)
            self.status = "stopped: the blocks measured before the stop" if getattr(result, "stopped", False) else ""

    def run(self, editor, prompt: str, **options):
        """Run :func:`~p2p_widgets.engine.probe.block_importance` here (``options``: its keywords),
        showing its progress in ``status``, then show the result; returns it."""
        from ..engine.probe import block_importance

        user_callback = options.pop("callback", None)

        def progress(event):
            what = event.block or "the reference image"
            self.status = f"{what}: run {event.run + 1} of {event.runs} ({math.floor(100 * event.fraction)} %)"
            if user_callback is not None:
                user_callback(event)

        self.clear_error()
        try:
            result = block_importance(editor, prompt, callback=progress, **options)
        except P2PError as exc:
            self.status = ""
            self.report_error(str(exc))
            raise
        self.show(result)
        return result

    @property
    def selected_labels(self) -> list:
        """Labels of the selected blocks ("double 0", "single 9"), in block order."""
        return [self.blocks[i]["label"] for i in self.selected]

    def select(self, labels) -> None:
        """Select the blocks named in ``labels`` (e.g. ``result.top(4)``), and only those."""
        index = {b["label"]: k for k, b in enumerate(self.blocks)}
        missing = [label for label in labels if label not in index]
        if missing:
            raise P2PError(f"no block {missing[0]!r}; the blocks are {', '.join(index) or 'none'}")
        self.selected = sorted({index[label] for label in labels})

    @property
    def rule_params(self) -> dict:
        """``{"double": [...], "single": [...]}``: the selected block indices as KVInjection's words."""
        from ..engine.probe import rule_blocks

        return rule_blocks(self.selected_labels, self.blocks)

    def rule(self, **values):
        """A :class:`~p2p_widgets.engine.joint_controls.KVInjection` over the selected blocks
        (``values``: its other parameters, e.g. ``start_step``, ``copy_keys``)."""
        from ..engine.joint_controls import KVInjection

        if not self.selected:
            raise P2PError("no block is selected: click the bars of the blocks the rule should inject into")
        return KVInjection(**self.rule_params, **values)
