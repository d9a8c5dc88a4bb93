"""One sweep worker: loads the model (and the metric models) once, then runs rows.

Every backend runs the same :class:`SweepWorker`: in the sweep's own process (``local``, one
worker), in spawned processes (``local`` with several workers) or as Ray actors (``ray``). A row
is one edit of one case by one configured method with one seed; :meth:`SweepWorker.run` returns the
row (a dict of the sweep table's columns) and the edited image as PNG bytes, and never raises for
a failing edit: the row then has ``status "error"`` and the message.

Inversions are cached in ``<out>/inversions/<key>.safetensors`` (+ ``.json``) under a key of the
image file's hash, the model id, the inversion method, steps, guidance, prompt and options, and
shared by every method and worker: files are written into a private folder and moved into place
with ``os.replace`` (the tensors first, the JSON that names them last, so a reader never sees half
an inversion), and a lock file makes a second worker wait for the first instead of inverting the
same image twice (a lock left by a dead process is taken over).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import P2PError

INVERSIONS_DIR = "inversions"
LOCK_POLL_S = 0.25
LOCK_STALE_S = 3 * 3600  # a lock of another machine older than this is taken over


@dataclass
class Job:
    """One row to run: indices into the worker's cases and configured methods."""

    row_id: str
    case: int
    method: int
    setting: dict
    seed: int


@dataclass
class WorkerConfig:
    """What every worker of a sweep needs (picklable: travels to processes and Ray actors)."""

    out: str  # the sweep folder (the inversion cache lives in it)
    cases: list  # EditCase objects
    methods: list  # (name, configured Method) per method index
    model: str = "pocket"
    device: str | None = None
    dtype: str | None = None  # "float32" to force it (null-text inversion needs it); None: the loader's
    threads: int | None = None  # torch CPU threads of this worker; None: the process's choice
    metrics: object = None  # None, "random", {"dino": ..., "clip": ..., "lpips": ...}, MetricModels or callable
    extra: dict = field(default_factory=dict)


def set_threads(threads: int | None) -> None:
    """Fix torch's CPU threads for this worker (before the first Editor makes its own choice)."""
    if threads is None:
        return
    import torch

    from ...engine.threads import choose_cpu_threads

    choose_cpu_threads()  # the package's choice is made once per process: made now, then overridden
    torch.set_num_threads(int(threads))


def make_scorer(metrics, device):
    """``scorer(case, image) -> {metric: value}`` for a metrics choice (see :class:`WorkerConfig`)."""
    if metrics is None or metrics == "none":
        return lambda case, image: {}
    from .. import metrics as metric_module

    if metrics == "random":
        models = metric_module.MetricModels.random(0)
    elif isinstance(metrics, dict):
        models = metric_module.MetricModels.load(**metrics)
    elif isinstance(metrics, metric_module.MetricModels):
        models = metrics
    elif callable(metrics):
        return metrics
    else:
        raise P2PError(f"metrics must be None, 'random', a dict of model paths or a scorer, got {metrics!r}")
    return lambda case, image: metric_module.score(case, image, models, device=device)


class SweepWorker:
    """Runs rows of a sweep with one model (see the module docstring)."""

    def __init__(self, config: WorkerConfig):
        set_threads(config.threads)
        from ...engine.sampler import Editor
        from ...models import load_pipeline

        dtype = None
        if config.dtype is not None:
            import torch

            dtype = getattr(torch, config.dtype)
        self.config = config
        self.editor = Editor(load_pipeline(config.model, device=config.device, dtype=dtype))
        self.scorer = make_scorer(config.metrics, self.editor.device)
        self.inversions = Path(config.out) / INVERSIONS_DIR
        self._image_hashes: dict[int, str] = {}

    def ready(self) -> str:
        """The model id (a Ray backend waits on this before sending rows)."""
        return self.editor.model_id()

    def run(self, job: Job) -> tuple[dict, bytes | None]:
        """``(row, png bytes or None)``; a failing edit gives an error row, never an exception."""
        case = self.config.cases[job.case]
        name, method = self.config.methods[job.method]
        t0 = time.perf_counter()
        row = base_row(job, case, name, method)
        png = None
        try:
            if method.direct is not None:  # FlowEdit: edits the picture itself, no inversion
                image, record = method.run_direct(case, self.editor, job.seed)
                row["spec"] = json.dumps({**record, "model": self.config.model})
            else:
                inversion, row["inversion_file"] = self._inversion(job.case, case, method)
                source, target, options = method.edit_arguments(case, self.editor, job.seed, inversion)
                result = self.editor.edit(source, target, **options)
                image = result.images[1]
                row["spec"] = result.spec.replace(model=self.config.model).to_json(indent=None)
            row.update({k: _float(v) for k, v in dict(self.scorer(case, _at_source_size(image, case))).items()})
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            png = buffer.getvalue()
            row["image"] = f"images/{job.row_id}.png"
        except Exception as exc:  # a row that fails is recorded as failed; the sweep goes on
            row.update(status="error", error=f"{type(exc).__name__}: {exc}", image="")
            png = None
        row["seconds"] = time.perf_counter() - t0
        return row, png

    # -- the inversion cache -------------------------------------------------------------------------
    def _inversion(self, index, case, method):
        if method.inversion is None:
            return None, ""

        steps, guidance = method.resolved(self.editor.model.defaults)
        prompt = method.prompts(case)[0]
        if index not in self._image_hashes:
            self._image_hashes[index] = file_hash(case.image_path)
        key = inversion_key(
            self._image_hashes[index],
            self.editor.model_id(),
            method.inversion,
            steps,
            guidance,
            prompt,
            method.inversion_options,
        )

        def compute():
            return self.editor.invert(
                case.image_path, prompt, method=method.inversion, steps=steps, guidance=guidance,
                **method.inversion_options,
            )  # fmt: skip

        inversion = cached_inversion(self.inversions, key, compute)
        return inversion, f"{INVERSIONS_DIR}/{key}.safetensors"


