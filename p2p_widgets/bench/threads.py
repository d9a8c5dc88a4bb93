"""CPU threads under contention: ``python -m p2p_widgets.bench threads [--steps 25]``.

Times one pocket-model edit (source + edit, guidance in the batch) in fresh processes with
torch's default thread count (one per CPU) and with the package's choice (half the CPUs, see
engine/threads.py), each on an idle machine and with one core kept busy by another process
(a spinning Python loop). Prints ``name: seconds`` lines and the ratios side by side. CI runs it
with --steps 2 (a smoke test); the figures in the README come from a full run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys

ONE_EDIT = """
import json, sys, time, torch
import p2p_widgets as p2p
editor = p2p.Editor(p2p.load_pocket(device="cpu"))
source = "a big red star left of a small blue square on a gray background"
target = "a big red star left of a small green square on a gray background"
editor.edit(source, target, seed=0, steps=2, guidance=5.0)  # warm-up: kernels, allocator
t0 = time.perf_counter()
editor.edit(source, target, seed=3, steps=int(sys.argv[1]), guidance=5.0)
print(json.dumps({"seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}))
"""


@contextlib.contextmanager
def busy_core(busy: bool = True):
    """With ``busy``, another process spins on one core (a spinning Python loop) until the block ends."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def _time_edit(steps: int, threads: int | None, busy: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "P2P_WIDGETS_THREADS")}
    if threads is not None:
        env["P2P_WIDGETS_THREADS"] = str(threads)
    with busy_core(busy):
        out = subprocess.run([sys.executable, "-c", ONE_EDIT, str(steps)], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.bench threads",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--steps", type=int, default=25)
    args = p.parse_args(argv)
    cpus = os.cpu_count() or 1
    print(f"cpus: {cpus}")
    results = {}
    for name, threads in (("torch_default", cpus), ("chosen", None)):
        for load in ("idle", "busy"):
            r = _time_edit(args.steps, threads, load == "busy")
            results[f"{name}_{load}"] = r
            print(f"{name}_{load}_seconds: {r['seconds']:.2f} (threads {r['threads']})")
    for load in ("idle", "busy"):
        ratio = results[f"torch_default_{load}"]["seconds"] / results[f"chosen_{load}"]["seconds"]
        print(f"{load}_default_over_chosen: {ratio:.2f}")
    return results


if __name__ == "__main__":
    main()
