"""The UNet attention kernels: pure functions of one half of the batch (source row first) and one
:class:`EditPlan` per edit, planned by the controller (``processors.py``).

- :func:`fast`: fused attention (``scaled_dot_product_attention``) on modified values; no n x n
  matrix is formed. The source and every map read through its attention share one call, values
  concatenated along the feature axis: ``attn(Q_src, K_src, [V_src | P V_e | s V_e ...])``.
- :func:`explicit`: the probabilities materialised as the reference computes them: the oracle for
  :func:`fast` and the path for rules written on explicit maps.

What an edit row does, in precedence (one place: :meth:`EditPlan.row_qkv` and the order of the
branches below): a ``self_output`` hook's whole output wins; else its queries, keys and values
(its own, or a ``self_qkv`` hook's) read the source's map through ``cross`` weights (cross
layers) or a ``share`` of the source's self-attention (self layers), plus what it keeps of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def sdpa(q, k, v, scale):
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


def probs(q, k, scale):
    return torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)


@dataclass(frozen=True)
class EditPlan:
    """What one edit does at one layer: cross weights ``(P, q, keeps_own)``, a share ``s`` of the
    source's self-attention, and/or its own self-attention ``(q, k, v)`` replaced by a hook."""

    cross: tuple | None = None
    share: float = 0.0
    qkv: tuple | None = None
    output: torch.Tensor | None = None  # the row's whole output, from a ``self_output`` hook

    @staticmethod
    def row_qkv(plan, q, k, v, e: int) -> tuple:
        """Edit ``e``'s queries, keys and values: a ``self_qkv`` hook's, or its own rows."""
        return (q[e : e + 1], k[e : e + 1], v[e : e + 1]) if plan is None or plan.qkv is None else plan.qkv


def fast(q, k, v, scale, plans):
    """One half of the batch, fused (see the module docstring)."""
    out = torch.empty(*q.shape[:3], v.shape[-1], dtype=v.dtype, device=v.device)
    blocks, own = [v[:1]], []  # value blocks read through the source's attention; the edits' own calls
    for e, plan in enumerate(plans, start=1):
        if plan is not None and plan.output is not None:
            out[e] = plan.output[0]
            continue
        qe, ke, ve = EditPlan.row_qkv(plan, q, k, v, e)
        shared = None
        if plan is not None and plan.cross is not None:
            P, qv, keeps_own = plan.cross
            blocks.append(torch.matmul(P, ve))  # (A_src P) V = A_src (P V)
            shared, ve = len(blocks) - 1, ve * qv[:, None] if keeps_own else None
        elif plan is not None and plan.share:
            blocks.append(ve * plan.share)
            shared, ve = len(blocks) - 1, ve * (1.0 - plan.share) if plan.share != 1.0 else None
        own.append((e, (qe, ke, ve), shared, plan is not None and plan.qkv is not None))
    both = sdpa(q[:1], k[:1], torch.cat(blocks, dim=-1), scale)
    d = v.shape[-1]
    out[0] = both[0, ..., :d]
    own_out = _own(q, k, scale, own)
    for e, _, shared, _ in own:
        total = 0 if shared is None else both[0, ..., shared * d : (shared + 1) * d]
        out[e] = total + own_out[e] if e in own_out else total
    return out


def _own(q, k, scale, own) -> dict:
    """The edits' own attention: one fused call for the rows that keep their queries and keys (a
    slice when contiguous: list indexing copies q and k), one call per row a hook changed."""
    plain = [(e, qkv[2]) for e, qkv, _, hooked in own if qkv[2] is not None and not hooked]
    found = {}
    if plain:
        rows = [e for e, _ in plain]
        index = slice(rows[0], rows[-1] + 1) if rows == list(range(rows[0], rows[-1] + 1)) else rows
        found.update(zip(rows, sdpa(q[index], k[index], torch.cat([val for _, val in plain]), scale)))
    for e, (qe, ke, ve), _, hooked in own:
        if hooked and ve is not None:
            found[e] = sdpa(qe, ke, ve, scale)[0]
    return found


def explicit(q, k, v, scale, plans, edit_cross):
    """One half of the batch with materialised probabilities (see the module docstring).
    ``edit_cross(e, a_src, a_edit)``: edit ``e``'s rule on its cross maps, or None on self layers.
    Returns the rows' outputs and, on cross layers, their post-edit maps."""
    a_src = probs(q[:1], k[:1], scale)[0]
    outs, maps = [a_src @ v[0]], [a_src]
    for e, plan in enumerate(plans, start=1):
        if plan is not None and plan.output is not None:
            outs.append(plan.output[0])
            maps.append(None)
            continue
        qe, ke, ve = EditPlan.row_qkv(plan, q, k, v, e)
        a = probs(qe, ke, scale)[0]
        edited = edit_cross(e, a_src, a) if edit_cross is not None else None
        if edited is not None:
            a = edited
        elif plan is not None and plan.share:
            a = plan.share * a_src + (1.0 - plan.share) * a
        outs.append(a @ ve[0])
        maps.append(a)
    return torch.stack(outs), (torch.stack(maps) if edit_cross is not None else None)


def edited_maps(q, k, scale, plans):
    """Post-edit cross maps of one half from its own maps (fast path: n x L maps are small)."""
    maps = probs(q, k, scale)
    edited = [maps[0]]
    for e, plan in enumerate(plans, start=1):
        edited.append(
            maps[e] if plan is None or plan.cross is None else maps[0] @ plan.cross[0] + maps[e] * plan.cross[1]
        )
    return torch.stack(edited)
