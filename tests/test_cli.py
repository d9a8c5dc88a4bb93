"""Layer 1: the p2p-widgets command line."""

import subprocess
import sys
from pathlib import Path

import pytest

import p2p_widgets
from p2p_widgets import cli

ROOT = Path(__file__).resolve().parents[1]


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"p2p-widgets {p2p_widgets.__version__}"


def test_version_as_a_module_in_a_fresh_interpreter():
    out = subprocess.run(
        [sys.executable, "-m", "p2p_widgets.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"p2p-widgets {p2p_widgets.__version__}"


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_demo_dry_run_prints_the_lab_command_and_url(tmp_path, capsys):
    (tmp_path / cli.DEMO_NOTEBOOK).write_text("{}")
    work = tmp_path / "work"
    argv = ["demo", "--notebooks", str(tmp_path), "--workdir", str(work), "--port", "8765", "--no-browser"]
    assert cli.main([*argv, "--dry-run"]) == 0
    command, url = capsys.readouterr().out.strip().splitlines()[:2]
    assert command.split()[:5] == [sys.executable, "-m", "jupyter", "lab", cli.DEMO_NOTEBOOK]
    assert f"--ServerApp.root_dir={work}" in command  # the working copies, not the originals
    assert not work.exists()  # a dry run starts and copies nothing
    assert "--ServerApp.port=8765" in command and "--no-browser" in command
    token = url.rsplit("token=", 1)[1]
    assert url == f"http://127.0.0.1:8765/lab/tree/{cli.DEMO_NOTEBOOK}?token={token}"
    assert len(token) == 32 and f"--IdentityProvider.token={token}" in command


def test_demo_picks_a_free_port_when_none_given(tmp_path, capsys):
    (tmp_path / cli.DEMO_NOTEBOOK).write_text("{}")
    cli.main(["demo", "--notebooks", str(tmp_path), "--dry-run"])
    url = capsys.readouterr().out.strip().splitlines()[1]
    port = int(url.split(":")[2].split("/")[0])
    assert 0 < port < 65536


def test_demo_without_the_notebook_says_where_it_looked(tmp_path):
    with pytest.raises(SystemExit, match="01_quickstart.ipynb not found"):
        cli.main(["demo", "--notebooks", str(tmp_path), "--dry-run"])


@pytest.mark.parametrize("port", ["99999", "-4", "http"])
def test_demo_refuses_a_port_outside_0_65535(tmp_path, port, capsys):
    (tmp_path / cli.DEMO_NOTEBOOK).write_text("{}")
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--notebooks", str(tmp_path), "--port", port, "--dry-run"])
    assert exc.value.code == 2 and "0-65535" in capsys.readouterr().err


def test_demo_names_an_address_it_cannot_listen_on(tmp_path, capsys):
    (tmp_path / cli.DEMO_NOTEBOOK).write_text("{}")
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the free-port probe cannot bind it
    for port in ([], ["--port", "8888"]):  # with a port given too
        assert cli.main(["demo", "--notebooks", str(tmp_path), "--ip", "192.0.2.1", "--dry-run", *port]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("p2p-widgets demo: --ip 192.0.2.1") and len(captured.err.splitlines()) == 1


def test_demo_opens_working_copies_and_keeps_the_users_own(tmp_path, capsys, monkeypatch):
    originals = tmp_path / "clone" / "notebooks"
    originals.mkdir(parents=True)
    for name in (cli.DEMO_NOTEBOOK, "02_more.ipynb"):
        (originals / name).write_text(f'{{"original": "{name}"}}')
    work = tmp_path / "work"
    work.mkdir()
    (work / "02_more.ipynb").write_text('{"mine": true}')  # a copy the user has worked in
    assert cli.working_copies(originals, work) == [cli.DEMO_NOTEBOOK]
    assert (work / cli.DEMO_NOTEBOOK).read_text() == f'{{"original": "{cli.DEMO_NOTEBOOK}"}}'
    assert (work / "02_more.ipynb").read_text() == '{"mine": true}'
    # the default folder is outside the clone; --in-place opens the originals
    monkeypatch.setenv(cli.WORKDIR_ENV, str(tmp_path / "env-work"))
    assert cli.default_workdir() == tmp_path / "env-work"
    monkeypatch.delenv(cli.WORKDIR_ENV)
    assert cli.default_workdir() == Path.home() / "p2p-widgets-notebooks"
    assert cli.main(["demo", "--notebooks", str(originals), "--in-place", "--dry-run"]) == 0
    assert f"--ServerApp.root_dir={originals}" in capsys.readouterr().out


def _no_work(*args, **kwargs):
    raise AssertionError("the evaluation started before its options were checked")


def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded before the options were checked")


@pytest.mark.parametrize(
    "argv, says",
    [
        (["demo", "--ip", "", "--dry-run"], "--ip '': give an address or host name"),
        (["demo", "--ip", " ", "--dry-run"], "--ip ' ': give an address or host name"),
        (["edit", "a red circle", "a blue circle", "--steps", "0"], "a number of steps in 1-1000, got '0'"),
        (["edit", "a red circle", "a blue circle", "--steps", "1001"], "a number of steps in 1-1000"),
        (["edit", "a red circle", "a blue circle", "--seed", "-1"], "a seed in 0 to 2**63 - 1, got '-1'"),
        (["edit", "a red circle", "a blue circle", "--seed", str(2**63)], "a seed in 0 to 2**63 - 1"),
        (["edit", "a red circle", "a blue circle", "--model", "./missing"], "--model ./missing: no such folder"),
        (["edit", "a red circle", "a blue circle", "--model", "/no/such/sd15"], "no such folder"),
        (["edit", "a red circle", "a blue circle", "--model", "{file}"], "is a file; give the checkpoint's folder"),
        (["edit", "a red circle", "a blue circle", "--model", "{folder}"], "no model_index.json in that folder"),
        (["edit", "a red circle", "a blue circle", "--model", " "], "--model is empty"),
    ],
)
def test_the_command_line_refuses_bad_options_before_any_work(argv, says, tmp_path, capsys, monkeypatch):
    import p2p_widgets.models

    monkeypatch.setattr(p2p_widgets.models, "load_pipeline", _no_model)
    (tmp_path / "weights.bin").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    argv = [a.format(file=tmp_path / "weights.bin", folder=tmp_path / "folder") for a in argv]
    try:
        code = cli.main([*argv, "--out", str(tmp_path / "out")] if argv[0] == "edit" else argv)
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert says in captured.err, captured.err
    assert "http://:" not in captured.err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["--images", "-2"], ["--seeds", "-1"], ["--images", "many"]])
def test_eval_refuses_negative_counts_before_the_work(argv, capsys, monkeypatch):
    import p2p_widgets.pocket.eval

    monkeypatch.setattr(p2p_widgets.pocket.eval, "evaluate_pocket", _no_work)
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", *argv])
    assert exc.value.code == 2 and "integer >= 0" in capsys.readouterr().err


def test_the_eval_module_refuses_negative_counts_too(capsys, monkeypatch):
    import p2p_widgets.pocket.eval

    monkeypatch.setattr(p2p_widgets.pocket.eval, "evaluate_pocket", _no_work)
    with pytest.raises(SystemExit) as exc:
        p2p_widgets.pocket.eval.main(["pocket", "--images", "-2"])
    assert exc.value.code == 2 and "integer >= 0" in capsys.readouterr().err


def test_demo_really_serves_the_quickstart(tmp_path):
    """Start `p2p-widgets demo` for real and fetch the notebook through the printed URL."""
    import json
    import os
    import re
    import time
    import urllib.request

    original = (ROOT / "notebooks" / cli.DEMO_NOTEBOOK).read_bytes()
    work = tmp_path / "work"
    env = dict(
        os.environ,
        P2P_WIDGETS_WORKDIR=str(work),
        JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    port = cli._free_port("127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2p_widgets.cli", "demo", "--no-browser", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        first = proc.stdout.readline()
        found = re.search(r"http://\S+", first)
        assert found, f"no URL in the first line: {first!r}"
        url = found.group(0)
        token = url.rsplit("token=", 1)[1]
        api = f"http://127.0.0.1:{port}/api/contents/{cli.DEMO_NOTEBOOK}?token={token}"
        deadline, body = time.monotonic() + 60, None
        while time.monotonic() < deadline and body is None:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(api, timeout=2) as r:
                    body = json.load(r)
            except OSError:
                time.sleep(0.3)
        assert body is not None, "JupyterLab did not answer"
        assert body["name"] == cli.DEMO_NOTEBOOK and body["type"] == "notebook"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200
        # JupyterLab saving the notebook (its autosave, with outputs) writes the working copy only:
        # the clone's tracked notebook stays as it was
        saved = body["content"]
        saved["cells"][0]["source"] = "# saved by the demo"
        put = urllib.request.Request(
            api,
            data=json.dumps({"type": "notebook", "content": saved}).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(put, timeout=10) as r:
            assert r.status == 200
        assert "# saved by the demo" in (work / cli.DEMO_NOTEBOOK).read_text()
        assert (ROOT / "notebooks" / cli.DEMO_NOTEBOOK).read_bytes() == original
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    # stopping the demo stops the server too (no orphaned JupyterLab keeps the port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(api, timeout=1).close()
        except OSError:
            break
        time.sleep(0.3)
    else:
        pytest.fail("JupyterLab still answers after the demo process was terminated")


def test_the_demo_script_shows_pips_progress_and_passes_its_arguments(tmp_path):
    """scripts/demo.sh on a stand-in venv: it says what the long step is, gives pip its ordinary
    output back (setup-venv.sh runs it with -q) and hands its arguments to `p2p-widgets demo`."""
    import os
    import stat

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    for name, line in (("python", "python $* PIP_VERBOSE=${PIP_VERBOSE:-}"), ("p2p-widgets", "p2p-widgets $*")):
        script = venv / "bin" / name
        script.write_text(f'#!/bin/sh\necho "{line}" >> {log}\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    (venv / "bin" / "p2p-widgets").unlink()  # a first run: the command is not installed yet
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), "--port", "8888", "--no-browser"],
        env=dict(os.environ, VENV=str(venv)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0  # the stand-in installed no p2p-widgets: exec fails after the set-up
    assert "about 2-3 minutes on a first run; pip's output follows" in out.stdout
    calls = log.read_text().splitlines()
    assert [c for c in calls if "pip install" in c] and all(c.endswith("PIP_VERBOSE=1") for c in calls), calls
    wrapper = venv / "bin" / "p2p-widgets"
    wrapper.write_text(f'#!/bin/sh\necho "p2p-widgets $*" >> {log}\n')
    wrapper.chmod(0o755)
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), "--port", "8888", "--no-browser"],
        env=dict(os.environ, VENV=str(venv)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "checking" in out.stdout
    assert log.read_text().splitlines()[-1] == "p2p-widgets demo --port 8888 --no-browser"


@pytest.mark.parametrize("depth", [100, 100_000])  # parsed but too deep for what reads it; past json's recursion
def test_a_deep_json_argument_is_a_named_error(depth, tmp_path, capsys, monkeypatch):
    import p2p_widgets.evaluate.sweep

    monkeypatch.setattr(p2p_widgets.evaluate.sweep, "run_sweep", _no_work)
    grid = '{"cross": ' + "[" * depth + "]" * depth + "}"
    code = cli.main(["evaluate", str(tmp_path), "--grid", grid, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--grid nests deeper than 64 levels" in err, err
    (tmp_path / "grid.json").write_text(grid)
    code = cli.main(["evaluate", str(tmp_path), "--grid", f"@{tmp_path / 'grid.json'}", "--out", str(tmp_path / "o")])
    assert code == 2 and "--grid nests deeper than 64 levels" in capsys.readouterr().err
