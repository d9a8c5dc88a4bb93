"""Weights of the metric networks: the real ones from files, folders or hub ids (``load_dino``,
``load_clip``, ``load_lpips``; DINO from DINO's names or transformers' ViT), and seeded random ones
built from configs (``randomize_weights``, a random CLIP whose scores are positive) for tests and
comparisons. Also which of CLIP's image processors (PIL or torchvision) is which."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..errors import P2PError
from .nets import DinoViT, LpipsSqueeze


def torchvision_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


def pil_image_processor_class():
    """CLIP's PIL image processor (the one the benchmark's transformers used), in transformers 4 and 5."""
    try:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:  # transformers 4: CLIPImageProcessor is the PIL one
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


def torchvision_image_processor_class():
    """CLIP's torchvision-based image processor (transformers 5's ``CLIPImageProcessor`` when
    torchvision is installed; ``CLIPImageProcessorFast`` in late transformers 4)."""
    if not torchvision_installed():
        raise P2PError(
            "MetricSettings(clip_image_processor='torchvision') needs torchvision installed "
            "(the published numbers used 'pil', the default)"
        )
    try:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil  # noqa: F401
    except ImportError:  # transformers 4
        from transformers import CLIPImageProcessorFast

        return CLIPImageProcessorFast
    from transformers.models.clip.image_processing_clip import CLIPImageProcessor

    return CLIPImageProcessor


def image_processor_kind(processor) -> str:
    """ "pil" or "torchvision": which of CLIP's image processors ``processor`` is."""
    return "pil" if isinstance(processor, pil_image_processor_class()) else "torchvision"


# ---------------------------------------------------------------- random weights


RANDOM_SIZES = {
    "small": {
        "dino": dict(patch=8, dim=48, depth=2, heads=3),
        "clip": dict(vision=(32, 2, 2, 32), text=(32, 2, 2), projection=16),
    },
    "full": {
        "dino": dict(patch=8, dim=768, depth=12, heads=12),
        "clip": dict(vision=(1024, 24, 16, 14), text=(768, 12, 12), projection=768),
    },
}


def randomize_weights(module: nn.Module, positive_prefix: str | None = None) -> nn.Module:
    """Every parameter drawn anew (norm weights near 1), so no part of a network is left at a constant."""
    for name, p in module.named_parameters():
        with torch.no_grad():
            if name.endswith("weight") and p.ndim == 1:  # layer norm scales
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif positive_prefix and name.startswith(positive_prefix):
                p.copy_(torch.rand_like(p) / p.shape[1])  # LPIPS's weights are non-negative
            elif p.ndim == 1 or name in ("cls_token", "pos_embed"):
                p.copy_(torch.randn_like(p) * 0.02)
            else:
                p.copy_(torch.randn_like(p) * p[0].numel() ** -0.5)  # fan-in scaling keeps activations O(1)
    return module


def random_clip(geometry: dict):
    """A random CLIP whose image and text embeddings share one direction, so scores are positive
    (a random CLIP's cosines straddle 0 and the benchmark's max(., 0) would hide half of them)."""
    from transformers import CLIPConfig, CLIPModel

    from ..engine.tokenizer import load_tokenizer

    v_dim, v_layers, v_heads, v_patch = geometry["vision"]
    t_dim, t_layers, t_heads = geometry["text"]
    vision = dict(hidden_size=v_dim, intermediate_size=4 * v_dim, num_hidden_layers=v_layers)
    vision.update(num_attention_heads=v_heads, patch_size=v_patch, image_size=224, hidden_act="quick_gelu")
    text = dict(hidden_size=t_dim, intermediate_size=4 * t_dim, num_hidden_layers=t_layers, num_attention_heads=t_heads)
    text.update(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    text.update(hidden_act="quick_gelu")
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=geometry["projection"])
    model = CLIPModel(config).eval()
    width = geometry["projection"]
    shared = torch.randn(width)
    shared /= shared.norm()
    with torch.no_grad():
        for norm, proj in (
            (model.vision_model.post_layernorm, model.visual_projection),
            (model.text_model.final_layer_norm, model.text_projection),
        ):
            # the final norm's output is a part of norm sqrt(d) plus its bias: a bias of 1.5 sqrt(d) along
            # a unit direction that the projection maps onto `shared` puts (1.5 +- 1) sqrt(d) of it in every
            # embedding; scaled to the size of the projection's random part (about sqrt(3.25 width)),
            # cosines come out near 0.5 (scores near 50, where float32 spacing is 4e-6)
            dim = norm.bias.shape[0]
            direction = torch.randn(dim)
            direction /= direction.norm()
            norm.bias.copy_(1.5 * dim**0.5 * direction)
            proj.weight.add_(torch.outer(shared, direction) * (3.25 * width) ** 0.5 / (1.5 * dim**0.5))
    return model, pil_image_processor_class()(), load_tokenizer()


# ---------------------------------------------------------------- loading real weights


