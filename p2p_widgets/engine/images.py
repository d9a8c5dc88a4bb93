"""Preparing real images for inversion and editing: any PIL image, array or file path as RGB
pixels cropped and resized to the model's size (:func:`load_image`), and their hash (the
inversion cache and edit files name the exact pixels)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..errors import P2PError

CROPS = ("center", "none")


def load_image(image, size: int | tuple[int, int], crop="center") -> np.ndarray:
    """An (H, W, 3) uint8 array of ``image`` prepared for a model of ``size`` pixels (an int for a square).

    ``image``: a PIL image (any mode: converted to RGB, alpha dropped), a numpy array (H, W, 3),
    (H, W, 4) (alpha dropped) or (H, W) (grey), uint8 or float in [0, 1], or a file path.
    ``crop``: ``"center"`` crops the largest centred square, as the reference does, then resizes;
    ``"none"`` resizes the whole image (the aspect ratio changes if it is not square);
    ``(left, top, right, bottom)``: crop that pixel box (PIL's convention, right and bottom
    exclusive), then the centred square of it, then resize.
    """
    from PIL import Image

    pil = _to_pil(image)
    height, width = (size, size) if isinstance(size, int) else size
    if isinstance(crop, str):
        if crop not in CROPS:
            raise P2PError(f"crop must be 'center', 'none' or a (left, top, right, bottom) box, got {crop!r}")
    else:
        box = _check_box(crop, pil.size)
        pil = pil.crop(box)
    if crop != "none":
        w, h = pil.size
        target = width / height
        if w / h > target:  # too wide: keep the centre columns
            new_w = max(1, round(h * target))
            left = (w - new_w) // 2
            pil = pil.crop((left, 0, left + new_w, h))
        elif w / h < target:
            new_h = max(1, round(w / target))
            top = (h - new_h) // 2
            pil = pil.crop((0, top, w, top + new_h))
    if pil.size != (width, height):
        pil = pil.resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(pil, dtype=np.uint8).copy()


def _to_pil(image):
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.exists():
            raise P2PError(f"image file {path} does not exist")
        try:
            with Image.open(path) as f:
                f.load()
                image = f.copy()
        except UnidentifiedImageError:
            raise P2PError(f"{path} is not an image file PIL can read") from None
    if isinstance(image, Image.Image):
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA").convert("RGB")  # alpha dropped (the colours under it are kept)
        elif image.mode != "RGB":
            image = image.convert("RGB")
        _check_pixels(image.size[1], image.size[0])
        return image
    if torch.is_tensor(image):
        raise P2PError("pass the image as a PIL image, a numpy (H, W, 3) array or a file path, not a torch tensor")
    if not isinstance(image, np.ndarray):
        raise P2PError(f"image must be a PIL image, a numpy array or a file path, got {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        raise P2PError(f"image array has shape {arr.shape}: channels must come last, (H, W, 3)")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise P2PError(f"image array must be (H, W, 3), (H, W, 4) or (H, W), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        pass
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise P2PError("a float image array must hold values in [0, 1] (uint8 arrays hold 0..255)")
        arr = np.rint(arr * 255).astype(np.uint8)
    else:
        raise P2PError(f"image array dtype must be uint8 (0..255) or float (0..1), got {arr.dtype}")
    _check_pixels(*arr.shape[:2])
    pil = Image.fromarray(np.ascontiguousarray(arr))
    return pil if pil.mode == "RGB" else pil.convert("RGB")


def _check_pixels(h, w):
    if h < 8 or w < 8:
        raise P2PError(f"image is {w}x{h} pixels: too small to invert (at least 8x8)")


def _check_box(box, size):
    w, h = size
    try:
        left, top, right, bottom = (int(v) for v in box)
    except (TypeError, ValueError):
        raise P2PError(f"crop must be 'center', 'none' or a (left, top, right, bottom) box, got {box!r}") from None
    if not (0 <= left < right <= w and 0 <= top < bottom <= h):
        raise P2PError(
            f"crop box {(left, top, right, bottom)} is not inside the {w}x{h} image "
            "(left < right <= width, top < bottom <= height)"
        )
    _check_pixels(bottom - top, right - left)
    return left, top, right, bottom


def pixels_hash(pixels: np.ndarray) -> str:
    h = hashlib.sha256(str(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()
