"""Time the quickstart as a newcomer runs it: ``python tests/e2e/time_quickstart.py [--busy]``.

A private JupyterLab server (lab.py) opens notebooks/01_quickstart.ipynb in Chromium with a new
kernel and runs every cell with JupyterLab's Run All. Prints, in seconds: the server's start, the
notebook's opening (page and kernel start, until the kernel is idle), Run All until every cell is
done (a fresh kernel: it pays the first imports and the first figure), and each cell's time in the
kernel as JupyterLab records it. ``--busy`` keeps one core busy with a spinning process for the
whole measurement (the machine shared with other work); ``--repeat N`` measures N times in a row.
Each line starts with the 1-minute load average before it began: the host is shared, and a run
beside other work is slower. A measurement, not a test: it asserts nothing about the time and is
not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "browser")]

import lab  # noqa: E402
from harness import launch_chromium  # noqa: E402
from lab import ROOT, LabNotebook, LabServer  # noqa: E402

from p2p_widgets.bench.threads import busy_core  # noqa: E402

QUICKSTART = ROOT / "notebooks" / "01_quickstart.ipynb"
# JupyterLab records when the kernel started and finished each cell (metadata.execution)
lab.OVERRIDES["@jupyterlab/notebook-extension:tracker"] = {"recordTiming": True}

_CELL_SECONDS = """
const stamp = (c, key) => Date.parse((c.model.getMetadata('execution') || {})[key]);
return panel.content.widgets.filter((c) => c.model.type === 'code').map((c) =>
  [c.model.sharedModel.getSource().split('\\n')[0].slice(0, 60),
   (stamp(c, 'shell.execute_reply') - stamp(c, 'iopub.execute_input')) / 1000]);
"""


def measure(busy: bool) -> dict:
    from playwright.sync_api import sync_playwright

    with busy_core(busy), tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = launch_chromium(pw)
        t0 = time.perf_counter()
        with LabServer(Path(tmp)) as server:
            t_server = time.perf_counter() - t0
            path = server.add_notebook(QUICKSTART)
            t1 = time.perf_counter()
            nb = LabNotebook(server, browser, path, timeout_s=600)
            t_open = time.perf_counter() - t1
            t2 = time.perf_counter()
            outputs = nb.run_all()
            t_run = time.perf_counter() - t2
            studio = nb.page.locator(".p2p-studio").count()
            cells = nb._evaluate(_CELL_SECONDS)
            nb.close()
        browser.close()
    figures = sum("application/vnd.plotly.v1+json" in o.get("data", {}) for cell in outputs for o in cell)
    return {
        "server": t_server,
        "open": t_open,
        "run_all": t_run,
        "figures": figures,
        "studio_shown": studio,
        "cells": cells,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", action="store_true", help="keep one core busy while measuring")
    parser.add_argument("--repeat", type=int, default=1, help="measure this many times in a row")
    args = parser.parse_args(argv)
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    run_all = []
    for _ in range(args.repeat):
        load = os.getloadavg()[0]
        r = measure(args.busy)
        run_all.append(r["run_all"])
        print(
            f"load {load:.2f} before; quickstart in JupyterLab ({os.cpu_count()} CPUs, "
            f"OMP_NUM_THREADS={threads}, {'one core busy' if args.busy else 'nothing else started'}): "
            f"server start {r['server']:.1f} s; notebook open + kernel start {r['open']:.1f} s; "
            f"Run All {r['run_all']:.1f} s; {r['figures']} figures, Studio shown: {bool(r['studio_shown'])}"
        )
        for first_line, seconds in r["cells"]:  # in the kernel, from JupyterLab's recorded timing
            print(f"  {seconds:6.2f} s  {first_line}")
    if args.repeat > 1:
        print("Run All, s: " + ", ".join(f"{t:.1f}" for t in run_all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
