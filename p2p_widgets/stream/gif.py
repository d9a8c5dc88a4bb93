"""Animated GIFs of a playback: one picture per step, one row per prompt (the x0 preview, then the
preview under each selected token's heat map)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..errors import P2PError, is_int, is_number
from .frames import heat_lut


@dataclass(frozen=True)
class GifStyle:
    normalize: str = "token"  # "token": each map to its own peak; "global": all maps to the step's peak
    opacity: float = 0.6  # of the heat colour over the preview
    fps: float = 8.0
    scale: int = 4  # every pixel repeated this many times

    def __post_init__(self):
        if self.normalize not in ("token", "global"):
            raise P2PError(f"normalize must be 'token' or 'global', got {self.normalize!r}")
        if not is_number(self.opacity) or not 0 <= self.opacity <= 1:
            raise P2PError(f"opacity must be in [0, 1], got {self.opacity!r}")
        if not is_number(self.fps) or not 0.5 <= self.fps <= 60:
            raise P2PError(f"fps must be in [0.5, 60], got {self.fps!r}")
        if not is_int(self.scale) or not 1 <= self.scale <= 16:
            raise P2PError(f"scale must be an integer in [1, 16], got {self.scale!r}")


def compose_step(images: list[np.ndarray], heats: dict, style: GifStyle):
    """A PIL picture of one step: ``images`` (per prompt, (h, w, 3) uint8) and ``heats``
    ({(prompt, token): (gh, gw) map}), drawn in rows with a 1-pixel white gap."""
    from PIL import Image

    lut = heat_lut()
    h, w = images[0].shape[:2]
    peak = max((float(m.max()) for m in heats.values()), default=0.0)
    cols = 1 + max((sum(1 for b2, _ in heats if b2 == b) for b in range(len(images))), default=0)
    canvas = np.full((len(images) * (h + 1) - 1, cols * (w + 1) - 1, 3), 255, np.uint8)
    for b, image in enumerate(images):
        y = b * (h + 1)
        canvas[y : y + h, :w] = image
        maps = [m for (b2, _), m in heats.items() if b2 == b]
        for col, m in enumerate(maps, start=1):
            top = float(m.max()) if style.normalize == "token" else peak
            v = m / top if top > 0 else np.zeros_like(m)
            up = np.kron(v, np.ones((h // m.shape[0], w // m.shape[1]), np.float32))
            colour = lut[np.clip(np.rint(up * 255), 0, 255).astype(np.uint8)].astype(np.float32)
            mixed = (1 - style.opacity) * image.astype(np.float32) + style.opacity * colour
            x = col * (w + 1)
            canvas[y : y + h, x : x + w] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return Image.fromarray(np.kron(canvas, np.ones((style.scale, style.scale, 1), np.uint8)))


def encode_gif(pictures: list, fps: float) -> bytes:
    """The pictures as a looping animated GIF."""
    out = io.BytesIO()
    pictures[0].save(
        out, format="GIF", save_all=True, append_images=pictures[1:], duration=max(20, int(round(1000 / fps))), loop=0
    )
    return out.getvalue()
