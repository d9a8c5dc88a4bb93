"""Inversion benchmark on the pocket model: ``python -m p2p_widgets.bench.invert [--images 16]``.

Scenes come from the scene generator (two objects of different colours, ground truth known).
For every image and every inversion method (``ddim``, ``negative-prompt``, ``null-text``) it
inverts the image with its caption, regenerates it with the caption (reconstruction) and edits it
with a colour swap of the first object (Prompt-to-Prompt, the editor's default windows). Prints
``name: value`` lines:

- ``vae_psnr``: the VAE's own reconstruction (encode, decode): the ceiling for any inversion;
- ``<method>_psnr`` and ``<method>_gap_to_vae_db``: reconstruction PSNR against the input
  image (mean over images of the per-image PSNR) and its distance to ``vae_psnr``;
- ``<method>_seconds``: mean seconds per inversion; ``<method>_edit_seconds``: per edit;
- ``<method>_swap_target``: share of edits whose first object reads as the target colour
  (``swap``: P2P with ``--cross``/``--self-attn``; ``local_swap``: the recommended real-image
  colour edit, see :func:`local_swap_options`);
- ``<method>_swap_iou_untouched``: mean IoU of the other object's mask (read back from the
  edit) with its ground-truth mask, and ``..._ok`` the share at or above 0.85; the same for the
  edited object (``..._iou_edited``: its shape should stay);
- ``<method>_recon_iou``: mean IoU of both objects read from the reconstruction with their
  ground-truth masks (what the inversion alone keeps);
- ``reader_*``: the same reads on the input images themselves (the metric's own ceiling; ``_ok``:
  share at or above 0.85) and on the VAE's reconstructions (``_on_vae``: the ceiling of any edit
  decoded through this VAE).

``--model sd15`` (or another architecture of ``bench engine``, random weights, float32 as null-text
needs) times each method on one image at the model's size instead (there is no ground truth to
score): ``<method>_seconds``, and for null-text the optimiser iterations it ran (random weights
rarely reach the early stop, so expect ``--inner-steps`` per step: an upper bound on real weights).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from ..engine.blend import LocalBlend
from ..engine.inversion import METHODS, invert
from ..pocket.eval import POCKET_GUIDANCE
from ..pocket.metrics import SceneReader, iou, match_objects, psnr
from ..pocket.scenes import BACKGROUNDS, COLORS, caption_of, sample_scene

IOU_OK = 0.85


def scenes_for_bench(n: int, seed: int, p_pattern: float = 0.0):
    """``n`` two-object scenes whose objects differ in colour, each with a colour-swap target scene."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < n:
        scene = sample_scene(rng, p_two=1.0, p_pattern=p_pattern)
        a, b = scene.objects
        if a.color == b.color:
            continue
        bg = np.asarray(BACKGROUNDS[scene.background], dtype=np.float32)
        colors = [
            c for c in COLORS if c not in (a.color, b.color) and np.linalg.norm(np.asarray(COLORS[c]) - bg) >= 110
        ]
        target = copy.deepcopy(scene)
        target.objects[0].color = colors[int(rng.integers(len(colors)))]
        found.append((scene, target))
    return found


def _caption(scene):
    return caption_of(scene.objects, scene.relation, scene.background, scene.pattern)


def _read_scores(reader, scene, target, image, rows, prefix="swap"):
    _, objs = reader.read(np.asarray(image), target.background, target.pattern)
    match = match_objects(target, objs)
    rows.setdefault(f"{prefix}_target", []).append(match[0] is not None and match[0].color == target.objects[0].color)
    for k, name in ((1, "untouched"), (0, "edited")):
        value = iou(match[k].mask, scene.masks[k]) if match[k] is not None else 0.0
        rows.setdefault(f"{prefix}_iou_{name}", []).append(value)
        rows.setdefault(f"{prefix}_iou_{name}_ok", []).append(value >= IOU_OK)


def local_swap_options(scene, target, cross=0.8):
    """The recommended colour edit of a real image: self-attention kept through the run (the layout
    is the photo's), LocalBlend on the edited object's words so nothing else is regenerated."""
    a, b = scene.objects[0], target.objects[0]
    return dict(cross=cross, self_attn=1.0, blend=LocalBlend([[a.color, a.shape], [b.color, b.shape]], threshold=0.5))


def _invert_and_edit(editor, reader, scene, target, method, r, *, steps, guidance, inner_steps, cross, self_attn):
    """Invert ``scene`` with ``method``, regenerate it, swap its first object's colour (plain and
    the recommended local swap); scores go into ``r``."""
    image = scene.image
    inv = invert(
        editor, image, _caption(scene), method, steps=steps, guidance=guidance, cache=False, inner_steps=inner_steps
    )
    r["seconds"].append(inv.seconds)
    rec = inv.reconstruct(editor)
    r["psnr"].append(psnr(image, np.asarray(rec.images[0])))
    recon = {}
    _read_scores(reader, scene, scene, rec.images[0], recon)
    r.setdefault("recon_iou", []).extend([recon["swap_iou_untouched"][0], recon["swap_iou_edited"][0]])
    t0 = time.perf_counter()
    edit = inv.edit(editor, _caption(target), cross=cross, self_attn=self_attn)
    r["edit_seconds"].append(time.perf_counter() - t0)
    _read_scores(reader, scene, target, edit.images[1], r)
    local = inv.edit(editor, _caption(target), **local_swap_options(scene, target, cross))
    _read_scores(reader, scene, target, local.images[1], r, prefix="local_swap")


