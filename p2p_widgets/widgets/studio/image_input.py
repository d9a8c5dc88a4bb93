"""The Studio's real image: file bytes or an image in, an (H, W, 3) uint8 array at the model's size out."""

from __future__ import annotations

import io

import numpy as np

from ...engine.images import load_image
from ...errors import P2PError

MAX_IMAGE_BYTES = 25_000_000  # an uploaded image file (it is resized to the model's size)
MAX_IMAGE_PIXELS = 64_000_000  # decoded size: a small file can hold a huge image (8000 x 8000 here)


def prepare_image(image, size: int, name: str = "image") -> np.ndarray:
    """``image`` (PIL image, array, file path, or an image file's bytes) centre-cropped and resized
    to ``size`` x ``size``; a P2PError naming ``name`` when it cannot be read."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        image = _open(bytes(image), name)
    return load_image(image, size, "center")


def _open(data: bytes, name: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as f:
            pixels = f.size[0] * f.size[1]
            if pixels > MAX_IMAGE_PIXELS:
                raise P2PError(
                    f"{name} is {f.size[0]}x{f.size[1]} pixels; the Studio reads images of at most "
                    f"{MAX_IMAGE_PIXELS:,} pixels (resize it first)"
                )
            f.load()
            return f.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise P2PError(f"{name} is not an image file this Studio can read ({exc})") from None
