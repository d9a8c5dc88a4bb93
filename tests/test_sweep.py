"""The sweep runner, local backend: rows, images, table, summary, the inversion cache, resuming,
a worker process killed mid-run, and bad input named before anything is written.

Pocket model, 2 DDIM steps, two pocket-bench cases (colour and shape edits)."""

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2p_widgets.engine.inversion import Inversion
from p2p_widgets.engine.spec import EditSpec
from p2p_widgets.errors import P2PError
from p2p_widgets.evaluate.pocket_bench import make_pocket_bench
from p2p_widgets.evaluate.sweep import load_sweep, metric_names, row_id, run_sweep, write_table

STEPS = 2
GENERATED = {"name": "p2p-seed", "template": {"cross": 0.8, "self_attn": 0.4, "blend": True}}  # no inversion
METHODS = ["pie-p2p-ddim", GENERATED]
GRID = {"cross": [0.2, 0.8]}
SEEDS = [0, 1]
CONTRACT = (
    "row_id",
    "case_id",
    "edit_type",
    "edit_type_name",
    "method",
    "inversion",
    "setting",
    "p.cross",
    "seed",
    "image",
    "source_image",
    "spec",
    "inversion_file",
    "seconds",
    "status",
    "error",
)


def change_score(case, image):
    """A metric computed from the case and the edit alone (checked against the written image)."""
    source = np.asarray(case.image(), dtype=np.float64)
    return {"mean_abs_change": float(np.abs(source - np.asarray(image, dtype=np.float64)).mean())}


class CrashOnce:
    """Scores like change_score, but kills its own process (a worker dying mid-row: after the edit,
    before the row is returned) at the ``on_call``-th row of case ``case_id`` of all workers (counted
    in a file); never again after that."""

    def __init__(self, counter, case_id, on_call=1):
        self.counter, self.case_id, self.on_call = str(counter), case_id, on_call

    def __call__(self, case, image):
        if case.id == self.case_id:
            with open(self.counter, "a") as f:
                f.write("x")
            if os.path.getsize(self.counter) == self.on_call:
                os._exit(3)
        return change_score(case, image)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    make_pocket_bench(folder, n=2, seed=0, types=(6, 1))
    return folder


