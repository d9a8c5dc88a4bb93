"""The Studio's panel: its own controls, results and exports, validated in Python.

Front-end writes are checked here (all or nothing: a rejected key leaves every trait as it was);
actions (``run``, ``stop``, ``load_spec``, ``image``, ``export_gif``) arrive as messages and are
handed to the owning :class:`~p2p_widgets.widgets.studio.Studio`. The method menu (``methods``)
lists Prompt-to-Prompt and every registered rule with declared parameters; ``method_values`` are
checked by the rule's own :class:`~p2p_widgets.engine.params.Param` declarations (see
:mod:`.methods`), and an error about one of them names it: ``error_field`` is
``"method_values.<parameter>"``.
"""

from __future__ import annotations

import difflib
import json
import math
from typing import Any

import traitlets

from ...engine.inversion.record import FAMILY_DEFAULTS, method_problem, methods_of
from ...engine.inversion.record import LABELS as INVERT_LABELS
from ...engine.schedule import AlphaSchedule
from ...engine.schedulers import DDIM, LABELS, SCHEDULERS
from ...engine.spec import FORMAT
from ...errors import MessageError, P2PError
from .._base import P2PWidget, PromptCache, in_range, on_message
from .image_input import MAX_IMAGE_BYTES
from .methods import (
    P2P,
    ParamValueError,
    check_values,
    default_values,
    lengthens_keys,
    method_classes,
    method_menu,
    missing,
    model_refusal,
    words_of,
)

KINDS = ("auto", "replace", "refine")
SECTIONS = ("playback", "alignment", "schedule")  # what the Studio shows under the panel
RUN_STATES = ("idle", "running", "stopping", "done", "stopped", "error")
MAX_WEIGHT = 10.0
RUN_IN_PROGRESS = "settings cannot change while a run is in progress: press Stop first"
MAX_SEED = 2**53 - 1  # what a JavaScript number holds exactly


def _unique_words(prompt) -> list[str]:
    return list(dict.fromkeys(w.text for w in prompt.words))


def changed_words(source, target) -> dict:
    """Words that differ between two prompts (a word diff): {"source": [...], "target": [...]},
    each in prompt order, once. These are offered first for reweighting and LocalBlend."""
    src, tgt = [w.text for w in source.words], [w.text for w in target.words]
    out = {"source": [], "target": []}
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, src, tgt, autojunk=False).get_opcodes():
        if op != "equal":
            out["source"] += src[i1:i2]
            out["target"] += tgt[j1:j2]
    return {side: list(dict.fromkeys(words)) for side, words in out.items()}


EDIT_SOURCES = "an edit file is what the Studio's 'Export edit JSON' or p2p_widgets.save_edit writes"


