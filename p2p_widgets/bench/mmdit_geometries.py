"""MM-DiT pipelines with seeded random weights, built from configs offline (tests and benchmarks).

- ``tiny_sd3_pipeline``: a ``StableDiffusion3Pipeline`` as diffusers' own tests build it (two CLIPs
  with projections, a T5 or none, a 2-block transformer; ``sd35=True``: SD3.5's RMS QK-norm and a
  dual-attention block);
- ``tiny_flux_pipeline``: a ``FluxPipeline`` (2 double + 2 single blocks; ``guidance_embeds``: dev,
  else schnell-like);
- ``sd3geom`` / ``fluxgeom``: the real architectures' layouts with widths reduced to run on a CPU.

Tokenizers are SD's CLIP BPE from the package and a word-level T5 over the pocket scene words
(:func:`p2p_widgets.pocket.flow.t5_tokenizer`): no hub access anywhere.
"""

from __future__ import annotations

from .geometries import TINY_TEXT, TINY_VAE

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


def _with_defaults(pipe, family, name):
    import dataclasses

    from ..engine.defaults import register_defaults

    return register_defaults(pipe, dataclasses.replace(family, size=256, text_length=GEOM_TEXT_LENGTH, name=name))


def _sd3_pipeline(seed, transformer_config, vae_config, t5_width, scheduler):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from ..engine.tokenizer import load_tokenizer

    d = _quiet_import()
    torch.manual_seed(seed)
    clip_config = CLIPTextConfig(**TINY_TEXT, projection_dim=32)
    clip_l, clip_g = CLIPTextModelWithProjection(clip_config), CLIPTextModelWithProjection(clip_config)
    t5_model, t5_tok = _t5(t5_width) if t5_width else (None, None)
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


def _flux_pipeline(seed, transformer_config, vae_config, t5_width, scheduler):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from ..engine.tokenizer import load_tokenizer

    d = _quiet_import()
    torch.manual_seed(seed)
    clip = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
    t5_model, t5_tok = _t5(t5_width)
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
