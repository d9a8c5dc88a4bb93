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
    assert cli.main(["demo", "--notebooks", str(tmp_path), "--port", "8765", "--no-browser", "--dry-run"]) == 0
    command, url = capsys.readouterr().out.strip().splitlines()[:2]
    assert command.split()[:5] == [sys.executable, "-m", "jupyter", "lab", cli.DEMO_NOTEBOOK]
    assert f"--ServerApp.root_dir={tmp_path}" in command
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


def _no_work(*args, **kwargs):
    raise AssertionError("the evaluation started before its options were checked")


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

    env = dict(
        os.environ,
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
