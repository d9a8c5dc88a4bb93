"""Evaluation of the pocket models: ``python -m p2p_widgets.pocket.eval pocket [--images 256 --seeds 32]
[--model pocket | pocket-flow]`` (the pocket UNet, or the pocket flow model: the reader is the same).

Prints ``name: value`` lines:
- ``reader_*``: accuracy of the image analysis (pocket.metrics) on ground-truth scenes;
- ``fidelity_*``: caption fidelity of generated images (object present, colour, shape, size,
  relation, background colour and pattern) over ``--images`` captions from the scene grammar;
- ``attention_<word>_<side>``: each colour/shape token's attention mass on its object's mask
  divided by the mask's area fraction (1 = uniform), at each attention grid;
- ``p2p_<edit>_<metric>`` beside ``baseline_<edit>_<metric>`` (same noise, no injection) over
  ``--seeds`` scenes: IoU of the untouched and the edited object's masks (source vs edit), target
  fidelity, and PSNR outside the edited region for the LocalBlend edits (colour swap, background).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from ..engine.blend import LocalBlend
from ..models import BUILT_IN_MODELS, defaults_for
from .metrics import SceneReader, iou, match_objects, relation_of
from .scenes import BACKGROUNDS, COLORS, SHAPES, caption_of, make_dataset, sample_scene

POCKET_GUIDANCE = 5.0


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else float("nan")


def reader_accuracy(reader, n=300, seed=4242):
    _, _, scenes = make_dataset(n, seed)
    hits = {k: [] for k in ("present", "color", "shape", "size", "relation", "background", "pattern")}
    for scene in scenes:
        _score(reader, scene, scene.image, hits)
    return {k: _mean(v) for k, v in hits.items()}


def _score(reader, scene, image, hits):
    (bg, pattern), found = reader.read(image)
    hits["background"].append(bg == scene.background)
    hits["pattern"].append(pattern == scene.pattern)
    matched = match_objects(scene, found)
    for obj, f in zip(scene.objects, matched):
        hits["present"].append(f is not None)
        hits["color"].append(f is not None and f.color == obj.color)
        hits["shape"].append(f is not None and f.shape == obj.shape)
        hits["size"].append(f is not None and reader.size_of(f) == obj.size)
    if scene.relation:
        ok = all(m is not None for m in matched) and relation_of(*matched) == scene.relation
        hits["relation"].append(ok)
    return matched


def _object_word_indices(scene):
    """Word indices of (colour, shape) for each object in the caption grammar."""
    first = (2, 3)
    if len(scene.objects) == 1:
        return [first]
    offset = 4 + len(scene.relation.split()) + 1  # "a size colour shape" + relation + "a"
    return [first, (offset + 1, offset + 2)]


def _concentration(maps, mask):
    """Mass of a (h, w) attention map on a 32x32 mask divided by the mask's area fraction."""
    h, w = maps.shape
    cell = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(mask.astype(np.float32))[None], (h, w))[0]
    area = float(cell.mean())
    if area == 0:
        return None
    m = maps.clamp_min(0)
    return float((m * cell).sum() / m.sum().clamp_min(1e-12) / area)


def fidelity(editor, reader, n_images, steps, guidance, batch=32, seed=777):
    _, captions, scenes = make_dataset(n_images, seed)
    hits = {k: [] for k in ("present", "color", "shape", "size", "relation", "background", "pattern")}
    conc = {}
    for start in range(0, n_images, batch):
        part = scenes[start : start + batch]
        noise = torch.cat(
            [
                torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(seed + start + i))
                for i in range(len(part))
            ]
        )
        from ..engine.rules import EditRule

        out = editor.edit(
            part[0].caption,
            [s.caption for s in part[1:]],
            rules=[EditRule()] * (len(part) - 1),
            latents=noise,
            steps=steps,
            guidance=guidance,
        )
        for b, scene in enumerate(part):
            image = np.asarray(out.images[b])
            matched = _score(reader, scene, image, hits)
            prompt = out.prompts[b]
            for _obj, f, (ci, si) in zip(scene.objects, matched, _object_word_indices(scene)):
                if f is None:
                    continue
                for kind, word_index in (("color", ci), ("shape", si)):
                    for grid in out.store.grids:
                        maps = out.store.token_maps(b, prompt.positions(word_index), side=max(grid)).mean(0)
                        conc.setdefault(f"{kind}_{grid[0]}", []).append(_concentration(maps, f.mask))
    return {k: _mean(v) for k, v in hits.items()}, {k: _mean(v) for k, v in conc.items()}


