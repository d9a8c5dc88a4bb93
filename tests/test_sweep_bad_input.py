"""Issue 23, sweeps: bad input named before any row is written (deep JSON, mixed grid keys, a grid
past the row limit, values that only failed as error rows), damaged sweep folders (rows validated
when read, a bad row named and recomputed, a garbage table), one writer per folder, and the Ray
backend's failures. One table per family; each row failed before its fix."""

import json
import math

import pytest

from p2p_widgets.errors import P2PError
from p2p_widgets.evaluate.pocket_bench import make_pocket_bench
from p2p_widgets.evaluate.sweep import plan_sweep, run_sweep

STEPS = 2


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    make_pocket_bench(folder, n=2, seed=0, types=(6, 1))
    return folder


def _deep_json(depth):
    return '{"cross": ' + "[" * depth + "0.2" + "]" * depth + "}"


def _deep_method(depth):
    return '{"name": "deep", "template": {}, "inversion_options": {"x": ' + "[" * depth + "]" * depth + "}}"


def _deep_list(depth):
    data = []
    for _ in range(depth):
        data = [data]
    return data


COMBINE_HIDING = {
    "name": "combined",
    "inversion": "ddim",
    "rule": {
        "rule": "Combine",
        "rules": [{"rule": "MutualSelfAttention", "start_step": -3}, {"rule": "StyleAligned"}],
    },
}
REPLACE_RULE = {"name": "replace", "inversion": "ddim", "rule": {"rule": "Replace"}}

# name -> (plan_sweep arguments beyond the dataset, what the message names)
PLANNING_CASES = {
    "a --grid nested 100000 deep": (dict(methods=["pie-p2p-ddim"], grid=_deep_json(100_000)), "nests deeper"),
    "a grid value nested 1000 deep": (
        dict(methods=["pie-p2p-ddim"], grid={"cross": [_deep_list(1000)]}),
        "nests deeper",
    ),
    "a --method nested 100000 deep": (dict(methods=[_deep_method(100_000)]), "nests deeper"),
    "a method object nested 1000 deep": (
        dict(methods=[{"name": "deep", "inversion_options": {"x": _deep_list(1000)}}]),
        "nests deeper",
    ),
    "mixed grid key types": (dict(methods=["pie-p2p-ddim"], grid={"cross": [0.2], 3: [1]}), "names must be"),
    "a 401x401 grid": (
        dict(
            methods=["pie-p2p-ddim"],
            grid={"cross": [k / 400 for k in range(401)], "self_attn": [k / 400 for k in range(401)]},
        ),
        "max_rows",
    ),
    "blend_start 1e308": (dict(methods=["pie-p2p-ddim"], grid={"blend_start": [1e308]}), "blend_start"),
    "blend_start past the run": (dict(methods=["pie-p2p-ddim"], grid={"blend_start": [7]}, steps=STEPS), "blend_start"),
    "guidance 1e308": (dict(methods=["pie-p2p-ddim"], grid={"guidance": [1e308]}), "guidance"),
    "reweight 1e300": (dict(methods=["pie-p2p-ddim"], grid={"reweight": [1e300]}), "reweight"),
    "a Combine hiding a bad parameter": (dict(methods=[COMBINE_HIDING]), "start_step"),
    "Replace without a mapper": (dict(methods=[REPLACE_RULE]), "mapper"),
}


@pytest.mark.parametrize("case", list(PLANNING_CASES), ids=list(PLANNING_CASES))
def test_sweep_planning_names_bad_input_before_any_row(bench, tmp_path, case):
    args, match = PLANNING_CASES[case]
    with pytest.raises(P2PError, match=match):
        plan_sweep(bench, **args)
    out = tmp_path / "sweep"
    with pytest.raises(P2PError, match=match):
        run_sweep(bench, out=out, progress=False, **args)
    assert not out.exists()  # nothing written


def test_the_row_limit_can_be_raised(bench, monkeypatch):
    grid = {"cross": [k / 100 for k in range(101)], "self_attn": [0.2, 0.4]}  # 2 cases x 202 settings
    with pytest.raises(P2PError, match="has 404 rows, past the limit of 100.*max_rows=404"):
        plan_sweep(bench, ["pie-p2p-ddim"], grid, max_rows=100)
    assert len(plan_sweep(bench, ["pie-p2p-ddim"], grid, max_rows=404).jobs) == 404
    monkeypatch.setenv("P2P_WIDGETS_SWEEP_MAX_ROWS", "500")
    assert len(plan_sweep(bench, ["pie-p2p-ddim"], grid).jobs) == 404
    assert math.isfinite(plan_sweep(bench, ["pie-p2p-ddim"], {"guidance": [30.0]}).methods[0].template["guidance"])


# -- damaged sweep folders -----------------------------------------------------------------------

GENERATED = {"name": "p2p-seed", "template": {"cross": 0.8, "self_attn": 0.4}}  # no inversion: quick rows


def _score(case, image):
    return {"brightness": float(sum(image.convert("L").getdata())) / (image.size[0] * image.size[1])}


