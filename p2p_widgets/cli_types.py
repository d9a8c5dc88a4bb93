"""argparse types shared by the package's command lines (``p2p-widgets`` and the modules run
with ``python -m``): kept apart from cli.py so that a module's own command line need not import it."""

from __future__ import annotations

import argparse


def count_arg(text: str) -> int:
    """A non-negative integer (``--images``/``--seeds`` of the pocket evaluation: 0 skips that part)."""
    return _int_in(text, 0, None, "an integer >= 0")


def port_arg(text: str) -> int:
    """A TCP port, 0 for a free one."""
    return _int_in(text, 0, 65535, "a port in 0-65535 (0: a free one)")


def steps_arg(text: str) -> int:
    """Sampling steps of one run: 1 to 1000 (what the Studio's field takes too)."""
    return _int_in(text, 1, 1000, "a number of steps in 1-1000")


def seed_arg(text: str) -> int:
    """A noise seed: 0 to 2**63 - 1 (what an edit file holds)."""
    return _int_in(text, 0, 2**63 - 1, "a seed in 0 to 2**63 - 1")


def _int_in(text: str, low: int, high: int | None, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value
