"""AlphaTimeline: when each target token stops taking the source's attention.

>>> from p2p_widgets.widgets import AlphaTimeline
>>> timeline = AlphaTimeline("a photo of a big tabby cat", steps=50, scheduler=pipe)
>>> timeline                    # drag window edges, add per-word rows, pick a preset
>>> timeline.schedule           # the engine's AlphaSchedule
>>> timeline.to_plotly()        # the same schedule as a plotly figure

Time runs left to right over the real UNet evaluations of the scheduler (evaluation 0 is the
noisiest), labelled with their timesteps. Rows: the default cross-attention window, one per word
that overrides it, the self-attention injection window and LocalBlend's start. Windows are
half-open ``[start, end)`` in evaluation indices, as in :class:`~p2p_widgets.engine.schedule.AlphaSchedule`.

The front end may only write ``windows``; every write is validated here (integer steps inside
the run, start <= end, words of the target prompt, no duplicate rows) and an invalid one is
rejected: ``error`` says why and the front end is put back to the Python value.

Below the editable rows, read-only bands show where any edit rule acts (``rule_windows``, set with
:meth:`AlphaTimeline.show_rule` from the rule's ``windows(n_evals)``), e.g. MasaCtrl's mutual
self-attention from step 4, or Plug-and-Play's feature and attention injection.
"""

from __future__ import annotations

from typing import Any

import traitlets

from ..engine.models.unet import ddim_scheduler
from ..engine.prompts import Prompt, prompt_maker
from ..engine.rules import Combine, EditRule
from ..engine.schedule import AlphaSchedule
from ..errors import MessageError, P2PError, is_int
from ..plots import as_text
from ._base import P2PWidget, on_message

PRESETS = {
    "default": "P2P default: cross-attention for 80% of the run, self-attention for 40%",
    "source_only": "source only: inject the source's attention for the whole run",
    "no_injection": "no injection: the edit keeps its own attention (plain text-to-image)",
}


_MAX_WHAT = 200  # characters of a band's description


def rule_bands(rule, n_evals: int) -> list[dict]:
    """``[{"rule", "what", "start", "end"}]``: where ``rule`` acts over a run of ``n_evals``
    evaluations (its ``windows(n_evals)``), each part of a :class:`Combine` under its own name."""
    if isinstance(rule, Combine):
        return [band for part in rule.rules for band in rule_bands(part, n_evals)]
    if not isinstance(rule, EditRule):
        raise P2PError(f"rule must be an EditRule (or a list of them), got {type(rule).__name__}")
    name = type(rule).rule_name or type(rule).__name__
    bands = []
    for k, window in enumerate(rule.windows(n_evals)):
        if not (isinstance(window, (tuple, list)) and len(window) == 3):
            raise P2PError(f"{name}.windows() item {k} must be (what, first step, end step), got {window!r}")
        what, start, end = window
        bands.append({"rule": name, "what": str(what), "start": start, "end": end})
    return bands


