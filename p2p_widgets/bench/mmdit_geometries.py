"""MM-DiT pipelines with seeded random weights, built from configs offline (tests and benchmarks).

- ``tiny_sd3_pipeline``: a ``StableDiffusion3Pipeline`` as diffusers' own tests build it (two CLIPs
  with projections, a T5 or none, a 2-block transformer; ``sd35=True``: SD3.5's RMS QK-norm and a
  dual-attention block);
- ``tiny_flux_pipeline``: a ``FluxPipeline`` (2 double + 2 single blocks; ``guidance_embeds``: dev,
  else schnell-like);
- ``sd3geom`` / ``fluxgeom``: the real architectures' layouts with widths reduced to run on a CPU;
- ``flux_pipeline`` / ``sd3_pipeline`` / ``sd35_pipeline``: Flux.1-dev's, SD3-medium's and
  SD3.5-large's transformers and VAEs at full size (11.9 B / 2.03 B / 8.06 B transformer parameters;
  1024 px), built on the target device in the target dtype, with one-layer text encoders whose
  output widths are the real ones' (T5 4096, CLIP-L 768, CLIP-G 1280): for timing the denoising.

Tokenizers are SD's CLIP BPE from the package and a word-level T5 over the pocket scene words
(:func:`p2p_widgets.pocket.flow.t5_tokenizer`): no hub access anywhere.
"""

from __future__ import annotations

from contextlib import contextmanager

from .geometries import SD15_TEXT, SDXL_TEXT2, TINY_TEXT, TINY_VAE

FLUX_DEV_SCHEDULER = dict(
    base_image_seq_len=256,
    base_shift=0.5,
    max_image_seq_len=4096,
    max_shift=1.15,
    num_train_timesteps=1000,
    shift=3.0,
    use_dynamic_shifting=True,
)
SD3_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0)
SD3_VAE = {**TINY_VAE, "shift_factor": 0.0609, "scaling_factor": 1.5035}  # SD3's VAE constants
FLUX_VAE = {**TINY_VAE, "shift_factor": 0.1159, "scaling_factor": 0.3611}  # Flux.1's