def base_row(job: Job, case, name: str, method) -> dict:
    """The row's identity columns, before the edit runs."""
    row = {
        "row_id": job.row_id,
        "case_id": str(case.id),
        "edit_type": int(case.edit_type),
        "edit_type_name": case.edit_type_name,
        "method": name,
        "inversion": method.inversion or "none",
        "setting": json.dumps(job.setting, sort_keys=True),
    }
    row.update({f"p.{k}": v for k, v in sorted(job.setting.items())})
    row.update(
        seed=int(job.seed),
        image="",
        source_image=str(Path(case.image_path).resolve()),
        spec="",
        inversion_file="",
        status="ok",
        error="",
    )
    return row


def _at_source_size(image, case):
    """The edit at the case image's size for scoring (a model of another size, e.g. the 32 px pocket
    model on 512 px PIE-Bench images; the metrics compare pixel by pixel)."""
    height, width = case.mask.shape[:2]
    if image.size == (width, height):
        return image
    from PIL import Image

    return image.resize((width, height), Image.Resampling.BICUBIC)


def _float(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


def file_hash(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inversion_key(image_hash, model_id, method, steps, guidance, prompt, options) -> str:
    """The cache key: a hash of everything the inversion depends on."""
    data = [image_hash, model_id, method, int(steps), float(guidance), prompt, options]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def cached_inversion(folder: Path, key: str, compute):
    """The inversion cached under ``key`` in ``folder``, or ``compute()``'s, written there atomically."""
    from ...engine.inversion import Inversion

    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / key
    found = _load(prefix, Inversion)
    if found is not None:
        return found
    with _Lock(folder / f"{key}.lock", lambda: (folder / f"{key}.json").is_file()):
        found = _load(prefix, Inversion)
        if found is not None:
            return found
        inversion = compute()
        private = folder / f".tmp-{uuid.uuid4().hex}"
        try:
            inversion.save(private / key)  # writes <key>.json naming <key>.safetensors
            os.replace(private / f"{key}.safetensors", folder / f"{key}.safetensors")
            os.replace(private / f"{key}.json", folder / f"{key}.json")  # last: its presence means complete
        finally:
            shutil.rmtree(private, ignore_errors=True)
        return inversion


def _load(prefix: Path, cls):
    if not prefix.with_name(prefix.name + ".json").is_file():
        return None
    try:
        return cls.load(prefix)
    except P2PError:  # unreadable (e.g. a disk that filled up): computed again and replaced
        return None


class _Lock:
    """An O_EXCL lock file holding its owner (host, pid); waits while a live owner holds it, or
    until ``done()`` says the owner's result is there."""

    def __init__(self, path: Path, done):
        self.path, self.done, self.held = path, done, False

    def __enter__(self):
        owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self.done():
                    return self
                if self._stale():
                    self.path.unlink(missing_ok=True)
                    continue
                time.sleep(LOCK_POLL_S)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(owner)
            self.held = True
            return self

    def _stale(self) -> bool:
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return False  # being written or just removed: look again
        if owner.get("host") == socket.gethostname():
            try:
                os.kill(int(owner.get("pid", -1)), 0)
            except ProcessLookupError:
                return True
            except (PermissionError, ValueError, OverflowError):
                return False
            return False
        return time.time() - float(owner.get("time", 0)) > LOCK_STALE_S

    def __exit__(self, *exc):
        if self.held:
            self.path.unlink(missing_ok=True)
        return False
