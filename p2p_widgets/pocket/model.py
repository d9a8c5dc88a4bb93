"""The pocket model's architecture and loader.

Plain diffusers/transformers parts, so the pocket model is an ordinary
``StableDiffusionPipeline``: AutoencoderKL (32x32 RGB -> 16x16x4 latents), a small causal
CLIPTextModel on SD's CLIP tokenizer (77 positions), a UNet2DConditionModel with cross- and
self-attention at 16x16 and 8x8, and DDIM with SD's settings.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

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
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from ..tokenizer import load_tokenizer

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
    vae, text_encoder, unet = build_components(
        _known(info["vae"], VAE_CONFIG), {**TEXT_CONFIG, **text_config}, _known(info["unet"], UNET_CONFIG)
    )
    for name, module in zip(COMPONENTS, (vae, text_encoder, unet)):
        state = load_file(str(weights_dir / f"{name}.safetensors"))
        missing, unexpected = module.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        # position_ids is a non-persistent buffer in some transformers versions
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise RuntimeError(f"pocket {name} weights do not match its config: missing {missing}, unexpected {unexpected}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.float16 if str(device).startswith("cuda") else torch.float32)
    pipe = assemble_pipeline(vae, text_encoder, unet)
    return pipe.to(device=device, dtype=dtype)


def _known(config: dict, defaults: dict) -> dict:
    """Keep the constructor arguments we set; saved configs also carry diffusers' bookkeeping."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in defaults}
