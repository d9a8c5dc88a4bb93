"""StyleAligned beside its authors' handler: ``python -m p2p_widgets.bench reference --style-aligned DIR``.

``DIR`` is a checkout of google/style-aligned (its ``sa_handler.py`` is read). On a random-weight
SD 1.x-layout UNet (the reference bench's, with 4 heads per attention layer), float64 on the CPU,
three prompts share one start noise; row 0 is the reference every other row aligns to. Their side:
diffusers' ``StableDiffusionPipeline`` with their ``Handler`` registered on a copy of the UNet
(``StyleAlignedArgs`` per case); ours: ``Editor.edit`` with one ``StyleAligned`` rule per edited
prompt. Each case prints the largest difference of the final latents (all three rows).

Cases: the defaults (ours; theirs with ``share_group_norm=False``, ``share_layer_norm`` left at its
default: a LayerNorm normalises each token alone, so it changes nothing), ``share_group_norm``,
``shared_score_shift`` (log 2, their transfer notebook's), ``shared_score_scale`` and
``only_self_level`` (0.3 on 16 layers: layers 0, 4, 8, 12 of ``unet.attn_processors``' order left
alone, which differs from execution order). Their ``full_attention_share`` (every row of a half
attends to every row, the reference included) has no counterpart here.

Run-time changes to run their code (their files untouched): the import helpers of
``bench/reference/`` (checkout first on ``sys.path`` while importing, its modules removed
afterwards); ``einops``, imported at the top of ``sa_handler.py`` and only called for
``full_attention_share``, is a stand-in that raises if called when the package is not installed;
their ``Handler`` gets an object holding our pipeline's UNet copy (``.unet``), the only attribute
it reads; the pipeline returns latents (``output_type="latent"``) instead of decoding them.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
import types
from pathlib import Path

from ..errors import P2PError
from . import reference
from .reference import GUIDANCE, SEED, Row, _components, _patched, _quiet, authors_imports, max_difference

TOLERANCE = 1e-6
DEFAULT_STEPS = 4
SIZE = 256  # latents 32 x 32: self-attention at 32/16/8 keeps the float64 CPU run short
HEADS = 4
PROMPTS = ("a house in a watercolor style", "a cat in a watercolor style", "a bicycle in a watercolor style")
REPOSITORY = "google/style-aligned"

# ours (StyleAligned's parameters) and theirs (StyleAlignedArgs) for each case
CASES = {
    "defaults": ({}, {"share_group_norm": False}),
    "share_group_norm": ({"share_group_norm": True}, {"share_group_norm": True}),
    "shared_score_shift": (
        {"shared_score_shift": math.log(2)},
        {"share_group_norm": False, "shared_score_shift": math.log(2)},
    ),
    "shared_score_scale": ({"shared_score_scale": 0.5}, {"share_group_norm": False, "shared_score_scale": 0.5}),
    "only_self_level": ({"only_self_level": 0.3}, {"share_group_norm": False, "only_self_level": 0.3}),
}


def check_checkout(directory) -> Path:
    path = Path(directory).expanduser()
    if not (path / "sa_handler.py").is_file():
        raise P2PError(
            f"--style-aligned: {str(directory)!r} is not a checkout of {REPOSITORY}: it has no sa_handler.py"
        )
    return path


def build_model(dtype="float64"):
    """The reference bench's random SD-layout pipeline with ``HEADS`` heads per attention layer."""
    unet = {**reference.REFERENCE_UNET, "attention_head_dim": HEADS}  # SD 1.x's config names heads so
    with _patched(reference.inputs, REFERENCE_UNET=unet):  # where build_reference_model reads it
        return reference.build_reference_model(dtype)