def _quiet_import():
    """diffusers' pipeline modules import transformers' image processors, which warn about torchvision."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        import diffusers
    finally:
        hf_logging.set_verbosity(level)
    return diffusers


def _t5(width: int, layers: int = 2):
    from transformers import T5Config, T5EncoderModel

    from ..pocket.flow import t5_tokenizer

    tok = t5_tokenizer()
    tok.model_max_length = 512
    config = T5Config(
        vocab_size=len(tok), d_model=width, d_kv=8, d_ff=2 * width, num_layers=layers, num_heads=4, dropout_rate=0.0
    )
    return T5EncoderModel(config), tok


TINY_SD3 = dict(
    sample_size=16,
    patch_size=2,
    in_channels=4,
    num_layers=2,
    attention_head_dim=8,
    num_attention_heads=4,
    caption_projection_dim=32,
    joint_attention_dim=64,  # CLIP-L + CLIP-G widths, and T5's
    pooled_projection_dim=64,
    out_channels=4,
)
TINY_FLUX = dict(
    patch_size=1,
    in_channels=16,  # 4 latent channels x a 2x2 patch
    num_layers=2,
    num_single_layers=2,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    pooled_projection_dim=32,
    axes_dims_rope=(4, 6, 6),
)
# The real layouts at CPU widths: 16-channel latents, VAE factor 8, patch 2 (256 px -> 256 image
# tokens), SD3's joint blocks / Flux's double and single blocks in their 1 : 2 proportion.
GEOM_VAE = dict(
    block_out_channels=(16, 32, 32, 32),
    layers_per_block=1,
    latent_channels=16,
    norm_num_groups=16,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
)
SD3GEOM = dict(
    sample_size=32,
    patch_size=2,
    in_channels=16,
    num_layers=6,
    attention_head_dim=32,
    num_attention_heads=4,
    caption_projection_dim=128,
    joint_attention_dim=128,
    pooled_projection_dim=64,
    out_channels=16,
    pos_embed_max_size=64,
)
FLUXGEOM = dict(
    patch_size=1,
    in_channels=64,
    num_layers=4,
    num_single_layers=8,
    attention_head_dim=32,
    num_attention_heads=4,
    joint_attention_dim=128,
    pooled_projection_dim=32,
    guidance_embeds=True,
    axes_dims_rope=(8, 12, 12),
)
GEOM_TEXT_LENGTH = 64  # T5 positions at these widths (the full models use 256 / 512)

# The released models' configs (transformer/config.json and vae/config.json of each repository)
FLUX_DEV = dict(
    patch_size=1,
    in_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
SD3_MEDIUM = dict(
    sample_size=128,
    patch_size=2,
    in_channels=16,
    num_layers=24,
    attention_head_dim=64,
    num_attention_heads=24,
    joint_attention_dim=4096,
    caption_projection_dim=1536,
    pooled_projection_dim=2048,
    out_channels=16,
    pos_embed_max_size=192,
)
SD35_LARGE = {
    **SD3_MEDIUM,
    "num_layers": 38,
    "num_attention_heads": 38,
    "caption_projection_dim": 2432,
    "qk_norm": "rms_norm",
}
FULL_VAE = dict(  # Flux.1's and SD3's VAE layout (16 latent channels, factor 8, no quant convs)
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=16,
    norm_num_groups=32,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=1024,
    use_quant_conv=False,
    use_post_quant_conv=False,
)
# One-layer text encoders with the real ones' output widths: CLIP-L (768; Flux's pooled vector, and
# SD3's first pooled half), CLIP-G (1280, projected to 1280; SD3's second half); T5-XXL's 4096 below
FULL_CLIP_L = {**SD15_TEXT, "num_hidden_layers": 1, "projection_dim": 768}
FULL_CLIP_G = {**SDXL_TEXT2, "num_hidden_layers": 1}
T5_WIDTH = 4096


def tiny_sd3_pipeline(seed: int = 0, sd35: bool = False, t5: bool = True, scheduler: dict | None = None):
    """A tiny SD3 (or SD3.5) pipeline: 64 px images, 16x16 latents, 8x8 image tokens (patch 2)."""
    config = {**TINY_SD3, **(dict(qk_norm="rms_norm", dual_attention_layers=(0,)) if sd35 else {})}
    return _sd3_pipeline(seed, config, SD3_VAE, 64 if t5 else None, scheduler)


def tiny_flux_pipeline(seed: int = 0, guidance_embeds: bool = True, scheduler: dict | None = None):
    """A tiny Flux pipeline: 64 px images, 16x16 latents packed into 8x8 tokens of 16 features."""
    return _flux_pipeline(seed, {**TINY_FLUX, "guidance_embeds": guidance_embeds}, FLUX_VAE, 32, scheduler)


def sd3geom_pipeline(seed: int = 0):
    """SD3-medium's layout (joint blocks over [image; CLIP 77 + T5]) with 6 blocks of width 128, 256 px."""
    from ..engine.defaults import SD3_DEFAULTS

    vae = {**GEOM_VAE, "shift_factor": 0.0609, "scaling_factor": 1.5035}
    return _with_defaults(_sd3_pipeline(seed, SD3GEOM, vae, 128, None), SD3_DEFAULTS, "sd3geom")


def fluxgeom_pipeline(seed: int = 0):
    """Flux.1-dev's layout (guidance embedded, double then single blocks) with 4 + 8 blocks of width 128, 256 px."""
    from ..engine.defaults import FLUX_DEV_DEFAULTS

    vae = {**GEOM_VAE, "shift_factor": 0.1159, "scaling_factor": 0.3611}
    return _with_defaults(_flux_pipeline(seed, FLUXGEOM, vae, 128, None), FLUX_DEV_DEFAULTS, "fluxgeom")


def _with_defaults(pipe, family, name, size=256, text_length=GEOM_TEXT_LENGTH):
    import dataclasses

    from ..engine.defaults import register_defaults

    return register_defaults(pipe, dataclasses.replace(family, size=size, text_length=text_length, name=name))


