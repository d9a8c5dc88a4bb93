"""Attention processors that store and inject attention, installed on the UNet for one run.

One :class:`P2PAttnProcessor` per attention layer forwards to a shared
:class:`AttentionController`, which knows the current evaluation, the batch layout and the edit
rules. Two paths compute the same thing:

- ``fast``: fused attention (``scaled_dot_product_attention``) on modified values; no n x n matrix
  is ever formed. The source and every map it feeds share one call, values concatenated along the
  feature axis: ``attn(Q_src, K_src, [V_src | P_1 V_1 | ...])``.
- ``explicit``: materialises the probabilities like the reference and applies each rule to them:
  the oracle for the fast path, and the path for rules written on explicit maps.

Batch layout per UNet call: ``[uncond x B ; cond x B]`` with classifier-free guidance in one batch,
or a single block in low-memory mode (``controller.block`` says which). Only the conditional block
is edited. :func:`installed` swaps processors in and always restores the originals.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from ..errors import P2PError
from .rules import LayerContext


def layer_place(name: str) -> str:
    return "down" if name.startswith("down") else "mid" if name.startswith("mid") else "up"


class P2PAttnProcessor:
    """Follows diffusers' processor contract; the controller does the attention itself."""

    def __init__(self, controller: AttentionController, name: str):
        self.controller, self.name = controller, name
        self.place, self.is_cross = layer_place(name), ".attn2." in name

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs
    ):
        if attention_mask is not None:
            raise P2PError("attention masks are not supported while editing (Stable Diffusion passes none)")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        spatial = hidden_states.ndim == 4
        if spatial:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        batch, heads = q.shape[0], attn.heads
        q, k, v = (t.view(batch, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v))
        if getattr(attn, "norm_q", None) is not None:
            q = attn.norm_q(q)
        if getattr(attn, "norm_k", None) is not None:
            k = attn.norm_k(k)
        out = self.controller.attend(self, q, k, v, attn.scale)
        out = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[-1]).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if spatial:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _sdpa(q, k, v, scale):
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


def _probs(q, k, scale):
    return torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)


