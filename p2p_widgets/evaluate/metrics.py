"""PIE-Bench's seven metrics, computed as the benchmark's evaluation code computes them, plus
pocket-bench's target fidelity and mask IoU.

``score(case, edited, models)`` returns, for the source image of ``case`` and the edited PIL image
(same size; the benchmark's ``mask`` is 1 where the edit may change the image):

- ``structure_distance``: DINO ViT-B/8 keys of the last block, per image: the image as float
  pixels in 0..255 (not divided by 255, as the benchmark does) resized so the short side is 224
  (long side at most 480, bilinear) and normalised with ImageNet's mean and std; the token x token
  cosine self-similarity of the keys (CLS included, heads concatenated); the score is the mean
  squared difference of the two matrices. Whole images, no mask.
- ``psnr_unedit_part``, ``mse_unedit_part``, ``ssim_unedit_part`` (Gaussian 11x11, sigma 1.5) and
  ``lpips_unedit_part`` (SqueezeNet LPIPS, inputs in [-1, 1]): both images in [0, 1] multiplied by
  ``1 - mask``, over the whole image. NaN when the mask covers the whole image.
- ``clip_similarity_target_image`` and ``..._edit_part``: CLIP score ``max(100 cos, 0)`` of the
  edited image (edit part: the edited image times the mask) against the target prompt, the image
  prepared by transformers' PIL-based ``CLIPImageProcessor`` (see ``MetricSettings``); the edit
  part is NaN for an empty mask.
- pocket-bench cases only (NaN otherwise): ``target_fidelity``, the share of the target scene's
  attributes the pocket :class:`~p2p_widgets.pocket.metrics.SceneReader` reads back from the edited
  image (background, pattern, object count, and per object presence, colour, shape, size, plus the
  relation); ``mask_iou``, the IoU of the pixels the edit changed (RGB distance >
  ``CHANGE_DISTANCE``) with those the ideal edit changes (the target scene drawn as the source was;
  they lie inside the case's mask).

Values are raw, as the benchmark's CSV holds them (its tables print structure x 1e3, LPIPS x 1e3,
MSE x 1e4, SSIM x 1e2). Library changes since the benchmark's numbers were published move them;
:class:`MetricSettings` chooses: ``dino_antialias`` (torchvision 0.17 began antialiasing tensor
resizes), ``lpips_eps_inside`` (torchmetrics 1.2.1 moved LPIPS's epsilon inside the square root),
``ssim_clamp_variance`` (1.3.2 began clamping SSIM's local variances at 0), ``ssim_crop`` (1.5
stopped cropping the SSIM map to its valid part) and ``clip_image_processor`` (transformers 5 with
torchvision installed prepares CLIP's input with a torchvision image processor instead of the PIL
one). The default, :meth:`MetricSettings.published`, is the earlier behaviour (torchvision < 0.17,
torchmetrics <= 1.2.0, the PIL processor); :meth:`MetricSettings.current` is what the benchmark's code
gives with today's libraries. ``python -m p2p_widgets.evaluate.compare_metrics`` checks both against
the benchmark's own code.

The metric networks are built here in plain torch (DINO's ViT, SqueezeNet) or come from
transformers (CLIP); :meth:`MetricModels.load` takes the real weights, :meth:`MetricModels.random`
builds them from configs with random weights (tests, comparisons). DINO and LPIPS run batched; CLIP's
image tower runs one image at a time unless ``MetricModels.clip_batch`` says otherwise (the scores then
equal the benchmark's to the bit on the same device).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import P2PError, is_int
from .cases import EditCase

METRIC_NAMES = (
    "structure_distance",
    "psnr_unedit_part",
    "lpips_unedit_part",
    "mse_unedit_part",
    "ssim_unedit_part",
    "clip_similarity_target_image",
    "clip_similarity_target_image_edit_part",
)
POCKET_METRIC_NAMES = ("target_fidelity", "mask_iou")
ALL_METRIC_NAMES = METRIC_NAMES + POCKET_METRIC_NAMES
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_SIZE, DINO_MAX_SIZE = 224, 480
SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_TAPS = (1, 4, 7, 9, 10, 11, 12)  # SqueezeNet feature indices whose outputs LPIPS compares
LPIPS_CHANNELS = (64, 128, 256, 384, 384, 512, 512)
CHANGE_DISTANCE = 48.0  # RGB distance (0..255) above which a pixel counts as changed (mask IoU)


CLIP_IMAGE_PROCESSORS = ("pil", "torchvision")


def _torchvision_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


@dataclass(frozen=True)
class MetricSettings:
    """Library behaviours the benchmark's numbers depend on (see the module doc).

    - ``dino_antialias``: antialiased bilinear resize of DINO's input (torchvision >= 0.17).
    - ``ssim_crop``: SSIM averaged over the pixels whose window lies inside the image (torchmetrics
      < 1.5), else over the whole reflect-padded map.
    - ``ssim_clamp_variance``: the local variances clamped at 0 (torchmetrics >= 1.3.2). Without it an
      image compared with itself scores exactly 1; with it, flat regions whose float32 variance
      rounds below 0 pull the score under 1 (0.99995 for an image of flat 16 px blocks with itself).
    - ``lpips_eps_inside``: LPIPS normalises features by sqrt(1e-8 + |f|^2) (torchmetrics >= 1.2.1),
      else by |f| + 1e-10.
    - ``clip_image_processor``: ``"pil"``, transformers' PIL-based ``CLIPImageProcessor`` (the only one
      in the transformers 4.19-4.33 that PnPInversion's environment files pin; ``CLIPImageProcessorPil``
      in transformers 5), or ``"torchvision"``, the torchvision-based one that transformers 5 picks when
      torchvision is installed (it prepares the image differently, so CLIP scores move).
    """

    dino_antialias: bool = False
    ssim_crop: bool = True
    ssim_clamp_variance: bool = False
    lpips_eps_inside: bool = False
    clip_image_processor: str = "pil"

    def __post_init__(self):
        if self.clip_image_processor not in CLIP_IMAGE_PROCESSORS:
            raise P2PError(
                f"clip_image_processor must be one of {list(CLIP_IMAGE_PROCESSORS)}, got {self.clip_image_processor!r}"
            )

    @classmethod
    def published(cls) -> MetricSettings:
        """As the published PIE-Bench numbers were computed: torchvision < 0.17, torchmetrics <= 1.2.0
        (SSIM cropped, variances not clamped, LPIPS's epsilon outside the root), CLIP's PIL processor."""
        return cls(
            dino_antialias=False,
            ssim_crop=True,
            ssim_clamp_variance=False,
            lpips_eps_inside=False,
            clip_image_processor="pil",
        )

    @classmethod
    def current(cls) -> MetricSettings:
        """As the benchmark's code computes with torchvision >= 0.17, torchmetrics >= 1.5 and
        transformers 5 here: the torchvision CLIP processor where torchvision is installed (as
        transformers picks it), else the PIL one."""
        return cls(
            dino_antialias=True,
            ssim_crop=False,
            ssim_clamp_variance=True,
            lpips_eps_inside=True,
            clip_image_processor="torchvision" if _torchvision_installed() else "pil",
        )


# ---------------------------------------------------------------- DINO ViT (parameter names as DINO's)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Identity()  # DINO's dropout slot (inactive), where its feature hooks attach
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # scores scaled after the product and softmaxed in full, as DINO computes them (not SDPA)
        weights = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=eps), _Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=eps), _Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.patch_size = patch
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)


class DinoViT(nn.Module):
    """DINO's ViT with DINO's parameter names, so its released state dicts load as they are.

    ``dino_vitb8``: ``DinoViT(patch=8, dim=768, depth=12, heads=12)`` (the default).
    """

    def __init__(self, patch=8, dim=768, depth=12, heads=12, mlp_hidden=None, img_size=224, eps=1e-6):
        super().__init__()
        n = (img_size // patch) ** 2
        self.config = dict(patch=patch, dim=dim, depth=depth, heads=heads, mlp_hidden=mlp_hidden or 4 * dim)
        self.config.update(img_size=img_size, eps=eps)
        self.patch_embed = _PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_hidden or 4 * dim, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=eps)

    def _positions(self, tokens: int, rows: int, cols: int):
        """DINO's position embeddings for a rows x cols grid (its bicubic resampling when it differs)."""
        n = self.pos_embed.shape[1] - 1
        if tokens - 1 == n and rows == cols:
            return self.pos_embed
        side, dim = int(math.sqrt(n)), self.pos_embed.shape[-1]
        r0, c0 = rows + 0.1, cols + 0.1  # DINO's offset against a floor off by one in the scale factor
        grid = self.pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=(r0 / math.sqrt(n), c0 / math.sqrt(n)), mode="bicubic")
        if grid.shape[-2:] != (rows, cols):
            raise P2PError(f"DINO position grid {tuple(grid.shape[-2:])} does not fit {rows}x{cols} patches")
        return torch.cat((self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Patch tokens with CLS first and position embeddings added: (B, 1 + patches, dim)."""
        patch = self.patch_embed.patch_size
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return x + self._positions(x.shape[1], images.shape[-2] // patch, images.shape[-1] // patch)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """DINO's output: the CLS token after every block and the final norm, (B, dim)."""
        x = self.tokens(images)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]

    def keys(self, images: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Keys (B, tokens, dim) of block ``layer`` (heads side by side, CLS first) for (B, 3, H, W)."""
        x = self.tokens(images)
        last = layer % len(self.blocks)
        for block in self.blocks[:last]:
            x = block(x)
        block = self.blocks[last]
        dim = x.shape[-1]
        return block.attn.qkv(block.norm1(x))[..., dim : 2 * dim]


# ---------------------------------------------------------------- LPIPS with SqueezeNet 1.1


class _Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze, self.squeeze_activation = nn.Conv2d(cin, squeeze, 1), nn.ReLU()
        self.expand1x1, self.expand1x1_activation = nn.Conv2d(squeeze, e1, 1), nn.ReLU()
        self.expand3x3, self.expand3x3_activation = nn.Conv2d(squeeze, e3, 3, padding=1), nn.ReLU()

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


def squeezenet1_1_features() -> nn.Sequential:
    """SqueezeNet 1.1's feature layers, indexed as torchvision's ``squeezenet1_1().features``."""

    def pool():
        return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)

    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=3, stride=2),
        nn.ReLU(),
        pool(),
        _Fire(64, 16, 64, 64),
        _Fire(128, 16, 64, 64),
        pool(),
        _Fire(128, 32, 128, 128),
        _Fire(256, 32, 128, 128),
        pool(),
        _Fire(256, 48, 192, 192),
        _Fire(384, 48, 192, 192),
        _Fire(384, 64, 256, 256),
        _Fire(512, 64, 256, 256),
    )


class _Lin(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        # index 0 is LPIPS's dropout (inactive in evaluation), kept so the weights' key is model.1.weight
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))


class LpipsSqueeze(nn.Module):
    """LPIPS with the SqueezeNet 1.1 backbone; ``forward(a, b)`` takes (B, 3, H, W) in [-1, 1].

    State dict keys: ``features.<i>...`` as torchvision's ``squeezenet1_1`` and ``lin<k>.model.1.weight``
    (k = 0..6) as LPIPS's ``squeeze.pth``.
    """

    def __init__(self):
        super().__init__()
        self.features = squeezenet1_1_features()
        for k, channels in enumerate(LPIPS_CHANNELS):
            self.add_module(f"lin{k}", _Lin(channels))
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT)[None, :, None, None], persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE)[None, :, None, None], persistent=False)

    def _taps(self, x):
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in LPIPS_TAPS:
                out.append(x)
        return out

    @staticmethod
    def _unit(feat, eps_inside: bool):
        squares = torch.sum(feat**2, dim=1, keepdim=True)
        if eps_inside:
            return feat / torch.sqrt(1e-8 + squares)
        return feat / (torch.sqrt(squares) + 1e-10)

    def forward(self, a: torch.Tensor, b: torch.Tensor, eps_inside: bool = False) -> torch.Tensor:
        """Distances (B,); ``eps_inside``: normalise features by sqrt(1e-8 + |f|^2), else |f| + 1e-10."""
        taps_a = self._taps((a - self.shift) / self.scale)
        taps_b = self._taps((b - self.shift) / self.scale)
        layers = []
        for k, (fa, fb) in enumerate(zip(taps_a, taps_b)):
            diff = (self._unit(fa, eps_inside) - self._unit(fb, eps_inside)) ** 2
            layers.append(getattr(self, f"lin{k}").model(diff).mean([2, 3], keepdim=True))
        return sum(layers).reshape(-1)


# ---------------------------------------------------------------- the models


def _pil_image_processor_class():
    """CLIP's PIL image processor (the one the benchmark's transformers used), in transformers 4 and 5."""
    try:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:  # transformers 4: CLIPImageProcessor is the PIL one
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


def _torchvision_image_processor_class():
    """CLIP's torchvision-based image processor (transformers 5's ``CLIPImageProcessor`` when
    torchvision is installed; ``CLIPImageProcessorFast`` in late transformers 4)."""
    if not _torchvision_installed():
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
    return "pil" if isinstance(processor, _pil_image_processor_class()) else "torchvision"


@dataclass
class MetricModels:
    """The metric networks: DINO ViT, CLIP (model, image processor, tokenizer) and SqueezeNet LPIPS."""

    dino: DinoViT
    clip: nn.Module
    clip_image_processor: object
    clip_tokenizer: object
    lpips: LpipsSqueeze
    settings: MetricSettings = field(default_factory=MetricSettings)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # CLIP's image tower one image at a time, as the benchmark runs it: then the scores equal its own
    # to the bit; larger batches are faster on a GPU and differ in the last float32 digits (~1e-5 of a
    # score near 100)
    clip_batch: int = 1
    text_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    processor_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not is_int(self.clip_batch) or self.clip_batch < 1:
            raise P2PError(f"clip_batch must be a positive integer, got {self.clip_batch!r}")
        for net in (self.dino, self.clip, self.lpips):
            net.eval().requires_grad_(False)

    def to(self, device) -> MetricModels:
        """Move the networks (in place) and return self."""
        device = torch.device(device)
        if device != self.device:
            for net in (self.dino, self.clip, self.lpips):
                net.to(device)
            self.device = device
            self.text_cache.clear()
        return self

    def with_settings(self, settings: MetricSettings) -> MetricModels:
        """The same networks under other :class:`MetricSettings`."""
        return replace(self, settings=settings)

    def image_processor(self):
        """CLIP's image processor of the kind ``settings.clip_image_processor`` names: the one held
        when it is of that kind, else one of that kind built from the held one's configuration."""
        kind = self.settings.clip_image_processor
        if image_processor_kind(self.clip_image_processor) == kind:
            return self.clip_image_processor
        if kind not in self.processor_cache:
            cls = _pil_image_processor_class() if kind == "pil" else _torchvision_image_processor_class()
            self.processor_cache[kind] = cls.from_dict(self.clip_image_processor.to_dict())
        return self.processor_cache[kind]

    @classmethod
    def load(cls, dino, clip, lpips, *, settings: MetricSettings | None = None, device=None) -> MetricModels:
        """The real metric networks from files, folders or hub ids (see :func:`load_dino`,
        :func:`load_clip`, :func:`load_lpips` for the expected files)."""
        models = cls(load_dino(dino), *load_clip(clip), load_lpips(lpips), settings or MetricSettings())
        return models.to(device) if device is not None else models

    @classmethod
    def random(cls, seed: int = 0, *, size: str = "small", settings: MetricSettings | None = None) -> MetricModels:
        """Networks built from configs with seeded random weights; ``size``: "small" (tests) or
        "full" (the real geometries: DINO ViT-B/8, CLIP ViT-L/14, SqueezeNet 1.1)."""
        if size not in RANDOM_SIZES:
            raise P2PError(f"size must be one of {sorted(RANDOM_SIZES)}, got {size!r}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            dino = randomize_weights(DinoViT(**RANDOM_SIZES[size]["dino"]))
            clip, image_processor, tokenizer = _random_clip(RANDOM_SIZES[size]["clip"])
            lpips = randomize_weights(LpipsSqueeze(), positive_prefix="lin")
        return cls(dino, clip, image_processor, tokenizer, lpips, settings or MetricSettings())


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


def _random_clip(geometry: dict):
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
    return model, _pil_image_processor_class()(), load_tokenizer()


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
        image_processor = _pil_image_processor_class().from_pretrained(str(source))
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


# ---------------------------------------------------------------- the metrics


def dino_resized_size(height: int, width: int) -> tuple[int, int]:
    """(H, W) after the benchmark's resize: short side 224, long side at most 480."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = DINO_SIZE, int(DINO_SIZE * long / short)
    if new_long > DINO_MAX_SIZE:
        new_short, new_long = int(DINO_MAX_SIZE * new_short / new_long), DINO_MAX_SIZE
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    return new_h, new_w


def dino_input(image: torch.Tensor, antialias: bool) -> torch.Tensor:
    """(3, H, W) float pixels in 0..255 -> the resized, ImageNet-normalised DINO input (3, h, w)."""
    size = dino_resized_size(*image.shape[-2:])
    if tuple(image.shape[-2:]) != size:
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=antialias)[0]
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device)[:, None, None]
    return (image - mean) / std


def self_similarity(keys: torch.Tensor) -> torch.Tensor:
    """(B, N, D) -> (B, N, N) cosine similarity of every token pair (norms clamped at 1e-8)."""
    norms = keys.norm(dim=2, keepdim=True)
    return (keys @ keys.transpose(1, 2)) / torch.clamp(norms @ norms.transpose(1, 2), min=1e-8)


def structure_distances(models: MetricModels, sources, edits) -> list[float]:
    """Structure distance for pairs of (3, H, W) float 0..255 images (batched per resized size)."""
    inputs = [dino_input(img, models.settings.dino_antialias) for img in (*sources, *edits)]
    sims = [None] * len(inputs)
    by_size: dict[tuple, list[int]] = {}
    for i, x in enumerate(inputs):
        by_size.setdefault(tuple(x.shape), []).append(i)
    for idx in by_size.values():
        keys = models.dino.keys(torch.stack([inputs[i] for i in idx]))
        for i, sim in zip(idx, self_similarity(keys)):
            sims[i] = sim
    n = len(sources)
    return [float(((sims[i] - sims[n + i]) ** 2).mean()) for i in range(n)]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1] (data range 1), over every element."""
    sse = torch.sum(torch.pow(a - b, 2))
    return float(-torch.log(sse / a.numel()) * (10 / torch.log(torch.tensor(10.0))))


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    diff = (a - b).reshape(-1)
    return float(torch.sum(diff * diff, dim=0) / diff.numel())


def _gaussian_window(channels: int, dtype, device) -> torch.Tensor:
    size = int(3.5 * SSIM_SIGMA + 0.5) * 2 + 1
    dist = torch.arange((1 - size) / 2, (1 + size) / 2, 1, dtype=dtype, device=device)
    g = torch.exp(-torch.pow(dist / SSIM_SIGMA, 2) / 2)
    g = (g / g.sum())[None]
    return (g.t() @ g).expand(channels, 1, size, size)


def ssim(a: torch.Tensor, b: torch.Tensor, crop: bool = True, clamp_variance: bool = False) -> torch.Tensor:
    """SSIM per image of (B, C, H, W) in [0, 1] (Gaussian window 11, sigma 1.5, reflect padding);
    ``crop``: average over the pixels whose window lies inside the image (else over all);
    ``clamp_variance``: clamp the local variances at 0 (torchmetrics >= 1.3.2; the defaults are
    torchmetrics 1.2.0's computation, operation for operation)."""
    window = _gaussian_window(a.shape[1], a.dtype, a.device)
    pad = (window.shape[-1] - 1) // 2
    a, b = F.pad(a, (pad,) * 4, mode="reflect"), F.pad(b, (pad,) * 4, mode="reflect")
    stats = F.conv2d(torch.cat((a, b, a * a, b * b, a * b)), window, groups=a.shape[1]).split(a.shape[0])
    mu_a2, mu_b2, mu_ab = stats[0].pow(2), stats[1].pow(2), stats[0] * stats[1]
    var_a, var_b = stats[2] - mu_a2, stats[3] - mu_b2
    if clamp_variance:
        var_a, var_b = torch.clamp(var_a, min=0.0), torch.clamp(var_b, min=0.0)
    cov = stats[4] - mu_ab
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    full = ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_a2 + mu_b2 + c1) * (var_a + var_b + c2))
    if crop:
        full = full[..., pad:-pad, pad:-pad]
    return full.reshape(full.shape[0], -1).mean(-1)


