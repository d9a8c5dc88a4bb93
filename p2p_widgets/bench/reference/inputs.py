"""What both sides run on: the random-weight SD-layout model, the start noise, the picture PnP inverts."""

from __future__ import annotations

GUIDANCE = 7.5
SIZE = 512
SEED = 0

# SD 1.x's UNet layout (four levels, two layers each, attention at 64/32/16 for 512 px, plain
# 8x8 level; 16 self-attention layers; up_blocks.1.resnets.1 at 16x16), channels shrunk for a CPU
REFERENCE_UNET = dict(
    sample_size=64,
    cross_attention_dim=64,
    attention_head_dim=1,
    layers_per_block=2,
    block_out_channels=(16, 32, 32, 32),
    norm_num_groups=16,
)


def build_reference_model(dtype="float64"):
    """The random-weight SD-layout pipeline (CPU) every comparison runs on, in ``dtype``.

    float64 by default: the random UNet is no denoiser, so its latents grow to |x| ~ 40 over ten
    DDIM steps, and two float32 implementations of the same attention (our fused and explicit
    paths) already end 6e-5 apart there; in float64 exact agreement shows as ~1e-12 and the 1e-4
    tolerance measures the methods, not rounding."""
    import torch
    from diffusers.utils import logging as diffusers_logging

    from ...pocket.model import assemble_pipeline, build_components
    from ..geometries import SDGEOM_TEXT, SDGEOM_VAE

    pipe = assemble_pipeline(*build_components(SDGEOM_VAE, SDGEOM_TEXT, REFERENCE_UNET, seed=SEED))
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its advice to load other precisions with from_pretrained
    try:
        return pipe.to(dtype=getattr(torch, dtype))
    finally:
        diffusers_logging.set_verbosity(level)


def start_noise(pipe):
    """(1, 4, 64, 64): the start latents both sides share (one draw for every prompt)."""
    import torch

    generator = torch.Generator("cpu").manual_seed(SEED)
    shape = (1, pipe.unet.config.in_channels, SIZE // 8, SIZE // 8)
    return torch.randn(shape, generator=generator).to(pipe.unet.dtype)


def synthetic_image():
    """A smooth 512x512 RGB picture (upsampled seeded noise): the image Plug-and-Play inverts."""
    import numpy as np
    from PIL import Image

    cells = np.random.default_rng(SEED).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize((SIZE, SIZE), Image.BICUBIC)
