"""One edit case of a benchmark: the shared currency of datasets, methods, sweeps and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
        """The source image as an RGB PIL image."""
        from PIL import Image

        with Image.open(self.image_path) as img:
            return img.convert("RGB")
