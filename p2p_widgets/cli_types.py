"""argparse types shared by the package's command lines (``p2p-widgets`` and the modules run
with ``python -m``): kept apart from cli.py so that a module's own command line need not import it."""

from __future__ import annotations

import argparse


def count_arg(text: str) -> int:
    """A non-negative integer (``--images``/``--seeds`` of the pocket evaluation: 0 skips that part)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value
