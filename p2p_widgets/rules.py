"""Edit rules: how an edited prompt's attention is mixed with the source's at each evaluation.

Every built-in rule is *linear*: for one edited prompt, at one cross-attention layer and step,

    A_edit_new = A_src @ P + A_edit @ diag(q)

with ``P`` (L x L, over key tokens) and ``q`` (L,). That form runs on the fast path without ever
forming an attention matrix (attention is linear in V: ``A_src @ P @ V = attn(Q_src, K_src, P @ V)``).
Self-attention injection is ``A_new = s * A_src + (1 - s) * A_edit`` with a scalar ``s``.

Writing a custom rule
---------------------
Subclass :class:`EditRule` and override one of

- ``cross_weights(ctx) -> (P, q) | None``: the linear form (fast and explicit paths). ``None``
  means "no change at this layer" (the edit keeps its own attention);
- ``self_weight(ctx) -> float``: the share of the source's self-attention injected;
- ``edit_cross(ctx, a_src, a_edit) -> tensor``: any function of the explicit maps
  ``(heads, n_queries, L)``; set ``explicit_only = True``; runs on the explicit path only.

``ctx`` is a :class:`LayerContext` (step, number of evaluations, layer name, place, resolution).
Example: inject only in the decoder::

    class DecoderOnly(EditRule):
        def __init__(self, inner): self.inner = inner
        def cross_weights(self, ctx):
            return self.inner.cross_weights(ctx) if ctx.place == "up" else None
        def self_weight(self, ctx):
            return self.inner.self_weight(ctx) if ctx.place == "up" else 0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import P2PError
from .mapper import Mapper
from .prompts import Prompt
from .schedule import AlphaSchedule


@dataclass(frozen=True)
class LayerContext:
    step: int  # UNet evaluation index, 0 = noisiest
    n_evals: int
    layer: str  # processor name, e.g. "up_blocks.0.attentions.1.transformer_blocks.0.attn2.processor"
    place: str  # "down", "mid" or "up"
    resolution: tuple[int, int]  # query grid (h, w) of this layer
    latent_size: tuple[int, int]
    is_cross: bool
    coarsest: int  # side of the coarsest attention grid in the UNet


class EditRule:
    """Base class: no change (the edit keeps its own attention everywhere)."""

    explicit_only = False

    def cross_weights(self, ctx: LayerContext):
        return None

    def self_weight(self, ctx: LayerContext) -> float:
        return 0.0

    def prepare(self, device, dtype) -> None:
        """Called once before a run: move tensors the rule reuses to the UNet's device."""

    def keeps_own(self, ctx: LayerContext, weights) -> bool:
        """Does the edit keep any of its own attention (``q != 0``) for these ``cross_weights``?
        Rules whose ``q`` lives on a GPU should answer from a host copy: asking the device
        tensor waits for the GPU at every layer."""
        return bool((weights[1] != 0).any())

    def edit_cross(self, ctx: LayerContext, a_src: torch.Tensor, a_edit: torch.Tensor) -> torch.Tensor:
        weights = self.cross_weights(ctx)
        if weights is None:
            return a_edit
        P, q = (w.to(a_src) for w in weights)
        return a_src @ P + a_edit * q