@pytest.fixture(scope="module")
def swept(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps") / "local"
    result = run_sweep(bench, METHODS, GRID, SEEDS, out, steps=STEPS, guidance=5.0, metrics=change_score)
    return out, result


@pytest.fixture(scope="module")
def editor():
    from p2p_widgets.engine.sampler import Editor
    from p2p_widgets.models import load_pipeline

    return Editor(load_pipeline("pocket", device="cpu"))


def _png(folder, row):
    with Image.open(folder / row["image"]) as img:
        return np.asarray(img.convert("RGB"))


def test_a_local_sweep_writes_every_row_its_image_the_table_and_the_manifest(swept):
    out, result = swept
    rows = result.rows
    assert result.complete and result.rows_expected == 16 and len(rows) == 16 and result.errors == 0
    assert (result.ran, result.skipped) == (16, 0)
    assert len({r["row_id"] for r in rows}) == 16
    for row in rows:
        assert row["status"] == "ok" and row["error"] == ""
        assert row["row_id"] == row_id(row["case_id"], row["method"], json.loads(row["setting"]), row["seed"])
        assert json.loads(row["setting"]) == {"cross": row["p.cross"]}
        assert (out / row["image"]).is_file() and (out / "rows" / f"{row['row_id']}.json").is_file()
    columns = list(rows[0])
    assert [c for c in columns if c in CONTRACT] == list(CONTRACT)  # the contract's order
    assert set(metric_names()) <= set(columns) and "mean_abs_change" in columns
    assert columns.index("mean_abs_change") < columns.index("seconds")
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["format"] == "p2p_widgets.sweep" and manifest["version"] == 1
    assert manifest["complete"] is True and manifest["rows_expected"] == 16
    assert manifest["grid"] == GRID and manifest["seeds"] == SEEDS and manifest["model"] == "pocket"
    assert [m["name"] for m in manifest["methods"]] == ["pie-p2p-ddim", "p2p-seed"]
    assert result.table == out / "table.parquet" and result.table.is_file()
    table = load_sweep(out)
    assert [r["row_id"] for r in table] == [r["row_id"] for r in rows]
    assert all(t["mean_abs_change"] == r["mean_abs_change"] and t["spec"] == r["spec"] for t, r in zip(table, rows))


def test_inversions_are_cached_once_per_image_and_shared(swept):
    out, result = swept
    assert len(list((out / "inversions").glob("*.safetensors"))) == 2  # 2 images; 8 rows of each read one
    inverted = [r for r in result.rows if r["method"] == "pie-p2p-ddim"]
    generated = [r for r in result.rows if r["method"] == "p2p-seed"]
    assert {r["inversion"] for r in inverted} == {"ddim"} and {r["inversion"] for r in generated} == {"none"}
    assert all((out / r["inversion_file"]).is_file() for r in inverted)
    assert len({r["inversion_file"] for r in inverted}) == 2
    assert {r["inversion_file"] for r in generated} == {""}
    by_key = {(r["method"], r["case_id"], r["setting"], r["seed"]): _png(out, r) for r in result.rows}
    case, setting = inverted[0]["case_id"], inverted[0]["setting"]
    # a DDIM inversion draws no noise: its seeds give one image; generated sources differ per seed
    assert np.array_equal(by_key["pie-p2p-ddim", case, setting, 0], by_key["pie-p2p-ddim", case, setting, 1])
    assert not np.array_equal(by_key["p2p-seed", case, setting, 0], by_key["p2p-seed", case, setting, 1])


def test_each_row_reruns_from_its_spec_and_its_metric_is_of_its_image(swept, editor):
    from p2p_widgets.evaluate.datasets import read_pie

    out, result = swept
    cases = {c.id: c for c in read_pie(json.loads((out / "sweep.json").read_text())["dataset"])}
    for method in ("pie-p2p-ddim", "p2p-seed"):
        row = next(r for r in result.rows if r["method"] == method and r["seed"] == 1)
        spec = EditSpec.from_json(row["spec"])
        assert spec.model == "pocket" and spec.steps == STEPS and spec.seed == 1
        inversion = Inversion.load(out / row["inversion_file"]) if row["inversion_file"] else None
        again = editor.run(spec, inversion=inversion)
        assert np.array_equal(np.asarray(again.images[1]), _png(out, row))
        edited = Image.open(out / row["image"]).convert("RGB")
        assert row["mean_abs_change"] == change_score(cases[row["case_id"]], edited)["mean_abs_change"]


def test_the_summary_averages_each_metric_per_method_setting_and_edit_type(swept):
    out, result = swept
    assert len(result.summary) == 8  # 2 methods x 2 settings x 2 edit types, 2 seeds each
    for entry in result.summary:
        members = [
            r
            for r in result.rows
            if (r["method"], r["setting"], r["edit_type"]) == (entry["method"], entry["setting"], entry["edit_type"])
        ]
        assert entry["rows"] == len(members) == 2 and entry["errors"] == 0
        assert math.isclose(entry["mean_abs_change"], sum(r["mean_abs_change"] for r in members) / 2)
        assert all(math.isnan(entry[m]) for m in metric_names())  # scored by change_score only
    lines = (out / "summary.csv").read_text().splitlines()
    assert lines[0].startswith("method,setting,edit_type,edit_type_name,rows,errors,") and len(lines) == 9


def test_rerunning_skips_finished_rows_and_redoes_only_the_missing_one(swept, bench):
    out, result = swept
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "rows").iterdir()}
    again = run_sweep(bench, METHODS, GRID, SEEDS, out, steps=STEPS, guidance=5.0, metrics=change_score)
    assert again.complete and (again.ran, again.skipped) == (0, 16)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "rows").iterdir()} == stamps
    victim = result.rows[5]
    before = _png(out, victim)
    (out / "rows" / f"{victim['row_id']}.json").unlink()
    (out / victim["image"]).unlink()
    (out / "rows" / ".half-written.json.tmp").write_text("{")  # what a killed write leaves
    (out / "inversions" / ".tmp-killed").mkdir()  # what a worker killed while caching leaves
    (out / "inversions" / "deadbeef.lock").write_text('{"host": "gone", "pid": 1, "time": 0}')
    again = run_sweep(bench, METHODS, GRID, SEEDS, out, steps=STEPS, guidance=5.0, metrics=change_score)
    assert again.complete and (again.ran, again.skipped) == (1, 15)
    assert np.array_equal(_png(out, victim), before)  # the same row again, bitwise
    assert sorted(p.name for p in (out / "rows").iterdir()) == sorted(stamps)
    assert sorted(p.suffix for p in (out / "inversions").iterdir()) == [".json"] * 2 + [".safetensors"] * 2


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_tables_give_back_each_rows_values(tmp_path, monkeypatch, kind):
    if kind == "csv":
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # without pyarrow the table is CSV
    rows = []
    for k, (steps, cross, score) in enumerate([(25, 0.2, 1.5), ("model", None, float("nan"))]):
        row = {c: f"{c}-{k}" for c in CONTRACT if c not in ("edit_type", "seed", "seconds", "p.cross")}
        row.update({"edit_type": 6, "seed": k, "seconds": 0.5, "p.cross": cross, "p.steps": steps})
        rows.append({**row, "mean_abs_change": score})
    write_table(tmp_path, rows)
    assert (tmp_path / f"table.{kind}").is_file()
    (tmp_path / "sweep.json").write_text(json.dumps({"format": "p2p_widgets.sweep", "version": 1, "complete": True}))
    back = load_sweep(tmp_path)
    assert [r["p.steps"] for r in back] == [25, "model"] and [r["p.cross"] for r in back] == [0.2, None]
    assert [r["seed"] for r in back] == [0, 1] and back[0]["edit_type"] == 6 and back[0]["row_id"] == "row_id-0"
    assert back[0]["mean_abs_change"] == 1.5 and math.isnan(back[1]["mean_abs_change"])
    assert all(math.isnan(r[m]) for r in back for m in metric_names())  # every metric column, NaN if not scored


