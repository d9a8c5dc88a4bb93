"""The metrics a sweep row can hold, defined once: name, label, which end is better, the scale the
benchmark's tables print them at, and whether only pocket-bench cases have them.

No torch here: the sweep folder, the figures and the SweepExplorer read this table without loading
the metric networks (``metrics.py`` computes the values).
"""

from __future__ import annotations

from dataclasses import dataclass

HIGHER, LOWER = "higher", "lower"


@dataclass(frozen=True)
class Metric:
    """One metric column: ``label`` for axes and legends, ``better`` ("higher" or "lower"), the
    factor PIE-Bench's tables print the raw value at (``table_scale``: structure x 1e3, ...), and
    ``pocket_only`` (NaN for cases that are not pocket-bench's)."""

    name: str
    label: str
    better: str
    table_scale: float = 1.0
    pocket_only: bool = False

    @property
    def axis_label(self) -> str:
        """The label with its better end, as figures title their axes."""
        return f"{self.label} ({self.better} is better)"


METRICS = (  # the benchmark's seven in its order, then pocket-bench's own
    Metric("structure_distance", "structure distance", LOWER, 1e3),
    Metric("psnr_unedit_part", "PSNR of the unedited part, dB", HIGHER),
    Metric("lpips_unedit_part", "LPIPS of the unedited part", LOWER, 1e3),
    Metric("mse_unedit_part", "MSE of the unedited part", LOWER, 1e4),
    Metric("ssim_unedit_part", "SSIM of the unedited part", HIGHER, 1e2),
    Metric("clip_similarity_target_image", "CLIP score, whole image", HIGHER),
    Metric("clip_similarity_target_image_edit_part", "CLIP score, edited part", HIGHER),
    Metric("target_fidelity", "target fidelity", HIGHER, pocket_only=True),
    Metric("mask_iou", "mask IoU", HIGHER, pocket_only=True),
)
BY_NAME = {m.name: m for m in METRICS}
METRIC_NAMES = tuple(m.name for m in METRICS if not m.pocket_only)
POCKET_METRIC_NAMES = tuple(m.name for m in METRICS if m.pocket_only)
ALL_METRIC_NAMES = METRIC_NAMES + POCKET_METRIC_NAMES
TIMING = "seconds"  # a row's timing column: shown beside the metrics, lower is better
# words that mark a column the registry does not know (a custom scorer's) as lower-is-better
LOWER_WORDS = ("structure", "distance", "lpips", "mse", TIMING)


def better_end(name: str) -> str:
    """ "lower" or "higher": which end of a column's scale is the better edit (the registry's word
    for its metrics; a guess from the name for a custom scorer's columns)."""
    if name in BY_NAME:
        return BY_NAME[name].better
    lowered = name.lower()
    return LOWER if any(word in lowered for word in LOWER_WORDS) else HIGHER
