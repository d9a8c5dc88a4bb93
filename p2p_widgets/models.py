"""Loading pipelines: the embedded pocket models, or a Stable Diffusion 1.x / 2.x / XL / 3 or Flux.1
checkpoint diffusers loads.

Weights load through safetensors only (``use_safetensors=True``) and no downloaded code is ever
run (no custom pipelines, no remote code).
"""

from __future__ import annotations

from .engine.defaults import POCKET_DEFAULTS, POCKET_FLOW_DEFAULTS, SamplingDefaults

# the embedded models load_pipeline builds offline, by name, with their sampling defaults (the one
# list: the command line, the sweeps and the benches import it)
BUILT_IN = {"pocket": POCKET_DEFAULTS, "pocket-flow": POCKET_FLOW_DEFAULTS}
BUILT_IN_MODELS = tuple(BUILT_IN)

# the pipeline classes load_pipeline builds (the class is read from model_index.json as data)
PIPELINE_CLASSES = (
    "StableDiffusionPipeline",
    "StableDiffusionXLPipeline",
    "StableDiffusion3Pipeline",
    "FluxPipeline",
)


def load_pipeline(model: str = "pocket", device: str | None = None, dtype=None):
    """``"pocket"`` / ``"pocket-flow"`` (embedded, offline) or a diffusers folder / hub id of an
    SD 1.x / 2.x, SDXL, SD3 / SD3.5 or Flux.1 checkpoint."""
    if model == "pocket":
        from .pocket.model import load_pocket

        return load_pocket(device=device, dtype=dtype)
    if model == "pocket-flow":
        from .pocket.flow import load_flow_pocket

        return load_flow_pocket(device=device, dtype=dtype)
    import torch
    from diffusers import DiffusionPipeline

    from .errors import P2PError

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # the class comes from model_index.json, read as data: only PIPELINE_CLASSES are ever built
    try:
        class_name = DiffusionPipeline.load_config(model).get("_class_name", "")
    except (OSError, ValueError) as exc:
        raise P2PError(f"cannot read {model!r} as a diffusers pipeline folder or hub id: {exc}") from None
    if class_name not in PIPELINE_CLASSES:
        raise P2PError(
            f"{model} is a {class_name or 'pipeline of unknown class'}: p2p_widgets loads "
            f"{', '.join(PIPELINE_CLASSES)} checkpoints"
        )
    # SD3 and Flux overflow in fp16: bf16 on a GPU, as their model cards load them
    half = torch.float16 if class_name in PIPELINE_CLASSES[:2] else torch.bfloat16
    dtype = dtype or (half if device.startswith("cuda") else torch.float32)
    options = {_dtype_keyword(): dtype, "use_safetensors": True}
    pipe = _from_pretrained(model, class_name, options)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _from_pretrained(model, class_name, options):
    import diffusers

    from .errors import P2PError

    cls = getattr(diffusers, class_name)  # one of PIPELINE_CLASSES
    if class_name == "StableDiffusionPipeline":
        options = {**options, "safety_checker": None, "requires_safety_checker": False}
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
    """A built-in model's sampling defaults, by name, before it loads (a loaded model's, any
    checkpoint's included, are ``editor.model.defaults``: its family's unless registered)."""
    if model not in BUILT_IN:
        from .errors import P2PError

        raise P2PError(
            f"{model!r} is not a built-in model ({', '.join(BUILT_IN_MODELS)}): a checkpoint's sampling "
            "defaults are its loaded backend's, editor.model.defaults"
        )
    return BUILT_IN[model]
