"""Attention processors installed on a model's attention sites for one run, and the controller
that plans what each edit does at each site.

One :class:`P2PAttnProcessor` per UNet site (a :class:`~p2p_widgets.engine.joint.JointProcessor`
per SD3 / Flux site) forwards to a shared :class:`AttentionController`, which knows the current
evaluation, the batch layout and the edit rules, asks the rules' hooks once per site and step
(the plan: one ``EditPlan`` per edit) and hands the attention to pure kernels: ``kernels.py``
(UNet: ``fast`` on modified values, ``explicit`` the oracle) and ``joint.py`` (joint attention).

Batch layout per model call: ``[uncond x B ; cond x B]`` with classifier-free guidance in one batch,
or a single block in low-memory mode or with distilled guidance (``controller.block`` says which).
Only the conditional block is edited unless a rule edits both. :func:`installed` swaps processors
in and always restores the originals.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from ..errors import P2PError
from . import kernels
from .joint import (
    JointPlan,
    JointProcessor,
    attention_with_lse,
    block_maps,
    inject_qkv,
    joint_explicit,
    joint_fast,
)
from .rules import EditRule, LayerContext, lists_module


def feature_place(name: str) -> str:
    """Where a hooked UNet module (a rule's feature, e.g. ``up_blocks.1.resnets.1.conv2``) sits."""
    return "down" if name.startswith("down") else "mid" if name.startswith("mid") else "up"


class P2PAttnProcessor:
    """Follows diffusers' processor contract for a UNet attention site; the controller does the
    attention itself."""

    def __init__(self, controller: AttentionController, site):
        self.controller, self.site, self.name = controller, site, site.name
        self.place, self.is_cross = site.place, site.is_cross

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
        # hooks resolved once per run: a layer no hook can touch stays one fused call
        self._asks_qkv = any(_overrides(r, "self_qkv") for r in rules)
        self._asks_output = any(_overrides(r, "self_output") for r in rules)
        self._edits_uncond = any(r.branches == "both" for r in rules)
        self.feature_modules = tuple(dict.fromkeys(m for r in rules for m in r.feature_modules()))
        self.input_modules = tuple(dict.fromkeys(m for r in rules for m in r.input_modules()))
        self.layer_index: dict = {}  # processor name -> (index, n_layers) among layers of its kind
        self.image_tokens = 0  # joint attention: the run's image tokens (Flux's single blocks need it)
        self.controlled: set = set()  # (layer, "cross" | "self" | "feature") touched this step

    # -- bookkeeping -------------------------------------------------------------------------
    def index_layers(self, sites) -> None:
        """Number the self- and cross-attention sites in the order the UNet runs them (down, mid,
        up), as methods that count layers (MasaCtrl) do."""
        for cross in (False, True):
            kind = [s.name for s in sites if s.is_cross == cross]
            self.layer_index.update({name: (i, len(kind)) for i, name in enumerate(kind)})
        for rule in self.rules:
            rule.on_sites(list(sites))

    def grid_of(self, n_queries: int) -> tuple[int, int]:
        lh, lw = self.latent_size
        factor = math.isqrt(lh * lw // n_queries)
        return lh // factor, lw // factor

    def context(self, proc, grid) -> LayerContext:
        index, n_layers = self.layer_index.get(proc.name, (0, 0))
        return LayerContext(
            self.step,
            self.n_evals,
            proc.name,
            proc.place,
            grid,
            self.latent_size,
            proc.is_cross,
            self.coarsest,
            index,
            n_layers,
            depth=proc.site.depth,
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

    def _blocks(self, ctx):
        """``(context, offset of the source row)`` of each half of the batch that a rule may edit."""
        n = self.n_prompts
        halves = {"both": (("uncond", 0), ("cond", n)), "uncond": (("uncond", 0),), "cond": (("cond", 0),)}
        return [
            (ctx if name == "cond" else replace(ctx, block=name), off)
            for name, off in halves[self.block]
            if name == "cond" or self._edits_uncond
        ]

    # -- attention ---------------------------------------------------------------------------
    def attend(self, proc, q, k, v, scale):
        if self.n_prompts == 0:
            return kernels.sdpa(q, k, v, scale)
        ctx = self.context(proc, self.grid_of(q.shape[2]))
        n, done, cond_maps, cond_plans = self.n_prompts, {}, None, None
        for bctx, off in self._blocks(ctx):
            plans = self._plan(bctx, q, k, v, off, scale)
            rows = slice(off, off + n)
            if self.mode == "explicit":
                done[off], maps = kernels.explicit(q[rows], k[rows], v[rows], scale, plans, self._edit_cross(bctx))
            elif any(p is not None for p in plans):
                done[off], maps = kernels.fast(q[rows], k[rows], v[rows], scale, plans), None
            else:
                continue  # nothing injected in this half: it joins the plain fused call
            if bctx.block == "cond":
                cond_maps, cond_plans = maps, plans
        out = self._assemble(q, k, v, scale, done)
        if proc.is_cross and self.block != "uncond" and self.store is not None and self.store.wants(ctx.resolution):
            off = n if self.block == "both" else 0
            if cond_maps is None:
                plans = cond_plans or [None] * (n - 1)
                cond_maps = kernels.edited_maps(q[off : off + n], k[off : off + n], scale, plans)
            self.store.add(ctx.resolution, cond_maps.mean(dim=1), place=proc.place, heads=cond_maps)
        return out

    def attend_joint(self, proc, q, k, v, scale, text: slice, image: slice):
        """One joint-attention call (SD3 / Flux), ``(B, heads, tokens, dim)`` with the text and image
        tokens at ``text`` / ``image``: the rules' P2P on joint attention (``joint.py``), fused or
        materialised; the conditional half's (post-edit) image -> text maps go to the store at the
        token grid."""
        n = self.n_prompts
        if n == 0:
            return kernels.sdpa(q, k, v, scale)
        grid = self.grid_of(image.stop - image.start)
        ctx = self.context(proc, grid)
        stores = self.store is not None and self.block != "uncond" and text.stop > text.start and self.store.wants(grid)
        done, cond_maps, cond_plans = {}, None, None
        for bctx, off in self._blocks(ctx):
            plans = self._joint_plans(bctx, v, text)
            if all(p is None for p in plans):
                continue
            rows = slice(off, off + n)
            if self.mode == "explicit":
                cross_ctx = replace(bctx, is_cross=True)

                def edit_cross(e, a_src, a_edit, ctx=cross_ctx):
                    return self.rules[e - 1].edit_cross(ctx, a_src, a_edit)

                done[off], maps = joint_explicit(q[rows], k[rows], v[rows], scale, text, image, plans, edit_cross)
            else:
                keep = stores and bctx.block == "cond"
                done[off], maps = joint_fast(q[rows], k[rows], v[rows], scale, text, image, plans, keep)
            if bctx.block == "cond":
                cond_maps, cond_plans = maps, plans
        lse = None
        if stores and not done and self.mode == "fast":  # plain attention: its normaliser comes with it
            out, lse = attention_with_lse(q, k, v, scale)
        else:
            out = self._assemble(q, k, v, scale, done)
        if stores:
            rows = slice(n, 2 * n) if self.block == "both" else slice(0, n)
            if cond_maps is None:  # the conditional half kept its own attention
                row_lse = None if lse is None else lse[rows][:, :, image]
                cond_maps = block_maps(q[rows][:, :, image], k[rows], text, scale, row_lse)
            self.store.add(grid, cond_maps.float().mean(dim=1), place=proc.site.place, heads=cond_maps.float())
            if self.store.text_to_image:
                self._store_text_image(grid, q[rows], k[rows], v[rows], scale, text, image, cond_plans, lse, rows)
        return out

    def _store_text_image(self, grid, q, k, v, scale, text, image, plans, lse, rows):
        """The conditional half's text queries on the image keys (after any injected image keys:
        the edit's text rows attend to them), for ``AttentionStore(text_to_image=True)``."""
        if plans is not None:
            q, k, _ = inject_qkv(q, k, v, image, plans)
        row_lse = None if lse is None or plans is not None else lse[rows][:, :, text]
        maps = block_maps(q[:, :, text], k, image, scale, row_lse)
        self.store.add_text_image(grid, maps.float().mean(dim=1))

    def _joint_plans(self, ctx, v, text: slice) -> list:
        """One :class:`JointPlan` (or None: the edit keeps its own attention) per edit of this half."""
        plans, cross_ctx, n_text = [], replace(ctx, is_cross=True), text.stop - text.start
        for rule in self.rules:
            if ctx.block == "uncond" and rule.branches != "both":
                plans.append(None)
                continue
            cross = rule.cross_weights(cross_ctx) if n_text else None  # SD3.5's image-only attention has no text
            share, inject = float(rule.self_weight(ctx)), rule.joint_kv(ctx)
            if cross is not None:
                if cross[0].shape[-1] != n_text:
                    raise P2PError(
                        f"{type(rule).__name__}'s token map is {cross[0].shape[-1]} long but {ctx.layer} reads "
                        f"{n_text} text tokens: the prompts were tokenized for another text length"
                    )
                cross = (self._device(cross[0], v), self._device(cross[1], v))
                self.controlled.add((ctx.layer, "cross"))
            if share or inject:
                self.controlled.add((ctx.layer, "self"))
            plans.append(None if cross is None and not share and not inject else JointPlan(cross, share, inject))
        return plans

    def _assemble(self, q, k, v, scale, done: dict):
        """The whole batch: the halves computed with edits (``done``: offset -> rows), the rest in one
        plain call (fused, or materialised on the explicit path)."""
        plain = kernels.sdpa if self.mode == "fast" else (lambda q, k, v, scale: kernels.probs(q, k, scale) @ v)
        if not done:
            return plain(q, k, v, scale)
        n = self.n_prompts
        out = torch.empty(*q.shape[:3], v.shape[-1], dtype=v.dtype, device=v.device)
        for off in range(0, q.shape[0], n):
            rows = slice(off, off + n)
            out[rows] = done[off] if off in done else plain(q[rows], k[rows], v[rows], scale)
        return out

    def _plan(self, ctx, q, k, v, off, scale) -> list:
        """One :class:`EditPlan` (or None: keeps its own attention) per edit of this half."""
        plans = []
        src = (q[off : off + 1], k[off : off + 1], v[off : off + 1])
        for e, rule in enumerate(self.rules, start=off + 1):
            if ctx.block == "uncond" and rule.branches != "both":
                plans.append(None)
                continue
            cross, share, qkv, output = None, 0.0, None, None
            if ctx.is_cross:
                w = rule.cross_weights(ctx)
                if w is not None:
                    cross = (self._device(w[0], v), self._device(w[1], v), rule.keeps_own(ctx, w))
            else:
                share = float(rule.self_weight(ctx))
                edit = (q[e : e + 1], k[e : e + 1], v[e : e + 1])
                if self._asks_qkv:
                    qkv = rule.self_qkv(ctx, src, edit)
                if self._asks_output:
                    output = rule.self_output(ctx, src, qkv or edit, self._attention(scale), self._maps(e - off))
            if output is not None:
                plans.append(kernels.EditPlan(output=output))
                self.controlled.add((ctx.layer, "self"))
                continue
            plan = None if cross is None and share == 0.0 and qkv is None else kernels.EditPlan(cross, share, qkv)
            if plan is not None:
                self.controlled.add((ctx.layer, "cross" if ctx.is_cross else "self"))
                if share and qkv is not None and qkv[2].shape[2] != k.shape[2]:
                    raise P2PError(
                        f"{type(rule).__name__} at {ctx.layer}: a self-attention share needs the source's "
                        f"{k.shape[2]} keys, but its self_qkv hook gives {qkv[2].shape[2]}"
                    )
            plans.append(plan)
        return plans

    def _edit_cross(self, ctx):
        """Each edit's rule on its materialised cross maps (explicit path), or None on self layers."""
        if not ctx.is_cross:
            return None

        def edit_cross(e, a_src, a_edit):
            rule = self.rules[e - 1]
            return rule.edit_cross(ctx, a_src, a_edit) if ctx.block == "cond" or rule.branches == "both" else None

        return edit_cross

    def _attention(self, scale):
        """What a ``self_output`` hook attends with: ``attend(q, k, v, mask=None)`` (``mask``: added to
        the logits, e.g. a large negative number on keys to leave out), fused on the fast path and
        materialised on the explicit one."""
        if self.mode == "fast":
            return lambda q, k, v, mask=None: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        return lambda q, k, v, mask=None: (
            torch.softmax(q @ k.transpose(-1, -2) * scale + (0 if mask is None else mask), dim=-1) @ v
        )

    def _maps(self, row: int):
        """``(source, edit row)`` cross-attention maps of this step so far, ``(h, w, L)`` each, at the
        stored grid nearest latent / 4 (the 16 x 16 of SD at 512 px), or None before any."""
        if self.store is None or not self.store.running:
            return None
        side = min(self.store.running, key=lambda g: (abs(max(g) - max(self.latent_size) / 4), -max(g)))
        maps = self.store.running[side]
        return maps[0], maps[row]

    # -- module outputs (features) -------------------------------------------------------------
    def _feature_context(self, name: str, output: torch.Tensor) -> LayerContext:
        grid = tuple(output.shape[-2:])
        return LayerContext(
            self.step,
            self.n_evals,
            name,
            feature_place(name),
            grid,
            self.latent_size,
            False,
            self.coarsest,
            kind="feature",
        )

    def edit_features(self, name: str, output: torch.Tensor) -> torch.Tensor:
        """A hooked module's output with each rule's ``edit_feature`` applied to its edit rows."""
        ctx = self._feature_context(name, output)
        for bctx, off in self._blocks(ctx):
            for e, rule in enumerate(self.rules, start=off + 1):
                if (bctx.block == "uncond" and rule.branches != "both") or name not in rule.feature_modules():
                    continue
                new = rule.edit_feature(bctx, name, output[off : off + 1], output[e : e + 1])
                if new is not None:
                    output[e : e + 1] = new
                    self.controlled.add((name, "feature"))
        return output

    def edit_from_inputs(self, name: str, module, inputs: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """A hooked module's output with each rule's ``edit_from_inputs`` (the edit row's output
        from the module's input on the source row and on the edit row) written to its edit rows."""
        ctx = self._feature_context(name, output)
        for bctx, off in self._blocks(ctx):
            for e, rule in enumerate(self.rules, start=off + 1):
                if (bctx.block == "uncond" and rule.branches != "both") or not lists_module(
                    rule.input_modules(), name, module
                ):
                    continue
                new = rule.edit_from_inputs(bctx, name, module, inputs[off : off + 1], inputs[e : e + 1])
                if new is not None:
                    output[e : e + 1] = new
                    self.controlled.add((name, "feature"))
        return output


def _overrides(rule, method: str) -> bool:
    return getattr(type(rule), method) is not getattr(EditRule, method)


@contextlib.contextmanager
def installed(model, controller: AttentionController):
    """Install P2P processors on every attention site of ``model`` (a backend) and hooks on the
    modules the rules read; restore the originals on exit, also after an exception or a
    KeyboardInterrupt."""
    unet, sites = model.denoiser, model.sites()
    joint = any(s.kind not in ("self", "cross") for s in sites)
    if joint:
        _refuse_joint_rules(model, controller)  # SD3 / Flux: maps are stored, rules are not there yet
        lh, lw = controller.latent_size
        controller.image_tokens = (lh // model.patch) * (lw // model.patch)
    else:
        joint_only = sorted({type(r).__name__ for r in _leaves(controller.rules) if _overrides(r, "joint_kv")})
        if joint_only:
            raise P2PError(f"{', '.join(joint_only)} edits joint attention: run it on SD3 or Flux, not on a UNet")
    original = dict(unet.attn_processors)
    hooks = []
    try:
        modules = [(name, _module(unet, name)) for name in controller.feature_modules]
        controller.index_layers(sites)
        make = JointProcessor if joint else P2PAttnProcessor
        unet.set_attn_processor({s.name: make(controller, s) for s in sites})
        for name, module in modules:
            hooks.append(
                module.register_forward_hook(lambda m, args, out, name=name: controller.edit_features(name, out))
            )
        for name, module in _input_modules(unet, controller.input_modules):
            hooks.append(
                module.register_forward_hook(
                    lambda m, args, out, name=name: controller.edit_from_inputs(name, m, args[0], out)
                )
            )
        yield controller
    finally:
        for hook in hooks:
            hook.remove()
        unet.set_attn_processor(original)


def _refuse_joint_rules(model, controller):
    """P2P's rules (Replace, Refine, Reweight, Combines of them) run on joint attention; rules that
    change self-attention's queries, keys and values, its output or a module's features are written
    for UNets: name them before any step."""
    unet_only = sorted({type(r).__name__ for r in _leaves(controller.rules) if _unet_only(r)})
    if unet_only:
        raise P2PError(
            f"{', '.join(unet_only)} cannot run on {model.family}: it edits UNet self-attention or features; "
            "on SD3 and Flux use Prompt-to-Prompt (word swap, refine, reweight, LocalBlend)"
        )


def _leaves(rules):
    """The rules inside ``rules`` that contain none (a Combine forwards every hook of its parts, a
    Reweight its base's: what they do is what their leaves do)."""
    return [inner for rule in rules for inner in rule.walk() if not inner.children()]


def _unet_only(rule) -> bool:
    hooks = ("self_qkv", "self_output", "edit_feature", "edit_from_inputs")
    return any(_overrides(rule, h) for h in hooks) or bool(rule.feature_modules()) or bool(rule.input_modules())


def _input_modules(unet, entries) -> list:
    """``(name, module)`` of each module the rules' ``input_modules()`` entries name (a module
    class: every module of that class, in ``named_modules`` order)."""
    if not entries:
        return []
    found = {name: _module(unet, name) for name in entries if isinstance(name, str)}
    classes = tuple(e for e in entries if not isinstance(e, str))
    if classes:
        found.update((name, m) for name, m in unet.named_modules() if isinstance(m, classes) and name not in found)
    return list(found.items())


def _module(unet, name: str):
    try:
        return unet.get_submodule(name)
    except AttributeError:
        raise P2PError(
            f"a rule reads the UNet module {name!r}, which this model does not have "
            "(module names are as in unet.named_modules(), e.g. 'up_blocks.1.resnets.1.conv2')"
        ) from None