def _two_object_scenes(n, seed):
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < n:
        scene = sample_scene(rng, p_two=1.0, p_pattern=0.0)
        if scene.objects[0].color != scene.objects[1].color:
            found.append(scene)
    return found


def _edited(scene, kind, rng):
    """The target scene for one edit kind (object 0 is the edited one)."""
    target = copy.deepcopy(scene)
    a, b = target.objects
    bg = np.asarray(BACKGROUNDS[scene.background], dtype=np.float32)
    colors = [c for c in COLORS if c not in (a.color, b.color) and np.linalg.norm(np.asarray(COLORS[c]) - bg) >= 110]
    shapes = [s for s in SHAPES if s != a.shape]
    if kind in ("color_swap", "object_swap", "color_swap_blend"):
        a.color = colors[int(rng.integers(len(colors)))]
    if kind in ("shape_swap", "object_swap"):
        a.shape = shapes[int(rng.integers(len(shapes)))]
    if kind == "background_blend":
        objs = [np.asarray(COLORS[o.color], dtype=np.float32) for o in (a, b)]
        options = [
            n
            for n in BACKGROUNDS
            if n != scene.background and all(np.linalg.norm(np.asarray(BACKGROUNDS[n]) - o) >= 110 for o in objs)
        ]
        if not options:
            return None
        target.background = options[int(rng.integers(len(options)))]
    return target


EDIT_KINDS = ("color_swap", "shape_swap", "object_swap", "size_reweight", "color_swap_blend", "background_blend")


def _dilate(mask, steps=2):
    """Grow a mask by ``steps`` pixels (4-neighbourhood): decoded edges spread past latent cells."""
    m = mask.copy()
    for _ in range(steps):
        g = m.copy()
        g[1:] |= m[:-1]
        g[:-1] |= m[1:]
        g[:, 1:] |= m[:, :-1]
        g[:, :-1] |= m[:, 1:]
        m = g
    return m


def p2p_efficacy(editor, reader, n_seeds, steps, guidance, seed=2024, kinds=EDIT_KINDS):
    rng = np.random.default_rng(seed)
    results = {}
    for kind in kinds:
        rows = {"p2p": {}, "baseline": {}}
        scenes = _two_object_scenes(n_seeds * 2, seed + EDIT_KINDS.index(kind))
        done = 0
        for i, scene in enumerate(scenes):
            if done == n_seeds:
                break
            if kind == "size_reweight":
                scene.objects[0].size = "big"
            target = _edited(scene, kind, rng)
            if target is None:
                continue
            done += 1
            kwargs = dict(seed=seed + i, steps=steps, guidance=guidance, baseline=True)
            src_text = caption_of(scene.objects, scene.relation, scene.background, "plain")
            tgt_text = caption_of(target.objects, target.relation, target.background, "plain")
            if kind == "size_reweight":
                kwargs["reweight"] = {"big": 3.0}
            if kind == "background_blend":  # the background changes; the objects' words are protected
                objects = [w for o in scene.objects for w in (o.color, o.shape)]
                kwargs["blend"] = LocalBlend(
                    [[scene.background, "background"], [target.background, "background"]],
                    subtract=[objects, objects],
                    threshold=0.6,
                )
            if kind == "color_swap_blend":  # the reference's use: only the edited object may change
                a_src, a_tgt = scene.objects[0], target.objects[0]
                kwargs["blend"] = LocalBlend([[a_src.color, a_src.shape], [a_tgt.color, a_tgt.shape]])
            out = editor.edit(src_text, tgt_text, **kwargs)
            _, src_found = reader.read(np.asarray(out.images[0]), scene.background, "plain")
            src_match = match_objects(scene, src_found)
            for name, image in (("p2p", out.images[1]), ("baseline", out.baseline[1])):
                _, found = reader.read(np.asarray(image), target.background, "plain")
                match = match_objects(target, found)
                r = rows[name]
                if src_match[1] is not None and match[1] is not None:
                    r.setdefault("iou_untouched", []).append(iou(src_match[1].mask, match[1].mask))
                if src_match[0] is not None and match[0] is not None:
                    r.setdefault("iou_edited", []).append(iou(src_match[0].mask, match[0].mask))
                r.setdefault("target", []).append(_target_ok(kind, target, match, src_match, reader, image))
                if kind == "background_blend" and all(m is not None for m in src_match):
                    keep = src_match[0].mask | src_match[1].mask  # the objects must not change
                elif kind == "color_swap_blend" and src_match[0] is not None and match[0] is not None:
                    keep = ~_dilate(src_match[0].mask | match[0].mask)  # all but the edited object
                else:
                    keep = None
                if keep is not None and keep.any():
                    diff = np.asarray(out.images[0], np.float64) - np.asarray(image, np.float64)
                    r.setdefault("mse_outside", []).append(float((diff[keep] ** 2).mean()))
        for r in rows.values():  # PSNR of the pooled error (a mean of per-image PSNRs is dominated by exact copies)
            if "mse_outside" in r:
                r["psnr_outside"] = [10 * np.log10(255.0**2 / max(np.mean(r.pop("mse_outside")), 1e-10))]
        results[kind] = {name: {k: _mean(v) for k, v in r.items()} for name, r in rows.items()}
    return results


