"""The pocket model's architecture and loader.

Plain diffusers/transformers parts, so the pocket model is an ordinary
``StableDiffusionPipeline``: AutoencoderKL (32x32 RGB -> 16x16x4 latents), a small causal
CLIPTextModel on SD's CLIP tokenizer (77 positions), a UNet2DConditionModel with cross- and
self-attention at 16x16 and 8x8, and DDIM with SD's settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..engine.defaults import POCKET_DEFAULTS, register_defaults

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
COMPONENTS = ("vae", "text_encoder", "unet")

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=32,
    scaling_factor=0.5,  # replaced by 1 / std of the trained VAE's latents
)
TEXT_CONFIG = dict(
    vocab_size=49408,
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    max_position_embeddings=77,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
    hidden_act="quick_gelu",
)
UNET_CONFIG = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(64, 128),
    layers_per_block=2,
    cross_attention_dim=64,
    attention_head_dim=4,  # diffusers' legacy name: 4 heads
    norm_num_groups=32,
)
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)


def build_components(vae_config=None, text_config=None, unet_config=None, seed: int = 0):
    """Fresh (randomly initialised, seeded) VAE, text encoder and UNet from configs."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    vae = AutoencoderKL(**(vae_config or VAE_CONFIG))
    text_encoder = CLIPTextModel(CLIPTextConfig(**(text_config or TEXT_CONFIG)))
    unet = UNet2DConditionModel(**(unet_config or UNET_CONFIG))
    return vae, text_encoder, unet


def assemble_pipeline(vae, text_encoder, unet, tokenizer=None, scheduler_config=None):
    """Wrap components in a ``StableDiffusionPipeline`` with DDIM (no safety checker)."""
    from transformers.utils import logging as hf_logging

    from ..engine.tokenizer import load_tokenizer

    # diffusers' pipeline module imports transformers' image processors, which warn about
    # torchvision on every import; the pocket model uses no image processor
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        from diffusers import DDIMScheduler, StableDiffusionPipeline
    finally:
        hf_logging.set_verbosity(level)

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer or load_tokenizer(),
        unet=unet,
        scheduler=DDIMScheduler(**(scheduler_config or SCHEDULER_CONFIG)),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_weights(vae, text_encoder, unet, out_dir: Path, meta: dict | None = None):
    """Write fp16 safetensors per component plus ``pocket.json`` (configs and training facts)."""
    import torch
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, module in zip(COMPONENTS, (vae, text_encoder, unet)):
        state = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in module.state_dict().items()}
        save_file(state, str(out_dir / f"{name}.safetensors"))
    info = {
        "vae": dict(vae.config),
        "text_encoder": text_encoder.config.to_diff_dict(),
        "unet": dict(unet.config),
        "meta": meta or {},
    }
    (out_dir / "pocket.json").write_text(json.dumps(info, indent=1, default=list))


def load_pocket(device: str | None = None, dtype=None, weights_dir: Path | None = None):
    """The embedded default model as a ready ``StableDiffusionPipeline`` (offline, safetensors only).
    The pocket flow model is :func:`p2p_widgets.pocket.flow.load_flow_pocket`.

    ``device`` defaults to CUDA when available; ``dtype`` to fp32 (fp16 on CUDA).
    """
    import torch
    from safetensors.torch import load_file

    weights_dir = Path(weights_dir or WEIGHTS_DIR)
    info_path = weights_dir / "pocket.json"
    if not info_path.exists():
        raise FileNotFoundError(
            f"pocket weights not found in {weights_dir}; train them with `python -m p2p_widgets.pocket.train`"
        )
    info = json.loads(info_path.read_text())
    text_config = {k: v for k, v in info["text_encoder"].items() if k in TEXT_CONFIG}
    with torch.device("meta"):  # no random initialisation: the weights are assigned from the files
        vae, text_encoder, unet = build_components(
            _known(info["vae"], VAE_CONFIG), {**TEXT_CONFIG, **text_config}, _known(info["unet"], UNET_CONFIG)
        )
    for name, module in zip(COMPONENTS, (vae, text_encoder, unet)):
        state = load_file(str(weights_dir / f"{name}.safetensors"))
        missing, unexpected = module.load_state_dict(
            {k: v.float() for k, v in state.items()}, strict=False, assign=True
        )
        missing = [k for k in missing if not k.endswith("position_ids")]  # a non-persistent buffer
        if missing or unexpected:
            raise RuntimeError(
                f"pocket {name} weights do not match its config: missing {missing}, unexpected {unexpected}"
            )
    _materialise_buffers(text_encoder)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.float16 if str(device).startswith("cuda") else torch.float32)
    pipe = assemble_pipeline(vae, text_encoder, unet).to(device)
    pipe = pipe if dtype == torch.float32 else pipe.to(dtype=dtype)  # weights are already fp32
    return register_defaults(pipe, POCKET_DEFAULTS)


def _materialise_buffers(module):
    """Buffers not stored in the files (CLIP's position ids) are still on the meta device."""
    import torch

    for sub in module.modules():
        for key, buf in list(sub._buffers.items()):
            if buf is not None and buf.is_meta:
                if not key.endswith("position_ids"):
                    raise RuntimeError(f"buffer {key} of {type(sub).__name__} is not in the weights")
                sub._buffers[key] = torch.arange(buf.shape[-1]).expand(buf.shape)


def _known(config: dict, defaults: dict) -> dict:
    """Keep the constructor arguments we set; saved configs also carry diffusers' bookkeeping."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in defaults}
