"""The sampler: source and edited prompts denoised together from one noise draw, with P2P.

``Editor(pipe).edit(source, targets, ...)`` runs the source prompt and one or more edited prompts
in one batch (classifier-free guidance in the same batch, or in two passes with
``low_memory=True``), stores cross-attention at every UNet evaluation and injects it through the
edit rules. Each evaluation yields a :class:`StepEvent` to the callback (progress bars, the
playback widget, user code); a set ``stop_event`` ends the run cleanly after the current step.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import P2PError
from .mapper import Mapper, align
from .processors import AttentionController, installed
from .prompts import Prompt
from .rules import EditRule, LocalBlend, Refine, Replace, Reweight
from .schedule import AlphaSchedule, _to_step
from .store import AttentionStore


@dataclass
class StepEvent:
    step: int  # UNet evaluation index (0 = noisiest)
    n_evals: int
    timestep: int
    latents: torch.Tensor  # (B, C, h, w) after this step
    x0: torch.Tensor  # (B, C, h, w) the scheduler's prediction of the clean latents
    attention: dict  # grid (h, w) -> (B, h, w, L) this step's head/layer-averaged cross maps
    editor: Editor = field(repr=False, default=None)

    def preview(self) -> np.ndarray:
        """(B, H, W, 3) uint8 images of the x0 prediction (cheap: see ``Editor.preview``)."""
        return self.editor.preview(self.x0)


@dataclass
class EditResult:
    prompts: list[Prompt]
    images: list  # PIL images, source first
    store: AttentionStore
    latents: torch.Tensor
    spec: dict  # JSON-able description of the run (prompts, seed, steps, guidance, mappers, schedule)
    baseline: list | None = None  # fixed-seed images without injection (same noise), source first
    stopped: bool = False
    rules: list = field(default_factory=list, repr=False)

    @property
    def source_image(self):
        return self.images[0]

    @property
    def edit_images(self):
        return self.images[1:]


def _check_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise P2PError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


@dataclass
class TextConditioning:
    """What the UNet reads from the prompts: token states, plus SDXL's pooled text and size ids."""

    hidden: torch.Tensor  # (B, L, D)
    added: dict | None = None  # SDXL: {"text_embeds": (B, P), "time_ids": (B, 6)}

    def unet_kwargs(self) -> dict:
        kwargs = {"encoder_hidden_states": self.hidden}
        if self.added is not None:
            kwargs["added_cond_kwargs"] = self.added
        return kwargs

    def with_hidden(self, hidden: torch.Tensor) -> TextConditioning:
        """The same extra conditioning (broadcast to ``hidden``'s batch) with other token states."""
        added = None if self.added is None else {k: v[:1].expand(len(hidden), -1) for k, v in self.added.items()}
        return TextConditioning(hidden, added)

    def with_pooled(self, pooled: torch.Tensor | None) -> TextConditioning:
        if pooled is None or self.added is None:
            return self
        pooled = pooled.to(self.added["text_embeds"]).expand(len(self.hidden), -1)
        return TextConditioning(self.hidden, {**self.added, "text_embeds": pooled})

    @staticmethod
    def cat(first: TextConditioning, second: TextConditioning) -> TextConditioning:
        added = None if first.added is None else {k: torch.cat([first.added[k], second.added[k]]) for k in first.added}
        return TextConditioning(torch.cat([first.hidden, second.hidden]), added)


