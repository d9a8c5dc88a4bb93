"""The sweep runner: one row per (case, method, grid setting, seed), resumable, on any backend.

>>> result = run_sweep("pie-folder", ["pie-p2p"], {"cross": [0.2, 0.4]}, [0, 1], "out/sweep")
>>> result.complete, len(result.rows)
>>> rows = load_sweep("out/sweep")

A sweep folder ``DIR`` holds (the table contract the SweepExplorer reads):

- ``sweep.json``: the manifest (format, version, dataset, methods, grid, seeds, model, complete,
  rows_expected);
- ``rows/<row_id>.json``: one finished row each, the source of truth (written atomically: a
  private temporary file, then ``os.replace``; NaN metrics are written as null);
- ``images/<row_id>.png``: the edited image (written before its row);
- ``table.parquet`` (with pyarrow) or ``table.csv``: every row, written only once every expected
  row is finished, and only then is the manifest's ``complete`` true;
- ``summary.csv``: mean of each metric per (method, setting, edit type), over the rows that ran;
- ``inversions/<key>.safetensors`` (+ ``.json``): the inversion cache (see ``backends/worker.py``).

Each row's ``row_id`` is a stable hash of (case id, method name, setting JSON with sorted keys,
seed). Rerunning the same command skips finished rows (``retry_errors`` also reruns rows whose
edit failed); a worker that dies loses only its row in flight, which the next run does. Bad
input (a malformed grid, an unknown method or parameter, a missing image, an unreachable Ray
address, a folder holding another sweep, more rows than ``max_rows``) raises a
:class:`~p2p_widgets.errors.P2PError` before any row is written. One run at a time per folder (it
holds a lock on ``.sweep.lock``; a second run is refused; a run starts by clearing what killed runs
left). Row files are validated when read: a damaged one is named and computed again.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import P2PError, is_int, is_number
from .backends import check_backend, run_jobs
from .backends.worker import INVERSIONS_DIR, Job, WorkerConfig
from .methods import INVERSIONS, SEED, Method, apply_grid, check_grid, get_method, grid_size

FORMAT = "p2p_widgets.sweep"
VERSION = 1
EXTRA_METRICS = ("target_fidelity", "mask_iou")  # pocket-bench's scene reader
HEAD_COLUMNS = ("row_id", "case_id", "edit_type", "edit_type_name", "method", "inversion", "setting")
MID_COLUMNS = ("seed", "image", "source_image", "spec", "inversion_file")
TAIL_COLUMNS = ("seconds", "status", "error")
TIMING_COLUMNS = ("seconds",)
JSON_COLUMNS_KEY = "p2p_widgets.json_columns"  # Parquet metadata: parameter columns stored as JSON text
MANIFEST_KEYS = ("dataset", "methods", "grid", "seeds", "model", "rows_expected")


def metric_names() -> tuple[str, ...]:
    """The metric columns every row has: the benchmark's metrics, then pocket-bench's extras."""
    try:
        from .metrics import METRIC_NAMES
    except ImportError:  # the metrics module is optional for sweeps that score nothing
        METRIC_NAMES = ()
    return (*METRIC_NAMES, *(m for m in EXTRA_METRICS if m not in METRIC_NAMES))


def row_id(case_id, method: str, setting: dict, seed: int) -> str:
    """The row's stable key: a hash of (case id, method name, setting JSON with sorted keys, seed)."""
    text = json.dumps([str(case_id), method, json.dumps(setting, sort_keys=True), int(seed)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


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
    overrides = {k: v for k, v in (("steps", steps), ("guidance", guidance)) if v is not None}
    methods = [m.with_params(**overrides) for m in methods]
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


# -- files -------------------------------------------------------------------------------------------
def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _plain_json(row: dict) -> bytes:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    return json.dumps(clean, sort_keys=False).encode()


def _manifest(plan: SweepPlan, model: str) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "dataset": plan.dataset,
        "methods": [m.to_dict() for m in plan.methods],
        "grid": plan.grid,
        "seeds": plan.seeds,
        "model": model,
        "complete": False,
        "rows_expected": len(plan.jobs),
    }


def read_manifest(folder: Path) -> dict | None:
    path = folder / "sweep.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise P2PError(f"{path} is not a readable sweep manifest: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise P2PError(f"{path} is not a sweep manifest (format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise P2PError(f"{path} is a sweep of version {data.get('version')!r}; this code reads version {VERSION}")
    return data


LOCK_FILE = ".sweep.lock"


class SweepStopped(P2PError):
    """The run was interrupted (Ctrl-C, a kernel interrupt); the rows finished so far are kept."""


class _FolderLock:
    """An exclusive lock on a sweep folder for one run (``flock`` on ``.sweep.lock``; released by the
    system if the process dies): a second run on the folder is refused, naming the first."""

    def __init__(self, out):
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise P2PError(f"out {folder} is a file; give a folder for the sweep")
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / LOCK_FILE
        self.file = open(self.path, "a+")  # noqa: SIM115  (held open for the run; closed by release)
        if not _try_lock(self.file):
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise P2PError(
                f"another sweep is writing {folder} ({holder}): wait for it to finish, or give another out folder"
            )
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"process {os.getpid()} on {_host()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.file.flush()

    def release(self) -> None:
        if not self.file.closed:
            self.file.seek(0)
            self.file.truncate()
            self.file.close()  # closing the file releases the lock


def _try_lock(file) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            file.seek(0)
            msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _host() -> str:
    import socket

    return socket.gethostname()


def _prepare_folder(out, manifest: dict) -> Path:
    """Create (or reopen, for the same sweep) the sweep folder; its table is withdrawn until the run
    completes it again."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise P2PError(f"out {folder} is a file; give a folder for the sweep")
    old = read_manifest(folder) if folder.is_dir() else None
    if old is None and (folder / "rows").is_dir():
        raise P2PError(f"{folder} holds rows but no sweep.json: not a sweep folder this code wrote")
    if old is not None:
        for key in MANIFEST_KEYS:
            if json.dumps(old.get(key), sort_keys=True) != json.dumps(manifest[key], sort_keys=True):
                raise P2PError(
                    f"{folder} holds another sweep (its {key!r} differs): rerun that sweep's command "
                    "to finish it, or give another out folder"
                )
    for sub in ("rows", "images"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for stale in (folder / sub).glob(".*.tmp"):  # left by a run that was killed while writing
            stale.unlink(missing_ok=True)
    cache = folder / INVERSIONS_DIR  # no worker of this folder runs now (one run at a time per folder)
    for stale in [*cache.glob(".tmp-*"), *cache.glob("*.lock")]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    write_atomic(folder / "sweep.json", json.dumps(manifest, indent=1).encode())
    for name in ("table.parquet", "table.csv", "summary.csv"):
        (folder / name).unlink(missing_ok=True)
    return folder


STATUSES = ("ok", "error")
TEXT_COLUMNS = ("row_id", "case_id", "edit_type_name", "method", "inversion", "setting")
TEXT_COLUMNS += ("image", "source_image", "spec", "inversion_file", "status", "error")


def _read_row(
    path: Path, plan: SweepPlan | None = None, job: Job | None = None, methods=None
) -> tuple[dict | None, str]:
    """``(row, "")`` for a row file that holds a whole, consistent row (with its job, when given:
    the same case, method, setting and seed; else one of ``methods`` when given), else ``(None,
    what is wrong)``."""
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        return None, f"not readable JSON ({type(exc).__name__})"
    problem = _row_problem(path, row, plan, job)
    if not problem and methods and isinstance(row.get("method"), str) and row["method"] not in methods:
        problem = f"'method' {row['method']!r} is not one of the sweep's ({', '.join(methods)})"
    if problem:
        return None, problem
    for key, value in row.items():
        if value is None and key not in TEXT_COLUMNS and not key.startswith("p."):
            row[key] = math.nan  # metrics and seconds: NaN is written as null
    return row, ""


def _row_problem(path: Path, row, plan: SweepPlan | None, job: Job | None) -> str:
    if not isinstance(row, dict):
        return f"a row is a JSON object, got {type(row).__name__}"
    if row.get("row_id") != path.stem:
        return f"'row_id' {row.get('row_id')!r} is not the file's name"
    for key in (*TEXT_COLUMNS, "edit_type", "seed"):
        if key not in row:
            return f"no {key!r}"
    for key in TEXT_COLUMNS:
        if not isinstance(row[key], str):
            return f"{key!r} must be text, got {_brief(row[key])}"
    if row["status"] not in STATUSES:
        return f"'status' must be one of {', '.join(STATUSES)}, got {_brief(row['status'])}"
    from .cases import EDIT_TYPES

    if not is_int(row["edit_type"]) or row["edit_type"] not in EDIT_TYPES:
        return f"'edit_type' must be an edit type id in 0..9, got {_brief(row['edit_type'])}"
    if not is_int(row["seed"]):
        return f"'seed' must be an integer, got {_brief(row['seed'])}"
    try:
        setting = json.loads(row["setting"])
    except (ValueError, RecursionError):
        setting = None
    if not isinstance(setting, dict):
        return f"'setting' must be a JSON object, got {_brief(row['setting'])}"
    params = {k[2:]: v for k, v in row.items() if k.startswith("p.")}
    if params != setting:
        bad = next((f"p.{k}" for k in {*params, *setting} if params.get(k, ...) != setting.get(k, ...)), "p.")
        return f"{bad!r} is {_brief(params.get(bad[2:]))}, not the setting's {_brief(setting.get(bad[2:]))}"
    for key, value in row.items():  # metrics and timing: numbers (NaN written as null)
        if key not in TEXT_COLUMNS and key not in ("edit_type", "seed") and not key.startswith("p."):
            if value is not None and not (is_number(value) or (isinstance(value, float) and math.isnan(value))):
                return f"{key!r} must be a number or null, got {_brief(value)}"
    if job is not None:
        name = plan.configured[job.method][0]
        case = plan.cases[job.case]
        want = dict(method=name, case_id=str(case.id), seed=job.seed, setting=json.dumps(job.setting, sort_keys=True))
        want["edit_type"] = int(case.edit_type)
        for key, value in want.items():
            if row[key] != value:
                return f"{key!r} is {_brief(row[key])} but this row is for {_brief(value)}"
    if row["status"] == "ok":
        return _image_problem(path.parent.parent, row["image"])
    return ""


def _image_problem(folder: Path, image: str) -> str:
    """What is wrong with a row's image (missing, or not a readable image), or ""."""
    if not image or not (folder / image).is_file():
        return f"its 'image' {image!r} is missing"
    from PIL import Image

    try:
        with Image.open(folder / image) as img:
            img.verify()
    except Exception as exc:  # PIL raises several kinds for a damaged file
        return f"its 'image' {image!r} is not a readable image ({type(exc).__name__})"
    return ""


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _finished_rows(folder: Path, plan: SweepPlan, retry_errors: bool) -> tuple[dict[str, dict], dict[str, str]]:
    """Rows already done, and the row files found damaged (row id -> what is wrong), which the run
    computes again."""
    done, rejected = {}, {}
    for job in plan.jobs:
        path = folder / "rows" / f"{job.row_id}.json"
        if not path.is_file():
            continue
        row, problem = _read_row(path, plan, job)
        if row is None:
            rejected[job.row_id] = problem
            print(f"sweep: row {path} is damaged ({problem}): computing it again", file=sys.stderr, flush=True)
            continue
        if row.get("status") != "ok" and retry_errors:
            continue
        done[job.row_id] = row
    return done, rejected


# -- the table and the summary -------------------------------------------------------------------------
def table_columns(rows: list[dict]) -> list[str]:
    """Columns in the contract's order: identity, ``p.<name>`` per grid parameter, files, metrics,
    timing and status (metrics a custom scorer adds come after the standard ones)."""
    params = sorted({k for row in rows for k in row if k.startswith("p.")})
    fixed = {*HEAD_COLUMNS, *MID_COLUMNS, *TAIL_COLUMNS, *params}
    metrics = list(metric_names())
    metrics += sorted({k for row in rows for k in row if k not in fixed and k not in metrics})
    return [*HEAD_COLUMNS, *params, *MID_COLUMNS, *metrics, *TAIL_COLUMNS]


def _complete_rows(rows: list[dict]) -> list[dict]:
    columns = table_columns(rows)
    numeric = set(metric_names()) | set(TIMING_COLUMNS)
    return [{c: row.get(c, math.nan if c in numeric else None) for c in columns} for row in rows]


def write_table(folder: Path, rows: list[dict]) -> Path:
    """``table.parquet`` when pyarrow is installed, else ``table.csv``; written atomically."""
    rows = _complete_rows(rows)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is None:
        path = folder / "table.csv"
        write_atomic(path, _csv_bytes(rows, encode_params=True))
        return path
    mixed = _mixed_columns(rows)  # a parameter mixing types (e.g. 25 and "model") is stored as JSON text
    table = pa.Table.from_pylist([{k: json.dumps(v) if k in mixed else v for k, v in row.items()} for row in rows])
    table = table.replace_schema_metadata({JSON_COLUMNS_KEY: json.dumps(mixed)})
    path = folder / "table.parquet"
    tmp = folder / f".table.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _mixed_columns(rows: list[dict]) -> list[str]:
    def kind(value):
        return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__

    columns = [k for k in (rows[0] if rows else {}) if k.startswith("p.")]
    return [c for c in columns if len({kind(r[c]) for r in rows if r[c] is not None}) > 1]


def _param_json(key, value):
    return json.dumps(value) if key.startswith("p.") else value


def _csv_bytes(rows: list[dict], encode_params: bool) -> bytes:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _param_json(k, v) if encode_params else v for k, v in row.items()})
    return buffer.getvalue().encode()


