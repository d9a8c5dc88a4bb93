"""The flow-model methods beside their authors' code (issue 27): FlowEdit's ``FlowEditSD3``
(github.com/fallenshock/FlowEdit, MIT) and ours on a tiny random-weight SD3 in float64, the same
pocket picture, prompts and noise; the maximum latent difference of the edits.

The authors' code is imported from a checkout given by path and is never part of this repository.
What changes at run time to run it, and only for the duration of its call:

- ``torch.randn_like`` is replaced by a function handing out pre-drawn noise (the same draws this
  project's ``flow_edit`` receives through its ``noise=`` argument). Their noise is
  ``randn_like`` of the VAE's latents, which are channels-last, and torch's CPU normals differ for
  channels-last and contiguous tensors of one seed, so both sides take the same tensors instead.
- Nothing else: ``FlowEditSD3`` runs unchanged under this project's diffusers on a tiny
  ``StableDiffusion3Pipeline`` (guidances above 1: with guidance 1 their SD3 path passes a tuple
  to the transformer; ``n_min`` 0: with ``n_min > 0`` their SD3 path reads ``noise_pred_tar``,
  a name it never sets).

``python -m p2p_widgets.bench.reference_flow --flowedit DIR`` prints the row.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import time
from pathlib import Path

import torch

from ..errors import P2PError

TOLERANCE = 1e-5
FLOWEDIT_FILES = ("FlowEdit_utils.py",)
SOURCE = "a big red circle left of a small blue square on a gray background"
TARGET = "a big green circle left of a small blue square on a gray background"
CHANGES = [
    "torch.randn_like hands out pre-drawn noise during FlowEditSD3's call (both sides take the same draws)",
]


def check_flowedit_checkout(directory) -> Path:
    path = Path(directory).expanduser()
    missing = [name for name in FLOWEDIT_FILES if not (path / name).is_file()]
    if not path.is_dir() or missing:
        raise P2PError(
            f"--flowedit: {str(directory)!r} is not a checkout of fallenshock/FlowEdit (no FlowEdit_utils.py)"
        )
    return path


def _import_authors(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"_authors_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class NoiseQueue:
    """Pre-drawn noise handed out in order, to either side (``draw(like)``)."""

    def __init__(self, draws):
        self.draws, self.next = list(draws), 0

    def __call__(self, like, *args, **kwargs):
        if self.next >= len(self.draws):
            raise RuntimeError("more noise asked for than drawn")
        out = self.draws[self.next]
        self.next += 1
        if tuple(out.shape) != tuple(like.shape):
            raise RuntimeError(f"noise of shape {tuple(out.shape)} asked for as {tuple(like.shape)}")
        return out.to(like.device, like.dtype)


@contextlib.contextmanager
def patched_randn_like(queue):
    original = torch.randn_like
    torch.randn_like = queue
    try:
        yield
    finally:
        torch.randn_like = original


def flowedit_sd3_case(checkout, *, steps=8, n_max=6, n_avg=2, source_guidance=3.5, target_guidance=13.5, seed=0):
    """{"difference", "changes", "effect", "seconds"}: the authors' ``FlowEditSD3`` and ours on a
    tiny SD3 in float64 (``effect``: how far the edit moved the picture's latents, for scale)."""
    from ..engine.flowedit import flow_edit
    from ..engine.images import load_image
    from ..engine.sampler import Editor
    from ..pocket.scenes import make_dataset
    from .mmdit_geometries import tiny_sd3_pipeline

    t0 = time.perf_counter()
    authors = _import_authors(check_flowedit_checkout(checkout) / "FlowEdit_utils.py", "flowedit")
    pipe = tiny_sd3_pipeline(seed).to(dtype=torch.float64)
    editor = Editor(pipe)
    images, _, _ = make_dataset(1, seed)
    pixels = load_image(images[0], (64, 64))
    x_src = editor.encode_image(pixels)
    generator = torch.Generator("cpu").manual_seed(seed)
    draws = [torch.randn(x_src.shape, generator=generator, dtype=torch.float64) for _ in range(n_max * n_avg)]

    ours = flow_edit(
        editor,
        pixels,
        SOURCE,
        TARGET,
        steps=steps,
        n_max=n_max,
        n_min=0,
        n_avg=n_avg,
        source_guidance=source_guidance,
        target_guidance=target_guidance,
        noise=NoiseQueue(draws),
        size=64,
    ).latents
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    with patched_randn_like(NoiseQueue(draws)):
        theirs = authors.FlowEditSD3(
            pipe,
            scheduler,
            x_src.clone(),
            SOURCE,
            TARGET,
            "",
            T_steps=steps,
            n_avg=n_avg,
            src_guidance_scale=source_guidance,
            tar_guidance_scale=target_guidance,
            n_min=0,
            n_max=n_max,
        )
    return {
        "difference": float((ours.double() - theirs.double()).abs().max()),
        "effect": float((ours.double() - x_src.double()).abs().max()),
        "changes": list(CHANGES),
        "seconds": time.perf_counter() - t0,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2p_widgets.bench.reference_flow", description=__doc__)
    parser.add_argument("--flowedit", required=True, help="a checkout of github.com/fallenshock/FlowEdit")
    args = parser.parse_args(argv)
    try:
        row = flowedit_sd3_case(args.flowedit)
    except P2PError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verdict = "ok" if row["difference"] <= TOLERANCE else "DIFFERS"
    print(
        f"FlowEditSD3 (tiny SD3, float64): max latent difference {row['difference']:.3e} "
        f"(tolerance {TOLERANCE:g}; the edit moved the latents by {row['effect']:.3e}) {verdict} "
        f"in {row['seconds']:.1f} s"
    )
    for change in row["changes"]:
        print(f"  changed at run time: {change}")
    return 0 if verdict == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
