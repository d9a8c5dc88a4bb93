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


def _int_in(text: str, low: int, high: int | None, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value
