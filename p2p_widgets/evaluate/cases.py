"""One edit case of a benchmark: the shared currency of datasets, methods, sweeps and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import P2PError

# PIE-Bench's edit types by ``editing_type_id`` (pocket-bench uses the ids its scenes can express)
EDIT_TYPES = {
    0: "random",
    1: "change object",
    2: "add object",
    3: "delete object",
    4: "change content",
    5: "change pose",
    6: "change color",
    7: "change material",
    8: "change background",
    9: "change style",
}


@dataclass(frozen=True)
class EditCase:
    """An image, its caption, the edited caption and the region the edit may change."""

    id: str  # the dataset's key (PIE-Bench: the 12-digit id)
    image_path: Path  # absolute path of the source image
    source_prompt: str  # brackets already stripped
    target_prompt: str  # brackets already stripped
    edit_type: int  # a key of EDIT_TYPES
    blended_words: tuple[str, str] | None  # (source word, target word) for LocalBlend; None: no blend
    mask: np.ndarray = field(repr=False)  # (H, W) bool, True = the region to edit, the image's size
    instruction: str = ""

    @property
    def edit_type_name(self) -> str:
        return EDIT_TYPES[self.edit_type]

    def image(self):
        """The source image as an RGB PIL image (a P2PError names a file that cannot be read)."""
        with open_image(self.image_path) as img:
            try:
                return img.convert("RGB")
            except Exception as exc:  # a damaged file: PIL raises OSError, SyntaxError, ...
                raise P2PError(f"image {self.image_path} cannot be read: {exc}") from None


def open_image(path):
    """``PIL.Image.open(path)``, or a P2PError for a file that is not an image or claims more pixels
    than PIL's decompression-bomb limit (e.g. a header saying 100000x100000)."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except Image.DecompressionBombError:
        with open(path, "rb") as f:
            head = f.read(24)
        size = (
            f"{int.from_bytes(head[16:20], 'big')}x{int.from_bytes(head[20:24], 'big')} "
            if head[:4] == b"\x89PNG"
            else ""
        )
        raise P2PError(
            f"image {path} claims {size}pixels, more than PIL opens safely ({Image.MAX_IMAGE_PIXELS} pixels)"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise P2PError(f"image {path} cannot be read: {exc}") from None
