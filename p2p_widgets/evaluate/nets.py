"""The metric networks PIE-Bench's code uses, re-implemented in plain torch with their parameter
names: DINO's ViT (its released state dicts load as they are) and SqueezeNet 1.1 LPIPS (torchvision's
``squeezenet1_1().features`` and LPIPS's linear layers). ``weights.py`` loads or randomises them."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import P2PError

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_TAPS = (1, 4, 7, 9, 10, 11, 12)  # SqueezeNet feature indices whose outputs LPIPS compares
LPIPS_CHANNELS = (64, 128, 256, 384, 384, 512, 512)


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