def _features(output) -> torch.Tensor:
    """transformers 4 returns the projected features, 5 an output whose pooler_output holds them."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _text_features(models: MetricModels, prompt: str) -> torch.Tensor:
    """One prompt's CLIP text features, unpadded as the benchmark encodes it (cached: a prompt
    recurs for the whole and the edited-part score, and across the settings of a sweep)."""
    cache = models.text_cache
    if prompt not in cache:
        tokens = models.clip_tokenizer([prompt], padding=True, return_tensors="pt")
        limit = models.clip.config.text_config.max_position_embeddings  # longer captions are cut, as theirs
        ids, attention = tokens["input_ids"][..., :limit], tokens["attention_mask"][..., :limit]
        cache[prompt] = _features(models.clip.get_text_features(ids.to(models.device), attention.to(models.device)))[0]
        if len(cache) > 4096:
            cache.pop(next(iter(cache)))
    return cache[prompt]


def clip_scores(models: MetricModels, images: list[np.ndarray], prompts: list[str]) -> list[float]:
    """max(100 cos, 0) of each (H, W, 3) uint8 image with its prompt, as CLIPScore computes it."""
    tensors = [torch.from_numpy(np.array(img)).permute(2, 0, 1) for img in images]  # a writable copy
    pixels = models.image_processor()(images=tensors, return_tensors="pt")["pixel_values"].to(models.device)
    step = models.clip_batch
    parts = [models.clip.get_image_features(pixel_values=pixels[i : i + step]) for i in range(0, len(pixels), step)]
    image_feats = torch.cat([_features(part) for part in parts])
    text_feats = torch.stack([_text_features(models, prompt) for prompt in prompts])
    image_feats = image_feats / image_feats.norm(p=2, dim=-1, keepdim=True)
    text_feats = text_feats / text_feats.norm(p=2, dim=-1, keepdim=True)
    scores = 100 * (image_feats * text_feats).sum(axis=-1)
    return [float(s) for s in torch.clamp(scores, min=0.0)]


@dataclass
class _Pair:
    case: EditCase
    source: np.ndarray  # (H, W, 3) uint8
    edited: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) bool, the benchmark's (border included)


def _as_rgb(image, what: str) -> np.ndarray:
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image) if isinstance(image, np.ndarray) else None
    if array is None or array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise P2PError(f"{what} must be an RGB PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}")
    return array


def _pair(case: EditCase, edited) -> _Pair:
    if not isinstance(case, EditCase):
        raise P2PError(f"case must be an EditCase, got {type(case).__name__}")
    source = _as_rgb(case.image(), f"source image {case.image_path}")
    edit = _as_rgb(edited, "edited")
    if edit.shape != source.shape:
        raise P2PError(
            f"edited image is {edit.shape[1]}x{edit.shape[0]} but case {case.id!r}'s source is "
            f"{source.shape[1]}x{source.shape[0]}: score the edit at the source's size"
        )
    mask = np.asarray(case.mask, dtype=bool)
    if mask.shape != source.shape[:2]:
        raise P2PError(f"case {case.id!r}: mask is {mask.shape} but the image is {source.shape[:2]}")
    return _Pair(case, source, edit, mask)


def _unedited_metrics(models: MetricModels, pairs: list[_Pair], out: list[dict]):
    dev = models.device
    for pair, row in zip(pairs, out):
        keep = ~pair.mask
        if not keep.any():
            row.update({k: math.nan for k in METRIC_NAMES[1:5]})
            continue
        weight = torch.from_numpy(keep.astype(np.float32)).to(dev)[..., None]
        a = torch.from_numpy(pair.source.astype(np.float32) / 255).to(dev) * weight
        b = torch.from_numpy(pair.edited.astype(np.float32) / 255).to(dev) * weight
        a, b = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
        row["psnr_unedit_part"] = psnr(a, b)
        row["mse_unedit_part"] = mse(a, b)
        settings = models.settings
        row["ssim_unedit_part"] = float(ssim(a, b, settings.ssim_crop, settings.ssim_clamp_variance)[0])
        row["lpips_unedit_part"] = float(models.lpips(a * 2 - 1, b * 2 - 1, models.settings.lpips_eps_inside)[0])


def _network_metrics(models: MetricModels, pairs: list[_Pair], out: list[dict]):
    dev = models.device
    sources = [torch.from_numpy(p.source.astype(np.float32)).to(dev).permute(2, 0, 1) for p in pairs]
    edits = [torch.from_numpy(p.edited.astype(np.float32)).to(dev).permute(2, 0, 1) for p in pairs]
    for row, value in zip(out, structure_distances(models, sources, edits)):
        row["structure_distance"] = value
    images = [p.edited for p in pairs] + [p.edited * p.mask[..., None].astype(np.uint8) for p in pairs]
    prompts = [p.case.target_prompt for p in pairs] * 2
    scores = clip_scores(models, images, prompts)
    for i, (pair, row) in enumerate(zip(pairs, out)):
        row["clip_similarity_target_image"] = scores[i]
        row["clip_similarity_target_image_edit_part"] = scores[len(pairs) + i] if pair.mask.any() else math.nan


_reader = None
_reader_lock = threading.Lock()


def _scene_reader():
    """One pocket SceneReader per process (its calibration draws 600 scenes)."""
    global _reader
    with _reader_lock:
        if _reader is None:
            from ..pocket.metrics import SceneReader

            _reader = SceneReader()
        return _reader


def target_fidelity(truth, edited: np.ndarray) -> float:
    """Share of the target scene's attributes read back from the edited (32, 32, 3) image."""
    from ..pocket.metrics import match_objects, relation_of

    reader = _scene_reader()
    (background, pattern), found = reader.read(edited)
    target = truth.target
    checks = [background == target.background, pattern == target.pattern, len(found) == len(target.objects)]
    matched = match_objects(target, found)
    for want, got in zip(target.objects, matched):
        if got is None:
            checks += [False] * 4  # present, colour, shape, size
        else:
            checks += [True, got.color == want.color, got.shape == want.shape, reader.size_of(got) == want.size]
    if target.relation:
        checks.append(all(m is not None for m in matched) and relation_of(*matched) == target.relation)
    return float(np.mean(checks))