def run(
    n_images=16,
    steps=25,
    guidance=POCKET_GUIDANCE,
    methods=METHODS,
    seed=2024,
    p_pattern=0.0,
    inner_steps=None,
    cross=0.8,
    self_attn=0.4,
    out=print,
):
    from ..engine.sampler import Editor
    from ..pocket.model import load_pocket

    t_start = time.time()
    editor = Editor(load_pocket(device="cpu", dtype=torch.float32))
    reader = SceneReader()
    pairs = scenes_for_bench(n_images, seed, p_pattern)
    out("model: pocket (32 px, fp32, cpu)")
    out(f"images: {n_images}")
    out(f"steps: {steps}")
    out(f"guidance: {guidance}")
    out(f"edit swap: colour swap of the first object, cross {cross}, self {self_attn}")
    out(f"edit local_swap: the same swap, cross {cross}, self 1.0, LocalBlend on the object's words (threshold 0.5)")
    vae, gt_rows, vae_rows = [], {}, {}
    rows = {m: {"psnr": [], "seconds": [], "edit_seconds": []} for m in methods}
    for i, (scene, target) in enumerate(pairs):
        image = scene.image
        vae_image = editor.decode(editor.encode_image(image))[0]
        vae.append(psnr(image, vae_image))
        _read_scores(reader, scene, scene, vae_image, vae_rows)
        # the reader on the input itself, scored as if it were the edit (colours of the source, so
        # only the IoU lines are meaningful there)
        _read_scores(reader, scene, scene, image, gt_rows)
        for method in methods:
            options = dict(steps=steps, guidance=guidance, inner_steps=inner_steps, cross=cross, self_attn=self_attn)
            _invert_and_edit(editor, reader, scene, target, method, rows[method], **options)
        out(
            f"# image {i + 1}/{n_images} done ({time.time() - t_start:.0f} s): "
            + ", ".join(f"{m} {rows[m]['psnr'][-1]:.1f} dB" for m in methods)
            + f", vae {vae[-1]:.1f} dB"
        )
    vae_psnr = float(np.mean(vae))
    out(f"vae_psnr: {vae_psnr:.2f}")
    for k in ("untouched", "edited"):
        out(f"reader_iou_{k}_on_input: {np.mean(gt_rows[f'swap_iou_{k}']):.3f}")
        out(f"reader_iou_{k}_on_input_ok: {np.mean(gt_rows[f'swap_iou_{k}_ok']):.3f}")
        out(f"reader_iou_{k}_on_vae: {np.mean(vae_rows[f'swap_iou_{k}']):.3f}")
        out(f"reader_iou_{k}_on_vae_ok: {np.mean(vae_rows[f'swap_iou_{k}_ok']):.3f}")
    for method in methods:
        r = rows[method]
        out(f"{method}_psnr: {np.mean(r['psnr']):.2f}")
        out(f"{method}_gap_to_vae_db: {vae_psnr - np.mean(r['psnr']):.2f}")
        out(f"{method}_recon_iou: {np.mean(r['recon_iou']):.3f}")
        out(f"{method}_seconds: {np.mean(r['seconds']):.2f}")
        out(f"{method}_edit_seconds: {np.mean(r['edit_seconds']):.2f}")
        for edit in ("swap", "local_swap"):
            for k in ("target", "iou_untouched", "iou_untouched_ok", "iou_edited", "iou_edited_ok"):
                out(f"{method}_{edit}_{k}: {np.mean(r[f'{edit}_{k}']):.3f}")
    out(f"total_seconds: {time.time() - t_start:.0f}")
    return rows


def timing(model, steps=50, guidance=7.5, methods=METHODS, inner_steps=None, device=None, out=print):
    """Seconds per inversion of one image on an architecture with random weights (``bench engine``'s)."""
    from ..engine.sampler import Editor
    from .catalog import SIZES, build_model

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    editor = Editor(build_model(model, device, torch.float32))
    size = SIZES[model]
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    out(f"model: {model} ({size} px, fp32, random weights), device: {name}")
    out(f"steps: {steps}")
    out(f"guidance: {guidance}")
    invert(editor, image, "a photo of a cat", "ddim", steps=2, guidance=guidance, cache=False)  # warm-up
    for method in methods:
        inv = invert(
            editor,
            image,
            "a photo of a cat",
            method,
            steps=steps,
            guidance=guidance,
            cache=False,
            inner_steps=inner_steps,
        )
        out(f"{method}_seconds: {inv.seconds:.2f}")
        if method == "null-text":
            out(f"{method}_optimiser_iterations: {sum(inv.iterations)}")


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.bench.invert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    args = p.parse_args(argv)
    run_from_args(args)


def add_arguments(p):
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=POCKET_GUIDANCE)
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--patterns", type=float, default=0.0, help="share of patterned backgrounds (0 = all plain)")
    p.add_argument("--inner-steps", type=int, default=None, help="null-text iterations per step (default 10)")
    p.add_argument("--cross", type=float, default=0.8)
    p.add_argument("--self-attn", type=float, default=0.4)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--model",
        default="pocket",
        help="pocket (the scored benchmark) or an architecture of `bench engine` (timing only)",
    )


def run_from_args(args):
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}: choose from {', '.join(METHODS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model != "pocket":
        from .catalog import SIZES

        if args.model not in SIZES:
            raise SystemExit(f"unknown model {args.model!r}: choose from {', '.join(sorted(SIZES))}")
        return timing(
            args.model, args.steps, args.guidance, methods, args.inner_steps, out=lambda s: print(s, flush=True)
        )
    run(
        args.images,
        args.steps,
        args.guidance,
        methods,
        args.seed,
        args.patterns,
        args.inner_steps,
        args.cross,
        args.self_attn,
        out=lambda s: print(s, flush=True),
    )


if __name__ == "__main__":
    main()
