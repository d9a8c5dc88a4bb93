"""Declared parameters of a rule: name, type, range, default and help.

A rule that declares its parameters (``params = (Param(...), ...)`` on a :class:`ParamRule`) is
built, validated, written to JSON, offered in the Studio and swept over a grid from this one
declaration, without code of its own in any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import P2PError, is_int, is_number

KINDS = ("float", "int", "bool", "choice", "words")


@dataclass(frozen=True)
class Param:
    """One parameter. ``kind``: "float", "int", "bool", "choice" (one of ``choices``) or "words"
    (a list of words; empty allowed unless ``non_empty``). ``low`` / ``high`` bound numbers
    (inclusive); ``optional`` allows ``None`` (e.g. "until the end of the run"). ``default=None``
    without ``optional``: a required parameter, which only the user can give (the Studio asks for
    it beside its field)."""

    name: str
    kind: str
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple = field(default=())
    optional: bool = False
    non_empty: bool = False  # "words" only: at least one word (e.g. the words a mask is made from)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise P2PError(f"parameter {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if value is not None and not (is_number(value) and self.kind in ("float", "int")):
                raise P2PError(
                    f"parameter {self.name!r}: {bound} must be a finite number (for int and float parameters), "
                    f"got {value!r}"
                )
        if self.low is not None and self.high is not None and self.low > self.high:
            raise P2PError(f"parameter {self.name!r}: low {self.low!r} is above high {self.high!r}: no value can pass")
        if self.non_empty and self.kind != "words":
            raise P2PError(f"parameter {self.name!r}: non_empty is for word lists, not {self.kind!r}")
        if self.default is not None:  # None without optional: a required parameter
            self.check(self.default)  # a declaration whose default is out of its own range is a bug

    def check(self, value):
        """``value`` checked and normalised (ints for "int", floats for "float", a tuple of words),
        or a P2PError naming this parameter."""
        if value is None:
            if self.optional:
                return None
            raise P2PError(f"parameter {self.name!r} needs a value ({self.help or self.kind})")
        checker = getattr(self, f"_check_{self.kind}")
        return checker(value)

    def _check_float(self, value):
        if not is_number(value):
            raise P2PError(f"parameter {self.name!r} must be a finite number, got {value!r}")
        return self._in_range(float(value))

    def _check_int(self, value):
        if not is_int(value):
            raise P2PError(f"parameter {self.name!r} must be an integer, got {value!r}")
        return self._in_range(int(value))

    def _check_bool(self, value):
        if not isinstance(value, bool):
            raise P2PError(f"parameter {self.name!r} must be true or false, got {value!r}")
        return value

    def _check_choice(self, value):
        if value not in self.choices:
            raise P2PError(f"parameter {self.name!r} must be one of {list(self.choices)}, got {value!r}")
        return value

    def _check_words(self, value):
        words = [value] if isinstance(value, str) else value
        if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) and w.strip() for w in words):
            raise P2PError(f"parameter {self.name!r} must be a list of words, got {value!r}")
        if self.non_empty and not words:
            raise P2PError(f"parameter {self.name!r} must name at least one word ({self.help or 'words'})")
        return tuple(w.strip() for w in words)

    def _in_range(self, v):
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        if not low <= v <= high:
            raise P2PError(f"parameter {self.name!r} must be in [{self.low}, {self.high}], got {v!r}")
        return v

    def describe(self) -> dict:
        """The declaration as plain data (the Studio builds its controls from it)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "default": list(self.default) if isinstance(self.default, tuple) else self.default,
            "help": self.help,
            "low": self.low,
            "high": self.high,
            "choices": list(self.choices),
            "optional": self.optional,
            "non_empty": self.non_empty,
        }


def check_values(params: tuple[Param, ...], values: dict, owner: str) -> dict:
    """Every declared parameter's value (defaults filled in), checked; unknown names are an error."""
    known = {p.name: p for p in params}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise P2PError(f"{owner} has no parameter {unknown[0]!r}; its parameters are {', '.join(known) or 'none'}")
    return {name: p.check(values.get(name, p.default)) for name, p in known.items()}
