"""The one error root, and the small value checks every layer uses.

Every error a user can cause is a :class:`P2PError` (a ``ValueError``, so broad ``except`` clauses
keep working) whose message names the problem; areas subclass it (words, prompts, frames, widget
messages).
"""

from __future__ import annotations

import math
import numbers


class P2PError(ValueError):
    """Base class for bad input to p2p_widgets."""


class WordNotFound(P2PError):
    """A word asked for is not in the prompt."""

    def __init__(self, word, prompt_text: str, words):
        listed = ", ".join(repr(w) for w in words)
        super().__init__(f"word {word!r} is not in the prompt {prompt_text!r}; its words are: {listed}")
        self.word = word


class PromptTooLong(P2PError):
    """A prompt has more tokens than the text encoder takes."""

    def __init__(self, prompt_text: str, n_tokens: int, limit: int):
        super().__init__(
            f"prompt has {n_tokens} tokens with BOS/EOS but the text encoder takes {limit}: {prompt_text[:80]!r}..."
        )


class RunStopped(P2PError):
    """A stop event ended a run before it sampled (e.g. while it waited for another run)."""


class FrameError(P2PError):
    """A frame (binary message to or from the front end) is malformed."""


class MessageError(P2PError):
    """A message from the front end was refused; the text is shown in the widget's error banner."""


def is_int(value: object) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite real number (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_int(name: str, value, low: int, high: int) -> int:
    """``value`` as a Python int, or a :class:`P2PError` naming ``name`` and the range."""
    if not is_int(value) or not low <= value <= high:
        raise P2PError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def nesting(obj, limit: int) -> int:
    """How deep lists, tuples and dicts nest in ``obj`` (1 for a flat one, 0 for a scalar), counted
    without recursion and only up to ``limit + 1`` (so a cycle or a huge depth costs little)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_nesting(what: str, obj, limit: int) -> None:
    """A P2PError when ``obj`` nests deeper than ``limit`` (Python would recurse past its stack)."""
    if nesting(obj, limit) > limit:
        raise P2PError(f"{what} nests deeper than {limit} levels")


def check_run_callbacks(callback, stop_event, on_wait) -> None:
    """A long run's hooks (sampling, inversion): ``callback`` and ``on_wait`` functions or None,
    ``stop_event`` a ``threading.Event`` or None; else a P2PError before any work."""
    for name, value, when in (
        ("callback", callback, "with each step's event"),
        ("on_wait", on_wait, "when the run waits for another one"),
    ):
        if value is not None and not callable(value):
            raise P2PError(f"{name} must be a function (called {when}), got {value!r}")
    if stop_event is not None and not callable(getattr(stop_event, "is_set", None)):
        raise P2PError(f"stop_event must be a threading.Event (set it to stop the run), got {stop_event!r}")