def scheduler_timesteps(scheduler=None, steps: int = 50) -> list[int]:
    """Timesteps of the UNet evaluations of ``scheduler`` (a diffusers scheduler, a pipeline with
    a ``.scheduler``, or None for the pocket model's DDIM) for ``steps`` inference steps.

    The scheduler is copied (``from_config``), so the caller's one is left as it was."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise P2PError(f"steps must be a positive integer, got {steps!r}")
    if scheduler is None:
        from ..pocket.model import SCHEDULER_CONFIG

        fresh = ddim_scheduler(SCHEDULER_CONFIG)
    else:
        source = getattr(scheduler, "scheduler", scheduler)  # a pipeline or a scheduler
        if not hasattr(source, "set_timesteps") or not hasattr(source, "config"):
            raise P2PError(f"scheduler must be a diffusers scheduler or a pipeline, got {type(scheduler).__name__}")
        fresh = type(source).from_config(source.config)
    limit = int(getattr(fresh.config, "num_train_timesteps", 1000))
    if steps > limit:
        raise P2PError(f"steps must be at most {limit} for this scheduler, got {steps}")
    fresh.set_timesteps(steps)
    return [int(t) for t in fresh.timesteps]


class AlphaTimeline(P2PWidget):
    """Edit an :class:`~p2p_widgets.engine.schedule.AlphaSchedule` on the scheduler's real time axis.

    Parameters
    ----------
    target:
        The target (edited) prompt: per-word rows must name its words.
    steps:
        Inference steps of the run (the number of evaluations depends on the scheduler).
    scheduler:
        A diffusers scheduler or a pipeline (its ``.scheduler``); None: the pocket model's DDIM.
    schedule:
        An :class:`AlphaSchedule` over the same number of evaluations, a dict as produced by
        :meth:`AlphaSchedule.to_dict`, or None for the P2P default (cross 0.8, self 0.4, LocalBlend
        from 0.2).
    tokenizer:
        The tokenizer of the model's prompts (default: the bundled CLIP tokenizer,
        :func:`p2p_widgets.engine.tokenizer.load_tokenizer`; on Flux the model's T5 tokenizer), or
        the model itself (an Editor or its backend: its ``prompt``).
    timesteps:
        The run's timesteps as the model sets them (instead of reading ``scheduler``'s): what the
        Studio gives for models whose schedule depends on the image size (SD3, Flux).
    playhead:
        Optional initial playhead (evaluation index) or None.
    """

    _bundle = "timeline"
    _frontend_keys = frozenset({"windows"})

    target = traitlets.Unicode("", help="Target prompt (plain text).").tag(sync=True)
    words = traitlets.List(traitlets.Unicode(), help="Words of the target prompt (computed).").tag(sync=True)
    timesteps = traitlets.List(traitlets.Int(), help="Timestep of each evaluation (computed).").tag(sync=True)
    n_evals = traitlets.Int(0, help="Evaluations in the run (computed).").tag(sync=True)
    windows = traitlets.Dict(
        help="{'cross': [s, e], 'self_attn': [s, e], 'words': [[word, s, e], ...], 'blend_start': k}"
    ).tag(sync=True)
    playhead = traitlets.Int(None, allow_none=True, help="Current playback evaluation, or None.").tag(sync=True)
    rule_windows = traitlets.List(
        help="Read-only bands of a rule: [{'rule': name, 'what': text, 'start': s, 'end': e}] (set by show_rule)."
    ).tag(sync=True)

    def __init__(
        self,
        target: str = "",
        steps: int = 50,
        scheduler=None,
        schedule=None,
        tokenizer=None,
        timesteps=None,
        **kwargs: Any,
    ):
        self._make_prompt = prompt_maker(tokenizer)
        self._steps = steps
        if timesteps is None:
            timesteps = scheduler_timesteps(scheduler, steps)
        elif not isinstance(timesteps, (list, tuple)) or not timesteps:
            raise P2PError(f"timesteps must be a non-empty list of the run's timesteps, got {timesteps!r}")
        timesteps = [int(t) for t in timesteps]
        n = len(timesteps)
        if schedule is None:
            schedule = AlphaSchedule.build(n)
        elif isinstance(schedule, dict):
            schedule = AlphaSchedule.from_dict(schedule)
        elif not isinstance(schedule, AlphaSchedule):
            raise P2PError(f"schedule must be an AlphaSchedule, a dict or None, got {type(schedule).__name__}")
        if schedule.n_evals != n:
            raise P2PError(f"the schedule has {schedule.n_evals} evaluations but this run has {n}")
        playhead = kwargs.pop("playhead", None)
        self._ready = False
        super().__init__(target=target, timesteps=timesteps, n_evals=n, **kwargs)
        prompt = self._target_prompt()
        self.words = self._word_list(prompt)
        windows = schedule.to_windows()
        for row in windows["words"]:  # a word given by position becomes its text
            if is_int(row[0]):
                row[0] = prompt.find(row[0])[0].text
        self.windows = windows
        self.playhead = playhead
        self._ready = True

    # -- target prompt ---------------------------------------------------------------------------

    def _target_prompt(self, text: str | None = None) -> Prompt:
        return self._make_prompt(self.target if text is None else text)

    @staticmethod
    def _word_list(prompt: Prompt) -> list[str]:
        return list(dict.fromkeys(w.text for w in prompt.words))

    @traitlets.validate("target")
    def _check_target(self, proposal):
        try:
            self._target_prompt(proposal["value"])
        except P2PError as exc:
            raise traitlets.TraitError(f"target: {exc}") from None
        return proposal["value"]

    @traitlets.observe("target")
    def _on_target(self, change):
        if not self._ready:
            return
        prompt = self._target_prompt()
        with self.hold_sync():
            self.words = self._word_list(prompt)
            # a word gone from the prompt: its row goes too
            self.windows = {**self.windows, "words": [row for row in self.windows["words"] if prompt.has(row[0])]}

    # -- windows ---------------------------------------------------------------------------------

    @traitlets.validate("windows")
    def _check_windows(self, proposal):
        return self._validated_windows(proposal["value"])

    def _validated_windows(self, value) -> dict:
        try:
            return AlphaSchedule.from_windows(self.n_evals, value, self._target_prompt()).to_windows()
        except P2PError as exc:
            raise traitlets.TraitError(str(exc)) from None

    @traitlets.validate("rule_windows")
    def _check_rule_windows(self, proposal):
        out = []
        for k, band in enumerate(proposal["value"]):
            if not isinstance(band, dict) or not {"what", "start", "end"} <= set(band) <= {
                "rule",
                "what",
                "start",
                "end",
            }:
                raise traitlets.TraitError(f"rule_windows {k} must be {{'rule', 'what', 'start', 'end'}}, got {band!r}")
            rule, what, start, end = band.get("rule", ""), band["what"], band["start"], band["end"]
            if not isinstance(rule, str) or not isinstance(what, str) or not what.strip() or len(what) > _MAX_WHAT:
                raise traitlets.TraitError(
                    f"rule_windows {k}: 'what' must be a non-empty text of at most {_MAX_WHAT} characters "
                    f"and 'rule' a text, got {what!r} / {rule!r}"
                )
            if not (is_int(start) and is_int(end) and 0 <= start <= end <= self.n_evals):
                raise traitlets.TraitError(
                    f"rule_windows {k} ({what}): [start, end) must be integer steps with "
                    f"0 <= start <= end <= {self.n_evals}, got [{start!r}, {end!r})"
                )
            out.append({"rule": rule, "what": what, "start": int(start), "end": int(end)})
        return out

    @traitlets.validate("playhead")
    def _check_playhead(self, proposal):
        value = proposal["value"]
        if value is not None and not 0 <= value < max(self.n_evals, 1):
            raise traitlets.TraitError(f"playhead {value} is outside [0, {self.n_evals})")
        return value

    @property
    def steps(self) -> int:
        """Inference steps the timeline was built for."""
        return self._steps

    @property
    def schedule(self) -> AlphaSchedule:
        """The engine's :class:`~p2p_widgets.engine.schedule.AlphaSchedule` (a new object on every access)."""
        return AlphaSchedule.from_windows(self.n_evals, self.windows)

    @schedule.setter
    def schedule(self, value: AlphaSchedule) -> None:
        if not isinstance(value, AlphaSchedule):
            raise P2PError(f"schedule must be an AlphaSchedule, got {type(value).__name__}")
        if value.n_evals != self.n_evals:
            raise P2PError(f"the schedule has {value.n_evals} evaluations but this run has {self.n_evals}")
        self.windows = value.to_windows()

    def edit_kwargs(self) -> dict:
        """Keyword arguments for :meth:`p2p_widgets.engine.sampler.Editor.edit` (``steps``, ``cross``,
        ``self_attn``, ``words``); pass LocalBlend's start as ``LocalBlend(..., start=...)``."""
        w = self.windows
        return {
            "steps": self._steps,
            "cross": tuple(w["cross"]),
            "self_attn": tuple(w["self_attn"]),
            "words": {word: (s, e) for word, s, e in w["words"]} or None,
        }

    def set_window(self, row: str, start: int, end: int) -> None:
        """Set one row's window: ``row`` is ``"cross"``, ``"self_attn"`` or a word of the target
        (a word without a row gets one)."""
        w = {**self.windows, "words": [list(r) for r in self.windows["words"]]}
        if row in ("cross", "self_attn"):
            w[row] = [start, end]
        else:
            for r in w["words"]:
                if r[0] == row:
                    r[1:] = [start, end]
                    break
            else:
                w["words"].append([row, start, end])
        self.windows = w

    def remove_word(self, word: str) -> None:
        """Remove the per-word row of ``word`` (KeyError if there is none)."""
        rows = [r for r in self.windows["words"] if r[0] != word]
        if len(rows) == len(self.windows["words"]):
            raise KeyError(f"no per-word row for {word!r}")
        self.windows = {**self.windows, "words": rows}

    def apply_preset(self, name: str) -> None:
        """Apply a preset (``"default"``, ``"source_only"`` or ``"no_injection"``). Presets set
        the default and self-attention windows and remove the per-word rows."""
        n = self.n_evals
        if name == "default":
            base = AlphaSchedule.build(n).to_windows()
        elif name == "source_only":
            base = {"cross": [0, n], "self_attn": [0, n], "blend_start": self.windows["blend_start"]}
        elif name == "no_injection":
            base = {"cross": [0, 0], "self_attn": [0, 0], "blend_start": self.windows["blend_start"]}
        else:
            raise P2PError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        self.windows = {**base, "words": []}

    # -- a rule's windows (read-only) -------------------------------------------------------------

    def show_rule(self, rule, n_evals: int | None = None) -> None:
        """Show where ``rule`` acts (its ``windows(n_evals)``) as read-only bands under the
        editable rows; a list shows several rules (e.g. one per edited prompt); ``None`` or ``[]``
        removes the bands. ``n_evals`` defaults to this timeline's, and must equal it."""
        if n_evals is None:
            n_evals = self.n_evals
        if not is_int(n_evals) or n_evals != self.n_evals:
            raise P2PError(f"n_evals must be this timeline's {self.n_evals} evaluations, got {n_evals!r}")
        rules = [] if rule is None else list(rule) if isinstance(rule, (list, tuple)) else [rule]
        bands = []
        for r in rules:
            if isinstance(r, EditRule):
                r.check_run(n_evals)  # e.g. a Replace rule whose schedule is for another run
            bands += rule_bands(r, n_evals)
        try:
            self.rule_windows = bands
        except traitlets.TraitError as exc:
            raise P2PError(f"rule windows: {exc}") from None

    def clear_rule(self) -> None:
        """Remove the read-only bands of :meth:`show_rule`."""
        self.rule_windows = []

    # -- front end -------------------------------------------------------------------------------

    @on_message("preset")
    def _on_preset(self, content: dict, buffers: list) -> None:
        name = content.get("name")
        if not isinstance(name, str) or name not in PRESETS:
            raise MessageError(f"'name' must be one of {', '.join(PRESETS)}, got {name!r}")
        self.clear_error()
        self.apply_preset(name)

    # -- plotly ----------------------------------------------------------------------------------

    def to_plotly(self):
        """The schedule as a plotly figure: one horizontal bar per row over the evaluations,
        timesteps on the axis, the playhead as a vertical line."""
        try:
            import plotly.graph_objects as go
        except ImportError as exc:  # pragma: no cover - plotly is a dependency
            raise ImportError("to_plotly() needs plotly: pip install plotly") from exc

        n, w = self.n_evals, self.windows
        rows = [("cross (default)", *w["cross"], "#1976d2")]
        rows += [(f"word: {word}", s, e, "#7b1fa2") for word, s, e in w["words"]]
        rows += [("self-attention", *w["self_attn"], "#2e7d32"), ("LocalBlend", w["blend_start"], n, "#ef6c00")]
        rows += [(_band_label(b), b["start"], b["end"], "#757575") for b in self.rule_windows]
        raw = [as_text(r[0]) for r in rows]
        # two bands of one name stay two rows
        labels = [x if raw[:k].count(x) == 0 else f"{x} ({raw[:k].count(x) + 1})" for k, x in enumerate(raw)]
        fig = go.Figure(
            go.Bar(
                y=labels,
                x=[e - s for _, s, e, _ in rows],
                base=[s for _, s, _, _ in rows],
                orientation="h",
                marker_color=[r[3] for r in rows],
                customdata=[[s, e] for _, s, e, _ in rows],
                hovertemplate="%{y}: evaluations [%{customdata[0]}, %{customdata[1]})<extra></extra>",
            )
        )
        ticks = sorted({*range(0, n, max(1, -(-n // 10))), n - 1}) if n else []
        fig.update_xaxes(
            range=[0, n],
            tickvals=[i + 0.5 for i in ticks],
            ticktext=[str(self.timesteps[i]) for i in ticks],
            title_text="timestep (UNet evaluations, noisy on the left)",
        )
        fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=labels)
        if self.playhead is not None:
            fig.add_vline(x=self.playhead + 0.5, line_dash="dash", line_color="#d32f2f")
        fig.update_layout(
            title_text=as_text(f"alpha schedule for {self.target!r}"),
            height=140 + 30 * len(rows),
            showlegend=False,
            bargap=0.35,
        )
        return fig

    def __repr__(self) -> str:
        return f"AlphaTimeline(target={self.target!r}, n_evals={self.n_evals}, windows={self.windows})"


def _band_label(band: dict) -> str:
    return f"{band['rule']}: {band['what']}" if band.get("rule") else band["what"]
