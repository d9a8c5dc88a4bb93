# long: one widget, its traits and their validation, streaming a run (throttled live frames, backfill at the
# end) and reading frames back (replay, token heat, GIF); the pure parts live in stream/ (frames, gif, control)
"""AttentionPlayer: watch the x0 predictions and per-token cross-attention while the sampler runs.

>>> from p2p_widgets import Editor, load_pocket
>>> from p2p_widgets.widgets import AttentionPlayer
>>> editor = Editor(load_pocket())
>>> player = AttentionPlayer()
>>> player                                            # display it first: frames arrive live
>>> result = player.run(editor, "a big red circle left of a small blue square on a gray background",
...                     "a big red star left of a small blue square on a gray background", steps=25, guidance=5.0)
>>> player.to_gif("playback.gif")                     # the playback as an animated GIF

Or with your own call: ``cb = player.begin(prompts)``, ``editor.edit(..., callback=cb)``,
``player.end(result)``.

Each step becomes a binary frame (see :mod:`p2p_widgets.stream.frames`): PNG previews of the source's
and the edits' x0 predictions and uint8 attention maps per token and grid. Sending is throttled
(:class:`~p2p_widgets.stream.frames.Throttle`) so it stays a small share of the sampling time; the steps
skipped live are sent when the run ends, so the finished run has every step. The front end keeps
the frames per model (a second view of the same player has them too), and a reloaded page asks
Python for them again (``replay``), answered from a bounded cache.

Python holds the view state in traits the front end may write (``step``, ``playing``,
``follow``, ``tokens``, ``resolution``, ``normalize``, ``opacity``, ``fps``); every such write is
validated here and an invalid one sets ``error`` and is put back.

What the rules controlled: ``unet_cells`` lists the model's attention sites (``editor.model.sites()``:
a UNet's self- and cross-attention layers, a DiT's joint and single-stream blocks) and the modules a
rule hooks, in execution order, and ``controlled`` per step the indices of the cells a rule
changed (from ``StepEvent.controlled`` while a run streams, from ``EditResult.controlled`` when
it ends, or :meth:`AttentionPlayer.show_controlled` for a finished result). The front end draws
them as a strip under the step slider (a UNet's blocks as a U, a DiT's double- then single-stream
blocks in a row); both are written by Python only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import traitlets

from ..errors import MessageError, P2PError, RunStopped, is_int
from ..stream.control import ControlStrip, RunControl, cells_at
from ..stream.frames import (
    IMAGE_FORMATS,
    STATUSES,
    Frame,
    FrameCache,
    Throttle,
    decode_frame,
    dequantize,
    encode_frame,
    run_header,
)
from ..stream.gif import GifStyle, compose_step, encode_gif
from ..stream.unet_layers import CELL_KINDS
from ._base import P2PWidget, in_range, on_message

_log = logging.getLogger(__name__)

NORMALIZE = ("token", "global")
_MAX_DEFAULT_TOKENS = 4
_BACKFILL_CHUNK = 16


def default_tokens(
    token_lists: Sequence[Sequence[str]], contents: Sequence[Sequence[int]] | None = None
) -> list[list[int]]:
    """A first token selection: per prompt, the content tokens the other prompts do not have
    (the edited words), else its first content tokens; at most four per prompt. ``contents``: the
    positions of each prompt's words (default: all but the first and last token, CLIP's BOS and
    EOS; T5's prompts have no BOS)."""
    if contents is None:
        contents = [list(range(1, max(len(tokens) - 1, 1))) for tokens in token_lists]
    chosen = []
    for b, tokens in enumerate(token_lists):
        content = [p for p in contents[b] if p < len(tokens)]
        others = {
            token_lists[k][p] for k in range(len(token_lists)) if k != b for p in contents[k] if p < len(token_lists[k])
        }
        differing = [p for p in content if tokens[p] not in others]
        picked = (differing or content[:2])[:_MAX_DEFAULT_TOKENS]
        chosen.extend([b, p] for p in picked)
    return chosen


