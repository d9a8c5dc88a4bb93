"""Loading pipelines: the embedded pocket model, or any Stable Diffusion checkpoint diffusers loads.

Weights load through safetensors only (``use_safetensors=True``) and no downloaded code is ever
run (no custom pipelines, no remote code).
"""

from __future__ import annotations

from .engine.defaults import POCKET_DEFAULTS, SD_DEFAULTS, SamplingDefaults


def load_pipeline(model: str = "pocket", device: str | None = None, dtype=None):
    """``"pocket"`` (embedded, offline) or a diffusers folder / hub id of an SD 1.x / 2.x or SDXL checkpoint."""
    if model == "pocket":
        from .pocket.model import load_pocket

        return load_pocket(device=device, dtype=dtype)
    import torch
    from diffusers import DiffusionPipeline

    from .errors import P2PError

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.float16 if device.startswith("cuda") else torch.float32)
    # the class comes from model_index.json, read as data: only these two classes are ever built
    try:
        class_name = DiffusionPipeline.load_config(model).get("_class_name", "")
    except (OSError, ValueError) as exc:
        raise P2PError(f"cannot read {model!r} as a diffusers pipeline folder or hub id: {exc}") from None
    options = {_dtype_keyword(): dtype, "use_safetensors": True}
    if class_name in ("StableDiffusionXLPipeline", "StableDiffusionPipeline"):
        pipe = _from_pretrained(model, class_name, options)
    else:
        raise P2PError(
            f"{model} is a {class_name or 'pipeline of unknown class'}: p2p_widgets loads "
            "StableDiffusionPipeline (SD 1.x / 2.x) and StableDiffusionXLPipeline checkpoints"
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _from_pretrained(model, class_name, options):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    from .errors import P2PError

    if class_name == "StableDiffusionPipeline":
        cls, options = StableDiffusionPipeline, {**options, "safety_checker": None, "requires_safety_checker": False}
    else:
        cls = StableDiffusionXLPipeline
    try:
        return cls.from_pretrained(model, **options)
    except (OSError, ValueError) as exc:
        raise P2PError(
            f"could not load {model!r}: p2p_widgets reads weights from safetensors files only (no pickle "
            f"checkpoints, no downloaded code), and every part must be there: {exc}"
        ) from None


def _dtype_keyword() -> str:
    """diffusers renamed ``torch_dtype`` to ``dtype`` (the old name warns); older releases know only the old."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def defaults_for(model: str) -> SamplingDefaults:
    return POCKET_DEFAULTS if model == "pocket" else SD_DEFAULTS
