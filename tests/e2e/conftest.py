"""Fixtures for test layer 4 (JupyterLab end to end). See lab.py."""

import pytest
from harness import close_shared_chromium, require_chromium, shared_chromium
from lab import LabNotebook, LabServer


@pytest.fixture(scope="session")
def lab_chromium():
    require_chromium()
    yield shared_chromium()
    close_shared_chromium()


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory, lab_chromium):
    """One private JupyterLab server for the session (``.url``, ``.root_dir``, ``.log_path``)."""
    server = LabServer(tmp_path_factory.mktemp("jupyterlab"))
    with server:
        yield server


@pytest.fixture
def lab_notebook(jupyter_lab, lab_chromium):
    """Factory: ``lab_notebook(path, name=None) -> LabNotebook`` (copied into the server root,
    opened in a fresh page with its own kernel; the kernel is shut down afterwards)."""
    opened = []

    def open_notebook(source, name=None):
        rel = jupyter_lab.add_notebook(source, name)
        nb = LabNotebook(jupyter_lab, lab_chromium, rel)
        opened.append(nb)
        return nb

    yield open_notebook
    for nb in opened:
        nb.close()