def _sweep(bench, out, **extra):
    return run_sweep(
        bench,
        [GENERATED],
        {"cross": [0.8]},
        [0],
        out,
        steps=STEPS,
        guidance=5.0,
        metrics=_score,
        progress=False,
        **extra,
    )


@pytest.fixture(scope="module")
def finished(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps") / "done"
    result = _sweep(bench, out)
    assert result.complete and len(result.rows) == 2
    return out


def _damage_row(key, value):
    def damage(folder, row):
        if value is _DELETE:
            del row[key]
        else:
            row[key] = value
        (folder / "rows" / f"{row['row_id']}.json").write_text(json.dumps(row))

    return damage


_DELETE = object()


def _overwrite_image(folder, row):
    (folder / row["image"]).write_bytes(b"these bytes are not a PNG")


# name -> (damage(folder, row), what the report says)
DAMAGED_ROWS = {
    "a wrong edit_type": (_damage_row("edit_type", "colour"), "edit_type"),
    "a non-numeric metric": (_damage_row("brightness", "bright"), "brightness"),
    "a missing method": (_damage_row("method", _DELETE), "method"),
    "a row saying another method": (_damage_row("method", "masactrl"), "method"),
    "a parameter column of the wrong type": (_damage_row("p.cross", "0.8"), "p.cross"),
    "an unknown status": (_damage_row("status", "maybe"), "status"),
    "an image that is not an image": (_overwrite_image, "image"),
}


@pytest.mark.parametrize("case", list(DAMAGED_ROWS), ids=list(DAMAGED_ROWS))
def test_a_damaged_row_is_named_and_recomputed(bench, finished, tmp_path, case, capsys):
    import shutil

    from p2p_widgets.evaluate.sweep import load_sweep

    damage, named = DAMAGED_ROWS[case]
    folder = tmp_path / "sweep"
    shutil.copytree(finished, folder)
    good = load_sweep(folder)
    row = dict(good[0])
    damage(folder, row)
    # read from rows/ (as a sweep still running is): the bad row is left out and named, never kept
    with pytest.warns(UserWarning, match=f"{row['row_id']}.*{named}"):
        rows = _incomplete(folder)
    assert {r["row_id"] for r in rows} == {r["row_id"] for r in good} - {row["row_id"]}
    result = _sweep(bench, folder)
    assert named in result.rejected[row["row_id"]] and result.ran == 1 and result.complete
    assert row["row_id"] in capsys.readouterr().err  # the run said which row it computed again
    again = {r["row_id"]: r for r in load_sweep(folder)}
    assert again[row["row_id"]]["status"] == "ok" and again[row["row_id"]]["method"] == "p2p-seed"
    assert _sweep(bench, folder).ran == 0  # and now it is kept


def _incomplete(folder):
    """load_sweep's rows/ path (the sweep is marked incomplete)."""
    from p2p_widgets.evaluate.sweep import load_sweep

    manifest = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps({**manifest, "complete": False}))
    return load_sweep(folder)


def test_a_garbage_table_under_complete_is_read_from_the_rows(finished, tmp_path):
    import shutil

    from p2p_widgets.evaluate.sweep import load_sweep

    folder = tmp_path / "sweep"
    shutil.copytree(finished, folder)
    want = load_sweep(folder)
    table = next(folder.glob("table.*"))
    table.write_bytes(b"PAR1 this is not a table")
    with pytest.warns(UserWarning, match=f"{table.name}.*cannot be read"):
        got = load_sweep(folder)
    assert [r["row_id"] for r in got] == sorted(r["row_id"] for r in want)


# -- one writer per folder; stopping -------------------------------------------------------------


def test_a_second_sweep_on_a_folder_being_written_is_refused(bench, tmp_path):
    import threading

    out = tmp_path / "sweep"
    scoring, release = threading.Event(), threading.Event()

    def slow_score(case, image):
        scoring.set()
        release.wait(60)
        return _score(case, image)

    first = {}

    def run_first():
        first["result"] = run_sweep(
            bench,
            [GENERATED],
            {"cross": [0.8]},
            [0],
            out,
            steps=STEPS,
            guidance=5.0,
            metrics=slow_score,
            progress=False,
        )

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert scoring.wait(120)
        with pytest.raises(P2PError, match=f"another sweep is writing {out}.*process"):
            _sweep(bench, out)
    finally:
        release.set()
        thread.join(120)
    assert first["result"].complete and first["result"].ran == 2  # the first run was not disturbed
    assert _sweep(bench, out).ran == 0  # and the folder is free again


