"""The sampler: source and edited prompts denoised together from one noise draw, with P2P.

``Editor(pipe).edit(source, targets, ...)`` runs the source prompt and one or more edited prompts
in one batch (classifier-free guidance in the same batch, or in two passes with
``low_memory=True``), stores cross-attention at every UNet evaluation and injects it through the
edit rules. Each evaluation yields a :class:`StepEvent` to the callback (progress bars, the
playback widget, user code); a set ``stop_event`` ends the run cleanly after the current step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import P2PError, check_int, check_run_callbacks
from . import schedulers
from .blend import LocalBlend
from .inversion import Inversion, check_inversion, invert
from .mapper import Mapper, check_compat
from .models import backend_for
from .models.flow import uses_cfg
from .processors import AttentionController, installed
from .prompts import Prompt
from .rules import EditRule, Refine, Replace, Reweight, rules_for_compat
from .schedule import AlphaSchedule
from .spec import EditSpec
from .start import RunStart
from .store import AttentionStore

REFERENCE_SELF_SIDE = 16  # the authors' self-attention and LocalBlend grid (16 x 16 = 256 queries)


@dataclass
class StepEvent:
    step: int  # UNet evaluation index (0 = noisiest)
    n_evals: int
    timestep: float  # the scheduler's timestep (an int for DDIM, a float for Euler-type ones)
    latents: torch.Tensor  # (B, C, h, w) after this step
    x0: torch.Tensor  # (B, C, h, w) the scheduler's prediction of the clean latents
    attention: dict  # grid (h, w) -> (B, h, w, L) this step's head/layer-averaged cross maps
    editor: Editor = field(repr=False, default=None)
    controlled: frozenset = frozenset()  # (layer or module, "cross" | "self" | "feature") a rule changed

    def preview(self) -> np.ndarray:
        """(B, H, W, 3) uint8 images of the x0 prediction (cheap: see ``Editor.preview``)."""
        return self.editor.preview(self.x0)


@dataclass
class EditResult:
    prompts: list[Prompt]
    images: list  # PIL images, source first
    store: AttentionStore
    latents: torch.Tensor
    spec: EditSpec  # the edit (``spec.to_json()`` exports it; ``editor.run(spec)`` repeats it)
    baseline: list | None = None  # fixed-seed images without injection (same noise), source first
    stopped: bool = False
    rules: list = field(default_factory=list, repr=False)
    controlled: list = field(default_factory=list, repr=False)  # per step: (layer, kind) a rule changed

    @property
    def source_image(self):
        return self.images[0]

    @property
    def edit_images(self):
        return self.images[1:]


class Editor:
    """Prompt-to-Prompt on a diffusers pipeline: SD 1.x / 2.x, SDXL and the pocket model; SD3 / SD3.5
    and Flux.1 (and the pocket flow model) for sampling.

    ``edit(source, targets, **options)`` builds an :class:`EditSpec` from keyword options and runs
    it; ``run(spec)`` runs a spec (from JSON, the Studio, a sweep). Model facts and conversions
    (prompt encoding, one guided prediction, VAE, sizes, schedulers) come from ``editor.model``, the
    pipeline's family backend (:mod:`p2p_widgets.engine.models`).
    """

    def __init__(self, pipe, device=None):
        self.model = backend_for(pipe, device)

    # -- the model's facts, as the widgets and the CLI read them -------------------------------------
    @property
    def pipe(self):
        return self.model.pipe

    @property
    def device(self):
        return self.model.device

    @property
    def dtype(self):
        return self.model.dtype

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def default_size(self) -> int:
        return self.model.default_size

    def prompt(self, text) -> Prompt:
        return self.model.prompt(text)

    def check_size(self, height=None, width=None) -> tuple[int, int]:
        return self.model.check_size(height, width)

    def model_id(self) -> str:
        return self.model.model_id()

    def decode(self, latents):
        return self.model.decode(latents)

    def encode_image(self, pixels):
        return self.model.encode_image(pixels)

    def preview(self, x0):
        return self.model.preview(x0)

    def exclusive(self, wait: bool = True, on_wait=None, stop_event=None):
        return self.model.exclusive(wait, on_wait, stop_event)

    # -- building an edit ------------------------------------------------------------------------
    def build_rules(
        self,
        source: Prompt,
        targets: list[Prompt],
        n_evals: int,
        *,
        kind="auto",
        mappers=None,
        cross=0.8,
        self_attn=0.4,
        words=None,
        reweight=None,
        blend_start=0.2,
        compat="project",
    ):
        """One rule per target from the keyword arguments of :meth:`edit`."""
        schedule_args = dict(cross=cross, self_attn=self_attn, words=words, blend_start=blend_start, compat=compat)
        mappers = _per_target("mappers", mappers, len(targets))
        reweights = _per_target("reweight", reweight, len(targets))
        rules = []
        for target, mapper, values in zip(targets, mappers, reweights):
            if mapper is None:
                mapper = self.model.align(source, target, kind, compat)
            elif not isinstance(mapper, Mapper):
                raise P2PError(f"mappers must be Mapper objects, got {type(mapper).__name__}")
            _check_mapper(mapper, source, target)
            schedule = AlphaSchedule.build(n_evals, **schedule_args)
            # the authors inject self-attention at layers of at most 16 x 16 queries whatever the size
            limit = REFERENCE_SELF_SIDE if compat == "reference" else None
            rule = (Refine if mapper.kind == "refine" else Replace)(mapper, schedule, limit)
            rules.append(Reweight(rule, values, compat) if values else rule)
        return rules

    def edit(
        self,
        source,
        targets=(),
        *,
        seed: int = 0,
        steps: int = 50,
        guidance: float = 7.5,
        kind="auto",
        mappers=None,
        cross=0.8,
        self_attn=0.4,
        words=None,
        reweight=None,
        blend=None,
        rules=None,
        mode: str = "fast",
        compat: str = "project",
        height=None,
        width=None,
        scheduler=None,
        latents=None,
        uncond_embeddings=None,
        inversion=None,
        **run_options,
    ):
        """Edit ``source`` into each of ``targets`` (a string or a list of strings).

        - ``kind``/``mappers``: how target tokens map to source tokens (``align`` by default);
        - ``cross``, ``self_attn``, ``words``: alpha windows (see :class:`AlphaSchedule`);
        - ``reweight``: ``{word: scale}`` for every target, or a list with one dict per target;
        - ``blend``: a :class:`LocalBlend` or its words; ``rules``: your own rules (one per target),
          replacing the ones built from the arguments above;
        - ``mode``: ``"fast"`` (fused attention) or ``"explicit"`` (materialised maps, the oracle);
        - ``compat``: ``"reference"`` builds P2P's rules with the authors' choices where this project
          departs from them (see the README), so results compare with published tables;
        - ``latents``/``uncond_embeddings``: start noise (scaled by the scheduler's
          ``init_noise_sigma``, as diffusers' pipelines scale it) and per-step unconditional
          embeddings instead of a seed; ``inversion``: an :class:`Inversion` sets both and requires its steps;
        - ``run_options``: see :meth:`run` (``baseline``, ``callback``, ``stop_event``, ``store``,
          ``low_memory``).
        """
        self._check_start(inversion, latents, uncond_embeddings, steps)
        if inversion is not None and height is None and width is None:  # the inverted image's own size
            height, width = (side * self.model.vae_factor for side in inversion.latents.shape[-2:])
        source = self.prompt(source)
        if not source.text.strip() and inversion is None and latents is None:
            raise P2PError("the source prompt is empty (an inverted image may be read under the empty prompt)")
        targets = [self.prompt(t) for t in _as_list(targets)]
        check_compat(compat)
        if blend is not None and not isinstance(blend, LocalBlend):
            # the authors' LocalBlend reads the 16 x 16 maps whatever the model
            blend = LocalBlend.of(blend, compat)
        if inversion is not None and scheduler is not None:
            inversion.check_scheduler(type(scheduler).__name__)
        # a flow inversion samples back with the solver that inverted it where the edit names no
        # scheduler (the run records FlowSolverScheduler as the spec's sampled_with; which solver, its inversion)
        run_scheduler = scheduler if scheduler is not None or inversion is None else inversion.scheduler(self.model)
        size = self.check_size(height, width)
        sched = self._scheduler(steps, run_scheduler, size)
        if inversion is not None:
            inversion.check_timesteps(sched.timesteps, "the run's")
        if rules is None:
            rules = self.build_rules(
                source,
                targets,
                len(sched.timesteps),
                kind=kind,
                mappers=mappers,
                cross=cross,
                self_attn=self_attn,
                words=words,
                reweight=reweight,
                blend_start=blend.start if blend is not None else 0.2,
                compat=compat,
            )
        else:
            rules = _check_rules(rules_for_compat(rules, compat), source, targets)
        given_start = inversion is not None or latents is not None
        spec = EditSpec(
            prompts=(source.text, *(t.text for t in targets)),
            rules=tuple(map(_describe, rules)),
            seed=seed if not given_start else _seed_or_zero(seed),
            steps=steps,
            guidance=guidance,
            size=size,
            mode=mode,
            blend=None if blend is None else blend.to_dict(),
            start="latents" if given_start else "seed",
            inversion=None if inversion is None else inversion.describe(),
        )
        if scheduler is not None:
            name, config = schedulers.describe(scheduler)
            spec = spec.replace(scheduler=name, scheduler_config=config)
        start = RunStart.of(inversion, latents, uncond_embeddings)
        return self._run(spec, [source, *targets], rules, blend, run_scheduler, start, **run_options)

    def _check_start(self, inversion, latents, uncond_embeddings, steps) -> None:
        if inversion is not None and (latents is not None or uncond_embeddings is not None):
            raise P2PError("pass an inversion or latents / uncond_embeddings, not both (the inversion sets them)")
        if inversion is None:
            return
        if not isinstance(inversion, Inversion):
            raise P2PError(f"inversion must be an Inversion (from editor.invert), got {type(inversion).__name__}")
        inversion.check(self)  # model, latent shape, embedding width, prediction type, timesteps
        if steps != inversion.steps:
            raise P2PError(
                f"the inversion used {inversion.steps} steps but the edit asks for {steps}: "
                "edit with the inversion's steps (the timesteps must match)"
            )

    def run(self, spec: EditSpec, *, inversion=None, **run_options) -> EditResult:
        """Run an :class:`EditSpec` (``inversion``: the one an edit of a real image started from).

        ``run_options``: ``baseline`` (also render the same start without injection), ``callback``
        (called with a :class:`StepEvent` after every UNet evaluation), ``stop_event`` (a
        ``threading.Event``: when set, the run stops after the current step), ``store`` (an
        :class:`AttentionStore`), ``low_memory`` (guidance in two UNet passes).
        """
        if not isinstance(spec, EditSpec):
            raise P2PError(f"run takes an EditSpec, got {type(spec).__name__} (use EditSpec.from_json for JSON)")
        if not spec.reruns:
            raise P2PError("this edit started from latents of your own: pass them to edit(latents=...) instead")
        if spec.start != "seed":
            if inversion is None:
                raise P2PError("this edit started from an inverted image: pass its inversion (see load_edit)")
            check_inversion(spec.inversion, inversion)
            inversion.check(self)
            default = spec.scheduler == schedulers.DDIM and spec.scheduler_config is None
            inversion.check_scheduler(None if default else spec.scheduler)
            if inversion.steps != spec.steps:
                raise P2PError(f"the inversion used {inversion.steps} steps but the spec asks for {spec.steps}")
        elif inversion is not None:
            raise P2PError("this edit started from a seed, not from an inversion")
        spec = spec.replace(size=self.check_size(*(spec.size or (None, None))))  # the model's size by default
        prompts, rules, blend = spec.build(self)
        scheduler = schedulers.of_spec(spec, self.pipe.scheduler.config)
        if scheduler is None and inversion is not None:
            scheduler = inversion.scheduler(self.model)
        sched = self._scheduler(spec.steps, scheduler, spec.size)  # steps checked before any work
        if inversion is not None:
            inversion.check_timesteps(sched.timesteps, "the run's")
        return self._run(spec, prompts, rules, blend, scheduler, RunStart.of(inversion, None, None), **run_options)

    def invert(self, image, prompt, method: str | None = None, **kwargs) -> Inversion:
        """Invert a real image (PIL, array or path) for editing: see :func:`p2p_widgets.engine.inversion.invert`
        (``method`` None: the model family's default, ``engine.inversion.FAMILY_DEFAULTS``: null-text on
        a UNet, FireFlow on SD3 / Flux).
        Edit it with ``edit(prompt, targets, inversion=result, steps=result.steps, guidance=result.guidance)``
        (null-text embeddings are optimised for that guidance)."""
        return invert(self, image, prompt, method=method, **kwargs)

    def sample(self, prompt, **kwargs) -> EditResult:
        """Generate one prompt (no edit) while storing its attention: ``result.images[0]``."""
        return self.edit(prompt, [], **kwargs)

    # -- one run ---------------------------------------------------------------------------------
    def check_recorded_scheduler(self, spec: EditSpec, scheduler=None) -> None:
        """The P2PError :meth:`run` raises where ``spec`` records sampling with a model's own
        scheduler (``sampled_with``) other than the one it would sample with here (``scheduler``:
        the run's, None for the model's own), said before any work (the Studio's ``load_json``)."""
        _record_scheduler(spec, self._scheduler(spec.steps, scheduler, spec.size))

    def count_evals(self, steps: int, scheduler=None, size=None) -> int:
        """Model evaluations of a run of ``steps`` with ``scheduler`` (default DDIM or flow-matching
        Euler: one a step; Heun: 2n - 1)."""
        return len(self._scheduler(steps, scheduler, size).timesteps)

    def _scheduler(self, steps, scheduler, size=None):
        """A fresh copy of ``scheduler`` (default: the model's, DDIM for SD) set for ``steps`` at ``size``."""
        if scheduler is not None and not all(hasattr(scheduler, a) for a in ("set_timesteps", "step", "config")):
            raise P2PError(f"scheduler must be a diffusers scheduler, got {type(scheduler).__name__}")
        base = scheduler or self.model.default_scheduler()
        check_int("steps", steps, 1, base.config.num_train_timesteps)
        size = size or (self.default_size, self.default_size)
        return schedulers.fresh(base, int(steps), lambda sched, n: self.model.set_timesteps(sched, n, size))

    def _run(self, *args, **kwargs):
        with self.model.pinned():  # one device / dtype lookup a run (see ModelBackend.pinned)
            return self._run_pinned(*args, **kwargs)

    def _run_pinned(
        self,
        spec,
        prompts,
        rules,
        blend,
        scheduler,
        start,
        *,
        baseline=False,
        low_memory=False,
        store=None,
        callback=None,
        stop_event=None,
        wait=True,
        on_wait=None,
    ):
        _check_run_options(callback, stop_event, store, on_wait)
        rules = [rule.for_run() for rule in rules]  # the run binds its own copies: the caller's rules stay shareable
        sched = self._scheduler(spec.steps, scheduler, spec.size)
        spec = _record_scheduler(spec, sched)
        n_evals = len(sched.timesteps)
        for k, rule in enumerate(rules):
            try:
                rule.check_run(n_evals)
            except P2PError as exc:
                raise P2PError(f"rule {k}: {exc}") from None
            if rule.follows_inversion and start.trajectory is None:
                raise P2PError(
                    f"rule {k} ({type(rule).__name__}) reads the source from its inversion's trajectory: "
                    "edit an inverted image (editor.invert, then edit(..., inversion=...))"
                )
        generator = torch.Generator("cpu").manual_seed(spec.seed)  # the start noise, then stochastic steps' noise
        latents = start.latents_for(self.model, spec, sched, len(prompts), generator)
        start.check_uncond(n_evals, self.model)
        noise_state = generator.get_state()

        def sample(prompts, latents, rules, blend, sched, **options):
            return self._sample(
                spec, prompts, rules, blend, sched, latents, start, generator, low_memory=low_memory, **options
            )

        with self.exclusive(wait, on_wait, stop_event):  # one run per UNet: two runs' processors never mix
            result = sample(
                prompts,
                latents,
                rules,
                blend,
                sched,
                mode=spec.mode,
                store=store,
                callback=callback,
                stop_event=stop_event,
            )
            if baseline and not result.stopped:
                generator.set_state(noise_state)  # the baseline draws the same noise as the edit
                # DDIM draws no noise, so without a rule the source row would repeat the edit's own
                # source row: only the targets run again. A noise-drawing scheduler draws for the
                # whole batch, so its targets see the edit's noise only beside the source row.
                kept = 0 if schedulers.draws_noise(sched) or start.trajectory is not None else 1
                result.baseline = result.images[:kept]
                if len(prompts) > kept:
                    plain = sample(
                        prompts[kept:],
                        latents[kept:],
                        [EditRule()] * (len(prompts) - 1 - kept),
                        None,
                        self._scheduler(spec.steps, scheduler, spec.size),
                        mode="fast",
                        store=AttentionStore(keep_steps=False),
                    )
                    result.baseline += plain.images
        return result

    # -- the loop ------------------------------------------------------------------------------
    @torch.no_grad()
    def _sample(
        self,
        spec,
        prompts,
        rules,
        blend,
        sched,
        latents,
        start,
        generator,
        *,
        mode,
        low_memory,
        store,
        callback=None,
        stop_event=None,
    ):
        n_evals, guidance = len(sched.timesteps), spec.guidance
        latent_hw = tuple(latents.shape[-2:])
        sides = self.model.attention_sides(max(latent_hw))  # grid sides are the longer side, as the store names them
        store = AttentionStore() if store is None else store
        blend_state = None if blend is None else blend.prepare(prompts, latent_hw, sides, store, n_evals)
        controller = AttentionController(len(prompts), rules, store, mode, latent_hw, min(sides))
        controller.n_evals = n_evals
        cond = self.model.conditioning(prompts, spec.size)
        use_cfg = uses_cfg(self.model, guidance)
        uncond = self.model.conditioning(prompts, spec.size, uncond=True) if use_cfg else None
        stopped, finite, controlled = False, _FiniteWatch(self.device, n_evals), []
        step_options = schedulers.step_kwargs(sched, generator)
        for rule, target in zip(rules, prompts[1:]):
            rule.bind(prompts[0], target)
            rule.prepare(self.device, self.dtype)
        source_path = start.source_path(rules, n_evals, latents)
        with installed(self.model, controller):
            timestep_values = sched.timesteps.tolist()  # host copies: int(t) per step would sync a GPU
            for i, t in enumerate(sched.timesteps):
                controller.step, controller.controlled = i, set()
                if source_path is not None:
                    latents[0] = source_path[i]
                if use_cfg:
                    uncond = start.uncond_at(self.model, i, uncond, len(prompts))
                # identity for DDIM and flow matching; sigma scaling for Euler...
                scale_input = getattr(sched, "scale_model_input", None)
                model_input = latents if scale_input is None else scale_input(latents, t)
                eps = self.model.predict(controller, model_input, t, cond, uncond, guidance, low_memory)
                step_maps = controller.end_step()
                out = sched.step(eps, t, latents, **step_options)
                x0 = self.model.x0(out, eps, latents, sched, i)
                latents = _edit_latents(rules, i, n_evals, out.prev_sample)
                if source_path is not None:
                    latents[0] = source_path[i + 1]
                if blend_state is not None and i >= blend_state["start"]:
                    latents = blend.apply(blend_state, latents, store)
                finite.check(i, latents, guidance)
                controlled.append(frozenset(controller.controlled))
                if callback is not None:
                    callback(StepEvent(i, n_evals, timestep_values[i], latents, x0, step_maps, self, controlled[-1]))
                if stop_event is not None and stop_event.is_set():
                    stopped = True
                    break
        from PIL import Image

        images = [Image.fromarray(a) for a in self.decode(latents)]
        return EditResult(prompts, images, store, latents, spec, stopped=stopped, rules=rules, controlled=controlled)


class _FiniteWatch:
    """Stops a run whose latents stop being finite, naming the step. On a GPU the flags are read
    back every few steps (each read waits for the device), on the CPU at every step."""

    def __init__(self, device, n_evals: int):
        self.every = 1 if torch.device(device).type == "cpu" else 8
        self.n_evals, self.flags = n_evals, []

    def check(self, step: int, latents: torch.Tensor, guidance: float) -> None:
        self.flags.append(torch.isfinite(latents).all())
        if (step + 1) % self.every and step + 1 < self.n_evals:
            return
        ok = torch.stack(self.flags).cpu()
        if bool(ok.all()):
            self.flags = []
            return
        first = step + 1 - len(self.flags) + int((~ok).nonzero()[0])
        raise P2PError(
            f"the latents stopped being finite (NaN or infinity) at step {first} of {self.n_evals}: a weight, "
            f"the guidance ({guidance:g}) or the start latents / embeddings are too large or not finite"
        )


def _check_run_options(callback, stop_event, store, on_wait) -> None:
    check_run_callbacks(callback, stop_event, on_wait)
    if store is not None and not isinstance(store, AttentionStore):
        raise P2PError(f"store must be an AttentionStore, got {type(store).__name__}")
    if store is not None:
        store.claim()  # refused if a run holds it or has claimed it (two concurrent edits, one store)


def _as_list(targets) -> list:
    """One target or a list of them, as a list."""
    if isinstance(targets, (str, Prompt)):
        return [targets]
    if not isinstance(targets, Iterable):
        raise P2PError(f"targets must be a string or a list of strings, got {targets!r}")
    return list(targets)


def _check_rules(rules, source: Prompt, targets: list[Prompt]) -> list[EditRule]:
    """``rules`` given to edit(): one EditRule per target, whose mappers are for these prompts."""
    if not isinstance(rules, (list, tuple)):
        raise P2PError(f"rules must be a list of {len(targets)} EditRule objects, got {type(rules).__name__}")
    rules = list(rules)
    if len(rules) != len(targets) or not all(isinstance(r, EditRule) for r in rules):
        raise P2PError(f"rules must be a list of {len(targets)} EditRule objects (one per target)")
    for k, (rule, target) in enumerate(zip(rules, targets)):
        # as for mappers=: a rule for other prompts would run, but its spec would not rerun
        for mapper in rule.mappers():
            try:
                _check_mapper(mapper, source, target)
            except P2PError as exc:
                raise P2PError(f"rule {k}: {exc}") from None
    return rules


def _check_mapper(mapper: Mapper, source: Prompt, target: Prompt) -> None:
    if mapper.source.text != source.text or mapper.target.text != target.text:
        raise P2PError(
            f"mapper is for {mapper.source.text!r} -> {mapper.target.text!r}, not {source.text!r} -> {target.text!r}"
        )


def _describe(rule: EditRule) -> dict:
    """The rule's exported data, or a marker that names an unregistered rule (the run still works;
    exporting it says how to register it)."""
    try:
        return rule.to_dict()
    except P2PError:
        return {"rule": type(rule).__name__, "unregistered": True}


def _record_scheduler(spec, sched):
    """``spec`` naming the scheduler that samples it where it asked for the model's own (DDIM with no
    config) and that is not DDIM (flow-matching Euler, a flow inversion's solver); a spec recorded on
    a model whose own differs is refused by name.

    A record naming DDIM with no ``sampled_with`` reruns on a flow model with the model's own
    scheduler (and then records it): it may be a UNet's edit or a flow model's edit saved before
    records named what ran, which said DDIM too and cannot be told apart. Its rules decide whether it
    runs there: a UNet-only rule (MasaCtrl, Plug-and-Play, StyleAligned) refuses a flow model by name."""
    if spec.scheduler != schedulers.DDIM or spec.scheduler_config is not None:
        return spec
    ran = type(sched).__name__
    recorded = spec.sampled_with or schedulers.DDIM
    if spec.sampled_with is not None and recorded != ran:
        raise P2PError(
            f"this edit sampled with {recorded}, the model's own where it ran; this model samples with {ran}: "
            "rerun it on a model of its family (or, for a flow inversion's solver, with that inversion)"
        )
    return spec.replace(sampled_with=None if ran == schedulers.DDIM else ran)


def _edit_latents(rules, step, n_evals, latents):
    """Each rule's ``edit_latents`` hook on its edit row after a scheduler step."""
    for e, rule in enumerate(rules, start=1):
        new = rule.edit_latents(step, n_evals, latents[:1], latents[e : e + 1])
        if new is not None:
            latents[e : e + 1] = new
    return latents


def _seed_or_zero(seed):
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63 else 0


def _per_target(name, value, n):
    if value is None:
        return [None] * n
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise P2PError(f"{name} has {len(value)} entries but there are {n} edited prompts")
        return list(value)
    return [value] * n
