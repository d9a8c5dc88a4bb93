"""The command line: which checkouts, the comparison of each method given, the printed table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...errors import P2PError
from .inputs import GUIDANCE, SIZE, build_reference_model, start_noise
from .masactrl import masactrl_authors, masactrl_ours
from .p2p import _compare_p2p
from .pnp import _compare_pnp
from .row import TOLERANCE, Row, _measure

DEFAULT_STEPS = 6  # MasaCtrl controls steps 4 and 5; PnP injects features 4 steps, Q/K 3

# what each checkout must hold (the files the comparison imports or reads)
CHECKOUTS = {
    "masactrl": ("masactrl/masactrl.py", "masactrl/masactrl_utils.py", "masactrl/diffuser_utils.py"),
    "pnp": ("pnp.py", "pnp_utils.py", "preprocess.py"),
    "p2p": ("ptp_utils.py", "seq_aligner.py", "prompt-to-prompt_stable.ipynb"),
}
REPOSITORIES = {"masactrl": "TencentARC/MasaCtrl", "pnp": "MichalGeyer/pnp-diffusers", "p2p": "google/prompt-to-prompt"}


def check_checkout(option: str, directory) -> Path:
    """The checkout directory for ``--option``, or a P2PError naming the option and what is missing."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise P2PError(f"--{option}: {str(directory)!r} is not a directory (a checkout of {REPOSITORIES[option]})")
    missing = [name for name in CHECKOUTS[option] if not (path / name).is_file()]
    if missing:
        raise P2PError(
            f"--{option}: {str(directory)!r} is not a checkout of {REPOSITORIES[option]}: "
            f"it has no {', '.join(missing)}"
        )
    return path


def compare(checkouts: dict, steps: int, pipe=None, dtype: str = "float64") -> list[Row]:
    """One row per case of each method whose checkout is given (``{"masactrl": Path, ...}``), on
    ``pipe`` (default: :func:`build_reference_model` in ``dtype``)."""
    pipe = build_reference_model(dtype) if pipe is None else pipe
    noise = start_noise(pipe)
    rows = []
    if "masactrl" in checkouts:
        row = Row("MasaCtrl")
        rows.append(
            _measure(
                row,
                lambda: masactrl_authors(checkouts["masactrl"], pipe, noise, steps, row.changes),
                lambda: masactrl_ours(pipe, noise, steps),
            )
        )
    if "pnp" in checkouts:
        rows += _compare_pnp(checkouts["pnp"], pipe, steps)
    if "p2p" in checkouts:
        rows += _compare_p2p(checkouts["p2p"], pipe, noise, steps)
    return rows


def report(rows: list[Row], steps: int, dtype: str = "float64", out=None) -> str:
    """The table (and the changes made to run the authors' code) as printed."""
    lines = [
        f"reference model: SD 1.x UNet layout at {SIZE} px (attention at 64/32/16), random weights, {dtype} CPU; "
        f"{steps} steps, guidance {GUIDANCE}",
        f"{'method':<16} {'max |latent diff|':>18} {'tolerance':>10}  result   seconds",
    ]
    for r in rows:
        value = "-" if r.difference is None else f"{r.difference:.3e}"
        verdict = "pass" if r.passed else "FAIL"
        lines.append(f"{r.method:<16} {value:>18} {TOLERANCE:>10.0e}  {verdict:<7} {r.seconds:7.1f}")
    for r in rows:
        if r.error:
            lines.append(f"{r.method}: error: {r.error}")
        if r.note:
            lines.append(f"{r.method}: {r.note}")
    changed = [r for r in rows if r.changes]
    if changed:
        lines.append("changes made to run the authors' code (at run time; their files untouched):")
        for r in changed:
            lines += [f"  {r.method}: {c}" for c in r.changes]
    text = "\n".join(lines)
    print(text, file=out or sys.stdout)
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.bench reference",
        description=sys.modules[__package__].__doc__,  # the package's: the cases and run-time changes
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option, repository in REPOSITORIES.items():
        p.add_argument(f"--{option}", metavar="DIR", help=f"a checkout of {repository}")
    p.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help=f"sampling steps of every run (default {DEFAULT_STEPS})"
    )
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="the model's precision (default float64: see build_reference_model)",
    )
    return p


def checkouts_of(args) -> dict:
    """``{option: Path}`` for the given checkouts; P2PError naming a bad one, or none given."""
    given = {option: getattr(args, option) for option in CHECKOUTS if getattr(args, option)}
    if not given:
        raise P2PError("give at least one checkout: --masactrl DIR, --pnp DIR or --p2p DIR")
    if not 2 <= args.steps <= 1000:
        raise P2PError(f"--steps must be between 2 and 1000, got {args.steps}")
    return {option: check_checkout(option, directory) for option, directory in given.items()}


def main(argv=None):
    """Exit status 0 when every compared case is within the tolerance, 1 otherwise, 2 for bad arguments."""
    args = parser().parse_args(argv)
    try:
        checkouts = checkouts_of(args)
    except P2PError as exc:
        print(f"reference: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    rows = compare(checkouts, args.steps, dtype=args.dtype)
    report(rows, args.steps, args.dtype)
    raise SystemExit(0 if all(r.passed for r in rows) else 1)
