"""Sweep throughput: ``python -m p2p_widgets.bench sweep [--cases 8] [--steps 10] [--local]``.

Writes a pocket-bench of ``--cases`` cases into a temporary folder and runs the same sweep
(``--method``, two cross-attention windows, one seed) on a local Ray cluster with 1 and then 2
workers (one actor each, one torch thread per actor, each actor loads the pocket model once),
each into a fresh folder (nothing cached between them). Prints, side by side, rows per minute
over the whole run and after the workers had loaded their models, and the thread settings;
``--local`` adds the local backend in this process for reference. Needs the ``ray`` extra.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _measure(bench: Path, out: Path, args, backend: str, workers: int) -> dict:
    from ..evaluate.sweep import run_sweep

    t0 = time.perf_counter()
    result = run_sweep(
        bench,
        [args.method],
        {"cross": [0.4, 0.8]},
        [0],
        out,
        backend=backend,
        workers=workers,
        steps=args.steps,
        guidance="model",
        threads=1,
        progress=False,
    )
    wall = time.perf_counter() - t0
    if not result.complete:
        raise RuntimeError(f"{backend} x{workers}: {len(result.missing)} rows missing: {result.lost}")
    running = max(wall - result.startup_seconds, 1e-9)
    return {
        "rows": len(result.rows),
        "seconds": wall,
        "startup_seconds": result.startup_seconds,
        "rows_per_minute": 60 * len(result.rows) / wall,
        "rows_per_minute_after_startup": 60 * len(result.rows) / running,
    }


def _table(results: dict) -> str:
    names = list(results)
    keys = ("rows", "seconds", "startup_seconds", "rows_per_minute", "rows_per_minute_after_startup")
    lines = [f"{'':32}" + "".join(f"{n:>14}" for n in names)]
    for key in keys:
        cells = "".join(f"{results[n][key]:>14.1f}" if key != "rows" else f"{results[n][key]:>14d}" for n in names)
        lines.append(f"{key:32}{cells}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.bench sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cases", type=int, default=8, help="pocket-bench cases (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10, help="DDIM steps per edit (default: %(default)s)")
    p.add_argument("--method", default="pie-p2p-ddim", help="the method swept (default: %(default)s)")
    p.add_argument("--local", action="store_true", help="also the local backend in this process")
    args = p.parse_args(argv)
    import ray

    from ..evaluate.backends.ray_backend import start_local_cluster
    from ..evaluate.pocket_bench import make_pocket_bench

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"cpus: {cpus}; Ray local cluster num_cpus={min(2, cpus)}; one torch thread per worker "
        f"(torch.set_num_threads(1)); method {args.method}, {args.steps} steps, "
        f"{args.cases} cases x 2 settings x 1 seed"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="p2p-bench-sweep-") as tmp:
        bench = Path(tmp) / "bench"
        make_pocket_bench(bench, n=args.cases, seed=0)
        start_local_cluster(ray, num_cpus=min(2, cpus), include_dashboard=False, log_to_driver=False)
        try:
            for workers in (1, 2):
                results[f"ray x{workers}"] = _measure(bench, Path(tmp) / f"ray{workers}", args, "ray", workers)
        finally:
            ray.shutdown()
        if args.local:
            results["local x1"] = _measure(bench, Path(tmp) / "local", args, "local", 1)
    print(_table(results))
    speedup = results["ray x2"]["rows_per_minute_after_startup"] / results["ray x1"]["rows_per_minute_after_startup"]
    print(f"speedup_2_over_1_after_startup: {speedup:.2f}")
    return results


if __name__ == "__main__":
    main()
