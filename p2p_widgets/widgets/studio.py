"""Studio: the whole Prompt-to-Prompt workflow in one widget.

>>> import p2p_widgets
>>> studio = p2p_widgets.Studio()        # the pocket model; or Studio(pipe) for any SD pipeline
>>> studio                                # type prompts, press Run; Stop ends a run early
>>> studio.run()                          # the same from Python (worker thread: the cell returns)
>>> studio.run(background=False)          # sampler in this cell (frames still stream live)
>>> studio.to_json()                      # the last edit as JSON; studio.load_json(text) reloads it
>>> studio.save_images("out/")            # source.png, edit.png (and baseline.png)
>>> studio.set_image("photo.png")         # edit a real image: the source prompt is its caption
>>> studio.clear_image()                  # back to images from a seed
>>> studio.player.to_gif("run.gif")       # the playback as an animated GIF

Parts (each also usable alone): :class:`StudioPanel` (prompts, seed, steps, guidance, edit
kind, reweight sliders, LocalBlend words, Run/Stop, results, export, a real image to edit), the
:class:`~p2p_widgets.widgets.aligner.TokenAligner` (the mapper M), the
:class:`~p2p_widgets.widgets.timeline.AlphaTimeline` (the alpha schedule) and the
:class:`~p2p_widgets.widgets.player.AttentionPlayer` (live playback).

Runs go to a worker thread by default, so the kernel stays idle and the Stop button (a message
from the browser) reaches Python mid-run; with ``background=False`` the sampler runs in the
calling cell, frames still stream, but Stop only arrives after the cell ends. Interrupting the
kernel does not stop a worker thread: use Stop or :meth:`Studio.stop`. Errors (bad prompts,
words missing from a prompt, a failed run) show in the panel's banner and the Studio stays usable.

A real image (dropped on the panel, chosen with its file button, or :meth:`Studio.set_image`) is
inverted with the source prompt as its caption (``invert_method``, cached per image, prompt,
method, steps and guidance) before the edit runs from the inversion instead of a seed; the
results then show the input, its reconstruction (the source branch), the edit and, if asked,
the edit without P2P from the same inverted noise.
"""

from __future__ import annotations

import io
import logging
import math
import threading
from pathlib import Path
from typing import Any

import ipywidgets
import numpy as np
import traitlets

from ..errors import P2PError
from ..export import spec_from_json, spec_to_dict, spec_to_json, validate_spec
from ..frames import encode_image
from ._base import MessageError, P2PWidget, PromptCache, on_message
from .player import AttentionPlayer

_log = logging.getLogger(__name__)

KINDS = ("auto", "replace", "refine")
RUN_STATES = ("idle", "running", "stopping", "done", "stopped", "error")
MAX_WEIGHT = 10.0
MAX_SEED = 2**53 - 1  # what a JavaScript number holds exactly
_FRONTEND_KEYS = frozenset(
    {"source", "target", "seed", "steps", "guidance", "kind", "windows", "reweight", "blend_words",
     "blend_threshold", "baseline", "invert_method"}
)
MAX_IMAGE_BYTES = 25_000_000  # an uploaded image file (it is resized to the model's size)

POCKET_SOURCE = "a big red circle left of a small blue square on a gray background"
POCKET_TARGET = "a big red star left of a small blue square on a gray background"
SD_SOURCE = "a photo of a cat riding a bicycle"
SD_TARGET = "a photo of a dog riding a bicycle"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unique_words(prompt) -> list[str]:
    return list(dict.fromkeys(w.text for w in prompt.words))


def _default_windows(n: int) -> dict:
    return {"cross": [0, int(0.8 * n)], "self_attn": [0, int(0.4 * n)], "words": [], "blend_start": int(0.2 * n)}


def _scale_windows(windows: dict, old: int, new: int) -> dict:
    """Windows over ``old`` evaluations moved to ``new`` keeping their fractions."""

    def at(v):
        return max(0, min(new, int(round(v * new / old)))) if old else 0

    return {
        "cross": [at(v) for v in windows["cross"]],
        "self_attn": [at(v) for v in windows["self_attn"]],
        "words": [[w, at(s), at(e)] for w, s, e in windows.get("words", [])],
        "blend_start": at(windows["blend_start"]),
    }