def summarise(rows: list[dict]) -> list[dict]:
    """Mean of each metric per (method, setting, edit type) over the rows that ran (NaN skipped)."""
    metrics = [c for c in table_columns(rows) if c not in (*HEAD_COLUMNS, *MID_COLUMNS, *TAIL_COLUMNS)]
    metrics = [c for c in metrics if not c.startswith("p.")]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["method"], row["setting"], int(row["edit_type"]), row["edit_type_name"])
        groups.setdefault(key, []).append(row)
    out = []
    for (method, setting, edit_type, type_name), members in sorted(groups.items(), key=lambda kv: kv[0][:3]):
        ok = [r for r in members if r.get("status") == "ok"]
        entry = dict(method=method, setting=setting, edit_type=edit_type, edit_type_name=type_name)
        entry.update(rows=len(members), errors=len(members) - len(ok))
        for name in metrics:
            values = [float(r[name]) for r in ok if _finite(r.get(name))]
            entry[name] = sum(values) / len(values) if values else math.nan
        out.append(entry)
    return out


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# -- reading -----------------------------------------------------------------------------------------
def load_sweep(folder) -> list[dict]:
    """The rows of a sweep folder: from its table when the sweep is complete, else from ``rows/``
    (the rows finished so far), in the table's column order."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise P2PError(f"{folder} is not a sweep folder (no sweep.json)")
    if manifest.get("complete"):
        for name, read in (("table.parquet", _read_parquet_table), ("table.csv", _read_csv_table)):
            if (folder / name).is_file():
                try:
                    return read(folder / name)
                except Exception as exc:  # pyarrow's ArrowInvalid, csv and JSON errors: a damaged file
                    warnings.warn(
                        f"{folder / name} cannot be read ({type(exc).__name__}: {exc}): the rows are read from "
                        f"{folder / 'rows'} instead (rerun the sweep's command to write the table again)",
                        stacklevel=2,
                    )
                break
    rows, bad = [], []
    listed = manifest.get("methods")
    methods = [m.get("name") for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
    for path in sorted((folder / "rows").glob("*.json")):
        row, problem = _read_row(path, methods=methods)
        if row is None:
            bad.append(f"{path.stem} ({problem})")
        else:
            rows.append(row)
    if bad:
        warnings.warn(
            f"{len(bad)} damaged row(s) in {folder / 'rows'} left out: {'; '.join(bad[:5])}"
            + (" ..." if len(bad) > 5 else "")
            + " (rerun the sweep's command: it computes them again)",
            stacklevel=2,
        )
    return _complete_rows(rows)


def _read_parquet_table(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    encoded = json.loads((table.schema.metadata or {}).get(JSON_COLUMNS_KEY.encode(), b"[]"))
    rows = table.to_pylist()
    for row in rows:
        row.update({k: json.loads(row[k]) for k in encoded})
    return rows


def _read_csv_table(path: Path) -> list[dict]:
    numeric = set(metric_names()) | set(TIMING_COLUMNS)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            if key.startswith("p."):
                row[key] = json.loads(value)
            elif key in ("edit_type", "seed"):
                row[key] = int(value)
            elif key in numeric or key not in (*HEAD_COLUMNS, *MID_COLUMNS, *TAIL_COLUMNS):
                row[key] = float(value) if value not in ("", "None") else math.nan
    return rows


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


def _write_row(folder: Path, row: dict, png: bytes | None) -> None:
    if png is not None:
        write_atomic(folder / row["image"], png)  # the image first: a row file means its image is there
    write_atomic(folder / "rows" / f"{row['row_id']}.json", _plain_json(row))


METRIC_MODELS = ("dino", "clip", "lpips")  # what MetricModels.load reads, by path or hub id


def _check_metrics(metrics) -> None:
    if isinstance(metrics, dict):
        bad = [k for k in METRIC_MODELS if k in metrics and not (isinstance(metrics[k], str) and metrics[k])]
        missing = [k for k in METRIC_MODELS if k not in metrics]
        unknown = sorted(set(map(str, metrics)) - set(METRIC_MODELS))
        if bad or missing or unknown:
            wrong = [f"{k!r} must be a path or hub id (text), got {_brief(metrics[k])}" for k in bad]
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
    if not isinstance(model, str) or not model:
        raise P2PError(f"model must be 'pocket' or a diffusers folder / hub id, got {model!r}")
    if model != "pocket" and not Path(model).is_dir() and Path(model).suffix:
        raise P2PError(f"model {model!r} is neither 'pocket' nor a diffusers folder")


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
    - ``model``: ``"pocket"`` or a diffusers folder / hub id;
    - ``backend``: ``"local"`` (``workers > 1``: spawned processes) or ``"ray"`` (``address``: a
      running cluster's; default: the current connection or a local cluster);
    - ``metrics``: ``None`` (no scores), ``"random"`` (random-weight metric models: plumbing tests),
      ``{"dino": ..., "clip": ..., "lpips": ...}`` (paths or hub ids for ``MetricModels.load``),
      a ``MetricModels``, or a function ``(case, edited PIL image) -> {name: value}``;
    - ``steps``, ``guidance``: override every method's (a number, or ``"model"`` for the model's
      own defaults, e.g. pocket-bench with the pocket model);
    - ``threads``: torch CPU threads per worker (default: 1 for processes and Ray actors, the
      process's own choice in process);
    - ``retry_errors``: also rerun rows whose edit failed before; ``progress``: a progress bar;
    - ``types``: only the cases of these edit type ids (a dataset folder);
    - ``max_rows``: refuse a larger sweep (default :data:`MAX_ROWS`, or ``P2P_WIDGETS_SWEEP_MAX_ROWS``).
    """
    t0 = time.perf_counter()
    plan = plan_sweep(data, methods, grid, seeds, steps=steps, guidance=guidance, types=types, max_rows=max_rows)
    _check_run_options(backend, workers, address, metrics, model, device, threads)
    lock = _FolderLock(out)  # one run per folder: a second writer is refused
    try:
        return _run_locked(plan, out, model, backend, workers, address, metrics, device, threads, retry_errors,
                           progress, t0)  # fmt: skip
    finally:
        lock.release()


def _run_locked(plan, out, model, backend, workers, address, metrics, device, threads, retry_errors, progress, t0):
    folder = _prepare_folder(out, _manifest(plan, model))
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
        _write_row(folder, row, png)
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
        row, _ = _read_row(folder / "rows" / f"{job.row_id}.json", plan, job)
        if row is None:
            missing.append(job.row_id)
        else:
            rows.append(row)
    table, summary = None, []
    if not missing:
        table = write_table(folder, rows)
        summary = summarise(rows)
        write_atomic(folder / "summary.csv", _csv_bytes(summary, encode_params=False))
        manifest = {**read_manifest(folder), "complete": True}
        write_atomic(folder / "sweep.json", json.dumps(manifest, indent=1).encode())
    return SweepResult(
        folder=folder,
        rows=_complete_rows(rows),
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
        values += [f"{entry[n]:.4g}" if _finite(entry.get(n)) else "nan" for n in names]
        lines.append(values)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines)


__all__ = [
    "INVERSIONS",
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
]
