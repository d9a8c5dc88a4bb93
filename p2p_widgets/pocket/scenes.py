"""Seeded procedural scenes whose captions drive the layout.

One or two objects (shape, colour, size), a spatial relation between two objects ("left of",
"right of", "above", "below"), and a plain or patterned background. Every scene keeps its ground
truth (per-object masks and attributes) so the evaluation can score generated images.

Images are drawn at 4x and box-downsampled, so edges are antialiased like natural images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

SIZE = 32  # image side in pixels
SUPER = 4  # supersampling factor for antialiasing

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (240, 220, 40),
    "purple": (140, 60, 185),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "pink": (245, 150, 205),
}
BACKGROUNDS = {
    "black": (15, 15, 15),
    "gray": (125, 125, 125),
    "white": (238, 238, 238),
    "beige": (222, 204, 160),
}
SHAPES = ("circle", "square", "triangle", "star")
PATTERNS = ("plain", "striped", "checkered")
RELATIONS = ("left of", "right of", "above", "below")
RADIUS = {"small": (3.5, 5.0), "big": (7.0, 9.5)}
MIN_COLOR_DISTANCE = 110  # an object is never drawn on a background of nearly its colour


@dataclass
class SceneObject:
    shape: str
    color: str
    size: str
    cx: float  # centre in pixels of the 32x32 image
    cy: float
    radius: float

    @property
    def phrase(self) -> str:
        return f"{self.size} {self.color} {self.shape}"


@dataclass
class Scene:
    objects: list[SceneObject]
    background: str
    pattern: str = "plain"
    relation: str | None = None  # relation of objects[0] to objects[1]
    image: np.ndarray | None = field(default=None, repr=False)  # (32, 32, 3) uint8
    masks: np.ndarray | None = field(default=None, repr=False)  # (n_objects, 32, 32) bool

    @property
    def caption(self) -> str:
        return caption_of(self.objects, self.relation, self.background, self.pattern)


def caption_of(objects, relation, background, pattern) -> str:
    """The caption grammar: 'a {obj} [{relation} a {obj}] on a [{pattern}] {bg} background'."""
    text = f"a {objects[0].phrase}"
    if len(objects) == 2:
        text += f" {relation} a {objects[1].phrase}"
    pattern_word = "" if pattern == "plain" else f"{pattern} "
    return f"{text} on a {pattern_word}{background} background"


def _polygon(shape: str, cx: float, cy: float, r: float):
    if shape == "square":
        h = r * 0.86  # equal area to the circle of radius r, roughly
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        angles, radii = np.deg2rad([-90, 30, 150]), [r * 1.25] * 3
    else:  # star: five points, inner radius half the outer
        angles = np.deg2rad(np.arange(10) * 36 - 90)
        radii = [r * 1.3 if k % 2 == 0 else r * 0.6 for k in range(10)]
    return [(cx + q * np.cos(a), cy + q * np.sin(a)) for a, q in zip(angles, radii)]


def object_alpha(obj: SceneObject) -> np.ndarray:
    """Coverage in [0, 1] of one object at 32x32 (drawn at 4x, box-downsampled)."""
    canvas = Image.new("L", (SIZE * SUPER, SIZE * SUPER), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, r = obj.cx * SUPER, obj.cy * SUPER, obj.radius * SUPER
    if obj.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon(_polygon(obj.shape, cx, cy, r), fill=255)
    small = canvas.resize((SIZE, SIZE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def pattern_colors(background: str, pattern: str):
    """The two colours of a background: its own and (for patterns) a shade of it."""
    base = np.array(BACKGROUNDS[background], dtype=np.float32)
    if pattern == "plain":
        return base, base
    shade = base * 0.62 if base.mean() > 110 else base + 70
    return base, np.clip(shade, 0, 255)


def _background(background: str, pattern: str, rng: np.random.Generator) -> np.ndarray:
    base, shade = pattern_colors(background, pattern)
    img = np.broadcast_to(base, (SIZE, SIZE, 3)).copy()
    if pattern == "plain":
        return img
    period = int(rng.integers(6, 11))
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    if pattern == "striped":
        on = ((xs + ys) // (period // 2)) % 2 == 0  # diagonal stripes
    else:
        on = ((xs // (period // 2)) + (ys // (period // 2))) % 2 == 0
    img[on] = shade
    return img


def render(scene: Scene, rng: np.random.Generator) -> Scene:
    """Draw the scene; fills ``scene.image`` and ``scene.masks``."""
    img = _background(scene.background, scene.pattern, rng)
    masks = []
    for obj in scene.objects:
        alpha = object_alpha(obj)[..., None]
        img = img * (1 - alpha) + np.array(COLORS[obj.color], dtype=np.float32) * alpha
        masks.append(alpha[..., 0] > 0.5)
    scene.image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    scene.masks = np.stack(masks)
    return scene


def relation_holds(a: SceneObject, b: SceneObject, relation: str) -> bool:
    dx, dy = b.cx - a.cx, b.cy - a.cy
    gap = 0.8 * (a.radius + b.radius)
    if relation in ("left of", "right of"):
        dx = dx if relation == "left of" else -dx
        return dx >= gap and abs(dy) < dx
    dy = dy if relation == "above" else -dy
    return dy >= gap and abs(dx) < dy


def _place(rng, radius):
    margin = radius + 0.5
    return rng.uniform(margin, SIZE - margin), rng.uniform(margin, SIZE - margin)


def _pick_color(rng, background):
    bg = np.array(BACKGROUNDS[background], dtype=np.float32)
    allowed = [c for c, rgb in COLORS.items() if np.linalg.norm(np.array(rgb) - bg) >= MIN_COLOR_DISTANCE]
    return allowed[int(rng.integers(len(allowed)))]


def sample_scene(rng: np.random.Generator, p_two: float = 0.6, p_pattern: float = 0.4) -> Scene:
    """Draw one random scene (attributes, positions, image, masks)."""
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    pattern = "plain" if rng.random() >= p_pattern else PATTERNS[1 + int(rng.integers(2))]
    n_objects = 2 if rng.random() < p_two else 1
    while True:
        objects = []
        for _ in range(n_objects):
            size = "big" if rng.random() < 0.5 else "small"
            r = rng.uniform(*RADIUS[size]) * (0.85 if n_objects == 2 and size == "big" else 1.0)
            objects.append(SceneObject(SHAPES[int(rng.integers(4))], _pick_color(rng, background), size, 0, 0, r))
        relation = RELATIONS[int(rng.integers(4))] if n_objects == 2 else None
        for _ in range(40):  # rejection sampling of positions that satisfy the relation
            for obj in objects:
                obj.cx, obj.cy = _place(rng, obj.radius)
            if relation is None or relation_holds(objects[0], objects[1], relation):
                return render(Scene(objects, background, pattern, relation), rng)


def make_dataset(n: int, seed: int, **kwargs):
    """``n`` scenes from one seed: (images uint8 (n,32,32,3), captions list[str], scenes)."""
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, **kwargs) for _ in range(n)]
    return np.stack([s.image for s in scenes]), [s.caption for s in scenes], scenes