def _target_ok(kind, target, match, src_match, reader, image):
    a = match[0]
    if kind == "size_reweight":
        return a is not None and src_match[0] is not None and a.area > 1.1 * src_match[0].area
    if kind == "background_blend":
        from .metrics import read_background

        return read_background(np.asarray(image))[0] == target.background
    if a is None:
        return False
    want = target.objects[0]
    return {
        "color_swap": a.color == want.color,
        "color_swap_blend": a.color == want.color,
        "shape_swap": a.shape == want.shape,
        "object_swap": a.color == want.color and a.shape == want.shape,
    }[kind]


def evaluate_pocket(
    n_images=256, n_seeds=32, steps=25, guidance=POCKET_GUIDANCE, out=print, kinds=EDIT_KINDS, model="pocket"
):
    from ..engine.sampler import Editor
    from ..models import load_pipeline

    t0 = time.time()
    editor = Editor(load_pipeline(model, device="cpu"))
    reader = SceneReader()
    out(f"model: {model}")
    out(f"steps: {steps}")
    out(f"guidance: {guidance}")
    for k, v in reader_accuracy(reader).items():
        out(f"reader_{k}_on_ground_truth: {v:.3f}")
    if n_images:
        hits, conc = fidelity(editor, reader, n_images, steps, guidance)
        out(f"fidelity_images: {n_images}")
        for k, v in hits.items():
            out(f"fidelity_{k}: {v:.3f}")
        for k, v in sorted(conc.items()):
            out(f"attention_{k}: {v:.2f}")
    out(f"p2p_seeds: {n_seeds}")
    for kind, rows in p2p_efficacy(editor, reader, n_seeds, steps, guidance, kinds=kinds).items():
        for name, metrics in rows.items():
            for k, v in metrics.items():
                out(f"{name}_{kind}_{k}: {v:.3f}")
    out(f"seconds: {time.time() - t0:.0f}")


def main(argv=None):
    from ..cli_types import count_arg as count  # the same check as `p2p-widgets eval`

    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.pocket.eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("pocket", help="caption fidelity, attention localisation and P2P efficacy")
    e.add_argument("--images", type=count, default=256, help="captions scored for fidelity (0: skip)")
    e.add_argument("--seeds", type=count, default=32, help="scenes per P2P edit kind (0: skip)")
    e.add_argument("--model", choices=BUILT_IN_MODELS, default="pocket", help="which pocket model")
    e.add_argument("--steps", type=int, default=None, help="default: the model's (25 for the UNet)")
    e.add_argument("--guidance", type=float, default=None, help="default: the model's (5 for the UNet)")
    e.add_argument("--kinds", nargs="+", choices=EDIT_KINDS, default=list(EDIT_KINDS), help="P2P edits to score")
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    defaults = defaults_for(args.model)  # the UNet: 25 steps, guidance 5; the flow model: 20 and 4
    steps = defaults.steps if args.steps is None else args.steps
    guidance = defaults.guidance if args.guidance is None else args.guidance
    evaluate_pocket(args.images, args.seeds, steps, guidance, out=_print, kinds=tuple(args.kinds), model=args.model)


def _print(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    main()
