"""What the rules controlled, as the player's strip shows it: the bookkeeping behind
``AttentionPlayer.unet_cells`` / ``controlled``, without the widget.

:class:`RunControl` is one streamed run's record (per step the ``(layer or module, kind)`` pairs a
rule changed, the hooked modules seen so far, the strip's cells); :class:`ControlStrip` is the
player's across runs (the sites of the last run's model, the cell indices of each distinct step
set for the cells shown). The widget writes the traits from what these return. Pure data: no
widgets, no torch (the model is read once, into plain tuples, by ``model_layout``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import P2PError, is_int
from .unet_layers import (
    cell_indices,
    check_known,
    controlled_steps,
    model_layout,
    rule_modules,
    site_cells,
    step_modules,
)


@dataclass
class RunControl:
    """One streamed run's control (lives from ``begin()`` to ``end()``)."""

    steps: list[frozenset] = field(default_factory=list)  # per step: (layer or module, kind) a rule changed
    modules: list[str] = field(default_factory=list)  # hooked modules seen so far (cells of the strip)
    cells: list[dict] | None = None  # the strip's cells, from the first step's model


class ControlStrip:
    """The player's control bookkeeping across runs: the model's sites and the cell indices shown."""

    def __init__(self):
        self.layout: tuple | None = None  # the sites of the last run's model, as plain tuples (model_layout)
        self._indices: dict = {}  # a step's controlled set -> its cell indices, for the cells shown

    def track(self, run: RunControl, event) -> list[dict]:
        """Record what the rules controlled at this step; the cells, with any module seen first now."""
        step = frozenset(getattr(event, "controlled", ()) or ())
        run.steps += [frozenset()] * (event.step - len(run.steps))  # steps never missed, but be safe
        run.steps[event.step :] = [step]
        new = [m for m in step_modules([step]) if m not in run.modules]
        if run.cells is None or new:
            if run.cells is None:
                self.layout = model_layout(event.editor)  # plain data only: the player keeps no model alive
            run.modules += new
            run.cells = site_cells(self.layout, run.modules)
        return run.cells

    def new_cells(self, cells: list[dict], shown: list[dict]) -> bool:
        """Whether ``cells`` differ from the ``shown`` ones (then the indices of the old are forgotten)."""
        if cells == shown:
            return False
        self._indices = {}
        return True

    def indices(self, cells: list[dict], steps: Sequence[frozenset]) -> list[list[int]]:
        """Per step, the indices into ``cells`` (the cells shown) of what a rule controlled."""
        # most steps repeat a set (a rule's window): each distinct set is looked up once per run
        for s in steps:
            if s not in self._indices:
                self._indices[s] = cell_indices(cells, s)
        return [list(self._indices[s]) for s in steps]

    def of_result(self, controlled, model, n_evals: int) -> tuple[list[dict], list[frozenset]]:
        """The cells and steps of a finished run's ``controlled`` (see ``AttentionPlayer.show_controlled``)."""
        steps = controlled_steps(controlled)
        if model is not None:
            self.layout = model_layout(model)
        elif self.layout is None:
            raise P2PError(
                "model: pass the pipeline, Editor or denoiser the run used (this player has streamed no run)"
            )
        if n_evals and len(steps) > n_evals:
            raise P2PError(f"controlled has {len(steps)} steps but the player's run has {n_evals} evaluations")
        modules = rule_modules(getattr(controlled, "rules", ())) + step_modules(steps)
        cells = site_cells(self.layout, modules)
        check_known(cells, steps)
        return cells, steps

    def finish(self, run: RunControl, result) -> None:
        """The whole run's control, from the result where there is one (the modules its rules hook
        are cells even at steps that left them alone)."""
        steps = getattr(result, "controlled", None)
        if steps is not None and (steps or not run.steps):
            run.steps = list(steps)
        run.modules = list(dict.fromkeys(rule_modules(getattr(result, "rules", ())) + run.modules))
        run.modules += [m for m in step_modules(run.steps) if m not in run.modules]

    def cells_of(self, modules: list[str]) -> list[dict]:
        """The strip's cells: the last run's model's sites and ``modules``."""
        return site_cells(self.layout, modules)


def cells_at(step: int, controlled: Sequence[Sequence[int]], cells: Sequence[dict]) -> list[dict]:
    """The ``cells`` a rule changed at ``step``, from the per-step indices ``controlled``."""
    if not is_int(step) or not 0 <= step < len(controlled):
        raise P2PError(f"step must be a step the player knows, in [0, {len(controlled) - 1}], got {step!r}")
    return [cells[k] for k in controlled[step]]
