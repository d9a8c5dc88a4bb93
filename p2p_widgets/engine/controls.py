"""Attention-control methods beyond P2P's probability mixing, as rules on the engine's hooks.

Each writes the edit's self-attention queries, keys or values (one fused call still), or a UNet
module's output, from the source row of the same half of classifier-free guidance:

- :class:`MutualSelfAttention` (MasaCtrl, Cao et al. 2023): in the chosen self-attention layers
  and steps the edit's queries attend to the source's keys and values, ``attn(Q_e, K_src, V_src)``;
  ``union`` attends to both images' keys and values.
- :class:`PlugAndPlay` (Tumanyan et al. 2023): the source's features in a decoder ResNet block and
  its decoder self-attention queries and keys replace the edit's early in the run; the source row
  walks the inverted image's own trajectory.
- :class:`StyleAligned` (Hertz et al. 2024): every edit's self-attention also attends to the
  source's keys and values, with its queries and keys AdaIN-normalised to the source's statistics
  (optionally its GroupNorms' statistics shared with the source's, the source's keys shifted or
  scaled, some layers left alone).

The parameters are declared once (``params``): the constructor, the edit JSON, the Studio's
controls and sweep grids all read them. Layers are counted in the order the UNet runs them
(``LayerContext.index`` among ``n_layers``); steps are UNet evaluations, 0 = noisiest.
"""

from __future__ import annotations

import torch

from ..errors import P2PError
from .params import Param
from .rules import LayerContext, ParamRule, register_rule

# MasaCtrl's default first controlled layer on the two layer counts its authors name (SD 1.x/2.x:
# 16 self-attention layers, SDXL: 70); other UNets start at the same share of their layers
_MASA_START = {16: 10, 70: 44}


def _in_steps(ctx: LayerContext, first: int, end: int | None) -> bool:
    return first <= ctx.step < (ctx.n_evals if end is None else end)


@register_rule
class MutualSelfAttention(ParamRule):
    """MasaCtrl: the edit queries the source's self-attention keys and values (both CFG halves)."""

    label = "MasaCtrl (mutual self-attention)"
    branches = "both"
    params = (
        Param("start_step", "int", 4, "first step under control (0 = noisiest)", low=0),
        Param("end_step", "int", None, "step where control ends (empty: the end of the run)", low=0, optional=True),
        Param(
            "start_layer",
            "int",
            None,
            "first controlled self-attention layer in execution order (empty: 10 of 16 on SD, 44 of 70 on SDXL)",
            low=0,
            optional=True,
        ),
        Param("end_layer", "int", None, "layer where control ends (empty: the last)", low=0, optional=True),
        Param("union", "bool", False, "attend to the source's and the edit's own keys and values together"),
    )

    def check_run(self, n_evals):
        # a window past the run's end is empty, as the authors' range(start_step, total_steps) (a
        # 4-step default start on a 2-step run controls nothing); one that ends before it starts
        # contradicts itself
        if self.end_step is not None and self.start_step > self.end_step:
            raise P2PError(f"{type(self).__name__} start_step {self.start_step} is after end_step {self.end_step}")

    def first_layer(self, n_layers: int) -> int:
        if self.start_layer is not None:
            return self.start_layer
        return _MASA_START.get(n_layers, round(n_layers * 10 / 16))

    def active(self, ctx: LayerContext) -> bool:
        end_layer = ctx.n_layers if self.end_layer is None else self.end_layer
        return (
            not ctx.is_cross
            and _in_steps(ctx, self.start_step, self.end_step)
            and self.first_layer(ctx.n_layers) <= ctx.index < end_layer
        )

    def self_qkv(self, ctx, src, edit):
        if not self.active(ctx):
            return None
        if self.union:
            return edit[0], torch.cat([src[1], edit[1]], dim=2), torch.cat([src[2], edit[2]], dim=2)
        return edit[0], src[1], src[2]

    def windows(self, n_evals):
        end = n_evals if self.end_step is None else min(self.end_step, n_evals)
        return [("mutual self-attention", min(self.start_step, end), end)]