def flux_pipeline(device="cpu", dtype=None, seed: int = 0):
    """Flux.1-dev's transformer (19 double + 38 single blocks, 24 heads x 128) and VAE at full size,
    random weights, 1024 px, 512 T5 positions; built on ``device`` in ``dtype`` (bf16 on a GPU: 24 GB)."""
    from ..engine.defaults import FLUX_DEV_DEFAULTS

    vae = {**FULL_VAE, "shift_factor": 0.1159, "scaling_factor": 0.3611}
    with _building(device, dtype):
        pipe = _flux_pipeline(seed, FLUX_DEV, vae, T5_WIDTH, None, clip=FULL_CLIP_L, t5_layers=1)
    return _with_defaults(pipe, FLUX_DEV_DEFAULTS, "flux", size=1024, text_length=512)


def sd3_pipeline(device="cpu", dtype=None, seed: int = 0, config=None, name="sd3"):
    """SD3-medium's transformer (24 joint blocks of 24 heads x 64) and VAE at full size, random weights,
    1024 px, 256 T5 positions; built on ``device`` in ``dtype``. ``config``: another SD3 transformer's."""
    from ..engine.defaults import SD3_DEFAULTS

    vae = {**FULL_VAE, "shift_factor": 0.0609, "scaling_factor": 1.5035}
    with _building(device, dtype):
        clips = (FULL_CLIP_L, FULL_CLIP_G)
        pipe = _sd3_pipeline(seed, config or SD3_MEDIUM, vae, T5_WIDTH, None, clips=clips, t5_layers=1)
    return _with_defaults(pipe, SD3_DEFAULTS, name, size=1024, text_length=256)


def sd35_pipeline(device="cpu", dtype=None, seed: int = 0):
    """SD3.5-large's transformer (38 joint blocks of 38 heads x 64, RMS QK-norm) at full size: :func:`sd3_pipeline`."""
    return sd3_pipeline(device, dtype, seed, config=SD35_LARGE, name="sd35")


@contextmanager
def _building(device, dtype):
    """Modules made inside are created on ``device`` in ``dtype`` (default: torch's) and initialised
    there: no full-precision copy on the host first."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype or previous)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _sd3_pipeline(seed, transformer_config, vae_config, t5_width, scheduler, clips=None, t5_layers=2):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from ..engine.tokenizer import load_tokenizer

    d = _quiet_import()
    torch.manual_seed(seed)
    clip_l_config, clip_g_config = clips or ({**TINY_TEXT, "projection_dim": 32},) * 2
    clip_l = CLIPTextModelWithProjection(CLIPTextConfig(**clip_l_config))
    clip_g = CLIPTextModelWithProjection(CLIPTextConfig(**clip_g_config))
    t5_model, t5_tok = _t5(t5_width, t5_layers) if t5_width else (None, None)
    pipe = d.StableDiffusion3Pipeline(
        scheduler=d.FlowMatchEulerDiscreteScheduler(**(scheduler or SD3_SCHEDULER)),
        vae=d.AutoencoderKL(**vae_config),
        text_encoder=clip_l,
        tokenizer=load_tokenizer(),
        text_encoder_2=clip_g,
        tokenizer_2=load_tokenizer("!"),
        text_encoder_3=t5_model,
        tokenizer_3=t5_tok,
        transformer=d.SD3Transformer2DModel(**transformer_config),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _flux_pipeline(seed, transformer_config, vae_config, t5_width, scheduler, clip=None, t5_layers=2):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from ..engine.tokenizer import load_tokenizer

    d = _quiet_import()
    torch.manual_seed(seed)
    clip = CLIPTextModel(CLIPTextConfig(**(clip or TINY_TEXT)))
    t5_model, t5_tok = _t5(t5_width, t5_layers)
    pipe = d.FluxPipeline(
        scheduler=d.FlowMatchEulerDiscreteScheduler(**(scheduler or FLUX_DEV_SCHEDULER)),
        vae=d.AutoencoderKL(**vae_config),
        text_encoder=clip,
        tokenizer=load_tokenizer(),
        text_encoder_2=t5_model,
        tokenizer_2=t5_tok,
        transformer=d.FluxTransformer2DModel(**transformer_config),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
