"""JupyterLab end-to-end driver (test layer 4).

``LabServer`` starts ``jupyter lab`` on a free loopback port with private config, data, runtime,
workspaces and settings folders (so nothing on the machine leaks in and no dialog appears), and
the app exposed as ``window.jupyterapp``. ``LabNotebook`` opens one notebook in a Chromium page
and drives it through JupyterLab's own commands and the notebook's kernel connection.

Fixtures (tests/e2e/conftest.py)::

    nb = lab_notebook("tests/e2e/notebooks/ping.ipynb")   # or any notebooks/*.ipynb path
    nb.run_all()                       # runs every cell, waits for the kernel, fails on error outputs
    nb.page.locator(".p2p-ping__button").click()
    nb.kernel_eval("w.count")          # -> 1   (runs in the notebook's own kernel, no new cell)
    nb.wait_kernel_eval("w.count", 1)  # poll until equal (browser->kernel messages are async)
    nb.screenshot("ping")              # tests/artifacts/e2e/ping.png
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"

# settings that keep JupyterLab quiet and start kernels without asking
OVERRIDES = {
    "@jupyterlab/docmanager-extension:plugin": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A private JupyterLab server; use as a context manager."""

    def __init__(self, base_dir: Path, startup_timeout: float = 90.0):
        self.base = Path(base_dir)
        self.root_dir = self.base / "root"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "jupyter-lab.log"
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        b = self.base
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--LabApp.workspaces_dir={b / 'workspaces'}",
            f"--LabApp.user_settings_dir={b / 'user-settings'}",
            f"--LabApp.app_settings_dir={b / 'app-settings'}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        return cmd

    def env(self) -> dict:
        env = dict(os.environ)
        b = self.base
        env.update(
            JUPYTER_CONFIG_DIR=str(b / "config"),
            JUPYTER_DATA_DIR=str(b / "data"),
            JUPYTER_RUNTIME_DIR=str(b / "runtime"),
            IPYTHONDIR=str(b / "ipython"),
            JUPYTER_PLATFORM_DIRS="1",
            # kernels import this checkout's p2p_widgets and this interpreter's packages
            PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        )
        env.pop("ANYWIDGET_HMR", None)
        return env

    def start(self) -> LabServer:
        for sub in ("root", "workspaces", "user-settings", "app-settings", "config", "data", "runtime", "ipython"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "app-settings" / "overrides.json").write_text(json.dumps(OVERRIDES, indent=2))
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.root_dir, env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"jupyter lab did not answer within {self.startup_timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def add_notebook(self, source: Path | str, name: str | None = None) -> str:
        """Copy a notebook into the server root; returns its path relative to the root."""
        source = Path(source)
        if not source.is_absolute():
            source = ROOT / source
        nb = json.loads(source.read_text())
        if "kernelspec" not in nb.get("metadata", {}):
            raise ValueError(f"{source} has no metadata.kernelspec: JupyterLab would block on a kernel dialog")
        name = name or source.name
        shutil.copyfile(source, self.root_dir / name)
        return name

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_JS_PANEL = """
const app = window.jupyterapp;
const panel = app.shell.currentWidget;
if (!panel || !panel.sessionContext || !panel.content || !panel.context || panel.context.path !== path) {
  throw new Error('the notebook ' + path + ' is not the current widget');
}
"""