def changed_pixels(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(H, W) bool: the RGB distance between the two uint8 images exceeds CHANGE_DISTANCE."""
    return np.linalg.norm(after.astype(np.float32) - before.astype(np.float32), axis=-1) > CHANGE_DISTANCE


def mask_iou(truth, source: np.ndarray, edited: np.ndarray) -> float:
    """IoU of the pixels the edit changed with those the ideal edit changes (the target scene drawn
    as the source was): 1 for the ideal edit, 0 for an edit that changes none of the right pixels."""
    from ..pocket.metrics import iou

    return iou(changed_pixels(source, edited), changed_pixels(source, truth.render_target()))


def _pocket_metrics(pairs: list[_Pair], out: list[dict]):
    from .pocket_bench import truth_of

    for pair, row in zip(pairs, out):
        truth = truth_of(pair.case)
        row["target_fidelity"] = math.nan if truth is None else target_fidelity(truth, pair.edited)
        row["mask_iou"] = math.nan if truth is None else mask_iou(truth, pair.source, pair.edited)


def score_batch(cases, edited, models: MetricModels, *, device=None, batch_size: int = 8) -> list[dict[str, float]]:
    """:func:`score` for many cases, the networks run ``batch_size`` cases at a time."""
    cases, edited = list(cases), list(edited)
    if len(cases) != len(edited):
        raise P2PError(f"got {len(cases)} cases but {len(edited)} edited images")
    if not isinstance(models, MetricModels):
        raise P2PError(f"models must be MetricModels (MetricModels.load or .random), got {type(models).__name__}")
    if device is not None:
        models.to(device)
    step = max(int(batch_size), 1)
    rows: list[dict[str, float]] = []
    with torch.inference_mode():
        for start in range(0, len(cases), step):
            pairs = [_pair(c, e) for c, e in zip(cases[start : start + step], edited[start : start + step])]
            out = [{} for _ in pairs]
            _unedited_metrics(models, pairs, out)
            _network_metrics(models, pairs, out)
            _pocket_metrics(pairs, out)
            rows += [{k: row[k] for k in ALL_METRIC_NAMES} for row in out]
    return rows


def score(case: EditCase, edited, models: MetricModels, *, device=None) -> dict[str, float]:
    """Every metric of :data:`ALL_METRIC_NAMES` for one edit (the edited image as a PIL image at the
    source's size); NaN where the benchmark writes "nan" and for pocket metrics of other datasets."""
    return score_batch([case], [edited], models, device=device)[0]