def test_a_killed_worker_process_loses_only_its_row_and_the_rerun_completes(bench, tmp_path):
    out = tmp_path / "killed"
    # the second case's last row: when it dies no row waits, so no fresh worker is started
    crash = CrashOnce(tmp_path / "calls", case_id=_case_ids(bench)[1], on_call=2)
    args = (bench, ["pie-p2p-ddim"], GRID, [0], out)
    options = dict(steps=STEPS, guidance=5.0, metrics=crash, workers=2, progress=False)
    first = run_sweep(*args, **options)
    assert not first.complete and len(first.missing) == 1 and list(first.lost) == first.missing
    assert "died" in first.lost[first.missing[0]] and len(first.rows) == 3
    assert not (out / "table.parquet").exists() and not (out / "summary.csv").exists()
    assert json.loads((out / "sweep.json").read_text())["complete"] is False
    assert len(load_sweep(out)) == 3  # the finished rows, from rows/
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "rows").iterdir()}
    second = run_sweep(*args, **options)  # the same command: one row left, so one worker, in process
    assert second.complete and (second.ran, second.skipped) == (1, 3)
    redone = second.rows[[r["row_id"] for r in second.rows].index(first.missing[0])]
    assert redone["status"] == "ok" and redone["case_id"] == _case_ids(bench)[1]
    assert len(list((out / "rows").glob("*.json"))) == 4 and len(list((out / "images").glob("*.png"))) == 4
    assert all((out / "rows" / name).stat().st_mtime_ns == t for name, t in stamps.items())


def _case_ids(folder):
    return list(json.loads((folder / "mapping_file.json").read_text()))


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(methods=["pie-p2p-fastest"]), "pie-p2p-fastest"),
        (dict(grid={"crosss": [0.2]}), "crosss"),
        (dict(grid={"cross": "0.2"}), "cross"),
        (dict(grid='{"cross": [0.2'), "not valid JSON"),
        (dict(seeds=[0, -1]), "seeds"),
        (dict(grid={"seed": [0, 1]}, seeds=[0]), "seed"),
        (dict(backend="dask"), "backend"),
        (dict(workers=0), "workers"),
        (dict(address="127.0.0.1:1"), "address"),
        (dict(metrics={"dino": "x"}), "clip"),
        (dict(methods=["pie-p2p", {"name": "pie-p2p"}]), "share a name"),
        (dict(threads=0), "threads"),
        (dict(device="nonsense"), "nonsense"),
        (dict(device="cuda:99"), "cuda:99"),  # no machine has 100 GPUs; a CPU-only one has none
    ],
)
def test_bad_input_is_named_before_anything_is_written(bench, tmp_path, change, named):
    args = dict(methods=["pie-p2p-ddim"], grid=GRID, seeds=[0])
    args.update(change)
    out = tmp_path / "never"
    options = {k: args.pop(k) for k in ("backend", "workers", "address", "metrics", "threads", "device") if k in args}
    with pytest.raises(P2PError, match=named):
        run_sweep(bench, args["methods"], args["grid"], args["seeds"], out, **options)
    assert not out.exists()


def test_a_missing_image_and_a_malformed_dataset_are_named(bench, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bench, broken)
    image = next((broken / "annotation_images").rglob("*.png"))
    image.unlink()
    with pytest.raises(P2PError, match=image.name):
        run_sweep(broken, ["pie-p2p-ddim"], None, None, tmp_path / "a")
    (broken / "mapping_file.json").write_text("{not json")
    with pytest.raises(P2PError, match="mapping_file.json"):
        run_sweep(broken, ["pie-p2p-ddim"], None, None, tmp_path / "b")
    with pytest.raises(P2PError, match="does not exist"):
        run_sweep(tmp_path / "nowhere", ["pie-p2p-ddim"], None, None, tmp_path / "c")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_folder_holding_another_sweep_is_refused(swept, bench):
    out, _ = swept
    with pytest.raises(P2PError, match="seeds"):
        run_sweep(bench, METHODS, GRID, [0, 1, 2], out, steps=STEPS, guidance=5.0)
    assert json.loads((out / "sweep.json").read_text())["complete"] is True  # left as it was