@register_rule
class MaskedMutualSelfAttention(MutualSelfAttention):
    """MasaCtrl guided by masks from cross-attention (its authors' "mask auto" form): the edit's
    queries inside the object (its ``target_words``' attention) read only the source's keys inside
    the source object (``source_words``), those outside read only the source's background. Masks:
    this step's cross maps so far at the grid nearest latent / 4, min-max normalised, ``>= threshold``.
    """

    label = "MasaCtrl with masks"
    params = (
        *MutualSelfAttention.params[:-1],  # no union: the masks split the source's keys instead
        Param("source_words", "words", None, "words of the source whose attention marks the object", non_empty=True),
        Param("target_words", "words", (), "words of the edit marking the object (empty: the source words)"),
        Param("threshold", "float", 0.1, "share of the map's range that counts as the object", low=0.0, high=1.0),
    )
    union = False

    def bind(self, source, target):
        target_words = self.target_words or self.source_words
        self._tokens = (
            [p for w in self.source_words for p in source.positions(w)],
            [p for w in target_words for p in target.positions(w)],
        )

    def self_output(self, ctx, src, edit, attend, maps):
        if not self.active(ctx):
            return None
        if maps is None:  # no cross-attention yet this step: plain mutual self-attention
            return attend(edit[0], src[1], src[2])
        inside = [self._mask(m, tokens, ctx.resolution) for m, tokens in zip(maps, self._tokens)]
        keys = inside[0].flatten()[None]  # (1, keys): broadcast over heads and queries
        low = torch.finfo(edit[0].dtype).min  # as the authors: a large negative logit, so an empty side stays finite
        fg = attend(edit[0], src[1], src[2], torch.where(keys, 0.0, low).to(edit[0]))
        bg = attend(edit[0], src[1], src[2], torch.where(keys, low, 0.0).to(edit[0]))
        query = inside[1].flatten()[:, None].to(fg)
        return fg * query + bg * (1 - query)

    def _mask(self, maps, tokens, grid):
        m = maps[..., tokens].sum(-1)
        m = (m - m.min()) / (m.max() - m.min()).clamp_min(1e-12)
        m = torch.nn.functional.interpolate(m[None, None], size=tuple(grid))[0, 0]  # nearest, as the authors
        return m >= self.threshold


# Plug-and-Play's injection points on SD-style UNets: the residual branch of the second ResNet of
# the second decoder block (before the skip connection is added), and decoder self-attention
PNP_FEATURE = "up_blocks.1.resnets.1.conv2"


@register_rule
class PlugAndPlay(ParamRule):
    """Plug-and-Play: the source's decoder features (first ``feature_until`` of the run) and its
    decoder self-attention queries and keys (first ``attention_until``) replace the edit's. The
    source row follows the inversion, so edit an inverted image; its authors read it under the
    empty prompt (source prompt ``""``)."""

    label = "Plug-and-Play"
    branches = "both"
    follows_inversion = True
    _layers: frozenset = frozenset()  # set for each run by on_sites
    params = (
        Param("feature_until", "float", 0.8, "share of the run with the source's ResNet features", low=0.0, high=1.0),
        Param(
            "attention_until",
            "float",
            0.5,
            "share of the run with the source's self-attention Q and K",
            low=0.0,
            high=1.0,
        ),
    )

    def feature_modules(self):
        return (PNP_FEATURE,)

    def on_sites(self, sites):
        self._layers = _pnp_layers(sites)

    def edit_feature(self, ctx, name, src, edit):
        return src if ctx.step < int(ctx.n_evals * self.feature_until) else None

    def self_qkv(self, ctx, src, edit):
        if ctx.is_cross or ctx.step >= int(ctx.n_evals * self.attention_until) or ctx.layer not in self._layers:
            return None
        return src[0], src[1], edit[2]

    def windows(self, n_evals):
        return [
            ("ResNet features", 0, int(n_evals * self.feature_until)),
            ("self-attention Q, K", 0, int(n_evals * self.attention_until)),
        ]


def _pnp_layers(sites) -> frozenset:
    """Decoder self-attention layers but those of the decoder's first attention module (the lowest
    resolution's first, which the authors leave alone: ``up_blocks.1.attentions.0`` on SD 1.x/2.x,
    ``up_blocks.0.attentions.0`` on SDXL)."""
    decoder = [s for s in sites if s.place == "up" and s.kind == "self"]
    if not decoder:
        return frozenset()
    return frozenset(s.name for s in decoder if s.unit != decoder[0].unit)