class Editor:
    """Prompt-to-Prompt on a diffusers Stable Diffusion pipeline (SD 1.x / 2.x, SDXL, the pocket model)."""

    def __init__(self, pipe, device=None):
        for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            if getattr(pipe, part, None) is None:
                raise P2PError(f"the pipeline has no {part}: Editor needs a Stable Diffusion pipeline")
        self.is_xl = getattr(pipe, "text_encoder_2", None) is not None
        if self.is_xl:
            _check_xl(pipe)
        self.pipe = pipe
        if device is not None:
            pipe.to(device)
        self.unet, self.vae = pipe.unet, pipe.vae
        self.tokenizer, self.text_encoder = pipe.tokenizer, pipe.text_encoder
        self.text_encoders = [(pipe.tokenizer, pipe.text_encoder)]
        if self.is_xl:
            self.text_encoders.append((pipe.tokenizer_2, pipe.text_encoder_2))
        self.vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.attention_sides = self._attention_sides()

    # -- model facts ---------------------------------------------------------------------------
    @property
    def device(self):
        return self.unet.device

    @property
    def dtype(self):
        return self.unet.dtype

    @property
    def default_size(self) -> int:
        return self.unet.config.sample_size * self.vae_factor

    def _attention_sides(self, latent_side: int | None = None) -> list[int]:
        """Query grid sides of the UNet's attention layers (for a latent of ``latent_side``)."""
        side = latent_side or self.unet.config.sample_size
        sides = {side // 2**i for i, blk in enumerate(self.unet.down_blocks) if getattr(blk, "attentions", None)}
        if getattr(self.unet.mid_block, "attentions", None):
            sides.add(side // 2 ** (len(self.unet.down_blocks) - 1))
        return sorted(sides)

    def prompt(self, text) -> Prompt:
        return text if isinstance(text, Prompt) else Prompt.from_text(text, self.tokenizer)

    @property
    def embedding_width(self) -> int:
        """Width of the token states the UNet attends to (SDXL: both encoders' widths added)."""
        return sum(enc.config.hidden_size for _, enc in self.text_encoders)

    @torch.no_grad()
    def encode(self, prompts: list[Prompt]) -> torch.Tensor:
        """(B, L, D) token states: the text encoder's last layer (SD), or SDXL's two penultimate layers."""
        return self._encode(prompts)[0]

    def _encode(self, prompts):
        if not self.is_xl:
            ids = self._ids(self.tokenizer, prompts)
            return self.text_encoder(ids.to(self.text_encoder.device))[0].to(self.dtype), None
        hidden, pooled = [], None
        for tokenizer, encoder in self.text_encoders:  # as diffusers' SDXL pipeline encodes prompts
            out = encoder(self._ids(tokenizer, prompts).to(encoder.device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]  # the second encoder's projected text embedding
        return torch.cat(hidden, dim=-1).to(self.dtype), pooled.to(self.dtype)

    @staticmethod
    def _ids(tokenizer, prompts):
        return tokenizer([p.text for p in prompts], padding="max_length", max_length=prompts[0].max_length,
                         truncation=True, return_tensors="pt").input_ids

    @torch.no_grad()
    def conditioning(self, prompts: list[Prompt], size=None, uncond: bool = False) -> TextConditioning:
        """What the UNet reads for ``prompts`` (``uncond``: the empty prompt, once per prompt) at ``size``.

        SDXL follows its pipeline's defaults: the unconditional embeddings are zeros when the
        pipeline says ``force_zeros_for_empty_prompt``; the size ids say original = target = ``size``,
        crop (0, 0).
        """
        if uncond:
            prompts = [self.prompt("")] * len(prompts)
        hidden, pooled = self._encode(prompts)
        if not self.is_xl:
            return TextConditioning(hidden)
        if uncond and self.pipe.config.get("force_zeros_for_empty_prompt", True):
            hidden, pooled = torch.zeros_like(hidden), torch.zeros_like(pooled)
        h, w = size or (self.default_size, self.default_size)
        time_ids = torch.tensor([[h, w, 0, 0, h, w]], device=self.device, dtype=self.dtype).expand(len(prompts), -1)
        return TextConditioning(hidden, {"text_embeds": pooled, "time_ids": time_ids})

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(B, H, W, 3) uint8 images from latents."""
        with self.safe_vae() as vae:
            images = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    @contextlib.contextmanager
    def safe_vae(self):
        """Context giving the VAE, in fp32 for the duration when it is SDXL's fp16 VAE, which overflows
        in fp16 (its config says ``force_upcast``), as diffusers' SDXL pipeline does."""
        vae = self.vae
        upcast = self.is_xl and vae.dtype == torch.float16 and vae.config.get("force_upcast", False)
        if upcast:
            vae.to(torch.float32)
        try:
            yield vae
        finally:
            if upcast:
                vae.to(torch.float16)

    # Linear latent -> RGB approximation for SD's VAE (least squares over decoded images; a preview,
    # not a decode): used where a full decode per step would cost too much.
    _RGB = torch.tensor([[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]])

    @torch.no_grad()
    def preview(self, x0: torch.Tensor, max_decode_side: int = 32) -> np.ndarray:
        """Images of x0 predictions: a real decode for small latents, the linear map above otherwise."""
        if max(x0.shape[-2:]) <= max_decode_side or x0.shape[1] != 4:
            return self.decode(x0)
        rgb = torch.einsum("bchw,cr->bhwr", x0.float().cpu(), self._RGB)
        return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    # -- building an edit ------------------------------------------------------------------------
    def build_rules(self, source: Prompt, targets: list[Prompt], n_evals: int, *, kind="auto", mappers=None,
                    cross=0.8, self_attn=0.4, words=None, reweight=None, blend_start=0.2):
        """One rule per target from the keyword arguments of :meth:`edit`."""
        schedule_args = dict(cross=cross, self_attn=self_attn, words=words, blend_start=blend_start)
        mappers = _per_target("mappers", mappers, len(targets))
        reweights = _per_target("reweight", reweight, len(targets))
        rules = []
        for target, mapper, values in zip(targets, mappers, reweights):
            if mapper is None:
                mapper = align(source, target, self.tokenizer, kind)
            elif not isinstance(mapper, Mapper):
                raise P2PError(f"mappers must be Mapper objects, got {type(mapper).__name__}")
            elif mapper.source.text != source.text or mapper.target.text != target.text:
                raise P2PError(f"mapper is for {mapper.source.text!r} -> {mapper.target.text!r}, "
                               f"not {source.text!r} -> {target.text!r}")
            schedule = AlphaSchedule.build(n_evals, **schedule_args)
            rule = (Refine if mapper.kind == "refine" else Replace)(mapper, schedule)
            rules.append(Reweight(rule, values) if values else rule)
        return rules

    def edit(self, source, targets=(), *, seed: int = 0, steps: int = 50, guidance: float = 7.5, kind="auto",
             mappers=None, cross=0.8, self_attn=0.4, words=None, reweight=None, blend=None, rules=None,
             mode: str = "fast", low_memory: bool = False, baseline: bool = False, store=None, callback=None,
             stop_event=None, latents=None, uncond_embeddings=None, inversion=None, height=None, width=None,
             scheduler=None):
        """Edit ``source`` into each of ``targets`` (a string or a list of strings).

        - ``kind``/``mappers``: how target tokens map to source tokens (``align`` by default);
        - ``cross``, ``self_attn``, ``words``: alpha windows (see :class:`AlphaSchedule`);
        - ``reweight``: ``{word: scale}`` for every target, or a list with one dict per target;
        - ``blend``: a :class:`LocalBlend` or its words; ``rules``: your own rules (one per target),
          replacing the ones built from the arguments above;
        - ``mode``: ``"fast"`` (fused attention) or ``"explicit"`` (materialised maps, the oracle);
        - ``baseline``: also render the fixed-seed images without injection;
        - ``callback(event)``: called with a :class:`StepEvent` after every UNet evaluation;
        - ``stop_event``: a ``threading.Event``; when set, the run stops after the current step;
        - ``latents``/``uncond_embeddings``: start latent and per-step unconditional embeddings
          instead of a seed; ``inversion``: an object with ``latents`` (the trajectory, x_T last),
          ``uncond_embeddings`` (or None) and ``steps`` (an inversion result) sets both and
          requires the same number of steps.
        """
        if inversion is not None:
            if hasattr(inversion, "check"):
                inversion.check(self)  # model, latent shape, embedding width, prediction type, timesteps
            if steps != inversion.steps:
                raise P2PError(f"the inversion used {inversion.steps} steps but the edit asks for {steps}: "
                               "edit with the inversion's steps (the timesteps must match)")
            latents, uncond_embeddings = inversion.latents[-1], inversion.uncond_embeddings
        uncond_pooled = getattr(inversion, "uncond_pooled", None)  # SDXL: the inversion's pooled uncond text
        source = self.prompt(source)
        if not source.text.strip():
            raise P2PError("the source prompt is empty")
        targets = [self.prompt(t) for t in ([targets] if isinstance(targets, (str, Prompt)) else list(targets))]
        run = self._prepare(steps, guidance, seed, height, width, scheduler, latents, uncond_embeddings, 1 + len(targets))
        run["uncond_pooled"] = uncond_pooled
        if rules is None:
            rules = self.build_rules(source, targets, run["n_evals"], kind=kind, mappers=mappers, cross=cross,
                                     self_attn=self_attn, words=words, reweight=reweight,
                                     blend_start=blend.start if isinstance(blend, LocalBlend) else 0.2)
        else:
            rules = list(rules)
            if len(rules) != len(targets) or not all(isinstance(r, EditRule) for r in rules):
                raise P2PError(f"rules must be a list of {len(targets)} EditRule objects (one per target)")
        if blend is not None and not isinstance(blend, LocalBlend):
            blend = LocalBlend(blend)
        prompts = [source, *targets]
        result = self._sample(prompts, rules, run, mode=mode, low_memory=low_memory, store=store, blend=blend,
                              callback=callback, stop_event=stop_event)
        if inversion is not None and hasattr(inversion, "describe"):
            result.spec["inversion"] = inversion.describe()
        if baseline and not result.stopped:
            plain = self._sample(prompts, [EditRule()] * len(targets), run, mode="fast", low_memory=low_memory,
                                 store=AttentionStore(keep_steps=False), blend=None)
            result.baseline = plain.images
        return result

    def invert(self, image, prompt, method: str = "null-text", **kwargs):
        """Invert a real image (PIL, array or path) for editing: see :func:`p2p_widgets.inversion.invert`.
        Edit it with ``edit(prompt, targets, inversion=result, steps=result.steps, guidance=result.guidance)``
        (null-text embeddings are optimised for that guidance)."""
        from .inversion import invert

        return invert(self, image, prompt, method=method, **kwargs)

    def sample(self, prompt, **kwargs) -> EditResult:
        """Generate one prompt (no edit) while storing its attention: ``result.images[0]``."""
        return self.edit(prompt, [], **kwargs)

    def _prepare(self, steps, guidance, seed, height, width, scheduler, latents, uncond_embeddings, batch):
        from diffusers import DDIMScheduler

        sched = scheduler or DDIMScheduler.from_config(self.pipe.scheduler.config)
        _check_int("steps", steps, 1, sched.config.num_train_timesteps)
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
            raise P2PError(f"guidance must be a finite number >= 0, got {guidance!r}")
        height, width = height or self.default_size, width or self.default_size
        for name, v in (("height", height), ("width", width)):
            _check_int(name, v, 8, 4096)
            if v % (self.vae_factor * 2 ** (len(self.unet.down_blocks) - 1)):
                raise P2PError(f"{name} {v} must be a multiple of {self.vae_factor * 2 ** (len(self.unet.down_blocks) - 1)}")
        sched.set_timesteps(steps, device=self.device)
        shape = (1, self.unet.config.in_channels, height // self.vae_factor, width // self.vae_factor)
        latents_given = latents
        if latents is None:
            _check_int("seed", seed, 0, 2**63 - 1)
            noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))  # same on every device
            latents = noise * sched.init_noise_sigma
        elif not torch.is_tensor(latents) or tuple(latents.shape[-3:]) != shape[1:] or latents.ndim not in (3, 4) \
                or (latents.ndim == 4 and latents.shape[0] not in (1, batch)):
            raise P2PError(f"latents must be a tensor of shape {shape} (or one per prompt), "
                           f"got {tuple(getattr(latents, 'shape', ()))}")
        n_evals = len(sched.timesteps)
        if uncond_embeddings is not None and len(uncond_embeddings) != n_evals:
            raise P2PError(f"uncond_embeddings has {len(uncond_embeddings)} entries but the run has {n_evals} "
                           "steps: edit with the inversion's number of steps")
        start = "seed" if latents_given is None else "latents"  # a rerun from the seed needs a seed start
        return dict(scheduler=sched, n_evals=n_evals, guidance=float(guidance), seed=seed, steps=steps, start=start,
                    latents=latents.reshape(-1, *shape[1:]).to(self.device, self.dtype).expand(batch, *shape[1:]).clone(),
                    uncond=uncond_embeddings, size=(height, width))

    # -- the loop ------------------------------------------------------------------------------
    @torch.no_grad()
    def _sample(self, prompts, rules, run, *, mode, low_memory, store, blend, callback=None, stop_event=None):
        sched, n_evals, guidance = run["scheduler"], run["n_evals"], run["guidance"]
        latents = run["latents"]
        latent_hw = tuple(latents.shape[-2:])
        sides = self._attention_sides(latent_hw[0])
        store = AttentionStore() if store is None else store
        blend_state = self._blend_state(blend, prompts, latent_hw, sides, store, n_evals)
        controller = AttentionController(len(prompts), rules, store, mode, latent_hw, min(sides))
        controller.n_evals = n_evals
        cond = self.conditioning(prompts, run["size"])
        use_cfg = guidance > 1.0
        uncond = self.conditioning(prompts, run["size"], uncond=True) if use_cfg else None
        pooled = run["uncond_pooled"]
        stopped = False
        for rule in rules:
            rule.prepare(self.device, self.dtype)
        with installed(self.unet, controller):
            timestep_values = sched.timesteps.tolist()  # host copies: int(t) per step would sync a GPU
            for i, t in enumerate(sched.timesteps):
                controller.step = i
                if use_cfg and run["uncond"] is not None:
                    hidden = run["uncond"][i].to(self.device, self.dtype).expand(len(prompts), -1, -1)
                    uncond = uncond.with_hidden(hidden)
                    uncond = uncond.with_pooled(None if pooled is None else pooled[i].to(self.device, self.dtype))
                eps = self._predict(controller, latents, t, cond, uncond, guidance, low_memory)
                step_maps = controller.end_step()
                out = sched.step(eps, t, latents)
                latents = out.prev_sample
                if blend_state is not None and i >= blend_state["start"]:
                    latents = self._local_blend(blend, blend_state, latents, store)
                if callback is not None:
                    callback(StepEvent(i, n_evals, timestep_values[i], latents, out.pred_original_sample, step_maps, self))
                if stop_event is not None and stop_event.is_set():
                    stopped = True
                    break
        from PIL import Image

        images = [Image.fromarray(a) for a in self.decode(latents)]
        spec = self._spec(prompts, rules, run, mode, blend)
        return EditResult(prompts, images, store, latents, spec, stopped=stopped, rules=rules)

    def _predict(self, controller, latents, t, cond, uncond, guidance, low_memory):
        if uncond is None:  # no guidance
            controller.block = "cond"
            return self.unet(latents, t, **cond.unet_kwargs()).sample
        if low_memory:  # two passes: uncond (never edited), then cond
            controller.block = "uncond"
            eps_u = self.unet(latents, t, **uncond.unet_kwargs()).sample
            controller.block = "cond"
            eps_c = self.unet(latents, t, **cond.unet_kwargs()).sample
        else:
            controller.block = "both"
            both = TextConditioning.cat(uncond, cond)
            eps = self.unet(torch.cat([latents, latents]), t, **both.unet_kwargs()).sample
            eps_u, eps_c = eps.chunk(2)
        return eps_u + guidance * (eps_c - eps_u)

    def _blend_state(self, blend, prompts, latent_hw, sides, store, n_evals):
        if blend is None:
            return None
        if len(prompts) < 2:
            raise P2PError("LocalBlend needs at least one edited prompt")
        side = blend.resolution
        if side is None:
            # the reference's 16x16 at 64x64 latents is latent / 4; models without that grid use
            # the nearest one (the pocket model: 8x8, where its attention is localised)
            side = min(sides, key=lambda s: (abs(s - latent_hw[0] / 4), -s))
        elif side not in sides:
            raise P2PError(f"LocalBlend resolution {side} is not an attention grid of this model: {sides}")
        if store.resolutions is not None:
            store.resolutions.add(side)
        elif side > store.max_side:
            store.max_side = side
        return dict(side=side, start=_to_step(blend.start, n_evals, "LocalBlend start"),
                    words=blend.token_weights(prompts, blend.words),
                    subtract=blend.token_weights(prompts, blend.subtract) if blend.subtract is not None else None)

    def _local_blend(self, blend, state, latents, store):
        maps = store.sums[store.grid(state["side"])]
        mask = blend.mask(maps, state["words"], latents.shape[-2:])
        mask = mask[:1] | mask  # union of the source's and each edit's mask
        if state["subtract"] is not None:
            mask = mask & ~blend.mask(maps, state["subtract"], latents.shape[-2:], pool=False)
        mask = mask.to(latents.dtype)
        return latents[:1] + mask * (latents - latents[:1])

    def _spec(self, prompts, rules, run, mode, blend):
        def describe(rule):
            base = rule.base if isinstance(rule, Reweight) else rule
            d = {"rule": type(rule).__name__}
            if isinstance(base, Replace):
                d.update(mapper=base.mapper.to_dict(), schedule=base.schedule.to_dict())
            if isinstance(rule, Reweight):
                d["values"] = rule.values
            return d

        return {
            "prompts": [p.text for p in prompts],
            "seed": run["seed"],
            "start": run["start"],
            "steps": run["steps"],
            "guidance": run["guidance"],
            "size": list(run["size"]),
            "mode": mode,
            "rules": [describe(r) for r in rules],
            "blend": None if blend is None else {"words": blend.words, "threshold": blend.threshold,
                                                 "start": blend.start, "subtract": blend.subtract},
        }


def _per_target(name, value, n):
    if value is None:
        return [None] * n
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise P2PError(f"{name} has {len(value)} entries but there are {n} edited prompts")
        return list(value)
    return [value] * n


def _check_xl(pipe):
    """SDXL base pipelines only: both text encoders and the pooled-text + size conditioning."""
    for part in ("tokenizer_2", "text_encoder_2"):
        if getattr(pipe, part, None) is None:
            raise P2PError(f"the SDXL pipeline has no {part}")
    config = pipe.unet.config
    if config.get("addition_embed_type") != "text_time":
        raise P2PError("the pipeline has two text encoders but its UNet does not take SDXL's text_time conditioning")
    if pipe.config.get("requires_aesthetics_score", False):
        raise P2PError("SDXL refiner pipelines (aesthetic-score conditioning) are not supported; "
                       "use an SDXL base model")
