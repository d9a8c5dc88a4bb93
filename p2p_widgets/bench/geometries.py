"""Model geometries for tests and benchmarks: pipelines with seeded random weights built from configs.

``tiny_pipeline`` / ``tiny_xl_pipeline`` are the test fixtures; ``build_model(name)`` builds every
geometry the benchmarks know (:data:`SIZES`: tiny, tinyxl, sdgeom, sd15, sdxl, and the pocket model).

The tiny pipeline:

Same parts as SD (AutoencoderKL, CLIPTextModel on SD's tokenizer, UNet2DConditionModel with
cross-attention at two resolutions, DDIM), scaled down: 64x64 images, VAE factor 4 -> 16x16
latents, attention at 16x16 and 8x8. Built in well under a second, deterministic for a seed.
"""

from __future__ import annotations

from ..pocket.model import SCHEDULER_CONFIG, assemble_pipeline, build_components

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
    return assemble_pipeline(
        vae, text_encoder, unet, scheduler_config={**SCHEDULER_CONFIG, "prediction_type": prediction_type}
    )


def latent_blind(pipe):
    """Make ``pipe``'s UNet see zeros instead of the latent (its prediction then depends only on the
    timestep and the text), so the DDIM update is exactly invertible: for inversion tests."""
    import torch

    def hook(module, args, kwargs):
        if args:
            return (torch.zeros_like(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "sample": torch.zeros_like(kwargs["sample"])}

    pipe.unet.register_forward_pre_hook(hook, with_kwargs=True)
    return pipe


# SDXL's layout, scaled down the same way: two text encoders (the second with a projection for the
# pooled text), token states concatenated (32 + 32), a UNet with text_time added conditioning and
# attention only in its lower blocks (2 transformer layers at 8x8, like SDXL's deeper stacks).
TINY_XL_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(16, 32),
    layers_per_block=1,
    transformer_layers_per_block=(1, 2),
    attention_head_dim=(2, 4),
    use_linear_projection=True,
    cross_attention_dim=64,
    addition_embed_type="text_time",
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=6 * 8 + 32,
    norm_num_groups=8,
)


def tiny_xl_pipeline(seed: int = 0, force_zeros_for_empty_prompt: bool = True):
    """A fresh tiny ``StableDiffusionXLPipeline`` (fp32, CPU, DDIM) whose weights depend only on ``seed``."""
    return xl_pipeline(
        TINY_VAE, TINY_TEXT, {**TINY_TEXT, "projection_dim": 32}, TINY_XL_UNET, seed, force_zeros_for_empty_prompt
    )


def xl_pipeline(
    vae_config, text_config, text2_config, unet_config, seed: int = 0, force_zeros_for_empty_prompt: bool = True
):
    """A ``StableDiffusionXLPipeline`` with seeded random weights from configs (DDIM, offline tokenizers)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from ..engine.tokenizer import load_tokenizer

    torch.manual_seed(seed)
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL(**vae_config),
        text_encoder=CLIPTextModel(CLIPTextConfig(**text_config)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text2_config)),
        tokenizer=load_tokenizer(),
        tokenizer_2=load_tokenizer(pad_token="!"),
        unet=UNet2DConditionModel(**unet_config),
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=force_zeros_for_empty_prompt,
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


SD15_UNET = dict(
    sample_size=64,
    cross_attention_dim=768,
    attention_head_dim=8,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
)
SD15_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=0.18215,
)
SD15_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)
# SD's geometry (VAE factor 8, three UNet levels, attention at 32/16/8 for 256 px), CPU-sized widths
SDGEOM_UNET = dict(
    sample_size=32,
    cross_attention_dim=64,
    attention_head_dim=4,
    layers_per_block=1,
    block_out_channels=(32, 64, 64),
    norm_num_groups=32,
    down_block_types=("CrossAttnDownBlock2D",) * 3,
    up_block_types=("CrossAttnUpBlock2D",) * 3,
)
SDGEOM_VAE = dict(
    block_out_channels=(16, 32, 32, 32),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=16,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
)
SDGEOM_TEXT = dict(
    vocab_size=49408,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)
# SDXL base's architecture (UNet 2.6 B parameters, CLIP-L + OpenCLIP-bigG text encoders), for GPUs
SDXL_UNET = dict(
    sample_size=128,
    cross_attention_dim=2048,
    attention_head_dim=(5, 10, 20),
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    transformer_layers_per_block=(1, 2, 10),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
SDXL_VAE = {**SD15_VAE, "scaling_factor": 0.13025}
SDXL_TEXT2 = dict(
    vocab_size=49408,
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=20,
    max_position_embeddings=77,
    hidden_act="gelu",
    projection_dim=1280,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)
