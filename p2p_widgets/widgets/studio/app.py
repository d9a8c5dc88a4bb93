"""Studio: the whole Prompt-to-Prompt workflow in one widget (see the package docstring)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import ipywidgets
import numpy as np
import traitlets

from ...engine import schedulers
from ...engine.blend import LocalBlend
from ...engine.defaults import defaults_for_pipe
from ...engine.export import spec_to_json
from ...engine.inversion import pixels_hash
from ...engine.mapper import Mapper, align
from ...engine.rules import Refine, Replace, Reweight
from ...engine.schedule import AlphaSchedule, to_step
from ...engine.spec import EditSpec
from ...errors import P2PError
from ...stream.frames import encode_image
from ..player import AttentionPlayer
from .controller import RunController
from .image_input import prepare_image
from .panel import MAX_SEED, MAX_WEIGHT, StudioPanel

_log = logging.getLogger(__name__)


def _optional(name: str):
    """TokenAligner / AlphaTimeline, or None where their front end is not built."""
    try:
        if name == "aligner":
            from ..aligner import TokenAligner

            return TokenAligner
        from ..timeline import AlphaTimeline

        return AlphaTimeline
    except (ImportError, FileNotFoundError) as exc:  # the bundle may not be built in a dev checkout
        _log.warning("Studio: %s unavailable (%s); using the panel's own controls", name, exc)
        return None


class Studio(ipywidgets.VBox):
    """Prompt-to-Prompt editing in one widget: controls, aligner, timeline, results, playback.

    Parameters
    ----------
    pipe:
        A diffusers Stable Diffusion pipeline, or None for the embedded pocket model.
    editor:
        An existing :class:`~p2p_widgets.engine.sampler.Editor` instead of ``pipe``.
    source, target, seed, steps, guidance:
        Initial settings (defaults come from the model: the pocket model's own prompts, 25 steps at
        guidance 5; SD's 50 steps at 7.5).
    aligner, timeline:
        Show the TokenAligner / AlphaTimeline (default True); without them the panel offers an
        auto-align kind and simple schedule controls.
    background:
        Default of :meth:`run`: sample in a worker thread (True) or in the calling cell.
    """

    def __init__(
        self,
        pipe=None,
        *,
        editor=None,
        source: str | None = None,
        target: str | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        aligner: bool = True,
        timeline: bool = True,
        background: bool = True,
        **kwargs: Any,
    ):
        self.editor = _editor(pipe, editor)
        self._loaded_scheduler: tuple | None = None  # (name, config) of a loaded edit's scheduler
        self.background = bool(background)
        defaults = defaults_for_pipe(self.editor.pipe)
        tokenizer = self.editor.tokenizer
        source = defaults.source if source is None else source
        target = defaults.target if target is None else target
        aligner_cls = _optional("aligner") if aligner else None
        self._timeline_cls = _optional("timeline") if timeline else None
        self.panel = StudioPanel(
            tokenizer=tokenizer,
            source=source,
            target=target,
            seed=seed,
            steps=defaults.steps if steps is None else steps,
            guidance=defaults.guidance if guidance is None else guidance,
            has_aligner=aligner_cls is not None,
            has_timeline=self._timeline_cls is not None,
            model_name=defaults.name,
        )
        self.panel.studio = self
        self.aligner = aligner_cls(source, target, tokenizer=tokenizer) if aligner_cls else None
        self.timeline = self._new_timeline() if self._timeline_cls else None
        self.player = AttentionPlayer()
        self.runs = RunController(self)
        self._pinned: dict | None = None
        self._image: np.ndarray | None = None  # the real image to edit, prepared at the model's size
        super().__init__(children=self._children(), **kwargs)
        self.add_class("p2p-studio-box")
        self.panel.observe(self._on_prompts, names=["source", "target"])
        if self.aligner is not None:  # the aligner edits the prompts too: keep the panel in step
            self.aligner.observe(self._on_aligner_prompts, names=["source", "target"])
        self.panel.observe(self._on_kind, names=["kind"])
        self.panel.observe(self._on_sampling, names=["n_evals", "scheduler"])

    # -- composition -------------------------------------------------------------------------------

    def _children(self) -> list:
        return [w for w in (self.panel, self.aligner, self.timeline, self.player) if w is not None]

    def _new_timeline(self, schedule=None):
        # the timeline's axis is the chosen scheduler's real UNet evaluations, as the sampler counts them
        return self._timeline_cls(
            self.panel.target,
            steps=self.panel.steps,
            scheduler=self.scheduler() or self.editor.ddim_scheduler(),
            schedule=schedule,
            tokenizer=self.editor.tokenizer,
        )

    def _on_prompts(self, change) -> None:
        try:
            if self.aligner is not None and getattr(self.aligner, change["name"]) != change["new"]:
                setattr(self.aligner, change["name"], change["new"])
            if self.timeline is not None and change["name"] == "target" and self.timeline.target != change["new"]:
                self.timeline.target = change["new"]
        except traitlets.TraitError as exc:
            self.panel.report_error(str(exc))

    def _on_aligner_prompts(self, change) -> None:
        if getattr(self.panel, change["name"]) != change["new"]:
            try:
                setattr(self.panel, change["name"], change["new"])
            except traitlets.TraitError as exc:
                self.panel.report_error(str(exc))

    def _on_kind(self, change) -> None:
        if self.aligner is not None:
            self.aligner.auto_align(change["new"])

    def _on_sampling(self, change) -> None:
        if self.timeline is None:
            return
        old = self.timeline
        self.timeline = self._new_timeline(old.schedule.rescaled(self.panel.n_evals))
        self.children = self._children()
        old.close()

    def scheduler(self, name: str | None = None):
        """The scheduler runs sample with (``name``: default the panel's): None for the pipeline's
        DDIM, else built from the pipeline's config (or from a loaded edit's own config)."""
        name = self.panel.scheduler if name is None else name
        loaded = self._loaded_scheduler
        if loaded is not None and loaded[0] == name:
            return schedulers.build(*loaded, self.editor.pipe.scheduler.config)
        return None if name == schedulers.DDIM else schedulers.build(name, None, self.editor.pipe.scheduler.config)

    def count_evals(self, steps: int, name: str) -> int:
        """UNet evaluations of a run of ``steps`` with scheduler ``name`` (Heun: 2 * steps - 1)."""
        return self.editor.count_evals(steps, self.scheduler(name))

    # -- settings -> engine --------------------------------------------------------------------------

    @property
    def source(self) -> str:
        return self.panel.source

    @source.setter
    def source(self, value: str) -> None:
        self.panel.source = value

    @property
    def target(self) -> str:
        return self.panel.target

    @target.setter
    def target(self, value: str) -> None:
        self.panel.target = value

    def mapper(self) -> Mapper:
        """The mapper M of the current settings (the aligner's links, or the automatic alignment)."""
        src, tgt = self.panel.prompt(self.panel.source), self.panel.prompt(self.panel.target)
        pinned = self._pinned
        links = [list(x) for x in self.aligner.links] if self.aligner is not None else None
        if (
            pinned
            and pinned["source"] == src.text
            and pinned["target"] == tgt.text
            and (links is None or links == pinned["links"])
        ):
            return Mapper.from_links(src, tgt, pinned["full_links"], include_special=False)
        if self.aligner is not None:
            return Mapper.from_links(src, tgt, [tuple(x) for x in self.aligner.links], include_special=True)
        return align(src, tgt, self.editor.tokenizer, self.panel.kind)

    def schedule(self) -> AlphaSchedule:
        """The alpha schedule of the current settings (the timeline's, or the panel's windows)."""
        if self.timeline is not None:
            return self.timeline.schedule
        return AlphaSchedule.from_windows(self.panel.n_evals, self.panel.windows)

    def spec(self) -> EditSpec:
        """The :class:`EditSpec` of the current settings (what Run runs)."""
        p = self.panel
        mapper, schedule = self.mapper(), self.schedule()
        if schedule.n_evals != p.n_evals:
            raise P2PError(f"the schedule covers {schedule.n_evals} evaluations but the run has {p.n_evals}")
        rule = (Refine if p.kind == "refine" else Replace)(mapper, schedule)
        if p.reweight:
            rule = Reweight(rule, dict(p.reweight))
        blend = (
            LocalBlend(list(p.blend_words), threshold=p.blend_threshold, start=schedule.blend_start)
            if p.blend_words
            else None
        )
        return EditSpec(
            prompts=(mapper.source.text, mapper.target.text),
            rules=(rule.to_dict(),),
            seed=p.seed,
            steps=p.steps,
            guidance=float(p.guidance),
            size=self.editor.check_size(),
            mode="fast",
            blend=None if blend is None else blend.to_dict(),
            **self._scheduler_fields(),
        )

    def _scheduler_fields(self) -> dict:
        scheduler = self.scheduler()
        if scheduler is None:
            return {}
        name, config = schedulers.describe(scheduler)
        return {"scheduler": name, "scheduler_config": config}

    # -- a real image ----------------------------------------------------------------------------------

    @property
    def image(self) -> np.ndarray | None:
        """The real image being edited, (H, W, 3) uint8 at the model's size; None: images from a seed."""
        return self._image

    def set_image(self, image, name: str = "image") -> None:
        """Edit a real image (PIL image, array, file path, or an image file's bytes); the source prompt
        is its caption. Centre-cropped and resized to the model's size."""
        if self.running:
            raise P2PError("cannot change the image while a run is in progress")
        pixels = prepare_image(image, self.editor.default_size, name)
        self._image = pixels
        with self.panel.hold_sync():
            self.panel.clear_error()
            self.panel.input_image = encode_image(pixels)
            self.panel.input_name = str(name)

    def clear_image(self) -> None:
        """Go back to generating images from the seed."""
        if self.running:
            raise P2PError("cannot change the image while a run is in progress")
        self._image = None
        with self.panel.hold_sync():
            self.panel.input_image, self.panel.input_name = b"", ""

    # -- runs ----------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.runs.running

    @property
    def result(self):
        """The last finished run's EditResult, or None."""
        return self.runs.result

    def run(self, background: bool | None = None, callback=None):
        """Run the edit of the current settings, streaming into the player.

        ``background`` (default: the Studio's) runs the sampler in a worker thread and returns at
        once (see :meth:`wait`); otherwise it runs here and returns the EditResult. ``callback``
        is called with every StepEvent after the player's. Errors show in the panel; they also
        raise here when the run is not in the background."""
        background = self.background if background is None else background
        if self._image is not None and self.panel.scheduler != schedulers.DDIM:  # before minutes of inverting
            self.panel.report_error("a real image is edited from its DDIM inversion: choose the DDIM scheduler")
            raise P2PError("a real image is edited from its DDIM inversion: choose the DDIM scheduler")
        if self.running:
            self.panel.report_error("a run is in progress: wait for it or press Stop")
            raise P2PError("a run is in progress")
        try:
            job = {"spec": self.spec(), "baseline": self.panel.baseline, "invert": None}
            if self._image is not None:  # what the inversion needs, read now: settings may change later
                job["invert"] = dict(
                    image=self._image,
                    method=self.panel.invert_method,
                    steps=self.panel.steps,
                    guidance=float(self.panel.guidance),
                )
        except (P2PError, traitlets.TraitError) as exc:
            self.panel.report_error(str(exc))
            self.panel.status = "error"
            raise P2PError(str(exc)) from None
        return self.runs.start(job, background, callback)

    def wait(self, timeout: float | None = None):
        """Wait for a background run; returns the EditResult (raises the run's error)."""
        return self.runs.wait(timeout)

    def stop(self) -> None:
        """Ask the current run to stop after its current step."""
        self.runs.stop()

    # -- export / import -----------------------------------------------------------------------------

    @property
    def last_spec(self) -> EditSpec | None:
        """The last run's :class:`EditSpec`, or None."""
        return None if self.result is None else self.result.spec

    def to_json(self) -> str:
        """The last run's edit as JSON text."""
        if self.result is None:
            raise P2PError("nothing to export yet: run an edit first")
        return spec_to_json(self.result)

    def load_json(self, spec) -> None:
        """Load an exported edit (JSON text, dict or EditSpec) into the controls; Run reruns it exactly."""
        if self.running:
            raise P2PError("cannot load while a run is in progress")
        spec = _as_spec(spec)
        rule, base = self._check_loadable(spec)
        source, target = spec.prompts
        src, tgt = self.panel.prompt(source), self.panel.prompt(target)  # raise on bad prompts
        full = [[int(i), int(j), float(w)] for i, j, w in base.mapper.links]
        real = sorted([i, j, w] for i, j, w in full if i < src.n_tokens and j < tgt.n_tokens)
        self._apply(spec, rule, base)
        if spec.inversion is None and self._image is not None:
            self.clear_image()  # the edit starts from its seed
        if self.aligner is not None:
            self.aligner.links = real
        if self.timeline is not None:
            self.timeline.schedule = AlphaSchedule.from_windows(self.panel.n_evals, self.panel.windows)
        self._pinned = {
            "source": source,
            "target": target,
            "links": [list(x) for x in self.aligner.links] if self.aligner is not None else None,
            "full_links": [tuple(x) for x in full],
        }

    def _check_loadable(self, spec: EditSpec):
        """The spec's (Replace/Refine) rule and schedule, or a P2PError saying what the Studio cannot show."""
        if len(spec.prompts) != 2:
            raise P2PError(
                f"the Studio edits one target; this spec has {len(spec.prompts) - 1} (use p2p_widgets.edit_from_spec)"
            )
        if spec.size and list(spec.size) != [self.editor.default_size] * 2:
            raise P2PError(
                f"this spec is for {spec.size[0]}x{spec.size[1]} images; the Studio's model makes "
                f"{self.editor.default_size}x{self.editor.default_size}"
            )
        if spec.mode != "fast":
            raise P2PError("the Studio runs the fast path; use edit_from_spec for mode 'explicit'")
        if spec.inversion is not None and (
            self._image is None or pixels_hash(self._image) != spec.inversion.get("image_sha256")
        ):
            raise P2PError(
                "this edit is of a real image: load that image into the Studio first "
                "(its file button or set_image), then the JSON"
            )
        (rule,) = spec.build_rules(self.editor)
        base = rule.base if isinstance(rule, Reweight) else rule
        if not isinstance(base, Replace):
            raise P2PError(f"the Studio shows Replace, Refine and Reweight rules; this spec has {type(base).__name__}")
        n_evals = self.editor.count_evals(spec.steps, schedulers.of_spec(spec, self.editor.pipe.scheduler.config))
        if base.schedule.n_evals != n_evals:
            raise P2PError(f"the schedule has {base.schedule.n_evals} evaluations but the spec's run has {n_evals}")
        shown = _not_shown(spec, rule, base)
        if shown:
            raise P2PError(f"the Studio cannot show {shown}; rerun it with p2p_widgets.edit_from_spec")
        return rule, base

    def _apply(self, spec: EditSpec, rule, base: Replace) -> None:
        blend, values, schedule = spec.build_blend(), getattr(rule, "values", {}), base.schedule
        windows = schedule.to_windows()
        if blend is not None:  # LocalBlend's own start is what the run used (the schedule's is not read)
            windows["blend_start"] = to_step(blend.start, schedule.n_evals, "LocalBlend start")
        panel = self.panel
        with panel.hold_sync():
            panel.clear_error()
            panel.source, panel.target = spec.prompts
            self._loaded_scheduler = (spec.scheduler, spec.scheduler_config) if spec.scheduler_config else None
            panel.scheduler = spec.scheduler
            panel.steps = spec.steps
            panel.seed, panel.guidance = spec.seed, spec.guidance
            panel.kind = "refine" if isinstance(base, Refine) else "auto"
            panel.reweight = dict(values)
            words = blend.words if blend else []
            panel.blend_words = [words] if isinstance(words, str) else list(words)
            if blend:
                panel.blend_threshold = blend.threshold
            if spec.inversion is not None:
                panel.invert_method = spec.inversion["method"]
            panel.windows = windows

    def save_images(self, folder) -> list[Path]:
        """Write the last run's images as PNG files into ``folder``; returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for item in self.panel.images:
            path = folder / item["name"]
            path.write_bytes(bytes(item["png"]))
            paths.append(path)
        if not paths:
            raise P2PError("no images yet: run an edit first")
        return paths

    def __repr__(self) -> str:
        return f"Studio(source={self.source!r}, target={self.target!r}, status={self.panel.status!r})"


def _editor(pipe, editor):
    from ...engine.sampler import Editor

    if editor is None:
        if pipe is None:
            from ...pocket.model import load_pocket

            pipe = load_pocket()
        return Editor(pipe)
    if not isinstance(editor, Editor):
        raise TypeError(f"editor must be an Editor, got {type(editor).__name__}")
    return editor


def _not_shown(spec: EditSpec, rule, base: Replace) -> str:
    """What of ``spec`` the Studio's controls cannot hold (so a reload would not rerun it), or ''."""
    blend = spec.blend or {}
    words = blend.get("words", [])
    words = [words] if isinstance(words, (str, int)) else words
    checks = [
        (bool(blend.get("subtract")), "LocalBlend 'subtract' words"),
        (blend.get("resolution") is not None, "a LocalBlend resolution"),
        (any(not isinstance(w, str) for w in words), "LocalBlend words per prompt or by position"),
        (base.self_max_resolution is not None, "a self-attention resolution limit"),
        (any(not isinstance(w, str) for w in base.schedule.words), "a window of a word given by position"),
        (any(not isinstance(w, str) for w in getattr(rule, "values", {})), "a weight of a word given by position"),
        (spec.seed > MAX_SEED, f"a seed above {MAX_SEED}"),
        (spec.guidance > 50, "guidance above 50"),
        (any(abs(v) > MAX_WEIGHT for v in getattr(rule, "values", {}).values()), f"weights beyond +-{MAX_WEIGHT:g}"),
    ]
    return ", ".join(what for failed, what in checks if failed)


def _as_spec(spec) -> EditSpec:
    if isinstance(spec, EditSpec):
        return spec
    if isinstance(spec, dict):
        return EditSpec.from_dict(spec)
    return EditSpec.from_json(spec)