def start_noise(pipe):
    import torch

    generator = torch.Generator("cpu").manual_seed(SEED)
    shape = (1, pipe.unet.config.in_channels, SIZE // 8, SIZE // 8)
    return torch.randn(shape, generator=generator).to(pipe.unet.dtype)


def _einops_stand_in():
    def rearrange(*args, **kwargs):
        raise P2PError("einops is a stand-in here (not installed): full_attention_share is not compared")

    return types.ModuleType("einops"), rearrange


def load_handler(directory: Path, changes: list):
    """Their ``sa_handler`` module, imported from the checkout."""
    module, rearrange = _einops_stand_in()
    module.rearrange = rearrange
    stand_ins = reference.shim._stand_ins
    with _patched(reference.shim, _stand_ins=lambda: {**stand_ins(), "einops": module}):
        with authors_imports(directory, changes):
            import sa_handler
    return sa_handler


def authors(handler, pipe, noise, steps: int, args: dict):
    """Their handler registered on a copy of the UNet, under diffusers' pipeline: final latents."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from .reference import MASACTRL_SCHEDULER

    unet = copy.deepcopy(pipe.unet)
    with _quiet():
        sd = StableDiffusionPipeline(
            **_components(pipe, unet),
            scheduler=DDIMScheduler(**MASACTRL_SCHEDULER, steps_offset=1),  # our Editor's DDIM
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        handler.Handler(types.SimpleNamespace(unet=unet)).register(handler.StyleAlignedArgs(**args))
        out = sd(
            list(PROMPTS),
            latents=noise.expand(len(PROMPTS), -1, -1, -1),
            num_inference_steps=steps,
            guidance_scale=GUIDANCE,
            height=SIZE,
            width=SIZE,
            output_type="latent",
        )
    return out.images


def ours(pipe, noise, steps: int, params: dict | None):
    """Our final latents with ``StyleAligned(**params)`` on each edited prompt (None: no rule)."""
    from ..engine.controls import StyleAligned
    from ..engine.rules import EditRule
    from ..engine.sampler import Editor

    rules = [EditRule() if params is None else StyleAligned(**params) for _ in PROMPTS[1:]]
    result = Editor(pipe).edit(
        PROMPTS[0],
        list(PROMPTS[1:]),
        rules=rules,
        steps=steps,
        guidance=GUIDANCE,
        latents=noise,
        height=SIZE,
        width=SIZE,
    )
    return result.latents


def compare(directory: Path, steps: int, dtype: str = "float64", cases=None) -> list[Row]:
    """One row per case (``CASES`` names; default all). Each row's note says how far the case moves
    our latents from the run without it (defaults: from no rule; others: from the defaults), so a
    case that changed nothing on either side would show."""
    pipe = build_model(dtype)
    noise = start_noise(pipe)
    changes: list = []
    handler = load_handler(directory, changes)
    changes += [
        "einops: a stand-in that raises if called (imported by sa_handler.py, used only for full_attention_share)"
        if "einops" in " ".join(changes)
        else "einops installed: imported as is",
        "Handler given an object with our pipeline's UNet copy as .unet (all it reads)",
        "StableDiffusionPipeline(output_type='latent'): final latents instead of images",
    ]
    rows, baselines = [], {}
    for name in cases or CASES:
        params, args = CASES[name]
        row = Row(name, changes=changes if not rows else [])
        t0 = time.perf_counter()
        try:
            mine = ours(pipe, noise, steps, params)
            row.difference = max_difference(mine, authors(handler, pipe, noise, steps, args))
            base = None if name == "defaults" else {}
            if repr(base) not in baselines:
                baselines[repr(base)] = ours(pipe, noise, steps, base)
            effect = max_difference(mine, baselines[repr(base)])
            row.note = f"moves our latents {effect:.3e} from {'no rule' if base is None else 'the defaults'}"
        except Exception as exc:  # noqa: BLE001 - one case's failure is reported in its row
            row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        row.seconds = time.perf_counter() - t0
        rows.append(row)
    return rows


def passed(row: Row) -> bool:
    return row.error is None and row.difference is not None and row.difference <= TOLERANCE


def report(rows: list[Row], steps: int, dtype: str = "float64", out=None) -> str:
    lines = [
        f"StyleAligned vs {REPOSITORY}'s sa_handler: SD 1.x UNet layout at {SIZE} px, {HEADS} heads, random "
        f"weights, {dtype} CPU; {len(PROMPTS)} prompts (row 0 the reference), {steps} steps, guidance {GUIDANCE}",
        f"{'case':<20} {'max |latent diff|':>18} {'tolerance':>10}  result   seconds",
    ]
    for r in rows:
        value = "-" if r.difference is None else f"{r.difference:.3e}"
        lines.append(
            f"{r.method:<20} {value:>18} {TOLERANCE:>10.0e}  {'pass' if passed(r) else 'FAIL':<7} {r.seconds:7.1f}"
        )
    lines += [f"{r.method}: error: {r.error}" for r in rows if r.error]
    lines += [f"{r.method}: {r.note}" for r in rows if r.note]
    changed = [c for r in rows for c in r.changes]
    if changed:
        lines.append("changes made to run the authors' code (at run time; their files untouched):")
        lines += [f"  {c}" for c in changed]
    text = "\n".join(lines)
    print(text, file=out or sys.stdout)
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.bench reference --style-aligned DIR",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--style-aligned", metavar="DIR", required=True, help=f"a checkout of {REPOSITORY}")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"sampling steps (default {DEFAULT_STEPS})")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--cases", default=None, help=f"comma-separated, of {', '.join(CASES)} (default all)")
    return p


def main(argv=None):
    """Exit status 0 when every case is within the tolerance, 1 otherwise, 2 for bad arguments."""
    args = parser().parse_args(argv)
    try:
        directory = check_checkout(args.style_aligned)
        if not 2 <= args.steps <= 1000:
            raise P2PError(f"--steps must be between 2 and 1000, got {args.steps}")
        cases = args.cases.split(",") if args.cases else None
        unknown = sorted(set(cases or ()) - set(CASES))
        if unknown:
            raise P2PError(f"--cases: unknown {', '.join(unknown)} (known: {', '.join(CASES)})")
    except P2PError as exc:
        print(f"reference: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    rows = compare(directory, args.steps, args.dtype, cases)
    report(rows, args.steps, args.dtype)
    raise SystemExit(0 if all(passed(r) for r in rows) else 1)


if __name__ == "__main__":
    main()