def not_an_edit(text: str) -> str | None:
    """Why ``text`` is not an edit file at all (not JSON, not an object, another format), said to
    the user who chose it; None where it may be one (loading it says what is wrong with it)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        return f"is not JSON text{where}: {EDIT_SOURCES}"
    if not isinstance(data, dict):
        kind = {list: "a JSON list", str: "a JSON string"}.get(type(data), "a single JSON value")
        return f"is not an edit saved by p2p_widgets ({kind}, not an object): {EDIT_SOURCES}"
    if "format" in data and data["format"] != FORMAT:
        shown = repr(data["format"])[:80]
        return f"is not an edit saved by p2p_widgets (format {shown}; an edit's is {FORMAT!r}): {EDIT_SOURCES}"
    return None


class StudioPanel(P2PWidget):
    """The Studio's own controls, results and exports (see :class:`Studio`).

    Front-end writes are validated here; actions (``run``, ``stop``, ``load_spec``,
    ``export_gif``) arrive as messages and are handed to the owning :class:`Studio`."""

    _bundle = "studio"
    _frontend_keys = frozenset(
        {
            "source",
            "target",
            "seed",
            "steps",
            "guidance",
            "kind",
            "windows",
            "reweight",
            "blend_words",
            "blend_threshold",
            "baseline",
            "invert_method",
            "scheduler",
            "method",
            "method_values",
            "combine_p2p",
            "section",
        }
    )  # what the page may write
    _view_keys = frozenset({"section"})  # writable during a run too (they change what is shown, not the edit)
    # reweight, blend and windows are checked against the prompts and steps; a method's values against the method
    _first_keys = ("source", "target", "steps", "scheduler", "method")
    _field_errors = True

    source = traitlets.Unicode("", help="Source prompt.").tag(sync=True)
    target = traitlets.Unicode("", help="Target (edited) prompt.").tag(sync=True)
    seed = traitlets.Int(0, help="Noise seed.").tag(sync=True)
    steps = traitlets.Int(25, help="Inference steps (DDIM: one UNet evaluation each).").tag(sync=True)
    guidance = traitlets.Float(5.0, help="Classifier-free guidance scale.").tag(sync=True)
    kind = traitlets.Enum(KINDS, default_value="auto", help="How tokens are aligned (the aligner's auto-align).").tag(
        sync=True
    )
    windows = traitlets.Dict(
        help="Alpha windows when no timeline is shown: {'cross', 'self_attn', 'words', 'blend_start'} in evaluations."
    ).tag(sync=True)
    reweight = traitlets.Dict(help="{word of the target: scale} for the Reweight rule (1 = unchanged).").tag(sync=True)
    blend_words = traitlets.List(traitlets.Unicode(), help="LocalBlend words (empty: no LocalBlend).").tag(sync=True)
    blend_threshold = traitlets.Float(0.3, help="LocalBlend mask threshold in (0, 1).").tag(sync=True)
    baseline = traitlets.Bool(False, help="Also render the same seed without P2P.").tag(sync=True)
    invert_method = traitlets.Unicode(
        "null-text", help="How a real image is inverted before editing: one of invert_choices (the model's)."
    ).tag(sync=True)
    invert_choices = traitlets.List(
        help="[[method, label], ...]: the inversions the model takes, best first (engine.inversion.methods_of)."
    ).tag(sync=True)
    scheduler = traitlets.Enum(SCHEDULERS, default_value=DDIM, help="The diffusers scheduler runs sample with.").tag(
        sync=True
    )
    scheduler_choices = traitlets.List(
        [[name, label] for name, label in LABELS.items()], help="[[scheduler, label], ...] for the menu."
    ).tag(sync=True)
    n_evals = traitlets.Int(25, help="UNet evaluations of a run (computed: Heun evaluates twice a step).").tag(
        sync=True
    )
    method = traitlets.Unicode(P2P, help="The method Run runs: 'p2p' or a registered rule's name (see methods).").tag(
        sync=True
    )
    method_values = traitlets.Dict(help="{parameter: value} of the chosen rule (checked by its declaration).").tag(
        sync=True
    )
    combine_p2p = traitlets.Bool(False, help="Run P2P's rule beside the chosen rule (Combine(p2p, rule)).").tag(
        sync=True
    )

    # written by Python only
    source_words = traitlets.List(traitlets.Unicode(), help="Words of the source (computed).").tag(sync=True)
    target_words = traitlets.List(traitlets.Unicode(), help="Words of the target (computed).").tag(sync=True)
    has_aligner = traitlets.Bool(False, help="A TokenAligner is part of the Studio.").tag(sync=True)
    has_timeline = traitlets.Bool(False, help="An AlphaTimeline is part of the Studio.").tag(sync=True)
    section = traitlets.Enum(
        SECTIONS, default_value="playback", help="What the Studio shows under the panel (its tabs)."
    ).tag(sync=True)
    status = traitlets.Enum(RUN_STATES, default_value="idle", help="Run state.").tag(sync=True)
    progress = traitlets.List(traitlets.Int(), default_value=[0, 0], help="[steps done, evaluations].").tag(sync=True)
    images = traitlets.List(help="Results: [{'label', 'name', 'png': bytes}], source first.").tag(sync=True)
    spec_json = traitlets.Unicode("", help="The last run's edit as JSON (export).").tag(sync=True)
    model_name = traitlets.Unicode("", help="What the Studio samples with (display).").tag(sync=True)
    input_image = traitlets.Bytes(b"", help="PNG of the real image to edit, at the model's size (empty: none).").tag(
        sync=True
    )
    input_name = traitlets.Unicode("", help="File name of the real image (display).").tag(sync=True)
    image_note = traitlets.Unicode(
        "", help="Why real images cannot be edited on this model ('' where they can): shown instead of the file input."
    ).tag(sync=True)
    phase = traitlets.Unicode("", help="What a run is doing now: 'inverting (<method>)' or 'sampling' (display).").tag(
        sync=True
    )
    methods = traitlets.List(
        help="The method menu: [{'name', 'label', 'help', 'params': [Param.describe()], 'follows_inversion', "
        "'combinable'}], Prompt-to-Prompt first."
    ).tag(sync=True)
    changed_words = traitlets.Dict(
        help="{'source': [...], 'target': [...]}: words that differ between the prompts (offered first)."
    ).tag(sync=True)

    def __init__(self, tokenizer=None, family: str = "sd", inversion_family: str | None = "ddim", **kwargs: Any):
        self._prompts = PromptCache(tokenizer)
        self.studio = None  # the owning Studio, which handles the actions
        self._family = family  # the model family ("sd", "sdxl", "sd3", "flux"): which methods run on it
        # the model's inversions ("ddim": UNets, "flow": SD3 / Flux, None: none): the inversion menu
        self._inversion_family = inversion_family
        kwargs.setdefault("invert_choices", [[m, INVERT_LABELS.get(m, m)] for m in methods_of(inversion_family)])
        kwargs.setdefault("invert_method", FAMILY_DEFAULTS.get(inversion_family, ""))
        self._joint = family in ("sd3", "flux")
        self._classes: dict[str, type] = method_classes(self._joint)  # the menu's rule classes (refresh_methods)
        self._kept_values: dict[str, dict] = {}  # each method's last values, back when it is chosen again
        self._bad_param = ""  # the parameter the last refused method_values named
        self._reported = False  # whether an error was reported during the current front-end update
        kwargs.setdefault("n_evals", kwargs.get("steps", 25))
        kwargs.setdefault("windows", AlphaSchedule.build(kwargs["n_evals"]).to_windows())
        kwargs.setdefault("methods", method_menu(self._joint))
        super().__init__(**kwargs)
        self._refresh_words()

    # -- prompts -----------------------------------------------------------------------------------

    def prompt(self, text: str):
        """The :class:`~p2p_widgets.engine.prompts.Prompt` of ``text`` (cached)."""
        return self._prompts(text)

    @traitlets.validate("source", "target")
    def _check_text(self, proposal):
        self.check_prompt(proposal["trait"].name, proposal["value"])
        return proposal["value"]

    def check_prompt(self, name: str, text: str) -> None:
        """A TraitError where ``text`` cannot be the ``name`` ('source' or 'target') prompt (the
        Studio's aligner asks too, so that the two never hold different prompts)."""
        # a real image may be read under the empty prompt (Plug-and-Play's authors do, with DDIM inversion)
        if not text.strip() and not (name == "source" and self.input_image):
            what = "the edited prompt: what the image should become" if name == "target" else "the image's prompt"
            raise traitlets.TraitError(f"the {name} prompt is empty: type {what}")
        self._prompts.check(name, text)

    @traitlets.observe("source", "target")
    def _on_text(self, change):
        self._refresh_words()

    def _refresh_words(self) -> None:
        source, target = self.prompt(self.source), self.prompt(self.target)
        src, tgt = _unique_words(source), _unique_words(target)
        with self.hold_sync():
            self.source_words, self.target_words = src, tgt
            self.changed_words = changed_words(source, target)
            kept = {w: v for w, v in self.reweight.items() if w in tgt}
            if kept != self.reweight:
                self.reweight = kept
            blend = [w for w in self.blend_words if w in src or w in tgt]
            if blend != self.blend_words:
                self.blend_words = blend
            rows = [row for row in self.windows.get("words", []) if target.has(row[0])]
            if rows != self.windows.get("words", []):  # a word gone from the target: its row goes too
                self.windows = {**self.windows, "words": rows}

    # -- validation --------------------------------------------------------------------------------

    @traitlets.validate("seed")
    def _check_seed(self, proposal):
        return in_range(proposal, 0, MAX_SEED)

    @traitlets.validate("steps")
    def _check_steps(self, proposal):
        return in_range(proposal, 1, 1000)

    @traitlets.validate("guidance")
    def _check_guidance(self, proposal):
        return in_range(proposal, 0, 50)

    @traitlets.validate("blend_threshold")
    def _check_threshold(self, proposal):
        return in_range(proposal, 0, 1, open_low=True, open_high=True)

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
        try:
            return AlphaSchedule.from_windows(self.n_evals, proposal["value"], self.prompt(self.target)).to_windows()
        except P2PError as exc:
            raise traitlets.TraitError(str(exc)) from None

    # -- the method menu --------------------------------------------------------------------------------

    def refresh_methods(self) -> None:
        """Read the rule registry again: rules registered since are offered from now on."""
        self._classes = method_classes(self._joint)
        self.methods = method_menu(self._joint)

    def method_class(self, name: str | None = None) -> type | None:
        """The rule class of method ``name`` (default: the chosen one); None for Prompt-to-Prompt."""
        name = self.method if name is None else name
        return None if name == P2P else self._classes[name]

    @property
    def uses_p2p(self) -> bool:
        """Whether P2P's rule is part of the run (P2P alone, or combined with the chosen rule)."""
        return self.method == P2P or self.combine_p2p

    @traitlets.validate("method")
    def _check_method(self, proposal):
        name = proposal["value"]
        if name != P2P and name not in self._classes:
            self.refresh_methods()  # registered since the menu was read?
        if name != P2P and name not in self._classes:
            refused = method_classes().get(name)
            if refused is not None:  # registered, but not for this kind of model
                raise traitlets.TraitError(model_refusal(refused, self._joint, self._family))
            known = ", ".join(m["label"] for m in self.methods)
            raise traitlets.TraitError(f"method {name!r} is not in the menu ({known}); register it with @register_rule")
        return name

    def kept_values(self) -> dict[str, dict]:
        """A copy of each method's last values (what choosing that method again brings back)."""
        return {k: dict(v) for k, v in self._kept_values.items()}

    def restore_kept_values(self, kept: dict[str, dict]) -> None:
        """Put back each method's last values, as :meth:`kept_values` returned them."""
        self._kept_values = kept

    @traitlets.observe("method_values")
    def _on_method_values(self, change):
        self._kept_values[self.method] = dict(change["new"])

    @traitlets.observe("method")
    def _on_method(self, change):
        cls = self.method_class()
        with self.hold_sync():
            if self.combine_p2p and (cls is None or not self._combinable(cls)):
                self.combine_p2p = False
            self.method_values = self._kept_values.get(change["new"], default_values(cls))

    def _combinable(self, cls) -> bool:
        return next(m["combinable"] for m in self.methods if m["name"] == cls.rule_name)

    @traitlets.validate("method_values")
    def _check_method_values(self, proposal):
        cls = self.method_class()
        try:
            values = check_values(cls, proposal["value"])
            if self.combine_p2p and cls is not None and not missing(cls, values) and lengthens_keys(cls(**values)):
                # the parameter this write changed (self.method_values may hold the proposal already:
                # ipywidgets validates a front-end update after setting it)
                changed = [k for k, v in values.items() if self._kept_values.get(self.method, {}).get(k) != v] or [""]
                raise ParamValueError(
                    changed[0],
                    f"{words_of(changed[0]) or 'these values'}: the rule then attends to more keys than the "
                    "source has, which P2P's self-attention injection cannot share; untick "
                    "'combine with Prompt-to-Prompt' first",
                )
            return values
        except ParamValueError as exc:
            self._bad_param = exc.param
            raise traitlets.TraitError(str(exc)) from None

    @traitlets.validate("combine_p2p")
    def _check_combine(self, proposal):
        cls = self.method_class()
        if not proposal["value"]:
            return False
        if cls is None or not self._combinable(cls):
            what = "itself" if cls is None else f"{self.method}: it changes cross-attention or attends to more keys"
            raise traitlets.TraitError(f"Prompt-to-Prompt cannot run beside {what}")
        if not missing(cls, self.method_values) and lengthens_keys(cls(**self.method_values)):
            raise traitlets.TraitError(
                f"{self.method} with these values attends to more keys than the source has, which P2P's "
                "self-attention injection cannot share (e.g. MasaCtrl's union): change them first"
            )
        return True

    def set_state(self, sync_data: dict) -> None:
        """As :meth:`P2PWidget.set_state`; an accepted write of the field an error is about (a
        method parameter, or e.g. the method or scheduler a refused Run named) clears it: it has
        been answered."""
        field = self.error_field.split(".")[0]
        self._reported = False
        super().set_state(sync_data)
        if field and field in sync_data and not self._reported:
            self.clear_error()

    def report_error(self, message: str, field: str = "") -> None:
        """As :meth:`P2PWidget.report_error`; an error about ``method_values`` names its parameter
        in the field: ``"method_values.<parameter>"`` (the page shows it beside that control)."""
        self._reported = True
        if field == "method_values" and self._bad_param:
            field = f"method_values.{self._bad_param}"
        super().report_error(message, field)

    @traitlets.observe("steps", "scheduler", "invert_method", "input_image")
    def _on_sampling(self, change):  # on a flow model a real image is sampled with its inversion's solver
        old, new = self.n_evals, self.count_evals(self.steps, self.scheduler)
        if old != new:
            schedule = AlphaSchedule.from_windows(old, self.windows)
            with self.hold_trait_notifications():  # the windows move with the axis, validated together
                self.n_evals = new
                self.windows = schedule.rescaled(new).to_windows()

    def count_evals(self, steps: int, scheduler: str) -> int:
        """UNet evaluations of a run (the Studio gives the model's own count; DDIM: one a step)."""
        return steps if self.studio is None else self.studio.count_evals(steps, scheduler)

    @traitlets.validate("scheduler")
    def _check_scheduler(self, proposal):
        names = [name for name, _ in self.scheduler_choices]
        if names and proposal["value"] not in names:
            raise traitlets.TraitError(
                f"scheduler {proposal['value']!r} is not offered for this model (its menu: {', '.join(names)})"
            )
        return proposal["value"]

    @traitlets.validate("invert_method")
    def _check_invert_method(self, proposal):
        method = proposal["value"]
        if self._inversion_family is None and method == "":  # this model inverts no images
            return method
        problem = method_problem(method, self._family, self._inversion_family)
        if problem:
            raise traitlets.TraitError(f"inversion {problem}")
        return method

    @traitlets.validate("section")
    def _check_section(self, proposal):
        name = proposal["value"]
        if (name == "alignment" and not self.has_aligner) or (name == "schedule" and not self.has_timeline):
            raise traitlets.TraitError(f"this Studio has no {name} section (it was made without it)")
        return name

    def _refuse_update(self, keys: list) -> str:
        if self.status in ("running", "stopping") and not set(keys) <= self._view_keys:
            return RUN_IN_PROGRESS
        return ""

    # -- actions from the front end ------------------------------------------------------------------

    def _studio(self):
        if self.studio is None:
            raise MessageError("this panel is not part of a Studio")
        return self.studio

    @on_message("run")
    def _on_run(self, content: dict, buffers: list) -> None:
        studio = self._studio()
        if self.error_field and self.error.startswith("not applied:"):
            # the page's last write of a field was refused and the field still shows that text
            # (Ctrl+Enter sends the write and the run together): running the kernel's value now
            # would run what the page does not show. The error beside the field says why.
            return
        try:
            studio.run()  # in a worker thread unless the Studio was made with background=False
        except P2PError as exc:
            if not self.error:  # the Studio shows its refusals itself, beside the field at fault
                raise MessageError(str(exc)) from None

    @on_message("stop")
    def _on_stop(self, content: dict, buffers: list) -> None:
        self._studio().stop()

    @on_message("load_spec")
    def _on_load(self, content: dict, buffers: list) -> None:
        text, name = content.get("text"), content.get("name")
        if not isinstance(text, str) or len(text) > 5_000_000:
            raise MessageError("'text' must be the JSON text of an exported edit")
        what = f"Loading {name}" if isinstance(name, str) and 0 < len(name) <= 200 else "Loading the edit file"
        problem = not_an_edit(text)
        if problem is None:
            try:
                self._studio().load_json(text)
                return
            except P2PError as exc:
                problem = f"could not be loaded as an edit: {exc}"
        self.report_error(f"{what}: the file {problem}")  # said as what the user did, not as a message type

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
        self.send_binary(*self._studio().player.gif_download())
