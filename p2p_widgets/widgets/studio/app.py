"""Studio: the whole Prompt-to-Prompt workflow in one widget (see the package docstring)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import ipywidgets
import numpy as np
import traitlets

from ...engine import schedulers
from ...engine.export import spec_to_json
from ...engine.inversion.record import EMPTY_PROMPT_METHODS, solver_scheduler
from ...engine.inversion.record import LABELS as INVERT_LABELS
from ...engine.mapper import Mapper, align
from ...engine.rules import Combine, EditRule
from ...engine.schedule import AlphaSchedule
from ...engine.schedulers import DDIM
from ...engine.spec import EditSpec
from ...errors import P2PError, WordNotFound
from ...stream.frames import encode_image
from ..player import AttentionPlayer
from . import loading
from .controller import RunController
from .image_input import prepare_image
from .methods import P2P, missing, needs_value
from .panel import RUN_IN_PROGRESS, StudioPanel
from .rules import blend_of, method_rule, p2p_rule

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
    """Prompt-to-Prompt, and every registered rule with declared parameters, in one widget: the
    panel's controls beside its results, and below them one of playback, token alignment or the
    schedule (the panel's section tabs choose which; ``show(section)`` from Python).

    Parameters
    ----------
    pipe:
        A diffusers Stable Diffusion (1.x, 2.x, XL), SD3 or Flux pipeline, or None for the embedded
        pocket model. On SD3 / Flux the Studio offers the model's own flow scheduler, the methods
        that run on joint attention (P2P, K/V injection; the UNet-only ones are refused by name),
        the tokens the model attends to (Flux: T5's; SD3: CLIP's then T5's, a row pair per segment
        in the aligner), and real images inverted by the flow solvers (FireFlow, RF-Solver, Euler:
        the inversion menu lists what the model takes).
    editor:
        An existing :class:`~p2p_widgets.engine.sampler.Editor` instead of ``pipe``.
    source, target, seed, steps, guidance:
        Initial settings (defaults come from the model, ``editor.model.defaults``: the pocket model's
        own prompts, 25 steps at guidance 5; else its family's: SD's 50 steps at 7.5, SD3's 28 at 7,
        Flux dev's 28 at 3.5, schnell's 4 at 0).
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
        self._image: np.ndarray | None = None  # the real image to edit, prepared at the model's size
        self.background = bool(background)
        defaults = self.editor.model.defaults
        # the widgets make their prompts as the model does (not from its tokenizer alone): SD3's
        # run over CLIP's then T5's token segments, which the aligner shows as a pair of rows each
        tokenizer = self.editor.model
        source = defaults.source if source is None else source
        target = defaults.target if target is None else target
        aligner_cls = _optional("aligner") if aligner else None
        self._timeline_cls = _optional("timeline") if timeline else None
        model = self.editor.model
        extra = {}
        if model.family in ("sd3", "flux"):  # flow matching: the model's own scheduler (the spec's default name)
            extra["scheduler_choices"] = [[DDIM, f"{_scheduler_words(model.default_scheduler())} (the model's own)"]]
        if not model.inversion_methods:
            extra["image_note"] = (
                f"Real images: not available on {_family_name(model.family)} (it cannot invert them); "
                "images come from the seed"
            )
        self.panel = StudioPanel(
            tokenizer=tokenizer,
            family=model.family,
            inversion_family=model.inversion_family if model.inversion_methods else None,
            **extra,
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
        if self.aligner is not None:  # a prompt the panel refuses stays out of the aligner too
            self.aligner.prompt_check = self.panel.check_prompt
            self.aligner.update_guard = self._frozen
        self.timeline = self._new_timeline() if self._timeline_cls else None
        self.player = AttentionPlayer()
        self.runs = RunController(self)
        self._pinned: dict | None = None
        super().__init__(children=self._children(), **kwargs)
        self.add_class("p2p-studio-box")  # the frame around the panel and its sections (studio.css)
        self.panel.observe(self._on_prompts, names=["source", "target"])
        if self.aligner is not None:  # the aligner edits the prompts too: keep the panel in step
            self.aligner.observe(self._on_aligner_prompts, names=["source", "target"])
        self.panel.observe(self._on_kind, names=["kind"])
        self.panel.observe(self._on_sampling, names=["n_evals", "scheduler", "invert_method", "input_image"])
        self.panel.observe(self._on_section, names=["section"])
        self.panel.observe(self._on_method, names=["method", "method_values", "combine_p2p"])
        self._show_section()
        self._show_rule_windows()

    # -- composition -------------------------------------------------------------------------------

    def _children(self) -> list:
        return [w for w in (self.panel, self.aligner, self.timeline, self.player) if w is not None]

    def _sections(self) -> dict:
        return {"playback": self.player, "alignment": self.aligner, "schedule": self.timeline}

    def show(self, section: str) -> None:
        """Show one section under the panel: "playback", "alignment" or "schedule" (the tabs do it too)."""
        try:
            self.panel.section = section
        except traitlets.TraitError as exc:
            raise P2PError(f"section: {exc}") from None

    def _on_section(self, change) -> None:
        self._show_section()

    def _show_section(self) -> None:
        for name, widget in self._sections().items():
            if widget is not None:
                widget.layout.display = None if name == self.panel.section else "none"

    def _new_timeline(self, schedule=None):
        # the timeline's axis is the chosen scheduler's real model evaluations, as the sampler counts
        # them (and sets them: flow models shift their timesteps with the image size)
        scheduler = self.run_scheduler()
        timesteps = self.editor._scheduler(self.panel.steps, scheduler).timesteps
        timeline = self._timeline_cls(
            self.panel.target,
            steps=self.panel.steps,
            scheduler=scheduler or self.editor.model.default_scheduler(),
            schedule=schedule,
            tokenizer=self.editor.model,
            timesteps=[int(t) for t in timesteps],
        )
        timeline.update_guard = self._frozen
        return timeline

    def _frozen(self, keys: list) -> str:
        """Why the aligner and timeline take no edit now, or '': like the panel, none during a run
        (the settings shown would no longer be those of the results); the aligner's view is free."""
        if self.running and not set(keys) <= {"show_special"}:
            return RUN_IN_PROGRESS
        return ""

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
        timesteps = self.editor._scheduler(self.panel.steps, self.run_scheduler()).timesteps
        if [int(t) for t in timesteps] == old.timesteps:  # the same axis (e.g. an image loaded on a UNet)
            return
        self.timeline = self._new_timeline(old.schedule.rescaled(self.panel.n_evals))
        self.children = self._children()
        self._show_section()
        self._show_rule_windows()
        old.close()

    def _on_method(self, change) -> None:
        self._show_rule_windows()

    def _show_rule_windows(self) -> None:
        """The chosen method's windows as read-only bands on the timeline (P2P's are its rows)."""
        p, timeline = self.panel, self.timeline
        if timeline is None or not hasattr(timeline, "show_rule"):  # a timeline without rule bands
            return
        try:
            timeline.show_rule(None if p.method == P2P else method_rule(p), p.n_evals)
        except (P2PError, traitlets.TraitError) as exc:  # e.g. values being changed one at a time
            _log.debug("Studio: no rule bands on the timeline (%s)", exc)

    def scheduler(self, name: str | None = None):
        """The scheduler runs sample with (``name``: default the panel's): None for the pipeline's
        DDIM, else built from the pipeline's config (or from a loaded edit's own config)."""
        name = self.panel.scheduler if name is None else name
        loaded = self._loaded_scheduler
        if loaded is not None and loaded[0] == name:
            return schedulers.build(*loaded, self.editor.pipe.scheduler.config)
        return None if name == schedulers.DDIM else schedulers.build(name, None, self.editor.pipe.scheduler.config)

    def run_scheduler(self, name: str | None = None):
        """The scheduler a run samples with: :meth:`scheduler`, except for a real image on a flow
        model (SD3, Flux), which is sampled back with the solver of its inversion (the panel's
        ``invert_method``: RF-Solver calls the model twice a step, FireFlow once a step plus once)."""
        if self._image is not None:
            solver = solver_scheduler(self.editor.model, self.panel.invert_method)
            if solver is not None:
                return solver
        return self.scheduler(name)

    def count_evals(self, steps: int, name: str) -> int:
        """Model evaluations of a run of ``steps`` with scheduler ``name`` (Heun: 2 * steps - 1; a
        real image on a flow model: its inversion solver's calls)."""
        return self.editor.count_evals(steps, self.run_scheduler(name))

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
        return align(src, tgt, kind=self.panel.kind)  # per token segment on SD3

    def schedule(self) -> AlphaSchedule:
        """The alpha schedule of the current settings (the timeline's, or the panel's windows)."""
        if self.timeline is not None:
            return self.timeline.schedule
        return AlphaSchedule.from_windows(self.panel.n_evals, self.panel.windows)

    def rule(self) -> EditRule:
        """The rule of the current settings: P2P's, the chosen method's, or Combine(P2P's, the method's)."""
        p = self.panel
        method = None if p.method == P2P else method_rule(p)
        if method is not None and not p.combine_p2p:
            return method
        mapper, schedule = self.mapper(), self.schedule()
        if schedule.n_evals != p.n_evals:
            raise P2PError(f"the schedule covers {schedule.n_evals} evaluations but the run has {p.n_evals}")
        p2p = p2p_rule(p.kind, mapper, schedule, p.reweight)
        return p2p if method is None else Combine(p2p, method)

    def spec(self) -> EditSpec:
        """The :class:`EditSpec` of the current settings (what Run runs)."""
        p = self.panel
        source, target = p.prompt(p.source), p.prompt(p.target)
        blend = blend_of(p, self.schedule())
        return EditSpec(
            prompts=(source.text, target.text),
            rules=(self.rule().to_dict(),),
            seed=p.seed,
            steps=p.steps,
            guidance=float(p.guidance),
            size=self.editor.check_size(),
            mode="fast",
            blend=None if blend is None else blend.to_dict(),
            start="latents" if not source.text.strip() else "seed",  # an empty source: only for an image
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
        if self.panel.image_note:  # no inversion on this model
            self.panel.report_error(self.panel.image_note)
            raise P2PError(self.panel.image_note)
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
        if not self.panel.source.strip():
            message = "the source prompt is empty: type the prompt the images start from, then remove the image"
            self.panel.report_error(message, field="source")
            raise P2PError(message)
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
        self._refuse_unrunnable()  # before minutes of inverting
        if self.running:
            self.panel.report_error("a run is in progress: wait for it or press Stop")
            raise P2PError("a run is in progress")
        try:
            job = {"spec": self.spec(), "baseline": self.panel.baseline, "invert": None, "label": self._label()}
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

    def _refuse_unrunnable(self) -> None:
        """A P2PError, shown beside the field at fault, for settings that cannot run."""
        p, problem = self.panel, None
        entry = next((m for m in p.methods if m["name"] == p.method), {})
        empty = missing(p.method_class(), p.method_values)
        if empty:
            problem = (f"method_values.{empty[0].name}", needs_value(empty[0]))
        elif (unknown := self._unknown_word()) is not None:
            problem = unknown
        elif self._image is None and entry.get("follows_inversion"):
            problem = ("method", f"{entry['label']} follows the inversion of a real image: load an image to edit first")
        elif self._image is not None and p.scheduler != schedulers.DDIM:
            problem = ("scheduler", "a real image is edited from its DDIM inversion: choose the DDIM scheduler")
        elif self._image is not None and not p.source.strip() and p.invert_method not in EMPTY_PROMPT_METHODS:
            allowed = [m for m, _ in p.invert_choices if m in EMPTY_PROMPT_METHODS]
            words = "DDIM" if allowed == ["ddim"] else " or ".join(INVERT_LABELS.get(m, m) for m in allowed)
            problem = ("invert_method", f"an image read under the empty source prompt is inverted with {words} only")
        if problem is not None:
            p.report_error(problem[1], field=problem[0])
            raise P2PError(problem[1])

    def _unknown_word(self) -> tuple[str, str] | None:
        """(field, message) when the chosen rule names a word that is not in its prompt (it reads
        its words when bound to the prompts; the field is the words parameter holding it)."""
        p = self.panel
        if p.method == P2P:
            return None
        rule = method_rule(p)
        try:
            rule.bind(p.prompt(p.source), p.prompt(p.target))
        except WordNotFound as exc:
            holders = [
                x.name for x in rule.params if x.kind == "words" and exc.word in (p.method_values.get(x.name) or [])
            ]
            return (f"method_values.{holders[0]}" if holders else "method", str(exc))
        return None

    def _label(self) -> str:
        """What the baseline image is "without" (P2P, or the chosen method)."""
        p = self.panel
        return "P2P" if p.method == P2P else f"{p.method}{' + P2P' if p.combine_p2p else ''}"

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
        """Load an exported edit (JSON text, dict or EditSpec) into the controls; Run reruns it exactly.
        Its rule may be P2P's, a registered rule with declared parameters, or Combine(P2P's, that rule)."""
        loading.load_json(self, spec)

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


def _scheduler_words(scheduler) -> str:
    """A scheduler's name in words: FlowMatchEulerDiscreteScheduler -> "Flow-matching Euler"."""
    name = type(scheduler).__name__
    return "Flow-matching Euler" if name == "FlowMatchEulerDiscreteScheduler" else schedulers.LABELS.get(name, name)


def _family_name(family: str) -> str:
    return {"flux": "Flux", "sd3": "SD3"}.get(family, family)


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
