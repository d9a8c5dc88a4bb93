"""Alpha schedules: during which UNet evaluations each target token takes the source's attention.

Windows are half-open ``[start, end)`` over the real UNet evaluations of the run (50 for DDIM with
50 steps). A window is given as step indices (ints) or as fractions of the run (floats): fraction
f means evaluation ``int(f * n_evals)``. The reference's argument forms are accepted too: a float
f means ``(0, f)``, and a dict maps words to windows with the special key ``"default_"``.

Differences from the reference, on purpose: one rounding rule for cross- and self-attention
(the reference multiplied cross fractions by ``n + 1`` to absorb PNDM's extra evaluation), and a
word that is not in the target prompt is an error instead of being ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .errors import P2PError
from .prompts import Prompt

DEFAULT_KEY = "default_"


def resolve_window(spec, n_evals: int, what: str = "window") -> tuple[int, int]:
    """A window spec (float f, (start, end) of fractions or ints) as integer ``[start, end)``."""
    if isinstance(spec, bool):
        raise P2PError(f"{what}: expected a fraction, a step or a (start, end) pair, got {spec!r}")
    if isinstance(spec, (int, float)):
        spec = (0, spec)
    try:
        start, end = spec
    except (TypeError, ValueError):
        raise P2PError(f"{what}: expected a fraction, a step or a (start, end) pair, got {spec!r}") from None
    bounds = [_to_step(v, n_evals, what) for v in (start, end)]
    if bounds[0] > bounds[1]:
        raise P2PError(f"{what}: start {start!r} is after end {end!r}")
    return bounds[0], bounds[1]


def _to_step(v, n_evals, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise P2PError(f"{what}: bound {v!r} is not a finite number")
    if isinstance(v, float):
        if not 0.0 <= v <= 1.0:
            raise P2PError(f"{what}: fraction {v} is outside [0, 1]")
        return int(v * n_evals)
    if not 0 <= v <= n_evals:
        raise P2PError(f"{what}: step {v} is outside [0, {n_evals}] for a run of {n_evals} evaluations")
    return v


@dataclass(frozen=True)
class AlphaSchedule:
    """When the edit takes the source's attention, as integer windows over ``n_evals`` evaluations.

    - ``cross``: default cross-attention window for every target token;
    - ``words``: per-word cross windows (word text in the target prompt -> window);
    - ``self_attn``: self-attention injection window;
    - ``blend_start``: first evaluation after which LocalBlend mixes latents.
    """

    n_evals: int
    cross: tuple[int, int]
    self_attn: tuple[int, int]
    words: dict = field(default_factory=dict)
    blend_start: int = 0

    @classmethod
    def build(cls, n_evals: int, cross=0.8, self_attn=0.4, words=None, blend_start=0.2) -> "AlphaSchedule":
        if isinstance(n_evals, bool) or not isinstance(n_evals, int) or n_evals < 1:
            raise P2PError(f"n_evals must be a positive integer, got {n_evals!r}")
        words = dict(words or {})
        if isinstance(cross, dict):  # the reference's {"default_": ..., word: ...} form
            cross = dict(cross)
            words = {**{k: v for k, v in cross.items() if k != DEFAULT_KEY}, **words}
            cross = cross.get(DEFAULT_KEY, (0.0, 1.0))
        return cls(
            n_evals,
            resolve_window(cross, n_evals, "cross window"),
            resolve_window(self_attn, n_evals, "self-attention window"),
            {w: resolve_window(v, n_evals, f"window of {w!r}") for w, v in words.items()},
            _to_step(blend_start, n_evals, "blend_start"),
        )

    def cross_alpha(self, target: Prompt) -> torch.Tensor:
        """(n_evals, L) float tensor: 1 where target token j takes the source's attention at step t."""
        alpha = torch.zeros(self.n_evals, target.max_length)
        alpha[self.cross[0] : self.cross[1], :] = 1.0
        for word, (start, end) in self.words.items():
            positions = target.positions(word)  # raises WordNotFound naming the target's words
            alpha[:, positions] = 0.0
            alpha[start:end, positions] = 1.0
        return alpha

    def self_active(self, step: int) -> bool:
        return self.self_attn[0] <= step < self.self_attn[1]

    def to_dict(self) -> dict:
        """Plain data (step indices) for JSON export and the timeline widget."""
        return {
            "n_evals": self.n_evals,
            "cross": list(self.cross),
            "self_attn": list(self.self_attn),
            "words": {w: list(v) for w, v in self.words.items()},
            "blend_start": self.blend_start,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "AlphaSchedule":
        if not isinstance(data, dict) or "n_evals" not in data:
            raise P2PError(f"a schedule dict needs 'n_evals', got {data!r}")
        n = data["n_evals"]
        return cls.build(
            n,
            tuple(data.get("cross", (0, n))),
            tuple(data.get("self_attn", (0, 0))),
            {w: tuple(v) for w, v in dict(data.get("words", {})).items()},
            data.get("blend_start", 0),
        )
