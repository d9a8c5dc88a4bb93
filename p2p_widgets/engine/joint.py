"""Processors for MM-DiT joint attention (SD3 / SD3.5 and Flux.1), installed on their sites for a run.

They compute what diffusers' ``JointAttnProcessor2_0`` (SD3: [image; text], heads first, no
rotary embedding) and ``FluxAttnProcessor`` (Flux: [text; image], rotary embedding on the joined
queries and keys) compute, with the attention itself handed to the controller in one layout,
``(B, heads, tokens, dim)``, together with where the text and the image tokens lie. Flux's
single-stream blocks join [text; image] before attention and never say where the text ends: the
controller knows the run's number of image tokens.

``block_maps`` gives one block of the joint softmax, e.g. the image-query x text-key block (the
cross-attention analogue; its rows do not sum to 1, image keys take the rest), without forming
the joint matrix: the softmax normaliser comes from the fused call, or is accumulated over key
chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import P2PError

KEY_CHUNK = 1024  # keys per logit block when normalising queries off the CPU (bounds memory at 4096-token images)


def _cpu_flash(q, k, v, scale):
    """(output, log-sum-exp per query) from torch's fused CPU attention kernel (the one SDPA runs on
    the CPU): the softmax normaliser comes with the output, at no extra cost."""
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, scale=scale)[:2]


def _fused_lse(q, k) -> bool:
    return (
        q.device.type == "cpu"
        and q.shape[-1] == k.shape[-1]
        and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")
    )


def attention_with_lse(q, k, v, scale, rows: slice = slice(None)):
    """Fused attention and the softmax log-sum-exp (float32 or wider) of the queries at ``rows``: one
    call on the CPU; elsewhere SDPA and :func:`softmax_lse` of those rows only (an unfused pass)."""
    if _fused_lse(q, k) and v.shape[-1] == q.shape[-1]:
        out, lse = _cpu_flash(q, k, v, scale)
        return out, lse[:, :, rows]
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)
    return out, softmax_lse(q[:, :, rows], k, scale)


def softmax_lse(q, k, scale: float) -> torch.Tensor:
    """``logsumexp(q k^T * scale)`` over every key, (B, H, n_q): the fused kernel on the CPU (keys as
    values), else accumulated over key chunks so no (n_q x n_keys) matrix is formed at once."""
    if _fused_lse(q, k):
        return _cpu_flash(q, k, k, scale)[1].to(torch.promote_types(q.dtype, torch.float32))
    return chunked_lse(q, k, scale)


def chunked_lse(q, k, scale: float) -> torch.Tensor:
    """:func:`softmax_lse` accumulated over key chunks (any device; the oracle of the fused one)."""
    wide = torch.promote_types(q.dtype, torch.float32)
    q32, k32 = q.to(wide), k.to(wide)
    lse = None
    for start in range(0, k.shape[2], KEY_CHUNK):
        part = torch.logsumexp((q32 @ k32[:, :, start : start + KEY_CHUNK].transpose(-1, -2)) * scale, dim=-1)
        lse = part if lse is None else torch.logaddexp(lse, part)
    return lse


def block_maps(q_rows, k, keys: slice, scale: float, lse=None) -> torch.Tensor:
    """``softmax(q_rows k^T * scale)[..., keys]``: (B, H, n_rows, n_keys) probabilities of these
    queries on the keys at ``keys``, normalised over every key by ``lse`` (default: computed), in
    float32 or wider: only this block is formed. Image queries on the text keys are the store's maps
    (the cross-attention analogue); text queries on the image keys are kept on request."""
    if lse is None:
        lse = softmax_lse(q_rows, k, scale)
    wide = lse.dtype
    *batch, n_rows, _ = q_rows.shape
    block = k[:, :, keys].to(wide).flatten(0, 1).transpose(-1, -2)
    # scale * q k^T - lse in one batched product, exponentiated in place (a few ops: they are per site)
    logits = torch.baddbmm(-lse.reshape(-1, n_rows, 1), q_rows.to(wide).flatten(0, 1), block, alpha=scale)
    return logits.exp_().view(*batch, n_rows, block.shape[-1])


class JointProcessor:
    """One joint-attention site of an SD3 or Flux transformer (see the module docstring)."""

    def __init__(self, controller, site):
        self.controller, self.site, self.name = controller, site, site.name
        self.place, self.is_cross = site.place, False  # what the controller's LayerContext reads
        self.flux = site.queries[0] == "text"  # Flux orders [text; image], SD3 [image; text]

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        if attention_mask is not None:
            raise P2PError("attention masks are not supported while editing (SD3 and Flux pass none)")
        if self.flux:
            return self._flux(attn, hidden_states, encoder_hidden_states, kwargs.get("image_rotary_emb", *args[:1]))
        return self._sd3(attn, hidden_states, encoder_hidden_states)

    def _attend(self, q, k, v, n_text: int, text_first: bool):
        n = q.shape[2]
        text = slice(0, n_text) if text_first else slice(n - n_text, n)
        image = slice(n_text, n) if text_first else slice(0, n - n_text)
        return self.controller.attend_joint(self, q, k, v, q.shape[-1] ** -0.5, text, image)

    def _sd3(self, attn, hidden, encoder):
        """As ``JointAttnProcessor2_0``: image then text, (B, heads, tokens, dim)."""
        b, heads = hidden.shape[0], attn.heads

        def split(x):
            return x.view(b, -1, heads, x.shape[-1] // heads).transpose(1, 2)

        q, k, v = split(attn.to_q(hidden)), split(attn.to_k(hidden)), split(attn.to_v(hidden))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        n_text = 0
        if encoder is not None:
            eq, ek, ev = (split(proj(encoder)) for proj in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
            if attn.norm_added_q is not None:
                eq = attn.norm_added_q(eq)
            if attn.norm_added_k is not None:
                ek = attn.norm_added_k(ek)
            q, k, v = torch.cat([q, eq], dim=2), torch.cat([k, ek], dim=2), torch.cat([v, ev], dim=2)
            n_text = encoder.shape[1]
        out = self._attend(q, k, v, n_text, text_first=False)
        out = out.transpose(1, 2).reshape(b, -1, heads * out.shape[-1]).to(q.dtype)
        image, text = out[:, : hidden.shape[1]], out[:, hidden.shape[1] :]
        image = attn.to_out[1](attn.to_out[0](image))
        if encoder is None:
            return image
        return image, (text if attn.context_pre_only else attn.to_add_out(text))

    def _flux(self, attn, hidden, encoder, rotary):
        """As ``FluxAttnProcessor``: text then image, rotary embedding on the joined tokens."""
        from diffusers.models.embeddings import apply_rotary_emb
        from diffusers.models.transformers.transformer_flux import _get_qkv_projections

        q, k, v, eq, ek, ev = _get_qkv_projections(attn, hidden, encoder)
        q, k, v = (x.unflatten(-1, (-1, attn.head_dim)) for x in (q, k, v))
        q, k = attn.norm_q(q), attn.norm_k(k)
        if encoder is not None:  # a double-stream block: the text arrives separately
            eq, ek, ev = (x.unflatten(-1, (-1, attn.head_dim)) for x in (eq, ek, ev))
            eq, ek = attn.norm_added_q(eq), attn.norm_added_k(ek)
            q, k, v = torch.cat([eq, q], dim=1), torch.cat([ek, k], dim=1), torch.cat([ev, v], dim=1)
            n_text = encoder.shape[1]
        else:  # a single-stream block joined [text; image] itself
            n_text = hidden.shape[1] - self.controller.image_tokens
        if rotary is not None:
            q, k = apply_rotary_emb(q, rotary, sequence_dim=1), apply_rotary_emb(k, rotary, sequence_dim=1)
        out = self._attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), n_text, text_first=True)
        out = out.transpose(1, 2).flatten(2, 3).to(q.dtype)
        if encoder is None:
            return out
        text, image = out[:, :n_text], out[:, n_text:]
        return attn.to_out[1](attn.to_out[0](image.contiguous())), attn.to_add_out(text.contiguous())


# -- Prompt-to-Prompt on joint attention -------------------------------------------------------------
# Definition (the explicit path): for an edit row, image queries read
#   A'_e[img, txt] = A_s[img, txt] @ P + A_e[img, txt] * q     (P = M diag(g), q = 1 - g: the mapped
#                                                               source map inside the word windows)
#   A'_e[img, img] = s A_s[img, img] + (1 - s) A_e[img, img]   (s: the self-attention window)
# over the one joint softmax of each row, as P2P does on a UNet's cross and self layers; text
# queries keep the edit's own attention (the text stream is the edit's); nothing is renormalised
# (a row sums to 1 at s = 1 and g = 1 with M a permutation, nearly so elsewhere).
# The fast path never forms the joint matrix: one fused call gives every row's own output and
# softmax normaliser, from which the image -> text blocks (small: text keys only) are formed; being
# linear in the values, an edit's image rows are its own output corrected by those blocks, plus
# (while s is on) one fused call of the source's image queries on the edit's image values.


@dataclass(frozen=True)
class JointPlan:
    """What one edit takes from the source at one joint site: ``cross`` = (P, q) on the text keys
    (or None) and ``share`` = s of the source's image -> image attention."""

    cross: tuple | None = None
    share: float = 0.0
    inject: tuple | None = None  # (queries, keys, values): which of the source's image rows replace the edit's

    @property
    def reads_source_attention(self) -> bool:
        """Whether the edit reads the source's attention (maps or self share), beyond injected inputs."""
        return self.cross is not None or self.share != 0.0


