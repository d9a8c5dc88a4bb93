"""The flow-model methods beside their authors' code (issue 27): FlowEdit's ``FlowEditSD3``
(github.com/fallenshock/FlowEdit, MIT) and ours on a tiny random-weight SD3 in float64, the same
pocket picture, prompts and noise; the maximum latent difference of the edits.

The authors' code is imported from a checkout given by path and is never part of this repository.
What changes at run time to run it, and only for the duration of its call:

- ``torch.randn_like`` is replaced by a function handing out pre-drawn noise (the same draws this
  project's ``flow_edit`` receives through its ``noise=`` argument). Their noise is
  ``randn_like`` of the VAE's latents, which are channels-last, and torch's CPU normals differ for
  channels-last and contiguous tensors of one seed, so both sides take the same tensors instead.
- ``FlowEditSD3`` otherwise runs unchanged under this project's diffusers on a tiny
  ``StableDiffusion3Pipeline`` (guidances above 1: with guidance 1 their SD3 path passes a tuple
  to the transformer; ``n_min`` 0: with ``n_min > 0`` their SD3 path reads ``noise_pred_tar``,
  a name it never sets).
- ``FlowEditFLUX`` is loaded from their file with one expression replaced in memory: the image
  size they derive from the latents, ``shape * pipe.vae_scale_factor // 2``, becomes
  ``shape * pipe.vae_scale_factor``. They wrote it when FluxPipeline's ``vae_scale_factor`` was
  twice the VAE's downsampling; since diffusers made it the downsampling itself, the halved size
  gives ``prepare_latents`` image ids for a quarter of the tokens and the transformer fails (their
  issues 4 and 6). Their noise there is drawn on the packed (tokens x 2x2 patches) latents: they
  get each draw packed, this project the same draw spatial.

- RF-Inversion: diffusers' community ``pipeline_flux_rf_inversion.py`` (Apache-2.0, given by path)
  runs as an ``RFInversionFluxPipeline`` built from the tiny Flux's components, unchanged except
  that its instance's ``encode_image`` returns the picture's latents as this project encodes them
  (the VAE's posterior mean: theirs draws a sample from the posterior with the global generator)
  and ``randn_like`` hands both sides the same draw ``y_1`` (packed for them).

``python -m p2p_widgets.bench.reference_flow --flowedit DIR --rf-inversion FILE`` prints the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import time
from pathlib import Path

import torch

from ..engine.models.flux import pack_latents, unpack_latents
from ..errors import P2PError

TOLERANCE = 1e-5
FLOWEDIT_FILES = ("FlowEdit_utils.py",)
SOURCE = "a big red circle left of a small blue square on a gray background"
TARGET = "a big green circle left of a small blue square on a gray background"
CHANGES = [
    "torch.randn_like hands out pre-drawn noise during the authors' call (both sides take the same draws)",
]


def check_flowedit_checkout(directory) -> Path:
    path = Path(directory).expanduser()
    missing = [name for name in FLOWEDIT_FILES if not (path / name).is_file()]
    if not path.is_dir() or missing:
        raise P2PError(
            f"--flowedit: {str(directory)!r} is not a checkout of fallenshock/FlowEdit (no FlowEdit_utils.py)"
        )
    return path


FLUX_SIZE_FIX = (
    "x_src.shape[2]*pipe.vae_scale_factor//2, x_src.shape[3]*pipe.vae_scale_factor//2",
    "x_src.shape[2]*pipe.vae_scale_factor, x_src.shape[3]*pipe.vae_scale_factor",
)


def _import_authors(path: Path, name: str, replace=()):
    """Their module from ``path``, with each (old, new) of ``replace`` substituted in memory first."""
    source = path.read_text()
    for old, new in replace:
        if old not in source:
            raise P2PError(f"{path}: expected to find {old!r} (another version of the authors' code?)")
        source = source.replace(old, new)
    spec = importlib.util.spec_from_loader(f"_authors_{name}", loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - the authors' code, by the user's path
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


def flowedit_flux_case(checkout, *, steps=8, n_max=6, n_avg=2, source_guidance=1.5, target_guidance=5.5, seed=0):
    """As :func:`flowedit_sd3_case` with the authors' ``FlowEditFLUX`` on a tiny Flux dev (guidance
    embedded), after the size fix named in the module docstring."""
    from ..engine.flowedit import flow_edit
    from ..engine.images import load_image
    from ..engine.sampler import Editor
    from ..pocket.scenes import make_dataset
    from .mmdit_geometries import tiny_flux_pipeline

    t0 = time.perf_counter()
    path = check_flowedit_checkout(checkout) / "FlowEdit_utils.py"
    authors = _import_authors(path, "flowedit_flux", [FLUX_SIZE_FIX])
    pipe = tiny_flux_pipeline(seed, guidance_embeds=True).to(dtype=torch.float64)
    editor = Editor(pipe)
    images, _, _ = make_dataset(1, seed)
    pixels = load_image(images[0], (64, 64))
    x_src = editor.encode_image(pixels)
    h, w = x_src.shape[-2:]
    generator = torch.Generator("cpu").manual_seed(seed)
    draws = [torch.randn(x_src.shape, generator=generator, dtype=torch.float64) for _ in range(n_max * n_avg)]
    settings = dict(steps=steps, n_max=n_max, n_min=0, n_avg=n_avg)
    ours = flow_edit(
        editor,
        pixels,
        SOURCE,
        TARGET,
        **settings,
        source_guidance=source_guidance,
        target_guidance=target_guidance,
        noise=NoiseQueue(draws),
        size=64,
    ).latents
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    with patched_randn_like(NoiseQueue([pack_latents(d) for d in draws])):
        theirs = authors.FlowEditFLUX(
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
    assert theirs.shape[-2:] == (h, w)
    return {
        "difference": float((ours.double() - theirs.double()).abs().max()),
        "effect": float((ours.double() - x_src.double()).abs().max()),
        "changes": [
            *CHANGES,
            "FlowEditFLUX: the image size 'shape * pipe.vae_scale_factor // 2' read as 'shape * "
            "pipe.vae_scale_factor' (diffusers' vae_scale_factor is no longer twice the VAE's downsampling)",
            "FlowEditFLUX: each noise draw handed out packed (tokens x 2x2 patches), ours the same draw spatial",
        ],
        "seconds": time.perf_counter() - t0,
    }


def rf_inversion_flux_case(community_file, *, steps=8, seed=0, **settings):
    """RF-Inversion's community pipeline (``invert`` then the edit) and ours on a tiny Flux dev in
    float64, same picture, prompts and ``y_1``; the edit's window and controls are set so every
    term acts (``start`` 0.125 to ``stop`` 0.75 of 8 steps, eta 0.7 decayed, gamma 0.5)."""
    # long: one comparison read top to bottom: the shared inputs, their pipeline's two calls, ours
    from ..engine.images import load_image
    from ..engine.rf_inversion import check_rf_inversion_settings, rf_inversion
    from ..engine.sampler import Editor
    from ..pocket.scenes import make_dataset
    from .mmdit_geometries import tiny_flux_pipeline

    t0 = time.perf_counter()
    path = Path(community_file).expanduser()
    if path.is_dir():  # a diffusers checkout
        path = path / "examples" / "community" / "pipeline_flux_rf_inversion.py"
    if not path.is_file() or "RFInversionFluxPipeline" not in path.read_text():
        raise P2PError(f"--rf-inversion: {str(community_file)!r} is not diffusers' pipeline_flux_rf_inversion.py")
    authors = _import_authors(path, "rf_inversion")
    params = check_rf_inversion_settings(
        {"steps": steps, "start": 0.125, "stop": 0.75, "eta": 0.7, "decay_eta": True, "guidance": 2.5, **settings}
    )
    pipe = tiny_flux_pipeline(seed, guidance_embeds=True).to(dtype=torch.float64)
    editor = Editor(pipe)
    images, _, _ = make_dataset(1, seed)
    pixels = load_image(images[0], (64, 64))
    x_src = editor.encode_image(pixels)
    h, w = x_src.shape[-2:]
    y1 = torch.randn(x_src.shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float64)
    ours = rf_inversion(editor, pixels, "", TARGET, noise=NoiseQueue([y1]), size=64, **params).latents

    names = ("scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer")
    theirs_pipe = authors.RFInversionFluxPipeline(**{name: getattr(pipe, name) for name in names})
    theirs_pipe.set_progress_bar_config(disable=True)
    theirs_pipe.encode_image = lambda image, **kwargs: (x_src.clone(), None)  # the posterior mean, as ours
    side = 64
    with patched_randn_like(NoiseQueue([pack_latents(y1)])):
        inverted, image_latents, ids = theirs_pipe.invert(
            pixels,
            source_prompt="",
            source_guidance_scale=params["source_guidance"],
            num_inversion_steps=steps,
            gamma=params["gamma"],
            height=side,
            width=side,
            dtype=torch.float64,
        )
    edited = theirs_pipe(
        prompt=TARGET,
        inverted_latents=inverted,
        image_latents=image_latents,
        latent_image_ids=ids,
        height=side,
        width=side,
        eta=params["eta"],
        decay_eta=params["decay_eta"],
        eta_decay_power=params["eta_decay_power"],
        start_timestep=params["start"],
        stop_timestep=params["stop"],
        num_inference_steps=steps,
        guidance_scale=params["guidance"],
        output_type="latent",
    ).images
    theirs = unpack_latents(edited, h, w)
    return {
        "difference": float((ours.double() - theirs.double()).abs().max()),
        "effect": float((ours.double() - x_src.double()).abs().max()),
        "changes": [
            "RFInversionFluxPipeline.encode_image (on the instance) returns the picture's posterior-mean latents",
            "torch.randn_like hands out the pre-drawn y_1 (packed) during their invert()",
        ],
        "seconds": time.perf_counter() - t0,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2p_widgets.bench.reference_flow", description=__doc__)
    parser.add_argument("--flowedit", help="a checkout of github.com/fallenshock/FlowEdit")
    parser.add_argument(
        "--rf-inversion", help="diffusers' examples/community/pipeline_flux_rf_inversion.py (or a diffusers checkout)"
    )
    args = parser.parse_args(argv)
    if not (args.flowedit or args.rf_inversion):
        parser.error("give --flowedit DIR and/or --rf-inversion FILE")
    cases = []
    if args.flowedit:
        cases += [
            ("FlowEditSD3 (tiny SD3", flowedit_sd3_case, args.flowedit),
            ("FlowEditFLUX (tiny Flux dev", flowedit_flux_case, args.flowedit),
        ]
    if args.rf_inversion:
        cases.append(("RF-Inversion community pipeline (tiny Flux dev", rf_inversion_flux_case, args.rf_inversion))
    failed = 0
    for name, case, where in cases:
        try:
            row = case(where)
        except P2PError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        verdict = "ok" if row["difference"] <= TOLERANCE else "DIFFERS"
        failed += verdict != "ok"
        print(
            f"{name}, float64): max latent difference {row['difference']:.3e} "
            f"(tolerance {TOLERANCE:g}; the edit moved the latents by {row['effect']:.3e}) {verdict} "
            f"in {row['seconds']:.1f} s"
        )
        for change in row["changes"]:
            print(f"  changed at run time: {change}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
