"""One compared case (a row of the table) and how its two sides are measured."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ...errors import P2PError

TOLERANCE = 1e-4


@dataclass
class Row:
    """One compared case: its maximum latent difference, or why it could not be measured."""

    method: str
    difference: float | None = None
    error: str | None = None
    seconds: float = 0.0
    changes: list = field(default_factory=list)
    note: str = ""  # what the case exercised, where that needs saying

    @property
    def passed(self) -> bool:
        return self.error is None and self.difference is not None and self.difference <= TOLERANCE


def max_difference(a, b) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()  # float64: a float32 cast would round |x| ~ 30 to 2e-6
    if a.shape != b.shape:
        raise P2PError(f"the two sides' latents differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a - b).abs().max())


def _measure(row: Row, authors, ours) -> Row:
    """Run both sides; any failure becomes the row's error (the other methods still run)."""
    t0 = time.perf_counter()
    try:
        theirs = authors()
        if theirs is None:
            raise P2PError("the authors' run returned no latents (their decode step was never reached)")
        row.difference = max_difference(ours(), theirs)
    except Exception as exc:  # noqa: BLE001 - one method's failure is reported in its row
        row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    row.seconds = time.perf_counter() - t0
    return row