class LabNotebook:
    """One notebook open in JupyterLab in one Chromium page."""

    def __init__(self, server: LabServer, browser, path: str, timeout_s: float = 90.0):
        self.server = server
        self.path = path
        self.timeout_ms = int(timeout_s * 1000)
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(f"{server.url}/lab/tree/{path}?reset", timeout=self.timeout_ms)
        self.page.wait_for_function(
            """(path) => {
                const app = window.jupyterapp;
                const w = app && app.shell && app.shell.currentWidget;
                return !!(w && w.context && w.context.path === path && w.sessionContext);
            }""",
            arg=path,
            timeout=self.timeout_ms,
        )
        self.wait_kernel_idle()

    def _evaluate(self, body: str, arg=None):
        return self.page.evaluate(f"async ([path, arg]) => {{ {_JS_PANEL} {body} }}", [self.path, arg])

    def wait_kernel_idle(self) -> None:
        """Wait until the notebook's kernel is connected and idle (the indicator alone races)."""
        self.page.wait_for_function(
            f"""async (path) => {{ {_JS_PANEL}
                await panel.context.ready;
                await panel.sessionContext.ready;
                const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
                return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
            }}""",
            arg=self.path,
            timeout=self.timeout_ms,
            polling=200,
        )

    def run_all(self, check_errors: bool = True) -> list[dict]:
        """Run all cells with JupyterLab's command, wait for every code cell to finish; return
        each code cell's outputs. Error outputs fail unless ``check_errors=False``."""
        self._evaluate("await app.commands.execute('notebook:run-all-cells');")
        self.page.wait_for_function(
            f"""async (path) => {{ {_JS_PANEL}
                const kernel = panel.sessionContext.session.kernel;
                const code = panel.content.widgets.filter((c) => c.model.type === 'code');
                const done = (c) => c.model.executionCount !== null && c.promptNode.textContent.indexOf('*') < 0;
                return kernel.status === 'idle' && code.every(done);
            }}""",
            arg=self.path,
            timeout=self.timeout_ms,
            polling=250,
        )
        outputs = self.cell_outputs()
        if check_errors:
            errors = [o for cell in outputs for o in cell if o.get("output_type") == "error"]
            if errors:
                raise AssertionError("cell errors: " + "; ".join(f"{e['ename']}: {e['evalue']}" for e in errors))
        return outputs

    def run_cell(self, index: int, wait: bool = True, check_errors: bool = True) -> list[dict]:
        """Run the cell at ``index`` (among all cells) with JupyterLab's command.

        Returns once the cell has started (its prompt shows ``*`` or a new execution count); with
        ``wait`` it then waits until the cell is done and returns its outputs (error outputs fail
        unless ``check_errors=False``). ``wait=False`` lets a test act while the cell runs."""
        self._evaluate(
            """
            const cell = panel.content.widgets[arg];
            if (!cell || cell.model.type !== 'code') throw new Error('cell ' + arg + ' is not a code cell');
            const before = cell.model.executionCount;
            panel.content.activeCellIndex = arg;
            // not awaited (the cell may run for long); the command resolves once the kernel has sent
            // the reply and gone idle, i.e. after every output of the cell
            const done = (window.__p2pCellDone = window.__p2pCellDone || {});
            done[arg] = false;
            const finish = () => { done[arg] = true; };
            app.commands.execute('notebook:run-cell').then(finish, finish);
            const t0 = Date.now();
            while (Date.now() - t0 < 20000) {
              if (cell.promptNode.textContent.indexOf('*') >= 0 || cell.model.executionCount !== before) return true;
              await new Promise((r) => setTimeout(r, 20));
            }
            throw new Error('cell ' + arg + ' did not start');
            """,
            index,
        )
        if not wait:
            return []
        return self.wait_cell(index, check_errors)

    def wait_cell(self, index: int, check_errors: bool = True) -> list[dict]:
        """Wait until the cell at ``index``, started with :meth:`run_cell`, has finished (reply
        received and kernel idle again, so all its outputs are in); return its outputs."""
        self.page.wait_for_function(
            "(index) => !!window.__p2pCellDone && window.__p2pCellDone[index] === true",
            arg=index,
            timeout=self.timeout_ms,
            polling=100,
        )
        outputs = self._evaluate("return panel.content.widgets[arg].model.outputs.toJSON();", index)
        if check_errors:
            errors = [o for o in outputs if o.get("output_type") == "error"]
            if errors:
                raise AssertionError("cell errors: " + "; ".join(f"{e['ename']}: {e['evalue']}" for e in errors))
        return outputs

    def kernel_busy(self) -> bool:
        """Whether the notebook's kernel is executing something right now."""
        return self._evaluate("return panel.sessionContext.session.kernel.status === 'busy';")

    def cell_outputs(self) -> list[list[dict]]:
        return self._evaluate(
            "return panel.content.widgets.filter((c) => c.model.type === 'code').map((c) => c.model.outputs.toJSON());"
        )

    def kernel_exec(self, code: str) -> str:
        """Run ``code`` in the notebook's kernel (no cell is added); return its stdout and
        result text. A Python exception raises RuntimeError."""
        result = self._evaluate(
            """
            const kernel = panel.sessionContext.session.kernel;
            const future = kernel.requestExecute({ code: arg, silent: false, store_history: false });
            let out = '';
            let error = null;
            future.onIOPub = (msg) => {
              const t = msg.header.msg_type;
              if (t === 'stream') out += msg.content.text;
              else if (t === 'execute_result') out += msg.content.data['text/plain'] + '\\n';
              else if (t === 'error') error = msg.content.ename + ': ' + msg.content.evalue;
            };
            await future.done;
            return { out, error };
            """,
            code,
        )
        if result["error"]:
            raise RuntimeError(f"kernel error running {code!r}: {result['error']}")
        return result["out"]

    def kernel_eval(self, expr: str):
        """Evaluate a Python expression in the kernel and return it (via repr/literal_eval)."""
        return ast.literal_eval(self.kernel_exec(f"print(repr({expr}))").strip())

    def wait_kernel_eval(self, expr: str, expected, timeout_s: float = 20.0):
        """Poll ``kernel_eval(expr)`` until it equals ``expected``; return the last value."""
        deadline = time.monotonic() + timeout_s
        value = self.kernel_eval(expr)
        while value != expected and time.monotonic() < deadline:
            time.sleep(0.25)
            value = self.kernel_eval(expr)
        return value

    def screenshot(self, name: str) -> Path:
        path = ARTIFACTS / "e2e" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        try:
            self._evaluate("await panel.sessionContext.shutdown();")
        except Exception:  # the page may be gone already
            pass
        self.page.close()