class AttentionController:
    """Run state shared by all processors: step, batch layout, rules, store."""

    def __init__(self, n_prompts, rules, store=None, mode="fast", latent_size=(64, 64), coarsest=8):
        if mode not in ("fast", "explicit"):
            raise P2PError(f"mode must be 'fast' or 'explicit', got {mode!r}")
        if len(rules) != n_prompts - 1:
            raise P2PError(f"{n_prompts - 1} edited prompts need {n_prompts - 1} rules, got {len(rules)}")
        if mode == "fast":
            slow = [type(r).__name__ for r in rules if r.explicit_only]
            if slow:
                raise P2PError(f"rules {slow} work on explicit maps: run them with mode='explicit'")
        self.n_prompts, self.rules, self.store, self.mode = n_prompts, list(rules), store, mode
        self.latent_size, self.coarsest = tuple(latent_size), coarsest
        self.step, self.n_evals = 0, 1
        self.block = "both"  # "both": [uncond; cond] in one batch; "uncond" / "cond": low-memory passes
        self._on_device: dict = {}  # id(weight tensor) -> (tensor, its copy on the UNet's device)

    # -- bookkeeping -------------------------------------------------------------------------
    def grid_of(self, n_queries: int) -> tuple[int, int]:
        lh, lw = self.latent_size
        factor = math.isqrt(lh * lw // n_queries)
        return lh // factor, lw // factor

    def context(self, proc, grid) -> LayerContext:
        return LayerContext(
            self.step, self.n_evals, proc.name, proc.place, grid, self.latent_size, proc.is_cross, self.coarsest
        )

    def end_step(self):
        """Close one UNet evaluation: the store averages its layers."""
        self._on_device.clear()
        return self.store.end_step() if self.store is not None else {}

    def _device(self, t, like):
        """``t`` on ``like``'s device and dtype, copied once per step (a host-to-device copy per layer
        would synchronise the GPU 16 times per evaluation)."""
        hit = self._on_device.get(id(t))
        if hit is None or hit[0] is not t or hit[1].dtype != like.dtype:
            hit = self._on_device[id(t)] = (t, t.to(like))  # holding t keeps its id from being reused
        return hit[1]

    # -- attention ---------------------------------------------------------------------------
    def attend(self, proc, q, k, v, scale):
        if self.block == "uncond" or self.n_prompts == 0:
            return _sdpa(q, k, v, scale)
        off = self.n_prompts if self.block == "both" else 0
        grid = self.grid_of(q.shape[2])
        ctx = self.context(proc, grid)
        weights = self._weights(ctx, v)
        if self.mode == "explicit":
            out, cond_maps = self._explicit(ctx, q, k, v, scale, off, weights)
        elif all(w is None for w in weights):
            out, cond_maps = _sdpa(q, k, v, scale), None  # nothing injected here: one fused call
        else:
            out, cond_maps = self._fast(q, k, v, scale, off, weights)
        if proc.is_cross and self.store is not None and self.store.wants(grid):
            if cond_maps is None:
                cond_maps = self._edited_maps(q, k, scale, off, weights)
            self.store.add(grid, cond_maps.mean(dim=1), place=proc.place, heads=cond_maps)
        return out

    def _weights(self, ctx, like):
        """Per edit: ('cross', P, q) | ('self', s) | None (keeps its own attention)."""
        found = []
        for rule in self.rules:
            if ctx.is_cross:
                w = rule.cross_weights(ctx)
                if w is None:
                    found.append(None)
                else:
                    found.append(("cross", self._device(w[0], like), self._device(w[1], like), rule.keeps_own(ctx, w)))
            else:
                s = float(rule.self_weight(ctx))
                found.append(None if s == 0.0 else ("self", s))
        return found

    def _fast(self, q, k, v, scale, off, weights):
        out = torch.empty(*q.shape[:3], v.shape[-1], dtype=v.dtype, device=v.device)
        if off:
            out[:off] = _sdpa(q[:off], k[:off], v[:off], scale)
        src = off
        blocks, own = [v[src : src + 1]], []  # value blocks read through the source's attention
        for e, w in enumerate(weights, start=src + 1):
            if w is None:
                own.append((e, v[e : e + 1], None))
            elif w[0] == "cross":
                P, qv, keeps_own = w[1], w[2], w[3]
                blocks.append(torch.matmul(P, v[e : e + 1]))  # (A_src P) V = A_src (P V)
                if keeps_own:
                    own.append((e, v[e : e + 1] * qv[:, None], len(blocks) - 1))
                else:
                    own.append((e, None, len(blocks) - 1))
            else:
                s = w[1]
                blocks.append(v[e : e + 1] * s)
                own.append((e, v[e : e + 1] * (1.0 - s) if s != 1.0 else None, len(blocks) - 1))
        shared = _sdpa(q[src : src + 1], k[src : src + 1], torch.cat(blocks, dim=-1), scale)
        d = v.shape[-1]
        out[src] = shared[0, ..., :d]
        own_rows = [e for e, val, _ in own if val is not None]
        if own_rows:
            vals = torch.cat([val for _, val, _ in own if val is not None])
            # a slice, not a list index, when the rows are contiguous (as they are for built-in rules):
            # advanced indexing copies q and k and sends the index to the device
            rows = (
                slice(own_rows[0], own_rows[-1] + 1)
                if own_rows == list(range(own_rows[0], own_rows[-1] + 1))
                else own_rows
            )
            own_out = dict(zip(own_rows, _sdpa(q[rows], k[rows], vals, scale)))
        for e, val, block in own:
            total = 0 if block is None else shared[0, ..., block * d : (block + 1) * d]
            out[e] = total + own_out[e] if val is not None else total
        return out, None

    def _explicit(self, ctx, q, k, v, scale, off, weights):
        probs = _probs(q, k, scale)
        src = off
        for e, (rule, w) in enumerate(zip(self.rules, weights), start=src + 1):
            if ctx.is_cross:
                probs[e] = rule.edit_cross(ctx, probs[src], probs[e])
            elif w is not None:
                probs[e] = w[1] * probs[src] + (1.0 - w[1]) * probs[e]
        cond = probs[off : off + self.n_prompts]
        return probs @ v, cond

    def _edited_maps(self, q, k, scale, off, weights):
        """Post-edit cross maps of the conditional block (fast path: n x L maps are small)."""
        rows = slice(off, off + self.n_prompts)
        maps = _probs(q[rows], k[rows], scale)
        edited = [maps[0]]
        for e, w in enumerate(weights, start=1):
            edited.append(maps[e] if w is None else maps[0] @ w[1] + maps[e] * w[2])
        return torch.stack(edited)


@contextlib.contextmanager
def installed(unet, controller: AttentionController):
    """Install P2P processors on every attention layer of ``unet``; restore the originals on exit,
    also after an exception or a KeyboardInterrupt."""
    original = dict(unet.attn_processors)
    try:
        unet.set_attn_processor({name: P2PAttnProcessor(controller, name) for name in original})
        yield controller
    finally:
        unet.set_attn_processor(original)
