"""The sweep runner: one row per (case, method, grid setting, seed), resumable, on any backend.

>>> result = run_sweep("pie-folder", ["pie-p2p"], {"cross": [0.2, 0.4]}, [0, 1], "out/sweep")
>>> result.complete, len(result.rows)
>>> rows = load_sweep("out/sweep")

The folder it fills (manifest, one JSON file per row, images, the table and summary) is the contract
in ``sweep_folder.py``; this module plans the rows (:func:`plan_sweep`) and runs them
(:func:`run_sweep`). Rerunning the same command skips finished rows (``retry_errors`` also reruns
rows whose edit failed); a worker that dies loses only its row in flight, which the next run does.
Bad input (a malformed grid, an unknown method or parameter, a missing image, an unreachable Ray
address, a folder holding another sweep, more rows than ``max_rows``) raises a
:class:`~p2p_widgets.errors.P2PError` before any row is written. One run at a time per folder (it
holds a lock on ``.sweep.lock``; a second run is refused; a run starts by clearing what killed runs
left). Row files are validated when read: a damaged one is named and computed again.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import P2PError, is_int
from ..models import BUILT_IN_MODELS
from .backends import check_backend, run_jobs
from .backends.worker import Job, WorkerConfig
from .grid import SEED, apply_grid, check_grid, grid_size
from .methods import INVERSIONS, Method, get_method
from .sweep_folder import (  # FORMAT, VERSION, load_sweep, metric_names, write_table: imported from here too
    FORMAT,
    VERSION,
    FolderLock,
    brief_repr,
    complete_rows,
    csv_bytes,
    is_finite_number,
    load_sweep,
    metric_names,
    new_manifest,
    prepare_folder,
    read_manifest,
    read_row,
    row_id,
    summarise,
    write_atomic,
    write_row,
    write_table,
)

# -- the plan ----------------------------------------------------------------------------------------
CASE_BLOCK = 16  # cases per block of the run order (see SweepPlan.run_order)
MAX_ROWS = 50_000  # a sweep past this is refused unless asked for (max_rows=, or the variable below)
MAX_ROWS_VARIABLE = "P2P_WIDGETS_SWEEP_MAX_ROWS"


def _max_rows(max_rows) -> int:
    if max_rows is None:
        text = os.environ.get(MAX_ROWS_VARIABLE, "")
        if not text:
            return MAX_ROWS
        if not text.strip().isdigit() or int(text) < 1:
            raise P2PError(f"{MAX_ROWS_VARIABLE} must be a positive integer (rows), got {text!r}")
        return int(text)
    if not is_int(max_rows) or max_rows < 1:
        raise P2PError(f"max_rows must be a positive integer, got {max_rows!r}")
    return int(max_rows)


def _check_rows(rows: int, limit: int) -> None:
    if rows > limit:
        raise P2PError(
            f"this sweep has {rows:,} rows, past the limit of {limit:,}: check the grid, or raise the limit "
            f"(max_rows={rows} in Python, or the environment variable {MAX_ROWS_VARIABLE}={rows})"
        )


@dataclass
class SweepPlan:
    """Cases, configured methods and jobs of a sweep, checked before anything runs."""

    dataset: str
    cases: list
    methods: list[Method]  # as given (with steps / guidance overrides applied)
    grid: dict  # without "seed"
    seeds: list[int]
    configured: list = field(default_factory=list)  # (name, Method with the setting applied, setting)
    jobs: list[Job] = field(default_factory=list)  # canonical order: case, method, setting, seed

    def run_order(self) -> list[Job]:
        """Jobs in blocks of :data:`CASE_BLOCK` cases, every method on a block before the next, so a
        sweep stopped early holds all methods on the same cases (comparable means); within a block
        consecutive rows are on different images, so workers invert different images and later
        methods find the cache."""
        seed_index = {seed: k for k, seed in enumerate(self.seeds)}
        return sorted(self.jobs, key=lambda job: (job.case // CASE_BLOCK, job.method, seed_index[job.seed], job.case))


def load_cases(data, types=None) -> tuple[str, list]:
    """``(dataset description, cases)`` from a PIE-format folder (``types``: only these edit type
    ids) or a list of EditCase objects."""
    from .cases import EditCase

    if isinstance(data, (str, os.PathLike)):
        from .datasets import read_pie

        folder = Path(data)
        if not folder.is_dir():
            raise P2PError(f"dataset folder {folder} does not exist")
        cases = list(read_pie(folder, types=types))
        if not cases:
            raise P2PError(f"dataset {folder} has no cases" + (f" of the edit types {types}" if types else ""))
        return str(folder.resolve()), cases
    if not isinstance(data, (list, tuple)) or not data:
        raise P2PError("the dataset must be a PIE-format folder or a non-empty list of EditCase objects")
    if types is not None:
        raise P2PError("types filters a dataset folder; filter a list of cases yourself")
    for k, case in enumerate(data):
        if not isinstance(case, EditCase):
            raise P2PError(f"case {k} is a {type(case).__name__}, not an EditCase")
        if not Path(case.image_path).is_file():
            raise P2PError(f"case {case.id!r}: image {case.image_path} does not exist")
    return "", list(data)


def _check_seeds(seeds, grid) -> list[int]:
    if SEED in grid:
        if seeds is not None:
            raise P2PError("give the seeds either in the grid ('seed') or as seeds, not both")
        seeds = grid[SEED]
    seeds = [0] if seeds is None else seeds
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise P2PError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    for seed in seeds:
        if not is_int(seed) or not 0 <= seed < 2**63:
            raise P2PError(f"seeds must be integers in [0, 2**63), got {seed!r}")
    if len(set(seeds)) != len(seeds):
        raise P2PError(f"seeds lists a seed twice: {list(seeds)}")
    return [int(s) for s in seeds]


def plan_sweep(
    data, methods, grid=None, seeds=None, *, steps=None, guidance=None, types=None, max_rows=None
) -> SweepPlan:
    """Check everything a sweep needs and list its rows (nothing is written). ``max_rows``: refuse a
    sweep of more rows (default :data:`MAX_ROWS`, or the environment variable ``P2P_WIDGETS_SWEEP_MAX_ROWS``)."""
    limit = _max_rows(max_rows)
    grid = check_grid(grid)
    seeds = _check_seeds(seeds, grid)
    grid = {k: v for k, v in grid.items() if k != SEED}
    if isinstance(methods, (str, dict, Method)):
        methods = [methods]
    if not isinstance(methods, (list, tuple)) or not methods:
        raise P2PError("give at least one method (a preset name, a method JSON object or a Method)")
    methods = [get_method(m) for m in methods]
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise P2PError(f"two methods share a name: {names} (rows are keyed by method name)")
    methods = [m.with_run_settings(steps, guidance) for m in methods]
    dataset, cases = load_cases(data, types)
    _check_rows(len(cases) * grid_size(grid) * len(methods) * len(seeds), limit)  # before listing them
    configured = [(m.name, c, point) for m, point, c in apply_grid(methods, grid)]
    ids = [str(c.id) for c in cases]
    if len(set(ids)) != len(ids):
        raise P2PError("two cases share an id (rows are keyed by case id)")
    plan = SweepPlan(dataset, cases, methods, grid, seeds, configured)
    for k, case in enumerate(cases):
        for m, (name, _, point) in enumerate(configured):
            for seed in seeds:
                plan.jobs.append(Job(row_id(case.id, name, point, seed), k, m, point, seed))
    return plan


# -- resuming --------------------------------------------------------------------------------------
class SweepStopped(P2PError):
    """The run was interrupted (Ctrl-C, a kernel interrupt); the rows finished so far are kept."""


def _finished_rows(folder: Path, plan: SweepPlan, retry_errors: bool) -> tuple[dict[str, dict], dict[str, str]]:
    """Rows already done, and the row files found damaged (row id -> what is wrong), which the run
    computes again."""
    done, rejected = {}, {}
    for job in plan.jobs:
        path = folder / "rows" / f"{job.row_id}.json"
        if not path.is_file():
            continue
        row, problem = read_row(path, plan, job)
        if row is None:
            rejected[job.row_id] = problem
            print(f"sweep: row {path} is damaged ({problem}): computing it again", file=sys.stderr, flush=True)
            continue
        if row.get("status") != "ok" and retry_errors:
            continue
        done[job.row_id] = row
    return done, rejected


# -- running -----------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    """What a run of :func:`run_sweep` left in its folder."""

    folder: Path
    rows: list[dict]  # every finished row (this run's and earlier runs'), canonical order
    rows_expected: int
    complete: bool  # every expected row finished: the table and summary are written
    missing: list[str]  # row ids not finished (their worker died, or the run was stopped)
    lost: dict  # row id -> why its worker was lost, in this run
    ran: int  # rows run now
    skipped: int  # rows finished by an earlier run
    errors: int  # rows whose edit failed (status "error")
    seconds: float
    startup_seconds: float  # until the workers had loaded their models
    table: Path | None
    summary: list[dict]
    rejected: dict = field(default_factory=dict)  # row id -> what was wrong with its file (computed again)

    def __repr__(self):
        state = "complete" if self.complete else f"{len(self.missing)} rows missing"
        return (
            f"SweepResult({self.folder}: {len(self.rows)}/{self.rows_expected} rows, {state}, ran {self.ran}, "
            f"skipped {self.skipped}, errors {self.errors}, {self.seconds:.1f} s)"
        )


class _Progress:
    """tqdm on stderr when installed, else a plain counter line every few seconds."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.bar, self.last = total, 0, None, 0.0
        self.enabled = enabled and total > 0
        if self.enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="sweep", unit="row", file=sys.stderr)
            except ImportError:
                self.bar = None

    def update(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
        elif time.monotonic() - self.last > 2.0 or self.done == self.total:
            self.last = time.monotonic()
            print(f"sweep: {self.done}/{self.total} rows", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


METRIC_MODELS = ("dino", "clip", "lpips")  # what MetricModels.load reads, by path or hub id


def _check_metrics(metrics) -> None:
    if isinstance(metrics, dict):
        bad = [k for k in METRIC_MODELS if k in metrics and not (isinstance(metrics[k], str) and metrics[k])]
        missing = [k for k in METRIC_MODELS if k not in metrics]
        unknown = sorted(set(map(str, metrics)) - set(METRIC_MODELS))
        if bad or missing or unknown:
            wrong = [f"{k!r} must be a path or hub id (text), got {brief_repr(metrics[k])}" for k in bad]
            wrong += [f"missing {', '.join(missing)}"] if missing else []
            wrong += [f"unknown {', '.join(unknown)}"] if unknown else []
            raise P2PError(f"metrics: give a path or hub id for each of {', '.join(METRIC_MODELS)}: {'; '.join(wrong)}")
        return
    if metrics is None or metrics in ("none", "random") or callable(metrics):
        return
    if type(metrics).__name__ == "MetricModels":
        return
    raise P2PError(
        f"metrics must be None, 'random', a dict of metric model paths, MetricModels or a scorer, got {metrics!r}"
    )


def _check_device(device, local: bool) -> None:
    """A device torch can parse and, for workers on this machine, one it has (else every row's
    worker would fail on loading the model, after the sweep folder was made)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):  # torch's own message lists twenty device types
        raise P2PError(f"device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    if not local:  # Ray actors run on other machines, whose devices this one cannot see
        return
    if parsed.type == "cuda" and not (torch.cuda.is_available() and (parsed.index or 0) < torch.cuda.device_count()):
        raise P2PError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s) torch can use")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise P2PError(f"device {device!r}: MPS is not available on this machine")


def _check_run_options(backend, workers, address, metrics, model, device=None, threads=None) -> None:
    check_backend(backend, workers, address)
    if threads is not None and (not is_int(threads) or threads < 1):
        raise P2PError(f"threads must be an integer >= 1 (torch CPU threads per worker), got {threads!r}")
    if device is not None:
        _check_device(device, local=backend != "ray")
    if backend == "ray":
        from .backends.ray_backend import import_ray, probe_address

        import_ray()
        if address is not None:
            probe_address(address)  # before any row is written
    _check_metrics(metrics)
    embedded = " or ".join(map(repr, BUILT_IN_MODELS))
    if not isinstance(model, str) or not model:
        raise P2PError(f"model must be {embedded} or a diffusers folder / hub id, got {model!r}")
    if model not in BUILT_IN_MODELS and not Path(model).is_dir() and Path(model).suffix:
        raise P2PError(f"model {model!r} is neither {embedded} nor a diffusers folder")


def run_sweep(
    data,
    methods,
    grid=None,
    seeds=None,
    out="sweep",
    *,
    model: str = "pocket",
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    metrics=None,
    steps=None,
    guidance=None,
    device: str | None = None,
    threads: int | None = None,
    retry_errors: bool = False,
    progress: bool = True,
    types=None,
    max_rows: int | None = None,
) -> SweepResult:
    """Run (or finish) a sweep; see the module docstring.

    - ``data``: a PIE-format folder (``datasets.read_pie``) or a list of EditCase objects;
    - ``methods``: preset names, method JSON objects or :class:`Method` objects;
    - ``grid``: ``{parameter: [values]}`` (or its JSON text); ``seed`` there replaces ``seeds``;
    - ``seeds``: the seeds of every (case, method, setting); default ``[0]``;
    - ``out``: the sweep folder;
    - ``model``: ``"pocket"``, ``"pocket-flow"`` or a diffusers folder / hub id;
    - ``backend``: ``"local"`` (``workers > 1``: spawned processes) or ``"ray"`` (``address``: a
      running cluster's; default: the current connection or a local cluster);
    - ``metrics``: ``None`` (no scores), ``"random"`` (random-weight metric models: plumbing tests),
      ``{"dino": ..., "clip": ..., "lpips": ...}`` (paths or hub ids for ``MetricModels.load``),
      a ``MetricModels``, or a function ``(case, edited PIL image) -> {name: value}``;
    - ``steps``, ``guidance``: override every method's (a number, or ``"model"`` for the model's
      own defaults, e.g. pocket-bench with the pocket model); on the methods without an inversion
      both mean the edit's, "model" their authors' defaults: FlowEdit's ``guidance`` is its target
      guidance (its source guidance stays as the method sets it) and its ``n_max`` stays the
      authors' share of the steps unless the method sets one (24 of 28 on Flux: 9 at 10 steps);
      RF-Inversion's ``guidance`` is its edit's (:meth:`Method.with_run_settings`);
    - ``threads``: torch CPU threads per worker (default: 1 for processes and Ray actors, the
      process's own choice in process);
    - ``retry_errors``: also rerun rows whose edit failed before; ``progress``: a progress bar;
    - ``types``: only the cases of these edit type ids (a dataset folder);
    - ``max_rows``: refuse a larger sweep (default :data:`MAX_ROWS`, or ``P2P_WIDGETS_SWEEP_MAX_ROWS``).
    """
    t0 = time.perf_counter()
    plan = plan_sweep(data, methods, grid, seeds, steps=steps, guidance=guidance, types=types, max_rows=max_rows)
    _check_run_options(backend, workers, address, metrics, model, device, threads)
    lock = FolderLock(out)  # one run per folder: a second writer is refused
    try:
        return _run_locked(plan, out, model, backend, workers, address, metrics, device, threads, retry_errors,
                           progress, t0)  # fmt: skip
    finally:
        lock.release()


def _run_locked(plan, out, model, backend, workers, address, metrics, device, threads, retry_errors, progress, t0):
    folder = prepare_folder(out, new_manifest(plan, model))
    done, rejected = _finished_rows(folder, plan, retry_errors)
    todo = [job for job in plan.run_order() if job.row_id not in done]
    workers = max(1, min(workers, len(todo)))  # no worker loads a model for nothing
    separate = backend == "ray" or workers > 1
    needs_fp32 = any(m.inversion == "null-text" for _, m, _ in plan.configured)
    config = WorkerConfig(
        out=str(folder.resolve()),
        cases=plan.cases,
        methods=[(name, method) for name, method, _ in plan.configured],
        model=model,
        device=device,
        dtype="float32" if needs_fp32 else None,
        threads=threads if threads is not None else (1 if separate else None),
        metrics=metrics,
    )
    lost: dict[str, str] = {}
    startup = [0.0]
    written = [0]
    bar = _Progress(len(todo), progress)

    def on_row(job, row, png):
        write_row(folder, row, png)
        written[0] += 1
        bar.update()

    def on_lost(job, message):
        lost[job.row_id] = message

    def on_ready():
        startup[0] = time.perf_counter() - t0

    try:
        if todo:
            run_jobs(backend, config, todo, workers=workers, address=address, on_row=on_row, on_lost=on_lost,
                     on_ready=on_ready)  # fmt: skip
    except KeyboardInterrupt:  # Ctrl-C or a kernel interrupt: the finished rows are on disk
        kept = len(done) + written[0]
        raise SweepStopped(f"stopped; {kept} row{'' if kept == 1 else 's'} kept, rerun to resume") from None
    finally:
        bar.close()
    result = _finish(folder, plan, len(todo), len(done), lost, t0, startup[0])
    result.rejected = rejected
    return result


def _finish(folder, plan, ran, skipped, lost, t0, startup) -> SweepResult:
    """Read every row back; write the table, summary and ``complete: true`` only when none is missing."""
    rows, missing = [], []
    for job in plan.jobs:
        row, _ = read_row(folder / "rows" / f"{job.row_id}.json", plan, job)
        if row is None:
            missing.append(job.row_id)
        else:
            rows.append(row)
    table, summary = None, []
    if not missing:
        table = write_table(folder, rows)
        summary = summarise(rows)
        write_atomic(folder / "summary.csv", csv_bytes(summary, encode_params=False))
        manifest = {**read_manifest(folder), "complete": True}
        write_atomic(folder / "sweep.json", json.dumps(manifest, indent=1).encode())
    return SweepResult(
        folder=folder,
        rows=complete_rows(rows),
        rows_expected=len(plan.jobs),
        complete=not missing,
        missing=missing,
        lost=lost,
        ran=ran - len(lost),
        skipped=skipped,
        errors=sum(1 for r in rows if r.get("status") != "ok"),
        seconds=time.perf_counter() - t0,
        startup_seconds=startup,
        table=table,
        summary=summary,
    )


def format_summary(summary: list[dict], metrics: list[str] | None = None) -> str:
    """A plain-text table of a summary (the CLI prints it)."""
    if not summary:
        return "(no rows)"
    keys = ("method", "setting", "edit_type_name", "rows", "errors")
    names = metrics or [k for k in summary[0] if k not in (*keys, "edit_type")]
    header = [*keys, *names]
    lines = [header]
    for entry in summary:
        values = [str(entry[k]) for k in keys]
        values += [f"{entry[n]:.4g}" if is_finite_number(entry.get(n)) else "nan" for n in names]
        lines.append(values)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines)


__all__ = [
    "FORMAT",
    "INVERSIONS",
    "VERSION",
    "SweepPlan",
    "SweepResult",
    "SweepStopped",
    "format_summary",
    "load_sweep",
    "metric_names",
    "plan_sweep",
    "row_id",
    "run_sweep",
    "summarise",
    "write_table",
]