class _Run:
    """Bookkeeping of one streamed run (lives from begin() to end())."""

    def __init__(self, run_id: int, token_counts: list[int], stop_event, throttle: Throttle, backfill: bool):
        self.id = run_id
        self.token_counts = token_counts
        self.n_tokens = max(token_counts)
        self.stop_event = stop_event
        self.throttle = throttle
        self.backfill = backfill
        self.pending: dict[int, tuple] = {}  # step -> (timestep, x0, maps), on the model's device
        self.editor = None
        self.last_step = -1
        self.broken = False
        self.encode_seconds = 0.0
        self.lock = threading.Lock()
        self.control = RunControl()  # what the rules controlled, step by step


class AttentionPlayer(P2PWidget):
    """Live per-step playback of x0 previews with per-token cross-attention overlays.

    Parameters (all optional; the same names are traits)
    ----------
    fmt:
        ``"png"`` (default) or ``"webp"``: how previews travel (both lossless).
    min_interval, max_share:
        Throttle: at least ``min_interval`` seconds between live frames, and sending limited to
        ``max_share`` of the sampling time (first and last steps always go).
    backfill:
        Send the steps skipped live when the run ends (default True).
    max_cache_bytes:
        Bound of the Python-side frame cache used to replay after a page reload.
    """

    _bundle = "player"
    _frontend_keys = frozenset({"step", "playing", "follow", "tokens", "resolution", "normalize", "opacity", "fps"})

    # run state (written by Python only)
    status = traitlets.Enum(STATUSES, default_value="idle", help="State of the current run.").tag(sync=True)
    run_id = traitlets.Int(0, help="Id of the current run (0: none yet).").tag(sync=True)
    n_evals = traitlets.Int(0, help="UNet evaluations of the current run.").tag(sync=True)
    prompts = traitlets.List(help="[{'text', 'tokens'}] of the current run, source first.").tag(sync=True)
    grids = traitlets.List(help="Attention grids [[h, w], ...] of the current run, finest first.").tag(sync=True)
    # view state (the front end may write these)
    step = traitlets.Int(0, help="Playhead: the step shown (the nearest received step at or before it).").tag(sync=True)
    playing = traitlets.Bool(False, help="Playing back.").tag(sync=True)
    follow = traitlets.Bool(True, help="Jump to each new frame as it arrives.").tag(sync=True)
    tokens = traitlets.List(help="Selected tokens [[prompt index, token position], ...].").tag(sync=True)
    resolution = traitlets.Int(0, help="Grid side of the maps shown; 0 averages every grid.").tag(sync=True)
    normalize = traitlets.Enum(
        NORMALIZE,
        default_value="token",
        help="'token': each map to its own peak; 'global': one scale for all selected tokens.",
    ).tag(sync=True)
    opacity = traitlets.Float(0.6, help="Opacity of the heat maps over the previews.").tag(sync=True)
    fps = traitlets.Float(6.0, help="Playback speed in frames per second.").tag(sync=True)
    # what the rules controlled (written by Python only)
    unet_cells = traitlets.List(
        help="The model's attention sites and hooked modules in execution order: [{'name', 'kind': 'self' | "
        "'cross' | 'feature' | 'joint' | 'single' | 'image-self', 'block': 'down 0' | 'mid' | 'up 1' | 'double 3' "
        "| 'single 7' ..., 'depth'}]."
    ).tag(sync=True)
    controlled = traitlets.List(
        help="Per step, indices into unet_cells of the layers and modules a rule changed (unknown steps are absent)."
    ).tag(sync=True)

    fmt = traitlets.Enum(tuple(IMAGE_FORMATS), default_value="png", help="Preview encoding.")
    min_interval = traitlets.Float(0.05, help="Throttle: seconds between live frames at least.")
    max_share = traitlets.Float(0.05, help="Throttle: largest share of sampling time spent streaming.")
    backfill = traitlets.Bool(True, help="Send the steps skipped live when the run ends.")
    max_cache_bytes = traitlets.Int(64 << 20, help="Bound of the replay cache in bytes.")

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._cache = FrameCache(self.max_cache_bytes)
        self._run: _Run | None = None
        self._run_counter = 0
        self._clock: Callable[[], float] = time.perf_counter
        self._send_lock = threading.Lock()
        self._control = ControlStrip()  # the strip's bookkeeping: the last run's model sites, the indices shown
        #: totals over the player's life, for benchmarks: frames and bytes sent, seconds spent
        self.stats = {"frames": 0, "bytes": 0, "seconds": 0.0, "live_frames": 0}

    # -- validation ------------------------------------------------------------------------------

    @traitlets.validate("step")
    def _check_step(self, proposal):
        value = proposal["value"]
        if value < 0 or (self.n_evals and value >= self.n_evals):
            raise traitlets.TraitError(f"step {value} is outside [0, {max(self.n_evals - 1, 0)}]")
        return value

    @traitlets.validate("tokens")
    def _check_tokens(self, proposal):
        value = proposal["value"]
        counts = [len(p["tokens"]) for p in self.prompts]
        out, seen = [], set()
        for k, item in enumerate(value):
            if not isinstance(item, (list, tuple)) or len(item) != 2 or not all(is_int(v) for v in item):
                raise traitlets.TraitError(f"token {k} must be [prompt index, position], got {item!r}")
            b, pos = item
            if counts:
                if not 0 <= b < len(counts):
                    raise traitlets.TraitError(f"token {k}: prompt index {b} is outside [0, {len(counts) - 1}]")
                if not 0 <= pos < counts[b]:
                    raise traitlets.TraitError(
                        f"token {k}: position {pos} is outside [0, {counts[b] - 1}] for {self.prompts[b]['text']!r}"
                    )
            elif b < 0 or pos < 0:
                raise traitlets.TraitError(f"token {k}: negative index in {item!r}")
            if (b, pos) not in seen:
                seen.add((b, pos))
                out.append([b, pos])
        return sorted(out)

    @traitlets.validate("resolution")
    def _check_resolution(self, proposal):
        value = proposal["value"]
        sides = sorted({max(g) for g in self.grids})
        if value != 0 and (value < 0 or (sides and value not in sides)):
            raise traitlets.TraitError(f"resolution must be 0 (all grids) or one of {sides}, got {value}")
        return value

    @traitlets.validate("unet_cells")
    def _check_unet_cells(self, proposal):
        for k, cell in enumerate(proposal["value"]):
            ok = isinstance(cell, dict) and set(cell) == {"name", "kind", "block", "depth"}
            ok = ok and isinstance(cell["name"], str) and isinstance(cell["block"], str) and cell["kind"] in CELL_KINDS
            if not (ok and is_int(cell["depth"]) and cell["depth"] >= 0):
                raise traitlets.TraitError(
                    f"unet_cells {k} must be {{'name': str, 'kind': one of {CELL_KINDS}, 'block': str, "
                    f"'depth': int >= 0}}, got {cell!r}"
                )
        return proposal["value"]

    @traitlets.validate("controlled")
    def _check_controlled(self, proposal):
        n = len(self.unet_cells)
        for step, cells in enumerate(proposal["value"]):
            if not isinstance(cells, list) or not all((type(c) is int or is_int(c)) and 0 <= c < n for c in cells):
                raise traitlets.TraitError(
                    f"controlled step {step} must be a list of cell indices in [0, {n - 1}], got {cells!r}"
                )
        return proposal["value"]

    @traitlets.validate("opacity")
    def _check_opacity(self, proposal):
        return in_range(proposal, 0.0, 1.0)

    @traitlets.validate("fps")
    def _check_fps(self, proposal):
        return in_range(proposal, 0.5, 60.0)

    @traitlets.validate("min_interval")
    def _check_min_interval(self, proposal):
        return in_range(proposal, 0.0)

    @traitlets.validate("max_share")
    def _check_max_share(self, proposal):
        value = proposal["value"]
        if not 0.0 < value <= 1.0:
            raise traitlets.TraitError(f"max_share must be in (0, 1], got {value}")
        return value

    # -- sending ---------------------------------------------------------------------------------

    def _post(self, content: dict, buffers=()) -> None:
        with self._send_lock:
            self.send_binary(content, buffers)

    def _emit(self, frame: Frame, live: bool) -> None:
        self._cache.add(frame)
        self._post(frame.content, frame.buffers)
        self.stats["frames"] += 1
        self.stats["bytes"] += frame.nbytes
        if live:
            self.stats["live_frames"] += 1

    # -- a run -----------------------------------------------------------------------------------

    def begin(
        self,
        prompts: Sequence,
        *,
        tokenizer=None,
        editor=None,
        stop_event: threading.Event | None = None,
        n_evals: int | None = None,
    ) -> Callable:
        """Start streaming a run of ``prompts`` (source first; Prompt objects or strings) and
        return the callback to pass to :meth:`Editor.edit` (``callback=...``).

        Strings are tokenized as ``editor`` does (its model's tokens: CLIP's, SD3's CLIP then T5
        segments, T5's on Flux), else with ``tokenizer`` (a tokenizer, or a model as the other widgets
        take it), else with the bundled CLIP tokenizer: :func:`~p2p_widgets.engine.prompts.prompt_maker`.
        ``stop_event``: the run's stop event, so that the step it stops after is sent live."""
        from ..engine.prompts import Prompt, prompt_maker

        prompts = list(prompts)
        source = editor if editor is not None else tokenizer
        make = None if all(isinstance(p, Prompt) for p in prompts) else prompt_maker(source)
        objs = [p if isinstance(p, Prompt) else make(p) for p in prompts]
        if not objs:
            raise ValueError("begin() needs at least one prompt")
        self._run_counter = max(self._run_counter, self.run_id) + 1
        header = run_header(self._run_counter, objs, n_evals, self.fmt)
        token_lists = [row["tokens"] for row in header["prompts"]]
        same_prompts = [p["text"] for p in self.prompts] == [p["text"] for p in header["prompts"]]
        throttle = Throttle(self.min_interval, self.max_share, clock=self._clock)
        run = _Run(self._run_counter, [len(t) for t in token_lists], stop_event, throttle, self.backfill)
        self._cache = FrameCache(self.max_cache_bytes)
        self._cache.begin(header)
        self._run = run
        with self.hold_sync():
            self.status = "running"
            self.n_evals = n_evals or 0
            self.grids = []
            self.prompts = header["prompts"]
            self.run_id = run.id
            self.step = 0
            self.playing = False
            self.controlled = []
            if not same_prompts or not self.tokens:
                self.tokens = default_tokens(token_lists, [[q for w in p.words for q in w.positions] for p in objs])
            self.clear_error()
        self._post(header)
        throttle.start()

        def callback(event) -> None:
            self._on_step(run, event)

        return callback

    def _on_step(self, run: _Run, event) -> None:
        if run is not self._run or run.broken:
            return
        try:
            with run.lock:
                run.editor = event.editor
                run.last_step = event.step
                if self.n_evals != event.n_evals or not self.grids:
                    grids = [list(g) for g in sorted(event.attention, key=lambda g: (-(g[0] * g[1]), g))]
                    with self.hold_sync():
                        self.n_evals = event.n_evals
                        if self.resolution not in {max(g) for g in grids}:
                            self.resolution = 0
                        self.grids = grids
                cells = self._track_control(run, event)
                stopping = run.stop_event is not None and run.stop_event.is_set()
                if run.throttle.due(event.step, event.n_evals, last=stopping):
                    t0 = self._clock()
                    self._show_control(cells, run.control.steps)  # before the frame: the strip has its step
                    frame = encode_frame(
                        run=run.id,
                        step=event.step,
                        timestep=event.timestep,
                        images=event.preview(),
                        maps=event.attention,
                        n_tokens=run.n_tokens,
                        fmt=self.fmt,
                    )
                    self._emit(frame, live=True)
                    cost = self._clock() - t0
                    run.throttle.record(cost)
                    self.stats["seconds"] += cost
                elif run.backfill:
                    # kept on the model's device: copying to the host here would sync a GPU every step
                    maps = {g: m[..., : run.n_tokens].detach().clone() for g, m in event.attention.items()}
                    run.pending[event.step] = (int(event.timestep), event.x0.detach().clone(), maps)
        except Exception as exc:  # streaming must never break the sampler
            run.broken = True
            _log.exception("AttentionPlayer: streaming failed")
            self.report_error(f"streaming stopped: {type(exc).__name__}: {exc}")

    def _track_control(self, run: _Run, event) -> list[dict]:
        """Record what the rules controlled at this step; the cells, with any module seen first now."""
        return self._control.track(run.control, event)

    def _show_control(self, cells: list[dict], steps: Sequence[frozenset]) -> None:
        """Sync ``unet_cells`` and ``controlled`` (indices per step) to the front end."""
        with self.hold_sync():
            if self._control.new_cells(cells, self.unet_cells):
                self.controlled = []  # old indices may not fit the new cells
                self.unet_cells = cells
            self.controlled = self._control.indices(cells, steps)

    def show_controlled(self, controlled, model=None) -> None:
        """Show which layers and modules a rule changed at each step: ``controlled`` is an
        :class:`~p2p_widgets.engine.sampler.EditResult` or a list of per-step sets of
        ``(layer or module name, kind)``; ``model`` the pipeline, Editor or denoiser it ran on
        (default: the model of the player's last run). A streamed run shows this by itself."""
        cells, steps = self._control.of_result(controlled, model, self.n_evals)
        if not self.n_evals:
            self.n_evals = len(steps)
        self._show_control(cells, steps)

    def controlled_cells(self, step: int) -> list[dict]:
        """The cells (see ``unet_cells``) a rule changed at ``step``, as the front end shows them."""
        return cells_at(step, self.controlled, self.unet_cells)

    def end(self, result=None, status: str | None = None) -> None:
        """Finish the run: send the steps skipped live (``backfill``) and the end message.

        ``status`` defaults to ``"stopped"`` for a stopped result, else ``"done"``."""
        run = self._run
        if run is None:
            return
        if status is None:
            status = "stopped" if getattr(result, "stopped", False) else "done"
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        with run.lock:
            if run.pending and not run.broken and status != "error":
                t0 = self._clock()
                try:
                    self._send_backfill(run)
                except Exception as exc:
                    _log.exception("AttentionPlayer: backfill failed")
                    self.report_error(f"could not send the remaining steps: {type(exc).__name__}: {exc}")
                self.stats["seconds"] += self._clock() - t0
            run.pending.clear()
            self._end_control(run, result)
            end = {"type": "end", "run": run.id, "status": status, "steps": self._cache.steps}
            self._cache.finish(end)
            self._post(end)
            self.status = status
            self._run = None

    def _end_control(self, run: _Run, result) -> None:
        """The whole run's control, from the result where there is one (see ControlStrip.finish)."""
        if run.control.cells is None:
            return  # no step ran
        self._control.finish(run.control, result)
        try:
            self._show_control(self._control.cells_of(run.control.modules), run.control.steps)
        except Exception as exc:  # showing control must never lose the run's end
            _log.exception("AttentionPlayer: could not show what the rules controlled")
            self.report_error(f"could not show the controlled layers: {type(exc).__name__}: {exc}")

    def _send_backfill(self, run: _Run) -> None:
        import torch

        steps = sorted(run.pending)
        for k in range(0, len(steps), _BACKFILL_CHUNK):
            chunk = steps[k : k + _BACKFILL_CHUNK]
            x0 = torch.cat([run.pending[s][1] for s in chunk])
            previews = run.editor.preview(x0)
            b = len(previews) // len(chunk)
            for i, s in enumerate(chunk):
                timestep, _, maps = run.pending[s]
                frame = encode_frame(
                    run=run.id,
                    step=s,
                    timestep=timestep,
                    images=previews[i * b : (i + 1) * b],
                    maps=maps,
                    n_tokens=run.n_tokens,
                    fmt=self.fmt,
                )
                self._emit(frame, live=False)

    def run(
        self,
        editor,
        source,
        targets=(),
        *,
        callback: Callable | None = None,
        stop_event: threading.Event | None = None,
        **edit_kwargs,
    ):
        """``editor.edit(source, targets, **edit_kwargs)`` streamed into this player; returns the
        :class:`~p2p_widgets.engine.sampler.EditResult`. ``callback`` is called after the player's."""
        targets = [targets] if isinstance(targets, str) else list(targets)
        prompts = [editor.prompt(source), *[editor.prompt(t) for t in targets]]
        return self._streamed(
            editor,
            prompts,
            callback,
            stop_event,
            lambda cb: editor.edit(prompts[0], prompts[1:], callback=cb, stop_event=stop_event, **edit_kwargs),
        )

    def run_spec(
        self,
        editor,
        spec,
        *,
        callback: Callable | None = None,
        stop_event: threading.Event | None = None,
        **run_options,
    ):
        """``editor.run(spec, **run_options)`` streamed into this player (see :meth:`run`)."""
        prompts = [editor.prompt(text) for text in spec.prompts]
        return self._streamed(
            editor,
            prompts,
            callback,
            stop_event,
            lambda cb: editor.run(spec, callback=cb, stop_event=stop_event, **run_options),
        )

    def _streamed(self, editor, prompts, callback, stop_event, sample):
        stream = self.begin(prompts, editor=editor, stop_event=stop_event)

        def both(event):
            stream(event)
            if callback is not None:
                callback(event)

        try:
            result = sample(both)
        except RunStopped:  # stopped while waiting for another run: nothing ran, nothing failed
            self.end(status="stopped")
            raise
        except BaseException as exc:
            self.end(status="error")
            if isinstance(exc, Exception):
                self.report_error(f"{type(exc).__name__}: {exc}")
            raise
        with editor.exclusive():  # the backfill decodes previews with the model: not beside another run
            self.end(result)
        return result

    def clear(self) -> None:
        """Forget every frame (here and in the front end)."""
        self._run = None
        self._run_counter = max(self._run_counter, self.run_id) + 1
        self._cache = FrameCache(self.max_cache_bytes)
        with self.hold_sync():
            self.status = "idle"
            self.run_id = self._run_counter
            self.n_evals = 0
            self.prompts = []
            self.grids = []
            self.tokens = []
            self.step = 0
            self.controlled = []
            self.unet_cells = []
        self._post({"type": "clear", "run": self._run_counter})

    # -- reading the frames back -------------------------------------------------------------------

    @property
    def cached_steps(self) -> list[int]:
        """Steps held in the replay cache (every step of a finished run unless it was thinned)."""
        return self._cache.steps

    def frame(self, step: int) -> dict:
        """The decoded frame of ``step`` (see :func:`p2p_widgets.stream.frames.decode_frame`)."""
        try:
            frame = self._cache.get(step)
        except KeyError:
            raise KeyError(f"no frame for step {step}; cached steps: {self.cached_steps}") from None
        return decode_frame(frame.content, frame.buffers)

    def token_heat(self, decoded: dict, prompt_index: int, position: int, resolution: int | None = None) -> np.ndarray:
        """A token's (h, w) float map from a decoded frame: one grid, or every grid averaged
        (upsampled to the finest) for ``resolution`` 0/None."""
        grids = list(decoded["maps"])
        if resolution:
            grids = [g for g in grids if max(g) == resolution] or grids[:1]
        finest = max(grids, key=lambda g: g[0] * g[1])
        acc = np.zeros(finest, np.float32)
        for g in grids:
            m = dequantize(decoded["maps"][g][prompt_index, position], decoded["scales"][g][prompt_index, position])
            acc += np.kron(m, np.ones((finest[0] // g[0], finest[1] // g[1]), np.float32))
        return acc / len(grids)

    def to_gif(
        self, path=None, *, tokens=None, resolution=None, normalize=None, opacity=None, fps=None, scale: int = 4
    ) -> bytes:
        """The cached playback as an animated GIF (bytes; also written to ``path`` if given).

        One row per prompt: the x0 preview, then the preview under each selected token's heat map
        (``tokens``, ``resolution``, ``normalize``, ``opacity`` and ``fps`` default to the
        player's traits). Every pixel is repeated ``scale`` times."""
        steps = self.cached_steps
        if not steps:
            raise P2PError("no frames yet: run an edit first")
        tokens = self.tokens if tokens is None else tokens
        n_tokens = [len(p.get("tokens", [])) for p in self.prompts]
        if not isinstance(tokens, (list, tuple)) or not all(
            isinstance(t, (list, tuple)) and len(t) == 2 and all(is_int(v) and v >= 0 for v in t) for t in tokens
        ):
            raise P2PError(f"tokens must be [[prompt, token position], ...], got {tokens!r}")
        bad = [list(t) for t in tokens if n_tokens and (t[0] >= len(n_tokens) or t[1] >= n_tokens[t[0]])]
        if bad:
            raise P2PError(f"tokens {bad} are not positions of this run's prompts")
        tokens = [list(t) for t in tokens]
        resolution = self.resolution if resolution is None else resolution
        style = GifStyle(
            normalize=self.normalize if normalize is None else normalize,
            opacity=self.opacity if opacity is None else float(opacity),
            fps=self.fps if fps is None else float(fps),
            scale=scale,
        )
        pictures = []
        for s in steps:
            decoded = self.frame(s)
            images = decoded["images"]
            heats = {(b, p): self.token_heat(decoded, b, p, resolution) for b, p in tokens if b < len(images)}
            pictures.append(compose_step(images, heats, style))
        data = encode_gif(pictures, style.fps)
        if path is not None:
            with open(path, "wb") as f:
                f.write(data)
        return data

    def gif_download(self) -> tuple[dict, list]:
        """The ``download`` message (content, buffers) that hands the playback GIF to the browser."""
        if not self.cached_steps:
            raise MessageError("no frames to export yet: run an edit first")
        return {"type": "download", "name": "p2p_playback.gif", "mime": "image/gif"}, [self.to_gif()]

    # -- messages from the front end ----------------------------------------------------------------

    @on_message("replay")
    def _on_replay(self, content: dict, buffers: list) -> None:
        run, have = content.get("run"), content.get("have", [])
        if run is not None and not is_int(run):
            raise MessageError(f"'run' must be an integer or null, got {run!r}")
        if not isinstance(have, list) or not all(is_int(s) and s >= 0 for s in have) or len(have) > 100_000:
            raise MessageError("'have' must be a list of step numbers")
        if self._cache.header is None:
            return
        if run != self._cache.run:
            have = []
        self._post(self._cache.header)
        for frame in self._cache.missing(have):
            self._post(frame.content, frame.buffers)
        if self._cache.end is not None:
            self._post(self._cache.end)

    @on_message("export_gif")
    def _on_export_gif(self, content: dict, buffers: list) -> None:
        self._post(*self.gif_download())

    def __repr__(self) -> str:
        return f"AttentionPlayer(status={self.status!r}, run_id={self.run_id}, frames={len(self._cache)})"
