"""Where a sweep's rows run: ``local`` (this process, or spawned processes with ``workers > 1``;
needs nothing extra) or ``ray`` (one actor per worker on a Ray cluster, the model loaded once per
actor; ``address`` connects to an existing cluster, else a local one is started and stopped).

Both pools keep every worker busy with one row at a time and hand each finished row to the sweep,
which writes it at once; a worker that dies loses only the row it held (reported as lost, not
retried in the same run: it may crash again), and is replaced while more rows wait than the live
workers can start at once (a fresh worker loads the model again: not worth it for the last rows).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ...errors import P2PError
from .worker import Job, SweepWorker, WorkerConfig

BACKENDS = ("local", "ray")


def check_backend(backend: str, workers, address) -> None:
    """Validate the backend options before anything runs."""
    if backend not in BACKENDS:
        raise P2PError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 4096:
        raise P2PError(f"workers must be an integer >= 1, got {workers!r}")
    if address is not None and backend != "ray":
        raise P2PError("address is a Ray cluster's address: use it with backend='ray'")


def run_jobs(
    backend: str,
    config: WorkerConfig,
    jobs: list[Job],
    *,
    workers: int = 1,
    address: str | None = None,
    on_row: Callable,
    on_lost: Callable,
    on_ready: Callable | None = None,
) -> None:
    """Run ``jobs``: ``on_row(job, row, png)`` for each finished row, ``on_lost(job, message)`` for
    each row whose worker died; ``on_ready()`` once the workers have loaded their models."""
    if backend == "ray":
        from .ray_backend import RayPool

        pool = RayPool(config, workers, address)
    elif workers > 1:
        from .local import ProcessPool

        pool = ProcessPool(config, workers)
    else:
        return _run_here(config, jobs, on_row, on_ready)
    try:
        pool.start()
        if on_ready is not None:
            on_ready()
        drive(pool, jobs, on_row, on_lost)
    finally:
        pool.close()


def _run_here(config, jobs, on_row, on_ready):
    worker = SweepWorker(config)
    if on_ready is not None:
        on_ready()
    for job in jobs:
        row, png = worker.run(job)
        on_row(job, row, png)


def drive(pool, jobs: list[Job], on_row, on_lost) -> None:
    """Keep every worker of ``pool`` busy until ``jobs`` are done (see the module docstring).

    ``pool``: ``slots()`` (worker handles), ``submit(slot, job)``, ``wait()`` -> list of
    ``(slot, job, outcome)`` with outcome ``("ok", (row, png))`` or ``("lost", message)``,
    ``retire(slot)`` (forget a dead worker) and ``replace(slot)`` -> a new slot or None (no
    restarts left)."""
    pending = deque(jobs)
    idle = list(pool.slots())
    busy = 0
    while pending or busy:
        while idle and pending:
            pool.submit(idle.pop(), pending.popleft())
            busy += 1
        if not busy:  # every worker died and none could be restarted: the rest stay missing
            for job in pending:
                on_lost(job, "no worker left to run it")
            return
        for slot, job, (kind, value) in pool.wait():
            busy -= 1
            if kind == "ok":
                on_row(job, *value)
                idle.append(slot)
                continue
            on_lost(job, value)
            if len(pending) > len(pool.slots()) - 1:
                fresh = pool.replace(slot)
                if fresh is not None:
                    idle.append(fresh)
            else:
                pool.retire(slot)