def default_self_max_resolution(latent_size) -> int:
    """The reference injects self-attention at <= 16x16 queries for 64x64 latents: latent/4."""
    return max(1, min(latent_size) // 4)


class Replace(EditRule):
    """Word swap: the target takes ``A_src @ M`` on its aligned tokens inside their alpha windows.

    ``self_max_resolution``: self-attention is injected at layers whose query grid side is at most
    this (default: latent side / 4 as in the reference, but never below the coarsest attention
    layer, so small models still get injection).
    """

    def __init__(self, mapper: Mapper, schedule: AlphaSchedule, self_max_resolution: int | None = None):
        if not isinstance(mapper, Mapper):
            raise P2PError(f"{type(self).__name__} needs a Mapper, got {type(mapper).__name__}")
        if not isinstance(schedule, AlphaSchedule):
            raise P2PError(f"{type(self).__name__} needs an AlphaSchedule, got {type(schedule).__name__}")
        self.mapper, self.schedule = mapper, schedule
        self.self_max_resolution = self_max_resolution
        # g[t, j]: share of the mapped source map in target column j at step t
        self.gate = schedule.cross_alpha(mapper.target) * mapper.aligned
        self._matrix, self._gate = self.mapper.matrix, self.gate  # on the UNet's device after prepare()
        self._cache: dict = {}

    def prepare(self, device, dtype):
        self._matrix, self._gate = self.mapper.matrix.to(device, dtype), self.gate.to(device, dtype)
        self._cache = {}

    @property
    def target(self) -> Prompt:
        return self.mapper.target

    def cross_weights(self, ctx):
        if ctx.step not in self._cache:
            # outside every window the edit keeps its own attention: None lets the fast path skip
            # work (the test reads the host copy of the gate, so it never waits for the GPU)
            g = self._gate[ctx.step]
            self._cache[ctx.step] = (self._matrix * g, 1.0 - g) if bool(self.gate[ctx.step].any()) else None
        return self._cache[ctx.step]

    def keeps_own(self, ctx, weights):
        return bool((self.gate[ctx.step] < 1).any())  # q = 1 - g, read from the host copy of g

    def self_weight(self, ctx):
        limit = self.self_max_resolution
        if limit is None:
            limit = max(default_self_max_resolution(ctx.latent_size), ctx.coarsest)
        return 1.0 if self.schedule.self_active(ctx.step) and max(ctx.resolution) <= limit else 0.0


class Refine(Replace):
    """Phrase insertion: aligned tokens take the source's column, new tokens keep their own."""

    def __init__(self, mapper: Mapper, schedule: AlphaSchedule, self_max_resolution: int | None = None):
        super().__init__(mapper, schedule, self_max_resolution)


class Reweight(EditRule):
    """Scale the columns of chosen target words in the mapped source attention (negative allowed).

    Composes on a Replace/Refine rule: ``P = P_base @ diag(c)``, the edit's own part unchanged, as
    the reference does (no re-normalisation). ``values`` maps words of the target prompt to scales.
    """

    def __init__(self, base: Replace, values: dict):
        if not isinstance(base, Replace):
            raise P2PError(f"Reweight composes on a Replace or Refine rule, got {type(base).__name__}")
        if not isinstance(values, dict) or not values:
            raise P2PError(f"Reweight needs a non-empty dict of word -> scale, got {values!r}")
        self.base, self.values = base, dict(values)
        scale = torch.ones(base.target.max_length)
        for word, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise P2PError(f"reweight value for {word!r} is not a finite number: {value!r}")
            scale[base.target.positions(word)] = float(value)
        self.scale = self._scale = scale  # _scale: on the UNet's device after prepare()

    def prepare(self, device, dtype):
        self.base.prepare(device, dtype)
        self._scale = self.scale.to(device, dtype)

    def cross_weights(self, ctx):
        weights = self.base.cross_weights(ctx)
        return None if weights is None else (weights[0] * self._scale, weights[1])

    def keeps_own(self, ctx, weights):
        return self.base.keeps_own(ctx, weights)  # Reweight leaves the edit's own part as the base has it

    def self_weight(self, ctx):
        return self.base.self_weight(ctx)


class LocalBlend:
    """Keep pixels outside the edited words' attention: x_edit <- x_src + m * (x_edit - x_src).

    ``words``: one word or a list of words per prompt, source first (``[src_words, edit1_words, ...]``),
    or a single list used for every prompt where it is found. The mask is the union over the source
    and the edit of the accumulated cross-attention of the words, upsampled to the latent, max-pooled
    over 1/16 of its side (the reference's 3x3 pool at 16x16), max-normalised and thresholded;
    ``subtract`` words (per prompt) are removed from it.
    ``resolution``: attention grid side used for the mask (default: latent side / 4, the reference's
    16x16 at 64x64 latents, or the nearest grid of models without one). Applied from ``start``
    (fraction or step) on.
    """

    def __init__(self, words, threshold: float = 0.3, start=0.2, subtract=None, resolution: int | None = None):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
            raise P2PError(f"LocalBlend threshold must be in (0, 1), got {threshold!r}")
        self.words, self.threshold, self.start = words, float(threshold), start
        self.subtract, self.resolution = subtract, resolution

    def token_weights(self, prompts: list[Prompt], which) -> torch.Tensor:
        """(B, L) 0/1 over the token positions of the blend (or subtract) words of each prompt."""
        weights = torch.zeros(len(prompts), prompts[0].max_length)
        if which is None:
            return weights
        which = [which] if isinstance(which, (str, int)) else list(which)
        if which and all(isinstance(w, (list, tuple)) for w in which):  # one list per prompt
            if len(which) != len(prompts):
                raise P2PError(f"LocalBlend got word lists for {len(which)} prompts but the run has {len(prompts)}")
            for b, (prompt, words) in enumerate(zip(prompts, which)):
                for word in words:
                    weights[b, prompt.positions(word)] = 1.0  # a missing word raises, naming the prompt
            return weights
        for word in which:  # one list for all prompts: each word must be in at least one of them
            found = False
            for b, prompt in enumerate(prompts):
                if _has(prompt, word):
                    weights[b, prompt.positions(word)] = 1.0
                    found = True
            if not found:
                listed = "; ".join(f"{p.text!r}" for p in prompts)
                raise P2PError(f"LocalBlend word {word!r} is in none of the prompts: {listed}")
        return weights

    def mask(self, maps: torch.Tensor, token_weights: torch.Tensor, latent_hw, pool: bool = True) -> torch.Tensor:
        """Boolean masks (B, 1, h, w) from summed maps (B, gh, gw, L) and token weights (B, L)."""
        m = (maps * token_weights[:, None, None, :].to(maps)).sum(-1)[:, None]
        m = torch.nn.functional.interpolate(m, size=tuple(latent_hw), mode="nearest")
        if pool:
            # grow by 1/16 of the latent side: the reference's 3x3 pool on its 16x16 grid at 64x64
            # latents, exactly, and the same share of the image on any grid and model size (a 3x3
            # pool on a coarser grid would grow the mask over neighbouring objects)
            r = max(1, round(max(latent_hw) / 16))
            m = torch.nn.functional.max_pool2d(m, 2 * r + 1, stride=1, padding=r)
        peak = m.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]
        return (m / peak) > self.threshold


def _has(prompt: Prompt, word) -> bool:
    try:
        prompt.find(word)
        return True
    except P2PError:
        return False
