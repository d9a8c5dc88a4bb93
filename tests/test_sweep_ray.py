"""The Ray backend on a local Ray cluster (2 CPUs): the same rows as the local backend, a Ray
worker killed mid-run losing only its row (the rerun completes the table, every row once), and an
unreachable cluster named before anything is written."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray  # the test extra installs it: CI tests the Ray backend
from PIL import Image
from test_sweep import CrashOnce, change_score

from p2p_widgets.errors import P2PError
from p2p_widgets.evaluate.backends.ray_backend import start_local_cluster
from p2p_widgets.evaluate.pocket_bench import make_pocket_bench
from p2p_widgets.evaluate.sweep import load_sweep, run_sweep

STEPS = 2
METHODS = ["pie-p2p-ddim", {"name": "p2p-seed", "template": {"cross": 0.8, "blend": True}}]
GRID = {"cross": [0.2, 0.8]}
SEEDS = [0]
TIMING = ("seconds",)


@pytest.fixture(scope="module")
def cluster():
    import test_sweep

    start_local_cluster(ray, num_cpus=2, include_dashboard=False, log_to_driver=False)  # retries a busy start
    # the test's scorers travel to the actors by value (the tests folder is not on their path)
    ray.cloudpickle.register_pickle_by_value(test_sweep)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    make_pocket_bench(folder, n=2, seed=0, types=(6, 1))
    return folder


@pytest.fixture(scope="module")
def local(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps") / "local"
    result = run_sweep(
        bench, METHODS, GRID, SEEDS, out, steps=STEPS, guidance=5.0, metrics=change_score, threads=1, progress=False
    )
    return out, result


@pytest.fixture(scope="module")
def killed_then_rerun(bench, cluster, tmp_path_factory):
    """A Ray sweep whose worker dies on its first row of the second case (rows still wait: a fresh
    actor takes its place), then the same command again."""
    out = tmp_path_factory.mktemp("sweeps") / "ray"
    crash = CrashOnce(out.parent / "calls", case_id=list(json.loads((bench / "mapping_file.json").read_text()))[1])
    options = dict(steps=STEPS, guidance=5.0, metrics=crash, backend="ray", workers=2, progress=False)
    first = run_sweep(bench, METHODS, GRID, SEEDS, out, **options)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "rows").iterdir()}
    manifest = json.loads((out / "sweep.json").read_text())
    table_after_crash = [p.name for p in out.iterdir() if p.name.startswith(("table.", "summary"))]
    second = run_sweep(bench, METHODS, GRID, SEEDS, out, **options)
    return out, first, stamps, manifest, table_after_crash, second


def test_a_killed_ray_worker_loses_only_its_row_and_the_rerun_completes(killed_then_rerun):
    out, first, stamps, manifest, table_after_crash, second = killed_then_rerun
    assert not first.complete and len(first.missing) == 1 and list(first.lost) == first.missing
    assert "died" in first.lost[first.missing[0]]
    assert len(first.rows) == 7 and len(stamps) == 7  # every other row ran
    assert manifest["complete"] is False and table_after_crash == []  # no table claims to be complete
    assert second.complete and (second.ran, second.skipped) == (1, 7)
    ids = [r["row_id"] for r in second.rows]
    assert len(ids) == len(set(ids)) == 8 and first.missing[0] in ids
    redone = second.rows[ids.index(first.missing[0])]
    assert redone["case_id"] == _ids(out)[1] and redone["status"] == "ok"  # the crashed case, done now
    assert len(list((out / "rows").glob("*.json"))) == 8 and len(list((out / "images").glob("*.png"))) == 8
    assert all((out / "rows" / name).stat().st_mtime_ns == t for name, t in stamps.items())  # not redone
    assert [r["row_id"] for r in load_sweep(out)] == ids


def _ids(out):
    dataset = json.loads((out / "sweep.json").read_text())["dataset"]
    return list(json.loads((Path(dataset) / "mapping_file.json").read_text()))


def _comparable(row):
    row = {k: v for k, v in row.items() if k not in TIMING}
    spec = json.loads(row["spec"])
    if "inversion" in spec:
        spec["inversion"].pop("seconds")  # how long the inversion took
    row["spec"] = spec
    return row


def test_ray_rows_equal_local_rows_and_images_bitwise(killed_then_rerun, local):
    ray_out, *_, second = killed_then_rerun
    local_out, local_result = local
    assert local_result.complete and second.complete
    assert [_comparable(r) for r in second.rows] == [_comparable(r) for r in local_result.rows]
    for a, b in zip(second.rows, local_result.rows):
        with Image.open(ray_out / a["image"]) as x, Image.open(local_out / b["image"]) as y:
            assert np.array_equal(np.asarray(x), np.asarray(y))
    assert (ray_out / "summary.csv").read_text() == (local_out / "summary.csv").read_text()


def test_an_unreachable_cluster_is_named_before_anything_is_written(bench, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(P2PError, match="127.0.0.1:9"):
        run_sweep(bench, ["pie-p2p-ddim"], None, None, out, backend="ray", address="127.0.0.1:9")
    with pytest.raises(P2PError, match="address"):
        run_sweep(bench, ["pie-p2p-ddim"], None, None, out, backend="ray", address="nowhere")
    assert not out.exists()


def _processes():
    """pid -> (parent pid, start time, title) of the live processes (zombies are gone)."""
    table = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            title = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X"):
            table[int(name)] = (int(fields[1]), fields[19], title.strip())
    return table


def _tree(root, table):
    children = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_local_cluster_goes_with_a_killed_driver(tmp_path):
    """`p2p-widgets evaluate --backend ray` starts a local cluster; its driver killed with SIGKILL
    once the worker runs, no process of that cluster (GCS, raylet, agents, workers) is left a few
    seconds later. Before the watchdog the dashboard and runtime-env agents outlived it (46 s seen)."""
    make_pocket_bench(tmp_path / "bench", n=1, seed=0, types=(6,))
    command = [sys.executable, "-c", "import sys; from p2p_widgets.cli import main; sys.exit(main())"]
    args = ["evaluate", str(tmp_path / "bench"), "--method", "pie-p2p-ddim", "--steps", "50"]
    args += ["--out", str(tmp_path / "out"), "--backend", "ray", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS", None)  # a local cluster of its own, never one of the environment's
    driver = subprocess.Popen([*command, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    known = {}  # pid -> (start time, title): the cluster, as the driver's process tree showed it
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and driver.poll() is None:
            table = _processes()
            tree = _tree(driver.pid, table)
            known.update({pid: table[pid][1:] for pid in tree})
            if any(table[pid][2].startswith("ray::SweepWorker") for pid in tree):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no Ray worker ran (driver: {driver.poll()}): {driver.stderr.read().decode()[-2000:]}")
        assert any(title.startswith("ray::DashboardAgent") for _, title in known.values())  # the usual survivor
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        killed = time.monotonic()
        while time.monotonic() - killed < 10:
            table = _processes()
            left = {pid: title for pid, (start, title) in known.items() if table.get(pid, (0, None))[1] == start}
            if not left:
                break
            time.sleep(0.2)
        assert not left, f"{time.monotonic() - killed:.0f} s after the driver was killed: {left}"
    finally:
        driver.kill()
        driver.wait()
        table = _processes()
        for pid, (start, _) in known.items():  # whatever a failure left: never a reused pid
            if table.get(pid, (0, None))[1] == start:
                os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
