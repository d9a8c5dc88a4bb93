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
"""

from __future__ import annotations

from typing import Any

import traitlets

from ..engine.adapter import ddim_scheduler
from ..engine.prompts import Prompt
from ..engine.schedule import AlphaSchedule
from ..errors import MessageError, P2PError, is_int
from ._base import P2PWidget, on_message

PRESETS = {
    "default": "P2P default: cross-attention for 80% of the run, self-attention for 40%",
    "source_only": "source only: inject the source's attention for the whole run",
    "no_injection": "no injection: the edit keeps its own attention (plain text-to-image)",
}


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
        The CLIP tokenizer (default: :func:`p2p_widgets.engine.tokenizer.load_tokenizer`).
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

    def __init__(self, target: str = "", steps: int = 50, scheduler=None, schedule=None, tokenizer=None, **kwargs: Any):
        if tokenizer is None:
            from ..engine.tokenizer import load_tokenizer

            tokenizer = load_tokenizer()
        self._tokenizer = tokenizer
        self._steps = steps
        timesteps = scheduler_timesteps(scheduler, steps)
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
        return Prompt.from_text(self.target if text is None else text, self._tokenizer)

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
            kept = []
            for row in self.windows["words"]:
                try:
                    prompt.find(row[0])
                except P2PError:
                    continue  # the word is gone from the prompt: its row goes too
                kept.append(row)
            self.windows = {**self.windows, "words": kept}

    # -- windows ---------------------------------------------------------------------------------

    @traitlets.validate("windows")
    def _check_windows(self, proposal):
        return self._validated_windows(proposal["value"])

    def _validated_windows(self, value) -> dict:
        try:
            return AlphaSchedule.from_windows(self.n_evals, value, self._target_prompt()).to_windows()
        except P2PError as exc:
            raise traitlets.TraitError(str(exc)) from None

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
        labels = [r[0] for r in rows]
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
            title_text=f"alpha schedule for {self.target!r}", height=140 + 30 * len(rows), showlegend=False, bargap=0.35
        )
        return fig

    def __repr__(self) -> str:
        return f"AlphaTimeline(target={self.target!r}, n_evals={self.n_evals}, windows={self.windows})"
