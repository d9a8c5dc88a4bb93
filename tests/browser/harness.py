"""Real-Chromium harness for widget bundles, without Jupyter (test layer 3).

A loopback HTTP server serves ``harness_page.html`` and ``p2p_widgets/static``. The page loads
a bundle the way anywidget does (Blob-URL import, ``default`` export as object or factory,
``initialize`` then ``render`` with distinct model proxies) on a fake model that records every
``save_changes`` and ``send``.

Use it from tests through the ``widget_page`` fixture (tests/browser/conftest.py)::

    page = widget_page(PingWidget(label="hi"))       # bound to a real Python widget
    page.click(".p2p-ping__button")
    page.sync()                                      # JS saves/messages -> the Python widget
    assert w.count == 1

    page = widget_page("ping", state={"label": "x", "count": 0, "error": ""})   # bundle only
    page.receive({"type": "frame", "shape": [1, 1]}, [b"\\x07"])
    page.sent()   # -> [{"content": {...}, "buffers": [b"..."]}]

Chromium comes from ``shutil.which("chromium")``; ``playwright install`` is never needed.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STATIC = ROOT / "p2p_widgets" / "static"
ARTIFACTS = ROOT / "tests" / "artifacts"

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def launch_chromium(playwright):
    """Launch the system Chromium with the flags that work on these machines."""
    path = chromium_path()
    if path is None:
        raise RuntimeError("no chromium binary on PATH (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, headless=True)


_SHARED: dict = {}


def shared_chromium():
    """One Playwright + Chromium for the whole test session (the sync API allows only one).

    Both the browser layer and the JupyterLab layer use this; ``close_shared_chromium`` ends it."""
    if "browser" not in _SHARED:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        try:
            _SHARED["browser"] = launch_chromium(pw)
        except BaseException:
            pw.stop()
            raise
        _SHARED["playwright"] = pw
    return _SHARED["browser"]


def close_shared_chromium() -> None:
    browser, pw = _SHARED.pop("browser", None), _SHARED.pop("playwright", None)
    if browser is not None:
        browser.close()
    if pw is not None:
        pw.stop()


def require_chromium() -> None:
    """Fail (in CI) or skip (elsewhere) when there is no chromium binary."""
    import pytest

    if chromium_path() is None:
        message = "no chromium binary on PATH (apt-get install chromium)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


# -- loopback server -----------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server naming)
        if self.path.split("?")[0] in ("/", "/harness.html"):
            body = (HERE / "harness_page.html").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):  # keep test output quiet
        pass


class HarnessServer:
    """Serves the harness page at / and the built bundles at /static/<file> on 127.0.0.1."""

    def __init__(self, static_dir: Path = STATIC):
        self._static_root = static_dir.parent  # the handler serves /static/... from here
        handler = functools.partial(_Handler, directory=str(self._static_root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# -- pages ---------------------------------------------------------------------------------


def _b64(data) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def _widget_state(widget) -> tuple[dict, list, list]:
    from ipywidgets.widgets.widget import _remove_buffers

    state = {k: v for k, v in widget.get_state().items() if not k.startswith("_")}
    return _remove_buffers(state)


class WidgetPage:
    """One harness page with one widget model (and one or more views of it)."""

    def __init__(self, page, widget=None):
        self.page = page
        self.widget = widget  # the bound Python widget, if any
        self.errors: list[str] = []  # uncaught exceptions and console.error lines
        self._seen = 0  # log entries already handed to the Python widget
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console.error: {msg.text}"))

    # reading the fake model
    def state(self) -> dict:
        """The model state as the front end sees it (DataView values come back as {})."""
        return self.page.evaluate("() => window.harness.model.state")

    def get(self, key: str) -> Any:
        return self.page.evaluate("(k) => window.harness.model.get(k)", key)

    def log(self) -> list[dict]:
        """Everything the front end did towards the kernel, in order:
        ``{"kind": "save", "state": {...}}`` or ``{"kind": "send", "content": ..., "buffers": [bytes]}``."""
        entries = self.page.evaluate("() => window.harness.model.log")
        for entry in entries:
            if entry["kind"] == "send":
                entry["buffers"] = [base64.b64decode(b) for b in entry["buffers"]]
        return entries

    def sent(self) -> list[dict]:
        """Custom messages the front end sent: ``[{"content": ..., "buffers": [bytes]}]``."""
        return [{"content": e["content"], "buffers": e["buffers"]} for e in self.log() if e["kind"] == "send"]

    def saves(self) -> int:
        return self.page.evaluate("() => window.harness.model.saves")

    def wait_for_sent(self, kind: str, count: int = 1, timeout_ms: int = 5000) -> list[dict]:
        """Wait until the front end has sent ``count`` messages of type ``kind``; return them."""
        self.page.wait_for_function(
            """([kind, n]) => window.harness.model.log
                .filter((e) => e.kind === 'send' && e.content && e.content.type === kind).length >= n""",
            arg=[kind, count],
            timeout=timeout_ms,
        )
        return [m for m in self.sent() if isinstance(m["content"], dict) and m["content"].get("type") == kind]

    # acting as the kernel
    def receive(self, content: dict, buffers=()) -> None:
        """Deliver a custom message from "Python" (buffers: bytes-like)."""
        self.page.evaluate("([c, b]) => window.harness.receive(c, b)", [content, [_b64(b) for b in buffers]])

    def set_from_kernel(self, key: str, value: Any) -> None:
        """Change a trait as a kernel-side update would (fires change:<key>, not a save)."""
        self.push_state({key: value})

    def push_state(self, state: dict) -> None:
        """Apply a kernel-side state update (already serialized, may hold bytes/memoryviews)."""
        from ipywidgets.widgets.widget import _remove_buffers

        json_state, paths, buffers = _remove_buffers(state)
        self.page.evaluate(
            "(a) => window.harness.applyKernelState(a)",
            {"state": json_state, "paths": paths, "buffers": [_b64(b) for b in buffers]},
        )

    def sync(self) -> int:
        """Hand new front-end saves and messages to the bound Python widget, in order.

        Saves go through ``widget.set_state`` (what ipywidgets runs for a comm update), messages
        through ``widget._handle_custom_msg``. Returns how many entries were delivered."""
        if self.widget is None:
            raise RuntimeError("sync() needs a page bound to a Python widget")
        entries = self.log()[self._seen :]
        self._seen += len(entries)
        for entry in entries:
            if entry["kind"] == "save":
                self.widget.set_state(entry["state"])
            else:
                self.widget._handle_custom_msg(entry["content"], [memoryview(b) for b in entry["buffers"]])
        return len(entries)

    # DOM helpers
    def click(self, selector: str) -> None:
        self.page.locator(selector).first.click()

    def text(self, selector: str) -> str:
        return self.page.locator(selector).first.text_content()

    def add_view(self) -> None:
        self.page.evaluate("() => window.harness.addView()")

    def unmount(self) -> int:
        """Run all cleanups; returns how many model listeners remain (should be 0)."""
        return self.page.evaluate("() => window.harness.unmount()")

    def screenshot(self, name: str) -> Path:
        path = ARTIFACTS / "browser" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path


def open_widget_page(
    browser, server_url: str, widget_or_bundle, state: dict | None = None, views: int = 1
) -> WidgetPage:
    """Open a harness page with one widget.

    ``widget_or_bundle`` is a P2PWidget instance (state taken from it, and the page is bound:
    its ``send`` and synced trait changes are forwarded to the page) or a bundle name such as
    ``"ping"`` with an explicit ``state``.
    """
    widget = None
    if isinstance(widget_or_bundle, str):
        bundle = widget_or_bundle
        json_state, paths, buffers = dict(state or {}), [], []
    else:
        widget = widget_or_bundle
        bundle = type(widget)._bundle
        json_state, paths, buffers = _widget_state(widget)
        if state:
            json_state.update(state)
    css = f"/static/{bundle}.css" if (STATIC / f"{bundle}.css").is_file() else None
    page = browser.new_page()
    wp = WidgetPage(page, widget)
    page.goto(f"{server_url}/harness.html")
    page.wait_for_function("() => window.harnessReady === true")
    page.evaluate(
        "(args) => window.harness.mount(args)",
        {
            "bundle": f"/static/{bundle}.js",
            "css": css,
            "state": json_state,
            "paths": paths,
            "buffers": [_b64(b) for b in buffers],
            "views": views,
        },
    )
    if widget is not None:
        _bind(wp, widget)
    return wp


def _bind(wp: WidgetPage, widget) -> None:
    """Forward the widget's outgoing messages and synced trait changes to the page."""

    def send(content, buffers=None):
        wp.receive(content, [bytes(b) for b in buffers or []])

    def on_change(change):
        wp.push_state(widget.get_state(change["name"]))

    widget.send = send
    names = [n for n in widget.trait_names(sync=True) if not n.startswith("_")]
    widget.observe(on_change, names=names)
