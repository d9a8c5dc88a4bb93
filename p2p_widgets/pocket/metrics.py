"""Reading scenes back from images: background, objects (mask, colour, shape, size), relations.

Plain image analysis on 32x32 RGB images, calibrated on the scene generator's ground truth:
pixels far from both background colours (a pattern has two) are foreground; 4-connected
components are objects; colour is the nearest named colour of the object's median pixel; shape
is a nearest-centroid classifier on mask features (fill of the bounding box, solidity, vertical
mass asymmetry, aspect) whose centroids are fitted on generated ground-truth scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenes import BACKGROUNDS, COLORS, SHAPES, make_dataset, pattern_colors

FOREGROUND_DISTANCE = 70.0
MIN_PIXELS = 5


@dataclass
class FoundObject:
    mask: np.ndarray  # (32, 32) bool
    color: str
    shape: str
    area: int
    cx: float
    cy: float


def _nearest(rgb, table):
    names = list(table)
    d = [np.linalg.norm(np.asarray(table[n], dtype=np.float32) - rgb) for n in names]
    return names[int(np.argmin(d))]


def read_background(image: np.ndarray):
    """(colour name, pattern) from the border pixels."""
    img = image.astype(np.float32)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    best, best_err = None, np.inf
    for name in BACKGROUNDS:
        for pattern in ("plain", "striped"):
            a, b = pattern_colors(name, pattern)
            err = np.minimum(np.linalg.norm(border - a, axis=1), np.linalg.norm(border - b, axis=1))
            # a pattern explains more pixels; charge it unless both colours are really present
            share_b = np.mean(np.linalg.norm(border - b, axis=1) < np.linalg.norm(border - a, axis=1))
            cost = np.median(err) + (0 if pattern == "plain" or share_b > 0.15 else 1e3)
            if cost < best_err:
                best, best_err = (name, pattern), cost
    name, patterned = best
    if patterned == "plain":
        return name, "plain"
    return name, _pattern_kind(img, name)


def _pattern_kind(img, name):
    """Striped (diagonal) vs checkered: stripes are constant along the anti-diagonal."""
    a, b = pattern_colors(name, "striped")
    is_b = np.linalg.norm(img - b, axis=-1) < np.linalg.norm(img - a, axis=-1)
    anti = np.mean(is_b[1:, :-1] != is_b[:-1, 1:])  # (x, y) vs (x+1, y-1)
    horiz = np.mean(is_b[:, 1:] != is_b[:, :-1])
    return "striped" if anti < 0.5 * horiz else "checkered"


def foreground(image: np.ndarray, background: str, pattern: str) -> np.ndarray:
    img = image.astype(np.float32)
    a, b = pattern_colors(background, pattern)
    dist = np.minimum(np.linalg.norm(img - a, axis=-1), np.linalg.norm(img - b, axis=-1))
    return dist > FOREGROUND_DISTANCE


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components, largest first, at least MIN_PIXELS each."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    found, h, w = [], *mask.shape
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        labels[y0, x0] = len(found) + 1
        stack, pixels = [(y0, x0)], []
        while stack:
            y, x = stack.pop()
            pixels.append((y, x))
            for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not labels[yy, xx]:
                    labels[yy, xx] = len(found) + 1
                    stack.append((yy, xx))
        comp = np.zeros(mask.shape, dtype=bool)
        comp[tuple(np.array(pixels).T)] = True
        found.append(comp)
    return sorted((c for c in found if c.sum() >= MIN_PIXELS), key=lambda c: -c.sum())


def _cross(o, a, b) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _hull_area(points: np.ndarray) -> float:
    pts = sorted(set(map(tuple, points)))
    if len(pts) < 3:
        return 1.0

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and _cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out

    hull = half(pts)[:-1] + half(pts[::-1])[:-1]
    x, y = np.array(hull, dtype=np.float64).T
    return max(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))), 1.0)


def shape_features(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    area = mask.sum()
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    solidity = area / _hull_area(corners)
    mid = (ys.min() + ys.max() + 1) / 2
    asym = (np.sum(ys + 0.5 > mid) - np.sum(ys + 0.5 < mid)) / area  # triangles: mass at the bottom
    return np.array([area / (h * w), solidity, asym, min(h, w) / max(h, w)])


class SceneReader:
    """Reads objects from images; shape centroids fitted on ground-truth scenes."""

    def __init__(self, n_calibration: int = 600, seed: int = 12345):
        images, _, scenes = make_dataset(n_calibration, seed)
        feats = {s: [] for s in SHAPES}
        areas = {s: {"small": [], "big": []} for s in SHAPES}
        for scene in scenes:
            for obj, mask in zip(scene.objects, scene.masks):
                if mask.sum() >= MIN_PIXELS:
                    feats[obj.shape].append(shape_features(mask))
                    areas[obj.shape][obj.size].append(mask.sum())
        self.centroids = {s: np.mean(f, axis=0) for s, f in feats.items()}
        self.scale = np.std(np.concatenate([np.array(f) for f in feats.values()]), axis=0) + 1e-6
        self.size_threshold = {s: 0.5 * (np.median(a["small"]) + np.median(a["big"])) for s, a in areas.items()}

    def shape_of(self, mask) -> str:
        f = shape_features(mask) / self.scale
        return min(self.centroids, key=lambda s: np.linalg.norm(f - self.centroids[s] / self.scale))

    def size_of(self, obj: FoundObject) -> str:
        return "big" if obj.area > self.size_threshold[obj.shape] else "small"

    def read(self, image: np.ndarray, background=None, pattern=None, max_objects: int = 2):
        if background is None:
            background, pattern = read_background(image)
        fg = foreground(image, background, pattern)
        # split the foreground by nearest named colour first, so touching objects separate
        labels = _color_labels(image)
        comps = [c for name in COLORS for c in components(fg & (labels == name))]
        objects = []
        for comp in sorted(comps, key=lambda c: -c.sum())[:max_objects]:
            comp = _absorb_edges(comp, fg, comps)
            interior = comp if comp.sum() < 12 else _erode(comp)
            rgb = np.median(image[interior if interior.any() else comp].astype(np.float32), axis=0)
            ys, xs = np.nonzero(comp)
            objects.append(
                FoundObject(
                    comp,
                    _nearest(rgb, COLORS),
                    self.shape_of(comp),
                    int(comp.sum()),
                    float(xs.mean()),
                    float(ys.mean()),
                )
            )
        return (background, pattern), objects


def _color_labels(image):
    img = image.astype(np.float32)
    names = np.array(list(COLORS))
    d = np.stack([np.linalg.norm(img - np.asarray(COLORS[n], dtype=np.float32), axis=-1) for n in names])
    return names[np.argmin(d, axis=0)]


def _absorb_edges(comp, fg, comps):
    """Add foreground pixels next to the component that no other kept component owns (antialiased
    edges take the colour of neither the object nor the background)."""
    others = np.zeros_like(comp)
    for c in comps:
        if c is not comp and c.sum() >= MIN_PIXELS:
            others |= c
    grown = comp.copy()
    grown[1:] |= comp[:-1]
    grown[:-1] |= comp[1:]
    grown[:, 1:] |= comp[:, :-1]
    grown[:, :-1] |= comp[:, 1:]
    return comp | (grown & fg & ~others)


def _erode(mask):
    m = mask.copy()
    m[1:] &= mask[:-1]
    m[:-1] &= mask[1:]
    m[:, 1:] &= mask[:, :-1]
    m[:, :-1] &= mask[:, 1:]
    return m


def relation_of(a: FoundObject, b: FoundObject) -> str:
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if abs(dx) >= abs(dy):
        return "left of" if dx > 0 else "right of"
    return "above" if dy > 0 else "below"


def match_objects(scene, found):
    """Assign found objects to the caption's objects (best attribute agreement); None if missing."""
    want = scene.objects
    if not found:
        return [None] * len(want)
    if len(want) == 1:
        return [max(found, key=lambda f: _agree(want[0], f) * 1000 + f.area)]
    if len(found) == 1:
        k = int(np.argmax([_agree(w, found[0]) for w in want]))
        return [found[0] if i == k else None for i in range(2)]
    a, b = found[:2]
    straight = _agree(want[0], a) + _agree(want[1], b)
    swapped = _agree(want[0], b) + _agree(want[1], a)
    return [a, b] if straight >= swapped else [b, a]


def _agree(obj, found):
    return (obj.color == found.color) + (obj.shape == found.shape)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def layout_iou(a, b, background: str = "gray", pattern: str = "plain") -> float:
    """IoU of two pocket images' object pixels (all that is not background): 1.0 when every object
    covers the same pixels in both, whatever its colour; lower as objects move or change shape."""
    return iou(*(foreground(np.asarray(x), background, pattern) for x in (a, b)))


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = diff[mask].mean() if mask is not None else diff.mean()
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))