def test_the_ray_backend_without_ray_says_how_to_install_it(bench, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(P2PError, match=r"p2p_widgets\[ray\]"):
        run_sweep(bench, ["pie-p2p-ddim"], None, None, tmp_path / "r", backend="ray")
    assert not (tmp_path / "r").exists()


def test_the_cli_runs_a_sweep_and_names_bad_input(bench, tmp_path, capsys):
    from p2p_widgets.cli import main

    out = tmp_path / "cli"
    base = ["evaluate", str(bench), "--out", str(out), "--steps", str(STEPS), "--guidance", "5", "--no-progress"]
    assert main([*base, "--method", "pie-p2p-ddim", "--grid", '{"crosss": [0.2]}']) == 2
    assert "crosss" in capsys.readouterr().err and not out.exists()
    (tmp_path / "grid.json").write_text(json.dumps({"cross": [0.4]}))
    assert main([*base, "--method", GENERATED_JSON, "--grid", f"@{tmp_path / 'grid.json'}", "--types", "6"]) == 0
    printed = capsys.readouterr().out
    assert "p2p-seed" in printed and "change color" in printed and "wrote" in printed
    rows = load_sweep(out)
    assert len(rows) == 1 and rows[0]["p.cross"] == 0.4 and rows[0]["edit_type"] == 6


GENERATED_JSON = json.dumps(GENERATED)


@pytest.mark.parametrize("option", [["--threads", "0"], ["--device", "nonsense"]])
def test_the_cli_names_bad_threads_and_device_before_the_folder_exists(bench, tmp_path, capsys, option):
    from p2p_widgets.cli import main

    out = tmp_path / "cli"
    assert main(["evaluate", str(bench), "--out", str(out), "--steps", str(STEPS), "--no-progress", *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"p2p-widgets evaluate: {option[0][2:]}") and len(err.splitlines()) == 1
    assert not out.exists()


def test_two_workers_wanting_one_inversion_compute_it_once(tmp_path):
    import threading
    import time

    import torch

    from p2p_widgets.evaluate.backends.worker import cached_inversion

    calls = []

    def compute():
        calls.append(threading.get_ident())
        time.sleep(0.5)  # long enough for the other worker to find the lock
        latents = torch.arange(3 * 4 * 2 * 2, dtype=torch.float32).reshape(3, 4, 2, 2)
        return Inversion("ddim", "a caption", 2, 5.0, latents, None, [501, 1], model="m@0")

    results = [None, None]

    def worker(k):
        results[k] = cached_inversion(tmp_path, "key", compute)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1  # the second waited for the first's file
    assert torch.equal(results[0].latents, results[1].latents) and results[1].prompt == "a caption"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.json", "key.safetensors"]  # no lock, no temporary


_ORPHAN = """
import multiprocessing, sys, time
from p2p_widgets.evaluate.backends.local import exit_with_parent

def child(parent_pid):
    exit_with_parent(parent_pid, poll_s=0.1)
    while True:  # a row that would take forever
        time.sleep(0.05)

if __name__ == "__main__":
    import os
    p = multiprocessing.get_context("spawn").Process(target=child, args=(os.getpid(),))
    p.start()
    print(p.pid, flush=True)
    time.sleep(600)
"""


def test_a_local_worker_exits_soon_after_its_parent_is_killed(tmp_path):
    import signal
    import subprocess
    import time

    script = tmp_path / "orphan.py"
    script.write_text(_ORPHAN)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(worker, 0)  # alive while its parent is
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _running(worker):
        time.sleep(0.1)
    if not _running(worker):
        return
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the worker outlived its killed parent by 20 s")


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whoever adopted it, maybe never)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def test_a_sweep_runs_every_method_on_a_block_of_cases_before_the_next_block():
    """Stopped early, a sweep holds all methods on the same cases; inside a block the images differ
    from row to row (workers start on different inversions)."""
    from p2p_widgets.evaluate.backends.worker import Job
    from p2p_widgets.evaluate.sweep import CASE_BLOCK, SweepPlan

    n_cases, n_methods = CASE_BLOCK + 4, 3
    plan = SweepPlan("d", list(range(n_cases)), [], {}, [0, 1])
    plan.jobs = [Job(f"{c}-{m}-{s}", c, m, {}, s) for c in range(n_cases) for m in range(n_methods) for s in plan.seeds]
    order = plan.run_order()
    first_block = order[: CASE_BLOCK * n_methods * 2]
    assert {j.case for j in first_block} == set(range(CASE_BLOCK))
    assert {j.method for j in first_block} == set(range(n_methods))
    assert all(a.case != b.case for a, b in zip(first_block, first_block[1:]) if a.method == b.method)
    assert sorted(j.row_id for j in order) == sorted(j.row_id for j in plan.jobs)  # each job once