def test_an_interrupted_sweep_says_how_many_rows_it_kept(bench, tmp_path):
    from p2p_widgets.evaluate.sweep import SweepStopped

    calls = []

    def interrupted(case, image):
        calls.append(case.id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as Ctrl-C lands while the second row is scored
        return _score(case, image)

    out = tmp_path / "sweep"
    with pytest.raises(SweepStopped, match="^stopped; 1 row kept, rerun to resume$"):
        run_sweep(bench, [GENERATED], {"cross": [0.8]}, [0], out, steps=STEPS, guidance=5.0, metrics=interrupted,
                  progress=False)  # fmt: skip
    result = _sweep(bench, out)
    assert result.complete and result.ran == 1 and result.skipped == 1


# -- the Ray backend's failures and the metrics option -------------------------------------------


def _serve(reply):
    """A TCP server on a free port that accepts connections and sends ``reply`` (None: nothing)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if reply is not None:
                conn.recv(1024)
                conn.sendall(reply)

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


RAY_ADDRESSES = {
    "a silent listener": None,
    "an HTTP/1 server": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("case", list(RAY_ADDRESSES), ids=list(RAY_ADDRESSES))
def test_an_address_where_ray_does_not_listen_is_named_quickly(bench, tmp_path, monkeypatch, case):
    import time

    pytest.importorskip("ray")  # the ray extra; installed with the dev extras
    from p2p_widgets.evaluate.backends import ray_backend

    monkeypatch.setattr(ray_backend, "PROBE_TIMEOUT_S", 1.0)
    server, port = _serve(RAY_ADDRESSES[case])
    out = tmp_path / "sweep"
    started = time.monotonic()
    try:
        for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
            with pytest.raises(P2PError, match=f"127.0.0.1:{port}.*does not answer as a Ray cluster"):
                run_sweep(bench, [GENERATED], None, [0], out, backend="ray", address=address, progress=False)
    finally:
        server.close()
    assert time.monotonic() - started < 10 and not out.exists()


def test_a_server_answering_as_grpc_passes_the_probe():
    """Ray's GCS (C++ gRPC) answers the HTTP/2 preface with a SETTINGS frame first, as this server does
    (a real `ray start --head` GCS passed the probe when it was written; the Ray tests connect to one)."""
    from p2p_widgets.evaluate.backends.ray_backend import probe_address

    settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64"  # MAX_CONCURRENT_STREAMS 100
    server, port = _serve(settings)
    try:
        probe_address(f"127.0.0.1:{port}")
        probe_address(f"ray://127.0.0.1:{port}")
    finally:
        server.close()


def test_address_auto_without_a_cluster_fails_before_the_folder_is_written(bench, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    import ray._private.services as services

    # no cluster on this machine (another session's local cluster may run beside this test)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir=None: None)
    out = tmp_path / "sweep"
    with pytest.raises(P2PError, match="--address auto.*no running Ray cluster"):
        run_sweep(bench, [GENERATED], None, [0], out, backend="ray", address="auto", progress=False)
    assert not out.exists()


METRICS_CASES = {
    "a number for dino": ({"dino": 1, "clip": "c", "lpips": "l"}, "'dino' must be a path or hub id.*got 1"),
    "dino alone": ({"dino": 1}, "'dino' must be a path or hub id.*missing clip, lpips"),
    "an unknown model": ({"dino": "d", "clip": "c", "lpips": "l", "fid": "f"}, "unknown fid"),
}


@pytest.mark.parametrize("case", list(METRICS_CASES), ids=list(METRICS_CASES))
def test_the_metrics_option_says_what_is_wrong_with_each_value(bench, tmp_path, case):
    metrics, match = METRICS_CASES[case]
    with pytest.raises(P2PError, match=match):
        run_sweep(bench, [GENERATED], None, [0], tmp_path / "sweep", metrics=metrics, progress=False)


def test_ctrl_c_on_the_command_line_prints_one_line_and_keeps_the_rows(tmp_path):
    """SIGINT to the command's process group, as a terminal sends it: before, a KeyboardInterrupt
    traceback from the sweep and one from each worker process."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "sweep"
    # rows slow enough that the signal (sent within 0.2 s of the first row) finds rows left: 2-step
    # rows of the pocket model take tens of milliseconds, and on an idle machine every one had been
    # written before the signal came (nothing to stop, no message)
    cases = tmp_path / "bench"
    make_pocket_bench(cases, n=6, seed=0, types=(6, 1))
    grid = json.dumps({"cross": [0.4, 0.8]})
    command = [sys.executable, "-m", "p2p_widgets.cli", "evaluate", str(cases), "--method", json.dumps(GENERATED)]
    command += ["--grid", grid, "--out", str(out), "--steps", "40", "--guidance", "5", "--metrics", "none"]
    command += ["--workers", "2", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # the command starts with SIGINT's default action, as from a terminal: a runner that ignores it
    # (an ignored signal stays ignored across exec) would hand the sweep an unstoppable SIGINT
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 240
        while not list((out / "rows").glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert list((out / "rows").glob("*.json")), "no row was written"
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    kept = len(list((out / "rows").glob("*.json")))
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert f"stopped; {kept} row" in err and "rerun to resume" in err, err
    assert process.returncode != 0 and 0 < kept < 12


@pytest.mark.parametrize("model", [123, "", "weights.ckpt"])
def test_a_bad_model_is_named_with_every_built_in_model(bench, tmp_path, model):
    """The message lists the embedded models the sweep accepts: "pocket-flow" was accepted but not named."""
    with pytest.raises(P2PError, match="'pocket' or 'pocket-flow'") as caught:
        run_sweep(bench, [GENERATED], None, [0], tmp_path / "sweep", model=model, progress=False)
    assert repr(model) in str(caught.value)
    assert not (tmp_path / "sweep").exists()
