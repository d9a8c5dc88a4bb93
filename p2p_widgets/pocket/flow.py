"""The pocket flow model: Flux.1's layout at pocket size, so joint attention runs offline.

Plain diffusers/transformers parts, so it is an ordinary ``FluxPipeline``:
- the pocket UNet's VAE (32x32 RGB -> 16x16x4 latents, packed 2x2 into 64 image tokens of 16);
- a word-level T5 tokenizer over the scene vocabulary (built from a list, no hub) and a small
  T5 encoder (16 text tokens): the text the joint attention reads;
- the pocket model's CLIP text encoder, frozen, for the pooled vector (adaLN modulation);
- a ``FluxTransformer2DModel`` with 2 double-stream and 4 single-stream blocks, width 128;
- ``FlowMatchEulerDiscreteScheduler`` without shifting (64 image tokens is far below the sizes
  where Flux shifts its schedule). There is no guidance embedding: the model was trained with
  caption dropout and takes true classifier-free guidance (an empty negative prompt).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..engine.defaults import POCKET_FLOW_DEFAULTS, register_defaults
from . import model as unet_model
from .scenes import BACKGROUNDS, COLORS, PATTERNS, RELATIONS, SHAPES

WEIGHTS_DIR = unet_model.WEIGHTS_DIR / "flow"
COMPONENTS = ("text_encoder_2", "transformer")  # trained here; the VAE and CLIP are the pocket UNet's
TEXT_LENGTH = 16  # T5 positions: the longest scene caption is 15 words and </s>

# the scene grammar's words (scenes.caption_of) and a few a user may type; anything else is <unk>
_EXTRA_WORDS = ("an", "the", "and", "with", "of", "photo", "picture", "image", "in", "at", "next", "to", "large")
VOCABULARY = tuple(
    dict.fromkeys(
        [
            "a",
            "small",
            "big",
            *COLORS,
            *SHAPES,
            *(w for r in RELATIONS for w in r.split()),
            "on",
            *(p for p in PATTERNS if p != "plain"),
            *BACKGROUNDS,
            "background",
            *_EXTRA_WORDS,
        ]
    )
)

T5_CONFIG = dict(
    d_model=64,
    d_kv=16,
    d_ff=192,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.0,
    is_encoder_decoder=False,
    use_cache=False,
)
TRANSFORMER_CONFIG = dict(
    patch_size=1,
    in_channels=16,  # 4 latent channels x a 2x2 patch
    num_layers=2,
    num_single_layers=4,
    attention_head_dim=32,
    num_attention_heads=4,
    joint_attention_dim=64,  # the T5 width
    pooled_projection_dim=64,  # the pocket CLIP's width
    guidance_embeds=False,
    axes_dims_rope=(8, 12, 12),
)
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)


def t5_tokenizer(vocabulary=VOCABULARY):
    """A T5 tokenizer whose pieces are whole words (ids: pad 0, </s> 1, <unk> 2, then the words)."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + w, -1.0) for w in vocabulary]
    tok = T5Tokenizer(vocab=pieces, extra_ids=0)
    tok.model_max_length = TEXT_LENGTH
    return tok


def build_components(t5_config=None, transformer_config=None, vocabulary=VOCABULARY, seed: int = 0):
    """Fresh (seeded) T5 encoder and transformer from configs."""
    import torch
    from diffusers import FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    vocab_size = len(t5_tokenizer(vocabulary))
    t5 = T5EncoderModel(T5Config(vocab_size=vocab_size, **(t5_config or T5_CONFIG)))
    transformer = FluxTransformer2DModel(**(transformer_config or TRANSFORMER_CONFIG))
    return t5, transformer


def assemble_pipeline(vae, clip, t5, transformer, vocabulary=VOCABULARY):
    """Wrap the parts in a ``FluxPipeline`` (CLIP tokenizer from the package, T5 tokenizer from the words)."""
    from transformers.utils import logging as hf_logging

    from ..engine.tokenizer import load_tokenizer

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the pipeline module's image-processor import warns about torchvision
    try:
        from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    finally:
        hf_logging.set_verbosity(level)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG),
        vae=vae,
        text_encoder=clip,
        tokenizer=load_tokenizer(),
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer(vocabulary),
        transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_weights(t5, transformer, out_dir: Path, latent_stats: dict, meta: dict | None = None):
    """fp16 safetensors per trained component plus ``flow.json`` (configs, latent scale and shift, vocabulary)."""
    import torch
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, module in zip(COMPONENTS, (t5, transformer)):
        state = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in module.state_dict().items()}
        save_file(state, str(out_dir / f"{name}.safetensors"))
    info = {
        "t5": {k: T5_CONFIG[k] for k in T5_CONFIG},
        "transformer": dict(TRANSFORMER_CONFIG),
        "vocabulary": list(VOCABULARY),
        "latents": latent_stats,  # {"scaling_factor", "shift_factor"} of the pocket VAE's latents
        "meta": meta or {},
    }
    (out_dir / "flow.json").write_text(json.dumps(info, indent=1, default=list))


def load_flow_pocket(device: str | None = None, dtype=None, weights_dir: Path | None = None):
    """The pocket flow model as a ready ``FluxPipeline`` (offline, safetensors only)."""
    import torch
    from safetensors.torch import load_file

    weights_dir = Path(weights_dir or WEIGHTS_DIR)
    info_path = weights_dir / "flow.json"
    if not info_path.exists():
        raise FileNotFoundError(
            f"pocket flow weights not found in {weights_dir}; train them with `python -m p2p_widgets.pocket.train_flow`"
        )
    info = json.loads(info_path.read_text())
    base = unet_model.load_pocket(device="cpu", dtype=torch.float32)  # the VAE and CLIP it shares
    vae, clip = base.vae, base.text_encoder
    vae.register_to_config(**info["latents"])
    with torch.device("meta"):
        t5, transformer = build_components(info["t5"], _tuples(info["transformer"]), tuple(info["vocabulary"]))
    for name, module in zip(COMPONENTS, (t5, transformer)):
        state = {k: v.float() for k, v in load_file(str(weights_dir / f"{name}.safetensors")).items()}
        missing, unexpected = module.load_state_dict(state, strict=False, assign=True)
        if missing or unexpected:
            raise RuntimeError(f"pocket flow {name} weights do not match: missing {missing}, unexpected {unexpected}")
    _tie_t5_embeddings(t5)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
    pipe = assemble_pipeline(vae, clip, t5, transformer, tuple(info["vocabulary"])).to(device)
    pipe = pipe if dtype == torch.float32 else pipe.to(dtype=dtype)
    return register_defaults(pipe, POCKET_FLOW_DEFAULTS)


def _tie_t5_embeddings(t5):
    """T5's encoder reads the shared token table; loading with ``assign`` replaced one of the two."""
    t5.encoder.embed_tokens = t5.shared


def _tuples(config: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
