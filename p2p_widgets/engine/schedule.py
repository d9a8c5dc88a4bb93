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

import numbers
from dataclasses import dataclass, field

import torch

from ..errors import P2PError, is_int, is_number
from .mapper import check_compat
from .prompts import Prompt

DEFAULT_KEY = "default_"


def resolve_window(spec, n_evals: int, what: str = "window") -> tuple[int, int]:
    """A window spec (float f, (start, end) of fractions or ints) as integer ``[start, end)``."""
    if isinstance(spec, bool):
        raise P2PError(f"{what}: expected a fraction, a step or a (start, end) pair, got {spec!r}")
    if isinstance(spec, numbers.Real):  # numpy scalars too; to_step names a bound that is not finite
        spec = (0, spec)
    try:
        start, end = spec
    except (TypeError, ValueError):
        raise P2PError(f"{what}: expected a fraction, a step or a (start, end) pair, got {spec!r}") from None
    bounds = [to_step(v, n_evals, what) for v in (start, end)]
    if bounds[0] > bounds[1]:
        raise P2PError(f"{what}: start {start!r} is after end {end!r}")
    return bounds[0], bounds[1]


def to_step(v, n_evals, what):
    """A step index from a step (int) or a fraction of the run (float), checked."""
    if not is_number(v):
        raise P2PError(f"{what}: bound {v!r} is not a finite number")
    if is_int(v):
        v = int(v)
    else:
        v = float(v)
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
    - ``blend_start``: where the Studio and timeline start LocalBlend (the run itself follows
      ``LocalBlend.start``; ``Editor.edit`` passes that start here).
    """

    n_evals: int
    cross: tuple[int, int]
    self_attn: tuple[int, int]
    words: dict = field(default_factory=dict)
    blend_start: int = 0

    @classmethod
    def build(
        cls, n_evals: int, cross=0.8, self_attn=0.4, words=None, blend_start=0.2, compat: str = "project"
    ) -> AlphaSchedule:
        """``compat="reference"``: cross windows' fractions count ``n_evals + 1`` steps as the
        authors' code does (it sized them for PNDM's extra evaluation); ends are capped at the run."""
        if not is_int(n_evals) or n_evals < 1:
            raise P2PError(f"n_evals must be a positive integer, got {n_evals!r}")
        n_evals = int(n_evals)  # a numpy integer would reach the JSON
        if words is not None and not isinstance(words, dict):
            raise P2PError(f"words must map words of the target to windows, e.g. {{'cat': 0.3}}; got {words!r}")
        words = dict(words or {})
        if isinstance(cross, dict):  # the reference's {"default_": ..., word: ...} form
            cross = dict(cross)
            words = {**{k: v for k, v in cross.items() if k != DEFAULT_KEY}, **words}
            cross = cross.get(DEFAULT_KEY, (0.0, 1.0))

        check_compat(compat)

        def cross_window(v, what):
            if compat != "reference":
                return resolve_window(v, n_evals, what)
            return tuple(min(b, n_evals) for b in resolve_window(v, n_evals + 1, what))

        return cls(
            n_evals,
            cross_window(cross, "cross window"),
            resolve_window(self_attn, n_evals, "self-attention window"),
            {w: cross_window(v, f"window of {w!r}") for w, v in words.items()},
            to_step(blend_start, n_evals, "blend_start"),
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
        """Plain data (step indices) for the edit JSON: ``words`` as ``{word: [start, end]}``."""
        return {
            "n_evals": self.n_evals,
            "cross": list(self.cross),
            "self_attn": list(self.self_attn),
            "words": json_keyed(self.words, lambda w, v: [w, *v]),
            "blend_start": self.blend_start,
        }

    @classmethod
    def from_dict(cls, data, target: Prompt | None = None) -> AlphaSchedule:
        """The schedule of :meth:`to_dict`'s data, validated (see :meth:`from_windows`)."""
        if not isinstance(data, dict):
            raise P2PError(f"a schedule is an object that needs 'n_evals', got {data!r}")
        n = data.get("n_evals")
        if not is_int(n) or n < 1:
            raise P2PError(f"a schedule needs 'n_evals', a positive integer; got {n!r}")
        words = data.get("words", {})
        if isinstance(words, dict):
            words = [[w, *v] if isinstance(v, (list, tuple)) else [w, v] for w, v in words.items()]
        elif not isinstance(words, list):
            raise P2PError(f"schedule 'words' must map words to [start, end], got {words!r}")
        windows = {
            "cross": data.get("cross", [0, n]),
            "self_attn": data.get("self_attn", [0, 0]),
            "words": words,
            "blend_start": data.get("blend_start", 0),
        }
        return cls.from_windows(int(n), windows, target, positions=True)

    def to_windows(self) -> dict:
        """The widgets' form (ordered word rows): ``{'cross': [s, e], 'self_attn': [s, e],
        'words': [[word, s, e], ...], 'blend_start': k}``, in evaluations."""
        return {
            "cross": list(self.cross),
            "self_attn": list(self.self_attn),
            "words": [[word, *window] for word, window in self.words.items()],
            "blend_start": self.blend_start,
        }

    @classmethod
    def from_windows(
        cls, n_evals: int, windows, target: Prompt | None = None, positions: bool = False
    ) -> AlphaSchedule:
        """The one validator of integer windows (JSON, widgets): every bound an integer step in
        ``[0, n_evals]``, start <= end, word rows unique (and words of ``target`` when given); a word
        given by its position (an int) only with ``positions`` (the JSON; widgets show words by text).
        Raises a :class:`P2PError` naming the field."""
        if not isinstance(windows, dict):
            raise P2PError(f"windows must be a dict, got {type(windows).__name__}")
        unknown = sorted(map(str, set(windows) - {"cross", "self_attn", "words", "blend_start"}))
        if unknown:
            raise P2PError(f"windows: unknown key(s) {', '.join(unknown)}")
        missing = [k for k in ("cross", "self_attn", "blend_start") if k not in windows]
        if missing:
            raise P2PError(f"windows: missing {', '.join(missing)}")
        rows = windows.get("words", [])
        if not isinstance(rows, (list, tuple)):
            raise P2PError(f"windows['words'] must be a list of [word, start, end], got {rows!r}")
        words = {}
        for k, row in enumerate(rows):
            is_row = isinstance(row, (list, tuple)) and len(row) == 3
            if not is_row or not (isinstance(row[0], str) or (positions and is_int(row[0]))):
                raise P2PError(f"word row {k} must be [word, start, end], got {row!r}")
            if target is not None:
                try:
                    target.find(row[0])
                except P2PError as exc:
                    raise P2PError(f"word row {k}: {exc}") from None
            if row[0] in words:
                raise P2PError(f"word row {k}: {row[0]!r} has two rows")
            words[row[0]] = _step_window(row[1:], n_evals, f"window of {row[0]!r}")
        return cls(
            n_evals,
            _step_window(windows["cross"], n_evals, "cross window"),
            _step_window(windows["self_attn"], n_evals, "self-attention window"),
            words,
            _step(windows["blend_start"], n_evals, "blend_start"),
        )

    def rescaled(self, n_evals: int) -> AlphaSchedule:
        """The same windows as fractions of a run of ``n_evals`` evaluations (rounded)."""

        def at(v):
            return max(0, min(n_evals, round(v * n_evals / self.n_evals)))

        return AlphaSchedule(
            n_evals,
            (at(self.cross[0]), at(self.cross[1])),
            (at(self.self_attn[0]), at(self.self_attn[1])),
            {w: (at(s), at(e)) for w, (s, e) in self.words.items()},
            at(self.blend_start),
        )


def json_keyed(mapping: dict, row):
    """``mapping`` for JSON: an object when every key is a word, else a list of rows (a word given
    by its position is an int, which a JSON object key would turn into text)."""
    if all(isinstance(k, str) for k in mapping):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in mapping.items()}
    return [row(k, v) for k, v in mapping.items()]


def _step(v, n_evals: int, what: str) -> int:
    if not is_int(v):
        raise P2PError(f"{what} must be an integer step, got {v!r}")
    if not 0 <= v <= n_evals:
        raise P2PError(f"{what} {v} is outside [0, {n_evals}] for a run of {n_evals} evaluations")
    return int(v)


def _step_window(v, n_evals: int, what: str) -> tuple[int, int]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise P2PError(f"{what} must be [start, end], got {v!r}")
    start, end = _step(v[0], n_evals, f"{what} start"), _step(v[1], n_evals, f"{what} end")
    if start > end:
        raise P2PError(f"{what}: start {start} is after end {end}")
    return start, end