class StudioPanel(P2PWidget):
    """The Studio's own controls, results and exports (see :class:`Studio`).

    Front-end writes are validated here; actions (``run``, ``stop``, ``load_spec``,
    ``export_gif``) arrive as messages and are handed to the owning :class:`Studio`."""

    _bundle = "studio"

    source = traitlets.Unicode("", help="Source prompt.").tag(sync=True)
    target = traitlets.Unicode("", help="Target (edited) prompt.").tag(sync=True)
    seed = traitlets.Int(0, help="Noise seed.").tag(sync=True)
    steps = traitlets.Int(25, help="Inference steps (DDIM: one UNet evaluation each).").tag(sync=True)
    guidance = traitlets.Float(5.0, help="Classifier-free guidance scale.").tag(sync=True)
    kind = traitlets.Enum(KINDS, default_value="auto",
                          help="How tokens are aligned (the aligner's auto-align).").tag(sync=True)
    windows = traitlets.Dict(help="Alpha windows when no timeline is shown: {'cross', 'self_attn', 'words', "
                             "'blend_start'} in evaluations.").tag(sync=True)
    reweight = traitlets.Dict(help="{word of the target: scale} for the Reweight rule (1 = unchanged).").tag(sync=True)
    blend_words = traitlets.List(traitlets.Unicode(), help="LocalBlend words (empty: no LocalBlend).").tag(sync=True)
    blend_threshold = traitlets.Float(0.3, help="LocalBlend mask threshold in (0, 1).").tag(sync=True)
    baseline = traitlets.Bool(False, help="Also render the same seed without P2P.").tag(sync=True)
    invert_method = traitlets.Enum(("null-text", "negative-prompt", "ddim"), default_value="null-text",
                                   help="How a real image is inverted before editing.").tag(sync=True)

    # written by Python only
    source_words = traitlets.List(traitlets.Unicode(), help="Words of the source (computed).").tag(sync=True)
    target_words = traitlets.List(traitlets.Unicode(), help="Words of the target (computed).").tag(sync=True)
    has_aligner = traitlets.Bool(False, help="A TokenAligner is part of the Studio.").tag(sync=True)
    has_timeline = traitlets.Bool(False, help="An AlphaTimeline is part of the Studio.").tag(sync=True)
    status = traitlets.Enum(RUN_STATES, default_value="idle", help="Run state.").tag(sync=True)
    progress = traitlets.List(traitlets.Int(), default_value=[0, 0], help="[steps done, evaluations].").tag(sync=True)
    images = traitlets.List(help="Results: [{'label', 'name', 'png': bytes}], source first.").tag(sync=True)
    spec_json = traitlets.Unicode("", help="The last run's edit as JSON (export).").tag(sync=True)
    model_name = traitlets.Unicode("", help="What the Studio samples with (display).").tag(sync=True)
    input_image = traitlets.Bytes(b"", help="PNG of the real image to edit, at the model's size (empty: none)."
                                  ).tag(sync=True)
    input_name = traitlets.Unicode("", help="File name of the real image (display).").tag(sync=True)
    phase = traitlets.Unicode("", help="What a run is doing now: 'inverting (<method>)' or 'sampling' (display)."
                              ).tag(sync=True)

    def __init__(self, tokenizer=None, **kwargs: Any):
        self._prompts = PromptCache(tokenizer)
        self.studio: Studio | None = None
        kwargs.setdefault("windows", _default_windows(kwargs.get("steps", 25)))
        super().__init__(**kwargs)
        self._refresh_words()

    # -- prompts -----------------------------------------------------------------------------------

    def prompt(self, text: str):
        """The :class:`~p2p_widgets.prompts.Prompt` of ``text`` (cached)."""
        return self._prompts(text)

    @traitlets.validate("source", "target")
    def _check_text(self, proposal):
        return self._prompts.check_trait(proposal)

    @traitlets.observe("source", "target")
    def _on_text(self, change):
        self._refresh_words()

    def _refresh_words(self) -> None:
        src, tgt = _unique_words(self.prompt(self.source)), _unique_words(self.prompt(self.target))
        with self.hold_sync():
            self.source_words, self.target_words = src, tgt
            kept = {w: v for w, v in self.reweight.items() if w in tgt}
            if kept != self.reweight:
                self.reweight = kept
            blend = [w for w in self.blend_words if w in src or w in tgt]
            if blend != self.blend_words:
                self.blend_words = blend

    # -- validation --------------------------------------------------------------------------------

    @traitlets.validate("seed")
    def _check_seed(self, proposal):
        v = proposal["value"]
        if not 0 <= v <= MAX_SEED:
            raise traitlets.TraitError(f"seed must be in [0, {MAX_SEED}], got {v}")
        return v

    @traitlets.validate("steps")
    def _check_steps(self, proposal):
        v = proposal["value"]
        if not 1 <= v <= 1000:
            raise traitlets.TraitError(f"steps must be in [1, 1000], got {v}")
        return v

    @traitlets.validate("guidance")
    def _check_guidance(self, proposal):
        v = proposal["value"]
        if not math.isfinite(v) or not 0 <= v <= 50:
            raise traitlets.TraitError(f"guidance must be in [0, 50], got {v}")
        return v

    @traitlets.validate("blend_threshold")
    def _check_threshold(self, proposal):
        v = proposal["value"]
        if not math.isfinite(v) or not 0 < v < 1:
            raise traitlets.TraitError(f"blend_threshold must be in (0, 1), got {v}")
        return v

    @traitlets.validate("reweight")
    def _check_reweight(self, proposal):
        out = {}
        words = set(self.target_words) if self.target_words else None
        for word, value in proposal["value"].items():
            if words is not None and word not in words:
                raise traitlets.TraitError(f"reweight: {word!r} is not a word of the target {self.target!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise traitlets.TraitError(f"reweight: the value of {word!r} must be a finite number, got {value!r}")
            if abs(value) > MAX_WEIGHT:
                raise traitlets.TraitError(f"reweight: {word!r} = {value} is outside [-{MAX_WEIGHT:g}, {MAX_WEIGHT:g}]")
            if float(value) != 1.0:
                out[word] = float(value)
        return out

    @traitlets.validate("blend_words")
    def _check_blend(self, proposal):
        words = set(self.source_words) | set(self.target_words)
        out = []
        for word in proposal["value"]:
            if words and word not in words:
                raise traitlets.TraitError(f"LocalBlend word {word!r} is in neither prompt")
            if word not in out:
                out.append(word)
        return out

    @traitlets.validate("windows")
    def _check_windows(self, proposal):
        value, n = proposal["value"], self.steps
        if not isinstance(value, dict) or not {"cross", "self_attn", "blend_start"} <= set(value):
            raise traitlets.TraitError("windows needs 'cross', 'self_attn' and 'blend_start'")
        unknown = set(value) - {"cross", "self_attn", "words", "blend_start"}
        if unknown:
            raise traitlets.TraitError(f"windows: unknown key(s) {', '.join(sorted(map(str, unknown)))}")

        def window(v, what):
            if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(_is_int(x) for x in v):
                raise traitlets.TraitError(f"{what} must be [start, end] in steps, got {v!r}")
            if not 0 <= v[0] <= v[1] <= n:
                raise traitlets.TraitError(f"{what} {list(v)} must satisfy 0 <= start <= end <= {n}")
            return [v[0], v[1]]

        words = []
        for row in value.get("words", []):
            if not isinstance(row, (list, tuple)) or len(row) != 3 or not isinstance(row[0], str):
                raise traitlets.TraitError(f"a word window is [word, start, end], got {row!r}")
            words.append([row[0], *window(row[1:], f"window of {row[0]!r}")])
        start = value["blend_start"]
        if not _is_int(start) or not 0 <= start <= n:
            raise traitlets.TraitError(f"blend_start must be a step in [0, {n}], got {start!r}")
        return {"cross": window(value["cross"], "cross window"), "self_attn": window(value["self_attn"], "self window"),
                "words": words, "blend_start": start}

    @traitlets.observe("steps")
    def _on_steps(self, change):
        old, new = change["old"], change["new"]
        if old and old != new and self.windows:
            self.windows = _scale_windows(self.windows, old, new)

    def set_state(self, sync_data: dict) -> None:
        """Apply a front-end update: only the editable traits, prompt text first."""
        foreign = sorted(k for k in sync_data if k in self.keys and k not in _FRONTEND_KEYS)
        if foreign:
            self.report_error(f"rejected update from the front end: {', '.join(foreign)} cannot be set there")
            self.send_state([k for k in sync_data if k in self.keys])
            return
        if self.status in ("running", "stopping"):
            self.report_error("settings cannot change while a run is in progress: press Stop first")
            self.send_state([k for k in sync_data if k in self.keys])
            return
        first = {k: v for k, v in sync_data.items() if k in ("source", "target", "steps")}
        rest = {k: v for k, v in sync_data.items() if k not in first}
        for part in (first, rest):
            if part:
                super().set_state(part)

    # -- actions from the front end ------------------------------------------------------------------

    def _studio(self) -> Studio:
        if self.studio is None:
            raise MessageError("this panel is not part of a Studio")
        return self.studio

    @on_message("run")
    def _on_run(self, content: dict, buffers: list) -> None:
        studio = self._studio()
        try:
            studio.run()  # in a worker thread unless the Studio was made with background=False
        except P2PError as exc:
            raise MessageError(str(exc)) from None

    @on_message("stop")
    def _on_stop(self, content: dict, buffers: list) -> None:
        self._studio().stop()

    @on_message("load_spec")
    def _on_load(self, content: dict, buffers: list) -> None:
        text = content.get("text")
        if not isinstance(text, str) or len(text) > 5_000_000:
            raise MessageError("'text' must be the JSON text of an exported edit")
        try:
            self._studio().load_json(text)
        except P2PError as exc:
            raise MessageError(str(exc)) from None

    @on_message("image")
    def _on_image(self, content: dict, buffers: list) -> None:
        name = content.get("name", "image")
        if not isinstance(name, str) or len(name) > 500:
            raise MessageError("'name' must be the image's file name")
        if len(buffers) != 1:
            raise MessageError("an image message carries the file's bytes as one buffer")
        data = bytes(buffers[0])
        if not data or len(data) > MAX_IMAGE_BYTES:
            raise MessageError(f"{name}: an image file must hold 1 to {MAX_IMAGE_BYTES} bytes, got {len(data)}")
        try:
            self._studio().set_image(data, name=name)
        except P2PError as exc:
            raise MessageError(str(exc)) from None

    @on_message("clear_image")
    def _on_clear_image(self, content: dict, buffers: list) -> None:
        try:
            self._studio().clear_image()
        except P2PError as exc:
            raise MessageError(str(exc)) from None

    @on_message("export_gif")
    def _on_gif(self, content: dict, buffers: list) -> None:
        player = self._studio().player
        if not player.cached_steps:
            raise MessageError("no frames to export yet: run an edit first")
        self.send_binary({"type": "download", "name": "p2p_playback.gif", "mime": "image/gif"}, [player.to_gif()])


def _optional(name: str):
    """TokenAligner / AlphaTimeline, or None where their front end is not built."""
    try:
        if name == "aligner":
            from .aligner import TokenAligner

            return TokenAligner
        from .timeline import AlphaTimeline

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
        An existing :class:`~p2p_widgets.editor.Editor` instead of ``pipe``.
    source, target, seed, steps, guidance:
        Initial settings (defaults suit the model: the pocket model samples 25 steps at guidance 5).
    aligner, timeline:
        Show the TokenAligner / AlphaTimeline (default True); without them the panel offers an
        auto-align kind and simple schedule controls.
    background:
        Default of :meth:`run`: sample in a worker thread (True) or in the calling cell.
    """

    def __init__(self, pipe=None, *, editor=None, source: str | None = None, target: str | None = None,
                 seed: int = 0, steps: int | None = None, guidance: float | None = None, aligner: bool = True,
                 timeline: bool = True, background: bool = True, **kwargs: Any):
        from ..editor import Editor

        pocket = pipe is None and editor is None
        if editor is None:
            if pipe is None:
                from ..pocket.model import load_pocket

                pipe = load_pocket()
            editor = Editor(pipe)
        elif not isinstance(editor, Editor):
            raise TypeError(f"editor must be an Editor, got {type(editor).__name__}")
        self.editor = editor
        self.background = bool(background)
        if pocket:
            from ..models import POCKET_DEFAULTS as defaults
        else:
            from ..models import SD_DEFAULTS as defaults
        steps = defaults.steps if steps is None else steps
        guidance = defaults.guidance if guidance is None else guidance
        source = source if source is not None else (POCKET_SOURCE if pocket else SD_SOURCE)
        target = target if target is not None else (POCKET_TARGET if pocket else SD_TARGET)
        tokenizer = editor.tokenizer

        aligner_cls = _optional("aligner") if aligner else None
        timeline_cls = _optional("timeline") if timeline else None
        self.panel = StudioPanel(
            tokenizer=tokenizer, source=source, target=target, seed=seed, steps=steps, guidance=guidance,
            has_aligner=aligner_cls is not None, has_timeline=timeline_cls is not None,
            model_name="pocket model (built in)" if pocket else type(editor.pipe).__name__,
        )
        self.panel.studio = self
        self.aligner = aligner_cls(source, target, tokenizer=tokenizer) if aligner_cls else None
        self._timeline_cls = timeline_cls
        self.timeline = self._new_timeline() if timeline_cls else None
        self.player = AttentionPlayer()
        self.result = None
        self._thread: threading.Thread | None = None
        self._stop_event: threading.Event | None = None
        self._run_error: BaseException | None = None
        self._pinned: dict | None = None
        self._image: np.ndarray | None = None  # the real image to edit, prepared at the model's size
        self._lock = threading.Lock()
        super().__init__(children=self._children(), **kwargs)
        self.add_class("p2p-studio-box")
        self.panel.observe(self._on_prompts, names=["source", "target"])
        if self.aligner is not None:  # the aligner edits the prompts too: keep the panel in step
            self.aligner.observe(self._on_aligner_prompts, names=["source", "target"])
        self.panel.observe(self._on_kind, names=["kind"])
        self.panel.observe(self._on_steps, names=["steps"])

    # -- composition -------------------------------------------------------------------------------

    def _children(self) -> list:
        return [w for w in (self.panel, self.aligner, self.timeline, self.player) if w is not None]

    def _new_timeline(self, schedule=None):
        from diffusers import DDIMScheduler

        # the Editor samples with DDIM built from the pipeline's config: the timeline uses the same axis
        scheduler = DDIMScheduler.from_config(self.editor.pipe.scheduler.config)
        return self._timeline_cls(self.panel.target, steps=self.panel.steps, scheduler=scheduler,
                                  schedule=schedule, tokenizer=self.editor.tokenizer)

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

    def _on_steps(self, change) -> None:
        if self.timeline is None:
            return
        from ..schedule import AlphaSchedule

        old = self.timeline
        w = _scale_windows(old.windows, old.n_evals, self._n_evals(change["new"]))
        schedule = AlphaSchedule.build(self._n_evals(change["new"]), cross=tuple(w["cross"]),
                                       self_attn=tuple(w["self_attn"]),
                                       words={word: (s, e) for word, s, e in w["words"]}, blend_start=w["blend_start"])
        self.timeline = self._new_timeline(schedule)
        self.children = self._children()
        old.close()

    def _n_evals(self, steps: int) -> int:
        return steps  # the Editor samples with DDIM: one UNet evaluation per step

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

    def mapper(self):
        """The mapper M of the current settings (the aligner's links, or the automatic alignment)."""
        from ..mapper import Mapper, align

        src, tgt = self.panel.prompt(self.panel.source), self.panel.prompt(self.panel.target)
        pinned = self._pinned
        links = [list(x) for x in self.aligner.links] if self.aligner is not None else None
        if pinned and pinned["source"] == src.text and pinned["target"] == tgt.text and (
            links is None or links == pinned["links"]
        ):
            return Mapper.from_links(src, tgt, pinned["full_links"], include_special=False)
        if self.aligner is not None:
            return Mapper.from_links(src, tgt, [tuple(x) for x in self.aligner.links], include_special=True)
        return align(src, tgt, self.editor.tokenizer, self.panel.kind)

    def schedule(self):
        """The alpha schedule of the current settings (the timeline's, or the panel's windows)."""
        from ..schedule import AlphaSchedule

        if self.timeline is not None:
            return self.timeline.schedule
        w = self.panel.windows
        return AlphaSchedule.build(self._n_evals(self.panel.steps), cross=tuple(w["cross"]),
                                   self_attn=tuple(w["self_attn"]), words={r[0]: (r[1], r[2]) for r in w["words"]},
                                   blend_start=w["blend_start"])

    def edit_kwargs(self) -> dict:
        """Arguments for ``editor.edit(source, target, **kwargs)`` from the current settings."""
        from ..rules import LocalBlend, Refine, Replace, Reweight

        p = self.panel
        mapper, schedule = self.mapper(), self.schedule()
        if schedule.n_evals != self._n_evals(p.steps):
            raise P2PError(f"the schedule covers {schedule.n_evals} evaluations but the run has {p.steps}")
        rule = (Refine if p.kind == "refine" else Replace)(mapper, schedule)
        if p.reweight:
            rule = Reweight(rule, dict(p.reweight))
        blend = LocalBlend(list(p.blend_words), threshold=p.blend_threshold, start=schedule.blend_start) \
            if p.blend_words else None
        return dict(seed=p.seed, steps=p.steps, guidance=float(p.guidance), rules=[rule], blend=blend,
                    baseline=p.baseline)

    # -- a real image ----------------------------------------------------------------------------------

    @property
    def image(self) -> np.ndarray | None:
        """The real image being edited, (H, W, 3) uint8 at the model's size; None: images from a seed."""
        return self._image

    def set_image(self, image, name: str = "image") -> None:
        """Edit a real image (PIL image, array, file path, or an image file's bytes); the source prompt
        is its caption. Centre-cropped and resized to the model's size."""
        from PIL import Image, UnidentifiedImageError

        from ..inversion import load_image

        if self.running:
            raise P2PError("cannot change the image while a run is in progress")
        if isinstance(image, (bytes, bytearray, memoryview)):
            try:
                image = Image.open(io.BytesIO(bytes(image)))
                image.load()
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
                raise P2PError(f"{name} is not an image file this Studio can read ({exc})") from None
        pixels = load_image(image, self.editor.default_size, "center")
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
        return self._thread is not None and self._thread.is_alive() or self.panel.status in ("running", "stopping")

    def run(self, background: bool | None = None, callback=None):
        """Run the edit of the current settings, streaming into the player.

        ``background`` (default: the Studio's) runs the sampler in a worker thread and returns at
        once (see :meth:`wait`); otherwise it runs here and returns the EditResult. ``callback``
        is called with every StepEvent after the player's. Errors show in the panel; they also
        raise here when the run is not in the background."""
        background = self.background if background is None else background
        with self._lock:
            if self.running:
                self.panel.report_error("a run is in progress: wait for it or press Stop")
                raise P2PError("a run is in progress")
            try:
                kwargs = self.edit_kwargs()
                source, target = self.panel.prompt(self.panel.source), self.panel.prompt(self.panel.target)
                if self._image is not None:  # what the inversion needs, read now: settings may change later
                    kwargs["invert"] = dict(image=self._image, method=self.panel.invert_method,
                                            steps=kwargs["steps"], guidance=kwargs["guidance"])
            except (P2PError, traitlets.TraitError) as exc:
                self.panel.report_error(str(exc))
                self.panel.status = "error"
                raise P2PError(str(exc)) from None
            stop_event = threading.Event()
            self._stop_event, self._run_error = stop_event, None
            with self.panel.hold_sync():
                self.panel.clear_error()
                self.panel.status = "running"
                self.panel.progress = [0, self._n_evals(self.panel.steps)]
            if background:
                self._thread = threading.Thread(target=self._work, args=(source, target, kwargs, stop_event, callback),
                                                name="p2p-studio-run", daemon=True)
                self._thread.start()
                return None
        self._work(source, target, kwargs, stop_event, callback)
        if self._run_error is not None:
            raise self._run_error
        return self.result

    def _work(self, source, target, kwargs, stop_event, callback) -> None:
        panel = self.panel

        def progress(event):
            if callback is not None:
                callback(event)
            panel.progress = [event.step + 1, event.n_evals]

        try:
            invert = kwargs.pop("invert", None)
            if invert is not None:
                kwargs["inversion"] = self._invert(source, invert, stop_event)
                if kwargs["inversion"] is None:  # stopped while inverting: nothing to edit yet
                    with panel.hold_sync():
                        panel.phase, panel.status = "", "stopped"
                    return
            panel.phase = "sampling"
            result = self.player.run(self.editor, source, [target], callback=progress, stop_event=stop_event, **kwargs)
            images = self._result_images(result, self._image if invert is not None else None)
            spec = spec_to_json(result)
        except BaseException as exc:  # shown in the widget; a thread has nowhere else to report
            self._run_error = exc
            _log.debug("Studio run failed", exc_info=True)
            with panel.hold_sync():
                panel.report_error(f"run failed: {type(exc).__name__}: {exc}")
                panel.phase, panel.status = "", "error"
            return
        self.result = result
        with panel.hold_sync():
            panel.phase = ""
            panel.images = images
            panel.spec_json = spec
            panel.status = "stopped" if result.stopped else "done"

    def _invert(self, source, invert: dict, stop_event):
        """The inversion of the Studio's image with the source prompt (cached), or None if stopped."""
        panel = self.panel

        def progress(event):  # both phases of null-text count: the DDIM pass, then the optimisation
            done = event.step + 1 + (invert["steps"] if event.phase == "null-text" else 0)
            panel.progress = [done, invert["steps"] * (2 if invert["method"] == "null-text" else 1)]

        panel.phase = f"inverting ({invert['method']})"
        try:
            inversion = self.editor.invert(invert["image"], source.text, method=invert["method"], steps=invert["steps"],
                                           guidance=invert["guidance"], callback=progress, stop_event=stop_event)
        except P2PError:
            if stop_event.is_set():
                return None
            raise
        return None if inversion.stopped else inversion

    @staticmethod
    def _result_images(result, image=None) -> list:
        first = "source" if image is None else "reconstruction"
        out = [] if image is None else [{"label": "input image", "name": "input.png", "png": encode_image(image)}]
        out += [
            {"label": first, "name": f"{first}.png", "png": encode_image(np.asarray(result.images[0].convert("RGB")))},
            {"label": "edit" + (" (stopped early)" if result.stopped else ""), "name": "edit.png",
             "png": encode_image(np.asarray(result.images[1].convert("RGB")))},
        ]
        if result.baseline:
            out.append({"label": "without P2P (same seed)" if image is None else "without P2P (same noise)",
                        "name": "baseline.png",
                        "png": encode_image(np.asarray(result.baseline[1].convert("RGB")))})
        return out

    def wait(self, timeout: float | None = None):
        """Wait for a background run; returns the EditResult (raises the run's error)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"the run did not finish within {timeout} s")
        if self._run_error is not None:
            raise self._run_error
        return self.result

    def stop(self) -> None:
        """Ask the current run to stop after its current step."""
        if self._stop_event is not None and self.running:
            self._stop_event.set()
            if self.panel.status == "running":
                self.panel.status = "stopping"

    # -- export / import -----------------------------------------------------------------------------

    @property
    def spec(self) -> dict | None:
        """The last run's edit spec (see :mod:`p2p_widgets.export`), or None."""
        return None if self.result is None else spec_to_dict(self.result)

    def to_json(self) -> str:
        """The last run's edit as JSON text."""
        if self.result is None:
            raise P2PError("nothing to export yet: run an edit first")
        return spec_to_json(self.result)

    def load_json(self, spec) -> None:
        """Load an exported edit (JSON text or dict) into the controls; Run reruns it exactly."""
        if self.running:
            raise P2PError("cannot load while a run is in progress")
        spec = spec_from_json(spec) if isinstance(spec, (str, bytes, bytearray)) else validate_spec(spec)
        if len(spec["prompts"]) != 2:
            raise P2PError(f"the Studio edits one target; this spec has {len(spec['prompts']) - 1} "
                           "(use p2p_widgets.export.edit_from_spec)")
        size = spec.get("size")
        if size and list(size) != [self.editor.default_size] * 2:
            raise P2PError(f"this spec is for {size[0]}x{size[1]} images; the Studio's model makes "
                           f"{self.editor.default_size}x{self.editor.default_size}")
        if spec.get("mode", "fast") != "fast":
            raise P2PError("the Studio runs the fast path; use edit_from_spec for mode 'explicit'")
        inversion = spec.get("inversion")
        if inversion is not None:
            from ..inversion import _pixels_hash

            if self._image is None or _pixels_hash(self._image) != inversion.get("image_sha256"):
                raise P2PError("this edit is of a real image: load that image into the Studio first "
                               "(its file button or set_image), then the JSON")
            if inversion.get("method") not in ("null-text", "negative-prompt", "ddim"):
                raise P2PError(f"unknown inversion method {inversion.get('method')!r}")
        from ..rules import LocalBlend  # noqa: F401  (validates the engine is importable)
        from ..schedule import AlphaSchedule

        rule = spec["rules"][0]
        schedule = AlphaSchedule.from_dict(rule["schedule"])
        if schedule.n_evals != self._n_evals(spec["steps"]):
            raise P2PError(f"the schedule has {schedule.n_evals} evaluations but the spec samples "
                           f"{spec['steps']} steps")
        source, target = spec["prompts"]
        src, tgt = self.panel.prompt(source), self.panel.prompt(target)  # raise on bad prompts
        full = [[int(i), int(j), float(w)] for i, j, w in rule["mapper"]["links"]]
        real = sorted([i, j, w] for i, j, w in full if i < src.n_tokens and j < tgt.n_tokens)
        blend = spec.get("blend")
        if blend and blend.get("subtract"):
            raise P2PError("LocalBlend 'subtract' words are not editable in the Studio; use edit_from_spec")
        panel = self.panel
        with panel.hold_sync():
            panel.clear_error()
            panel.source, panel.target = source, target
            panel.steps = spec["steps"]
            panel.seed, panel.guidance = spec["seed"], float(spec["guidance"])
            panel.kind = "refine" if rule["rule"] == "Refine" else "auto"
            panel.reweight = dict(rule.get("values") or {})
            words = blend["words"] if blend else []
            panel.blend_words = [words] if isinstance(words, str) else [w for w in words if isinstance(w, str)]
            if blend:
                panel.blend_threshold = float(blend.get("threshold", 0.3))
            if inversion is not None:
                panel.invert_method = inversion["method"]
            d = schedule.to_dict()
            panel.windows = {"cross": d["cross"], "self_attn": d["self_attn"],
                             "words": [[w, *v] for w, v in d["words"].items()], "blend_start": d["blend_start"]}
        if inversion is None and self._image is not None:
            self.clear_image()  # the edit starts from its seed
        if self.aligner is not None:
            self.aligner.links = real
        if self.timeline is not None:
            self.timeline.schedule = schedule
        self._pinned = {"source": source, "target": target, "links": [list(x) for x in self.aligner.links]
                        if self.aligner is not None else None, "full_links": [tuple(x) for x in full]}

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
