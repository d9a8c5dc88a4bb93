"""pocket-bench: edit cases drawn by the pocket model's scene generator, in PIE-Bench's format.

``python -m p2p_widgets.evaluate.pocket_bench OUT [--n 280 --seed 0]`` writes ``OUT/mapping_file.json``
and ``OUT/annotation_images/`` (32x32 PNGs), readable by :func:`~p2p_widgets.evaluate.datasets.read_pie`.

The edit types are those the scene grammar can express, under PIE-Bench's ids: change colour (6),
change object = shape (1), change background colour (8), add object (2), delete object (3), size
small <-> big (4, "change content") and background pattern plain / striped / checkered as
"material" (7). Cases go round-robin over the types; case ``k`` draws from its own generator
``(seed, k)``, so a case does not depend on ``n``.

The mask is the region the edit may change: the coverage (any antialiased pixel) of the edited
object before and after the edit; for background edits every pixel not entirely covered by an
object. Each entry also keeps, under ``"pocket"``, the source and the target scene (objects with
shape, colour, size, position; background, pattern, relation), the render seed and the region
without the benchmark's forced border, so :func:`truth_of` gives the scorer what the edited image
should show (:mod:`p2p_widgets.evaluate.metrics` uses it for target fidelity and mask IoU).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np

from ..errors import P2PError, check_int
from ..pocket.scenes import (
    BACKGROUNDS,
    COLORS,
    MIN_COLOR_DISTANCE,
    PATTERNS,
    RADIUS,
    RELATIONS,
    SHAPES,
    SIZE,
    Scene,
    SceneObject,
    object_alpha,
    relation_holds,
    render,
    sample_scene,
)
from .cases import EditCase
from .datasets import case_extras, encode_rle, runs_to_mask, write_pie

TYPES = (6, 1, 8, 2, 3, 4, 7)
FOLDERS = {
    6: "6_change_color",
    1: "1_change_object",
    8: "8_change_background",
    2: "2_add_object",
    3: "3_delete_object",
    4: "4_change_size",
    7: "7_change_pattern",
}
DEFAULT_N = 280
MAX_TRIES = 200


def _pick(rng, options):
    return options[int(rng.integers(len(options)))] if options else None


def _far(color: str, background: str) -> bool:
    return np.linalg.norm(np.subtract(COLORS[color], BACKGROUNDS[background])) >= MIN_COLOR_DISTANCE


def _edit_color(scene, rng):
    i = int(rng.integers(len(scene.objects)))
    obj = scene.objects[i]
    taken = {o.color for o in scene.objects}
    new = _pick(rng, [c for c in COLORS if c not in taken and _far(c, scene.background)])
    if new is None:
        return None
    target = copy.deepcopy(scene)
    target.objects[i].color = new
    return target, [i], (obj.shape, obj.shape), f"change the color of the {obj.color} {obj.shape} to {new}"


def _edit_shape(scene, rng):
    i = int(rng.integers(len(scene.objects)))
    obj = scene.objects[i]
    new = _pick(rng, [s for s in SHAPES if s not in {o.shape for o in scene.objects}])
    target = copy.deepcopy(scene)
    target.objects[i].shape = new
    return target, [i], (obj.shape, new), f"turn the {obj.color} {obj.shape} into a {new}"


def _edit_background(scene, rng):
    options = [b for b in BACKGROUNDS if b != scene.background and all(_far(o.color, b) for o in scene.objects)]
    new = _pick(rng, options)
    if new is None:
        return None
    target = copy.deepcopy(scene)
    target.background = new
    return target, None, ("background", "background"), f"change the background to {new}"


def _edit_pattern(scene, rng):
    new = _pick(rng, [p for p in PATTERNS if p != scene.pattern])
    target = copy.deepcopy(scene)
    target.pattern = new
    return target, None, ("background", "background"), f"make the background {new}"


def _edit_size(scene, rng):
    i = int(rng.integers(len(scene.objects)))
    obj = scene.objects[i]
    target = copy.deepcopy(scene)
    new = target.objects[i]
    new.size = "small" if obj.size == "big" else "big"
    shrink = 0.85 if len(scene.objects) == 2 and new.size == "big" else 1.0  # as the generator sizes pairs
    new.radius = rng.uniform(*RADIUS[new.size]) * shrink
    margin = new.radius + 0.5
    if not (margin <= new.cx <= SIZE - margin and margin <= new.cy <= SIZE - margin):
        return None
    if scene.relation and not relation_holds(*target.objects, scene.relation):
        return None
    return target, [i], (obj.shape, obj.shape), f"make the {obj.color} {obj.shape} {new.size}"


def _edit_add(scene, rng):
    if len(scene.objects) != 1:
        return None
    old = scene.objects[0]
    color = _pick(rng, [c for c in COLORS if c != old.color and _far(c, scene.background)])
    size = "big" if rng.random() < 0.5 else "small"
    radius = rng.uniform(*RADIUS[size]) * (0.85 if size == "big" else 1.0)
    new = SceneObject(_pick(rng, SHAPES), color, size, 0.0, 0.0, radius)
    relation = _pick(rng, RELATIONS)
    for _ in range(60):  # rejection sampling, as the generator places pairs
        margin = radius + 0.5
        new.cx, new.cy = rng.uniform(margin, SIZE - margin), rng.uniform(margin, SIZE - margin)
        if relation_holds(old, new, relation):
            target = Scene([copy.deepcopy(old), new], scene.background, scene.pattern, relation)
            return target, [1], None, f"add a {new.phrase} with the {old.shape} {relation} it"
    return None


def _edit_delete(scene, rng):
    if len(scene.objects) != 2:
        return None
    j = int(rng.integers(2))
    gone = scene.objects[j]
    target = Scene([copy.deepcopy(scene.objects[1 - j])], scene.background, scene.pattern, None)
    return target, [j], None, f"remove the {gone.phrase}"


EDITS = {6: _edit_color, 1: _edit_shape, 8: _edit_background, 2: _edit_add, 3: _edit_delete, 4: _edit_size}
EDITS[7] = _edit_pattern
P_TWO = {2: 0.0, 3: 1.0}  # chance of two objects: add needs one, delete two; others as the generator draws


def _region(source: Scene, target: Scene, type_id: int, changed) -> np.ndarray:
    """The region the edit may change (see the module doc)."""
    if changed is None:  # background edits: all but what objects cover entirely
        full = np.zeros((SIZE, SIZE), dtype=bool)
        for obj in source.objects:
            full |= object_alpha(obj) >= 1.0
        return ~full
    region = np.zeros((SIZE, SIZE), dtype=bool)
    for scene in (source, target):
        for i in changed:
            if i < len(scene.objects) and not (type_id == 3 and scene is target):
                region |= object_alpha(scene.objects[i]) > 0
    return region


def scene_to_dict(scene: Scene) -> dict:
    objects = [
        {"shape": o.shape, "color": o.color, "size": o.size, "cx": o.cx, "cy": o.cy, "radius": o.radius}
        for o in scene.objects
    ]
    return {"objects": objects, "background": scene.background, "pattern": scene.pattern, "relation": scene.relation}


def scene_from_dict(data: dict) -> Scene:
    objects = [SceneObject(**o) for o in data["objects"]]
    return Scene(objects, data["background"], data["pattern"], data["relation"])


def _draw_case(seed: int, k: int, type_id: int):
    """(source scene, target scene, changed object indices, blended words, instruction, render seed)."""
    rng = np.random.default_rng([seed, k])
    for _ in range(MAX_TRIES):
        source = sample_scene(rng, p_two=P_TWO.get(type_id, 0.6))
        made = EDITS[type_id](source, rng)
        if made is not None:
            return (source, *made, int(rng.integers(2**31)))
    raise P2PError(f"no {FOLDERS[type_id]} edit found in {MAX_TRIES} scenes for case {k} (seed {seed})")


def make_case(seed: int, k: int, type_id: int):
    """Case ``k`` of type ``type_id``: (EditCase with a relative image path, source image, extras)."""
    source, target, changed, blended, instruction, render_seed = _draw_case(seed, k, type_id)
    render(source, np.random.default_rng(render_seed))  # the same seed draws the same stripes for both
    region = _region(source, target, type_id, changed)
    case_id = f"{type_id}{k:011d}"
    case = EditCase(
        case_id,
        Path(FOLDERS[type_id]) / f"{case_id}.png",
        source.caption,
        target.caption,
        type_id,
        blended,
        region,
        instruction,
    )
    extras = {
        "pocket": {
            "source": scene_to_dict(source),
            "target": scene_to_dict(target),
            "render_seed": render_seed,
            "region": encode_rle(region),
        }
    }
    return case, source.image, extras


def make_pocket_bench(folder, n: int = DEFAULT_N, seed: int = 0, types=TYPES) -> list[EditCase]:
    """Write ``n`` cases (round-robin over ``types``) as a PIE-format folder; returns them as read back."""
    n = check_int("n", n, 1, 10**6)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    bad = [t for t in types if t not in EDITS] if isinstance(types, (list, tuple)) else [types]
    if bad or not types:
        raise P2PError(f"types must be a non-empty list of pocket-bench edit types {list(TYPES)}, got {types!r}")
    items = [make_case(seed, k, types[k % len(types)]) for k in range(n)]
    return write_pie(folder, items)


class PocketTruth:
    """What a pocket-bench case's edited image should show (from the entry's ``"pocket"`` key)."""

    def __init__(self, data: dict, shape: tuple[int, int]):
        self.source = scene_from_dict(data["source"])
        self.target = scene_from_dict(data["target"])
        self.render_seed = int(data["render_seed"])
        self.region = runs_to_mask(data["region"], shape, where="pocket region")  # without the forced border

    def render_target(self) -> np.ndarray:
        """The target scene drawn as the source was: the ideal edit, (32, 32, 3) uint8."""
        scene = copy.deepcopy(self.target)
        return render(scene, np.random.default_rng(self.render_seed)).image


def truth_of(case: EditCase) -> PocketTruth | None:
    """The scene ground truth of a pocket-bench case; None for any other case."""
    data = case_extras(case).get("pocket")
    if data is None:
        return None
    try:
        return PocketTruth(data, np.shape(case.mask))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise P2PError(f"case {case.id!r}: its 'pocket' entry is malformed ({exc!r})") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m p2p_widgets.evaluate.pocket_bench", description=__doc__.split("\n")[0])
    p.add_argument("out", help="folder to write (mapping_file.json + annotation_images/)")
    p.add_argument("--n", type=int, default=DEFAULT_N, help=f"number of cases (default {DEFAULT_N})")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        cases = make_pocket_bench(args.out, n=args.n, seed=args.seed)
    except P2PError as exc:
        p.error(str(exc))
    counts = {t: sum(c.edit_type == t for c in cases) for t in TYPES}
    print(f"wrote {len(cases)} cases to {args.out} in {time.perf_counter() - t0:.1f} s")
    for t, c in counts.items():
        print(f"  {FOLDERS[t]}: {c}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