def _probs(q, k, scale):
    return torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)


def inject_qkv(q, k, v, image: slice, plans):
    """``q``, ``k`` and ``v`` of one half with each edit's image queries / keys / values replaced by
    the source's where its plan injects them (copies: the caller's tensors are untouched)."""
    injected = [False, False, False]
    for plan in plans:
        if plan is not None and plan.inject:
            injected = [a or b for a, b in zip(injected, plan.inject)]
    tensors = [t.clone() if copied else t for t, copied in zip((q, k, v), injected)]  # only what changes
    for e, plan in enumerate(plans, start=1):
        if plan is not None and plan.inject:
            for tensor, copy in zip(tensors, plan.inject):
                if copy:
                    tensor[e, :, image] = tensor[0, :, image]
    return tuple(tensors)


def _maps_or_share(plan) -> bool:
    return plan is not None and plan.reads_source_attention


def joint_fast(q, k, v, scale, text: slice, image: slice, plans, keep_maps: bool = True):
    """One half of the batch (source row first), fused: ``(outputs, post-edit image -> text maps)``
    (maps None where ``keep_maps`` is off and no plan needs them: injected inputs only).
    With ``A_s``, ``A_e`` the source's and the edit's image -> text blocks, ``E = A_s P + A_e q`` the
    edit's post-edit block (the store's map) and ``o_e`` the edit's own output on its image rows
    (``o_e = A_e V_txt + A_e[img, img] V_img``), the definition's image rows are
    ``(1 - s) o_e + (E - (1 - s) A_e) V_txt + s attn(Q_s[img], K_s, [0; V_img])``."""
    q, k, v = inject_qkv(q, k, v, image, plans)
    if not keep_maps and not any(_maps_or_share(p) for p in plans):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale), None
    out, lse = attention_with_lse(q, k, v, scale, rows=image)
    wide = torch.promote_types(q.dtype, torch.float32)
    maps = block_maps(q[:, :, image], k, text, scale, lse.to(wide))
    edited = maps.clone() if any(p is not None and p.cross is not None for p in plans) else maps
    for e, plan in enumerate(plans, start=1):
        if not _maps_or_share(plan):
            continue
        s, own = plan.share, maps[e]
        if plan.cross is not None:
            P, keep = (w.to(wide) for w in plan.cross)
            edited[e] = torch.baddbmm(own * keep, maps[0], P.expand(own.shape[0], *P.shape))
        # the text block's change, and the edit's own image block scaled by 1 - s, on the edit's values
        change = edited[e] - own if s == 0 else edited[e] - (1.0 - s) * own
        rows = torch.baddbmm(out[e, :, image].to(wide), change, v[e, :, text].to(wide), beta=1.0 - s)
        if s:
            image_values = torch.zeros_like(v[e : e + 1])
            image_values[:, :, image] = v[e : e + 1, :, image]
            shared = torch.nn.functional.scaled_dot_product_attention(q[:1, :, image], k[:1], image_values, scale=scale)
            rows.add_(shared[0].to(wide), alpha=s)
        out[e, :, image] = rows.to(out.dtype)
    return out, edited


def joint_explicit(q, k, v, scale, text: slice, image: slice, plans, edit_cross):
    """One half of the batch with materialised joint probabilities: the definition above, the oracle
    for :func:`joint_fast`. ``edit_cross(e, a_src, a_edit)`` is edit ``e``'s rule on the image -> text
    block. Returns the rows' outputs and their (post-edit) image -> text maps."""
    q, k, v = inject_qkv(q, k, v, image, plans)
    a_src = _probs(q[:1], k[:1], scale)[0]
    outs, maps = [a_src @ v[0]], [a_src[:, image, text]]
    for e, plan in enumerate(plans, start=1):
        a = _probs(q[e : e + 1], k[e : e + 1], scale)[0]
        if _maps_or_share(plan):
            a = a.clone()
            if text.stop > text.start:  # SD3.5's image-only attention has no text block
                a[:, image, text] = edit_cross(e, a_src[:, image, text], a[:, image, text])
            a[:, image, image] = plan.share * a_src[:, image, image] + (1.0 - plan.share) * a[:, image, image]
        outs.append(a @ v[e])
        maps.append(a[:, image, text])
    return torch.stack(outs), torch.stack(maps)
