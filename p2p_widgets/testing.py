"""A tiny Stable-Diffusion-style pipeline with seeded random weights, for tests and benchmarks.

Same parts as SD (AutoencoderKL, CLIPTextModel on SD's tokenizer, UNet2DConditionModel with
cross-attention at two resolutions, DDIM), scaled down: 64x64 images, VAE factor 4 -> 16x16
latents, attention at 16x16 and 8x8. Built in well under a second, deterministic for a seed.
"""

from __future__ import annotations

from .pocket.model import SCHEDULER_CONFIG, assemble_pipeline, build_components

TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(8, 16, 16),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64,
)
TINY_TEXT = dict(
    vocab_size=49408,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    max_position_embeddings=77,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)
TINY_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(16, 32),
    layers_per_block=1,
    cross_attention_dim=32,
    attention_head_dim=2,
    norm_num_groups=8,
)


def tiny_pipeline(seed: int = 0, prediction_type: str = "epsilon"):
    """A fresh tiny pipeline (fp32, CPU) whose weights depend only on ``seed``."""
    vae, text_encoder, unet = build_components(TINY_VAE, TINY_TEXT, TINY_UNET, seed=seed)
    return assemble_pipeline(vae, text_encoder, unet, scheduler_config={**SCHEDULER_CONFIG, "prediction_type": prediction_type})
