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
"""

from __future__ import annotations

from ..errors import P2PError
from .params import Param
from .rules import ParamRule, register_rule

STABLE_FLOW_DOUBLE = ("0", "1", "17", "18")  # Flux.1-dev's vital double-stream blocks (Stable Flow)
STABLE_FLOW_SINGLE = ("9", "34", "35", "37", "6")  # its vital single blocks 28, 53, 54, 56, 25 minus 19


def _blocks(value, place: str) -> tuple:
    """A block list: "all", or block indices (as words, e.g. ["0", "17"])."""
    for word in value:
        if word != "all" and not word.isdigit():
            raise P2PError(f"{place} blocks must be 'all' or block indices such as '0' or '17', got {word!r}")
    return tuple(value)


@register_rule
class KVInjection(ParamRule):
    """The source's image-token keys and/or values in the edit's joint attention (see the module docstring)."""

    label = "K/V injection (Stable Flow, RF-Solver-Edit)"
    branches = "both"  # with classifier-free guidance, each half's edit reads its own half's source
    params = (
        Param("double", "words", ("all",), "double-stream blocks: 'all' or indices (empty: none)"),
        Param("single", "words", ("all",), "single-stream blocks (Flux): 'all' or indices (empty: none)"),
        Param("start_step", "int", 0, "first step under control (0 = noisiest)", low=0),
        Param("end_step", "int", None, "step where control ends (empty: the end of the run)", low=0, optional=True),
        Param("copy_queries", "bool", False, "copy the source's image queries"),
        Param("copy_keys", "bool", True, "copy the source's image keys"),
        Param("copy_values", "bool", True, "copy the source's image values"),
    )

    def __init__(self, **values):
        super().__init__(**values)
        _blocks(self.double, "double"), _blocks(self.single, "single")
        if not (self.copy_queries or self.copy_keys or self.copy_values):
            raise P2PError(
                "KVInjection copies queries, keys or values: copy_queries, copy_keys and copy_values are off"
            )

    @classmethod
    def stable_flow(cls, **values):
        """Stable Flow's vital layers of Flux.1-dev, every step."""
        return cls(**{"double": STABLE_FLOW_DOUBLE, "single": STABLE_FLOW_SINGLE, **values})

    @classmethod
    def rf_solver_edit(cls, steps: int = 2, first_single: int = 20, n_single: int = 38, **values):
        """RF-Solver-Edit's rule: values only, single blocks from ``first_single`` on, the first ``steps``."""
        single = tuple(str(i) for i in range(first_single, n_single))
        return cls(**{"double": (), "single": single, "copy_keys": False, "end_step": steps, **values})

    @classmethod
    def queries_and_keys(cls, **values):
        """Shin et al.'s edit: the source's image queries and keys (values stay the edit's)."""
        return cls(**{"copy_queries": True, "copy_keys": True, "copy_values": False, **values})

    def check_run(self, n_evals):
        if self.end_step is not None and self.start_step > self.end_step:
            raise P2PError(f"KVInjection start_step {self.start_step} is after end_step {self.end_step}")

    def joint_kv(self, ctx):
        chosen = {"double": self.double, "single": self.single}.get(ctx.place, ())
        in_block = "all" in chosen or str(ctx.depth) in chosen
        in_steps = self.start_step <= ctx.step and (self.end_step is None or ctx.step < self.end_step)
        return (self.copy_queries, self.copy_keys, self.copy_values) if in_block and in_steps else None