def _read_safetensors(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise P2PError(f"weights file not found: {path}")
    if path.suffix != ".safetensors":
        raise P2PError(f"weights must be a .safetensors file (no pickles are loaded), got {path}")
    return load_file(str(path))


def _load_into(module: nn.Module, state: dict, what: str) -> nn.Module:
    need = set(module.state_dict())
    missing = sorted(need - set(state))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise P2PError(f"{what} weights lack {len(missing)} keys: {shown}")
    try:
        module.load_state_dict({k: state[k] for k in need})
    except RuntimeError as exc:
        raise P2PError(f"{what} weights do not fit the network: {exc}") from None
    return module


# DINO's name -> transformers ViT's, before and after transformers 5.2x renamed the layers
_VIT_BLOCK_NAMES = {
    "norm1": ("layernorm_before", "layernorm_before"),
    "norm2": ("layernorm_after", "layernorm_after"),
    "attn.proj": ("attention.output.dense", "attention.o_proj"),
    "mlp.fc1": ("intermediate.dense", "mlp.fc1"),
    "mlp.fc2": ("output.dense", "mlp.fc2"),
}
_VIT_QKV_NAMES = (("attention.attention.query", "attention.q_proj"), ("attention.attention.key", "attention.k_proj"))
_VIT_QKV_NAMES += (("attention.attention.value", "attention.v_proj"),)


def _vit_to_dino(state: dict) -> dict:
    """A transformers ViTModel state dict (e.g. facebook/dino-vitb8) in DINO's names (qkv joined)."""
    state = {k.removeprefix("vit."): v for k, v in state.items()}
    new = "layers.0.layernorm_before.weight" in state  # transformers' newer layout
    out = {
        "cls_token": state["embeddings.cls_token"],
        "pos_embed": state["embeddings.position_embeddings"],
        "patch_embed.proj.weight": state["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": state["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": state["layernorm.weight"],
        "norm.bias": state["layernorm.bias"],
    }
    i = 0
    while f"{'layers' if new else 'encoder.layer'}.{i}.layernorm_before.weight" in state:
        src = f"layers.{i}." if new else f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            for ours, names in _VIT_BLOCK_NAMES.items():
                out[f"blocks.{i}.{ours}.{kind}"] = state[f"{src}{names[new]}.{kind}"]
            parts = [state[f"{src}{names[new]}.{kind}"] for names in _VIT_QKV_NAMES]
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat(parts)
        i += 1
    return out


def dino_from_state_dict(state: dict, heads: int | None = None) -> DinoViT:
    """A :class:`DinoViT` sized from DINO-named weights (64-dim heads unless ``heads`` is given)."""
    try:
        dim = state["cls_token"].shape[-1]
        patch = state["patch_embed.proj.weight"].shape[-1]
        depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
        side = int(round(math.sqrt(state["pos_embed"].shape[1] - 1)))
    except KeyError as exc:
        raise P2PError(f"DINO weights lack the key {exc.args[0]!r} (DINO's ViT names are expected)") from None
    heads = heads or max(dim // 64, 1)
    model = DinoViT(patch=patch, dim=dim, depth=depth, heads=heads, mlp_hidden=hidden, img_size=side * patch)
    return _load_into(model, state, "DINO")


def load_dino(source, heads: int | None = None) -> DinoViT:
    """DINO ViT from a ``.safetensors`` file in DINO's names (the state dict of
    ``dino_vitbase8_pretrain.pth``: ``cls_token``, ``pos_embed``, ``patch_embed.proj.*``,
    ``blocks.<i>.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``, ``norm.*``), or a folder / hub id
    of a transformers ViTModel (``facebook/dino-vitb8``), whose weights are renamed. Layer norms use
    DINO's epsilon 1e-6 either way. A :class:`DinoViT` passes through."""
    if isinstance(source, DinoViT):
        return source
    path = Path(str(source))
    if path.suffix == ".safetensors" or path.is_file():
        state = _read_safetensors(path)
        state = _vit_to_dino(state) if any(k.endswith("embeddings.cls_token") for k in state) else state
        return dino_from_state_dict(state, heads)
    from transformers import ViTModel

    try:
        vit = ViTModel.from_pretrained(str(source), add_pooling_layer=False, use_safetensors=True)
    except OSError as exc:
        raise P2PError(f"cannot load DINO from {str(source)!r}: {exc}") from None
    return dino_from_state_dict(_vit_to_dino(vit.state_dict()), heads or vit.config.num_attention_heads)


def load_clip(source):
    """(CLIPModel, PIL image processor, tokenizer) from a folder or hub id in transformers' layout
    (``openai/clip-vit-large-patch14``: config.json, model.safetensors, preprocessor_config.json,
    vocab.json, merges.txt); a ``(model, image_processor, tokenizer)`` tuple passes through."""
    if isinstance(source, tuple):
        return source
    from transformers import CLIPModel, CLIPTokenizer

    try:
        model = CLIPModel.from_pretrained(str(source), use_safetensors=True).eval()
        tokenizer = CLIPTokenizer.from_pretrained(str(source))
        image_processor = pil_image_processor_class().from_pretrained(str(source))
    except OSError as exc:
        raise P2PError(f"cannot load CLIP from {str(source)!r}: {exc}") from None
    return model, image_processor, tokenizer


def load_lpips(source) -> LpipsSqueeze:
    """SqueezeNet LPIPS from one ``.safetensors`` file or a list of them whose keys together hold
    torchvision's ``squeezenet1_1`` features (``features.<i>.*``; the ``classifier.*`` keys are ignored)
    and LPIPS's linear layers (``lin<k>.model.1.weight``, k = 0..6, from LPIPS's ``squeeze.pth``).
    Keys in torchmetrics' layout (``net.slices.<s>.<i>.*``) are accepted too."""
    if isinstance(source, LpipsSqueeze):
        return source
    state = {}
    for path in source if isinstance(source, (list, tuple)) else [source]:
        state.update(_read_safetensors(path))
    renamed = {}
    for key, value in state.items():
        if key.startswith("net.slices."):
            key = "features." + key.split(".", 3)[3]
        renamed[key] = value
    return _load_into(LpipsSqueeze(), renamed, "LPIPS")
