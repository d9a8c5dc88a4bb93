"""The sweep folder contract: what a sweep writes and how it is read back (the table the
SweepExplorer and the figures read). ``sweep.py`` plans and runs the sweep that fills it.

A sweep folder ``DIR`` holds:

- ``sweep.json``: the manifest (format, version, dataset, methods, grid, seeds, model, complete,
  rows_expected);
- ``rows/<row_id>.json``: one finished row each, the source of truth (written atomically: a
  private temporary file, then ``os.replace``; NaN metrics are written as null);
- ``images/<row_id>.png``: the edited image (written before its row);
- ``table.parquet`` (with pyarrow) or ``table.csv``: every row, written only once every expected
  row is finished, and only then is the manifest's ``complete`` true;
- ``summary.csv``: mean of each metric per (method, setting, edit type), over the rows that ran;
- ``inversions/<key>.safetensors`` (+ ``.json``): the inversion cache (see ``backends/worker.py``);
- ``.sweep.lock``: held by the one run writing the folder (:class:`FolderLock`).

Each row's ``row_id`` is a stable hash of (case id, method name, setting JSON with sorted keys,
seed). Row files are validated when read (:func:`read_row`): a damaged one is named and left out
(the runner computes it again).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path

from ..errors import P2PError, is_int, is_number
from .backends.worker import INVERSIONS_DIR, Job
from .metric_registry import ALL_METRIC_NAMES

FORMAT = "p2p_widgets.sweep"
VERSION = 1
HEAD_COLUMNS = ("row_id", "case_id", "edit_type", "edit_type_name", "method", "inversion", "setting")
MID_COLUMNS = ("seed", "image", "source_image", "spec", "inversion_file")
TAIL_COLUMNS = ("seconds", "status", "error")
TIMING_COLUMNS = ("seconds",)
JSON_COLUMNS_KEY = "p2p_widgets.json_columns"  # Parquet metadata: parameter columns stored as JSON text
MANIFEST_KEYS = ("dataset", "methods", "grid", "seeds", "model", "rows_expected")


def metric_names() -> tuple[str, ...]:
    """The metric columns every row has: the benchmark's metrics, then pocket-bench's extras."""
    return ALL_METRIC_NAMES


def row_id(case_id, method: str, setting: dict, seed: int) -> str:
    """The row's stable key: a hash of (case id, method name, setting JSON with sorted keys, seed)."""
    text = json.dumps([str(case_id), method, json.dumps(setting, sort_keys=True), int(seed)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


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


def new_manifest(plan, model: str) -> dict:
    """The manifest of a sweep not yet complete (``plan``: a SweepPlan)."""
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


# -- the folder lock -------------------------------------------------------------------------------
LOCK_FILE = ".sweep.lock"


class FolderLock:
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


def prepare_folder(out, manifest: dict) -> Path:
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


# -- rows ------------------------------------------------------------------------------------------
STATUSES = ("ok", "error")
TEXT_COLUMNS = ("row_id", "case_id", "edit_type_name", "method", "inversion", "setting")
TEXT_COLUMNS += ("image", "source_image", "spec", "inversion_file", "status", "error")


def read_row(path: Path, plan=None, job: Job | None = None, methods=None) -> tuple[dict | None, str]:
    """``(row, "")`` for a row file that holds a whole, consistent row (with its job, when given:
    the same case, method, setting and seed; else one of ``methods`` when given), else ``(None,
    what is wrong)``; ``plan``: the SweepPlan the job is of."""
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


def _row_problem(path: Path, row, plan, job: Job | None) -> str:
    if not isinstance(row, dict):
        return f"a row is a JSON object, got {type(row).__name__}"
    if row.get("row_id") != path.stem:
        return f"'row_id' {row.get('row_id')!r} is not the file's name"
    for key in (*TEXT_COLUMNS, "edit_type", "seed"):
        if key not in row:
            return f"no {key!r}"
    for key in TEXT_COLUMNS:
        if not isinstance(row[key], str):
            return f"{key!r} must be text, got {brief_repr(row[key])}"
    if row["status"] not in STATUSES:
        return f"'status' must be one of {', '.join(STATUSES)}, got {brief_repr(row['status'])}"
    from .cases import EDIT_TYPES

    if not is_int(row["edit_type"]) or row["edit_type"] not in EDIT_TYPES:
        return f"'edit_type' must be an edit type id in 0..9, got {brief_repr(row['edit_type'])}"
    if not is_int(row["seed"]):
        return f"'seed' must be an integer, got {brief_repr(row['seed'])}"
    try:
        setting = json.loads(row["setting"])
    except (ValueError, RecursionError):
        setting = None
    if not isinstance(setting, dict):
        return f"'setting' must be a JSON object, got {brief_repr(row['setting'])}"
    params = {k[2:]: v for k, v in row.items() if k.startswith("p.")}
    if params != setting:
        bad = next((f"p.{k}" for k in {*params, *setting} if params.get(k, ...) != setting.get(k, ...)), "p.")
        return f"{bad!r} is {brief_repr(params.get(bad[2:]))}, not the setting's {brief_repr(setting.get(bad[2:]))}"
    for key, value in row.items():  # metrics and timing: numbers (NaN written as null)
        if key not in TEXT_COLUMNS and key not in ("edit_type", "seed") and not key.startswith("p."):
            if value is not None and not (is_number(value) or (isinstance(value, float) and math.isnan(value))):
                return f"{key!r} must be a number or null, got {brief_repr(value)}"
    if job is not None:
        name = plan.configured[job.method][0]
        case = plan.cases[job.case]
        want = dict(method=name, case_id=str(case.id), seed=job.seed, setting=json.dumps(job.setting, sort_keys=True))
        want["edit_type"] = int(case.edit_type)
        for key, value in want.items():
            if row[key] != value:
                return f"{key!r} is {brief_repr(row[key])} but this row is for {brief_repr(value)}"
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


def brief_repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def write_row(folder: Path, row: dict, png: bytes | None) -> None:
    if png is not None:
        write_atomic(folder / row["image"], png)  # the image first: a row file means its image is there
    write_atomic(folder / "rows" / f"{row['row_id']}.json", _plain_json(row))


# -- the table and the summary -------------------------------------------------------------------------
def table_columns(rows: list[dict]) -> list[str]:
    """Columns in the contract's order: identity, ``p.<name>`` per grid parameter, files, metrics,
    timing and status (metrics a custom scorer adds come after the standard ones)."""
    params = sorted({k for row in rows for k in row if k.startswith("p.")})
    fixed = {*HEAD_COLUMNS, *MID_COLUMNS, *TAIL_COLUMNS, *params}
    metrics = list(metric_names())
    metrics += sorted({k for row in rows for k in row if k not in fixed and k not in metrics})
    return [*HEAD_COLUMNS, *params, *MID_COLUMNS, *metrics, *TAIL_COLUMNS]


def complete_rows(rows: list[dict]) -> list[dict]:
    columns = table_columns(rows)
    numeric = set(metric_names()) | set(TIMING_COLUMNS)
    return [{c: row.get(c, math.nan if c in numeric else None) for c in columns} for row in rows]


def write_table(folder: Path, rows: list[dict]) -> Path:
    """``table.parquet`` when pyarrow is installed, else ``table.csv``; written atomically."""
    rows = complete_rows(rows)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is None:
        path = folder / "table.csv"
        write_atomic(path, csv_bytes(rows, encode_params=True))
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


def csv_bytes(rows: list[dict], encode_params: bool) -> bytes:
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
            values = [float(r[name]) for r in ok if is_finite_number(r.get(name))]
            entry[name] = sum(values) / len(values) if values else math.nan
        out.append(entry)
    return out


def is_finite_number(value) -> bool:
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
        row, problem = read_row(path, methods=methods)
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
    return complete_rows(rows)


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