def adain(x: torch.Tensor, ref: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``x`` normalised over tokens (per head and channel) to ``ref``'s mean and deviation (unbiased
    variance plus ``eps``, as StyleAligned's authors compute it)."""
    var, mean = torch.var_mean(x, dim=-2, keepdim=True)  # one pass over the tokens for both
    ref_var, ref_mean = torch.var_mean(ref, dim=-2, keepdim=True)
    gain = ((ref_var + eps) / (var + eps)).sqrt()  # per head and channel: two full-size ops, not four
    return x * gain + (ref_mean - mean * gain)


@register_rule
class StyleAligned(ParamRule):
    """StyleAligned: the edit also attends to the source's self-attention keys and values, its
    queries and keys AdaIN-normalised to the source's (both CFG halves, every self-attention layer
    but those ``only_self_level`` leaves alone); ``share_group_norm``: the edit's GroupNorm
    statistics also cover the source's features."""

    label = "StyleAligned"
    branches = "both"
    _shared: frozenset | None = None  # self-attention layers that share (None: all); set by on_sites
    params = (
        Param("adain_queries", "bool", True, "normalise the edit's queries to the source's statistics"),
        Param("adain_keys", "bool", True, "normalise the edit's keys to the source's statistics"),
        Param("adain_values", "bool", False, "normalise the edit's values to the source's statistics"),
        Param("share_attention", "bool", True, "attend to the source's keys and values too"),
        # the authors' dataclass says True (their SD 1.x and transfer notebooks too); their SDXL
        # notebook and demo pass False, and False keeps this rule's results from before it existed.
        # (Their share_layer_norm has no parameter here: a LayerNorm normalises each token alone,
        # so adding the source's tokens beside the edit's changes nothing.)
        Param("share_group_norm", "bool", False, "GroupNorm statistics over the edit's and the source's features"),
        Param(
            "shared_score_shift",
            "float",
            0.0,
            "added to the logits of the source's keys (the authors' transfer: log 2 = 0.693)",
        ),
        Param("shared_score_scale", "float", 1.0, "factor on the source's keys (a softmax temperature for them)"),
        Param(
            "only_self_level",
            "float",
            0.0,
            "share of self-attention layers left alone, evenly spaced (in unet.attn_processors order)",
            low=0.0,
            high=1.0,
        ),
    )

    def on_sites(self, sites):
        self._shared = _style_shared_layers(sites, self.only_self_level)

    def _active(self, ctx) -> bool:
        return not ctx.is_cross and (self._shared is None or ctx.layer in self._shared)

    def self_qkv(self, ctx, src, edit):
        if not self._active(ctx):
            return None
        q, k, v = edit
        q = adain(q, src[0]) if self.adain_queries else q
        k = adain(k, src[1]) if self.adain_keys else k
        v = adain(v, src[2]) if self.adain_values else v
        if self.share_attention:
            src_k = src[1] if self.shared_score_scale == 1 else src[1] * self.shared_score_scale
            k, v = torch.cat([k, src_k], dim=2), torch.cat([v, src[2]], dim=2)
        return q, k, v

    def self_output(self, ctx, src, edit, attend, maps):
        # the logit shift on the source's keys: the (already shared) keys with an additive mask
        if not self.shared_score_shift or not self.share_attention or not self._active(ctx):
            return None
        q, k, v = edit
        shift = torch.zeros(1, k.shape[2], dtype=q.dtype, device=q.device)
        shift[:, k.shape[2] - src[1].shape[2] :] = self.shared_score_shift
        return attend(q, k, v, shift)

    def input_modules(self):
        return (torch.nn.GroupNorm,) if self.share_group_norm else ()

    def edit_from_inputs(self, ctx, name, module, src, edit):
        # the edit's features beside the source's along the height: one GroupNorm over both, the
        # edit's half kept (the statistics of each group cover both images)
        height = edit.shape[-2]
        both = torch.cat([edit, src], dim=-2)
        return torch.nn.functional.group_norm(both, module.num_groups, module.weight, module.bias, module.eps)[
            ..., :height, :
        ]

    def windows(self, n_evals):
        return [("shared self-attention", 0, n_evals)]


def _style_shared_layers(sites, level: float) -> frozenset | None:
    """The self-attention sites that share under ``only_self_level`` (None: every one). The authors
    number the layers in ``unet.attn_processors`` order (down, up, then mid on diffusers' UNets)
    and leave every ``n // round_down(level n)``-th alone (level > 1/2: all but those of 1 - level);
    a level under one layer leaves none alone (their code divides by zero there)."""
    if level == 0:
        return None
    selfs = [s for s in sites if s.kind == "self"]
    order = {"down": 0, "up": 1, "mid": 2}
    selfs = sorted(selfs, key=lambda s: order.get(s.place, 1))  # stable: execution order within a place
    n = len(selfs)
    flip = level > 0.5
    switched = int(((1 - level) if flip else level) * n)
    alone = {i for i in range(n) if switched and i % (n // switched) == 0}
    if level == 1:
        alone = set(range(n))
    elif flip:
        alone = set(range(n)) - alone
    return frozenset(s.name for i, s in enumerate(selfs) if i not in alone)


# the joint-attention rules (SD3 / Flux) register with the UNet ones: importing this module makes
# every built-in method beyond P2P loadable from JSON and offered in the Studio
from . import joint_controls  # noqa: E402, F401
