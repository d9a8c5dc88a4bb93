"""Layer 1: every notebook in notebooks/ runs top to bottom in a headless kernel (nbclient).

Widgets render nothing here (no front end); this proves the code cells run."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_demo_notebook_exists():
    assert (ROOT / "notebooks" / "01_quickstart.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, tmp_path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name"), "notebooks must carry a kernelspec"
    # the kernel imports this checkout's package even when it is not installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.delenv("ANYWIDGET_HMR", raising=False)
    client = NotebookClient(
        nb, timeout=600, kernel_name=nb.metadata.kernelspec.name, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    # the figures the notebook promises were drawn (plotly figures in its outputs)
    figures = sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
    promised = nb.metadata.get("p2p_widgets", {}).get("min_figures", 0)
    assert figures >= promised, f"{path.name} drew {figures} figures, promises {promised}"


def _generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "notebooks" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_notebooks_are_what_the_generator_writes(tmp_path):
    written = _generator().build(tmp_path)
    assert sorted(p.name for p in written) == [p.name for p in NOTEBOOKS]
    for path in written:
        assert path.read_text() == (ROOT / "notebooks" / path.name).read_text(), f"regenerate {path.name}"


def test_a_code_cell_that_starts_with_a_comment_stays_code(tmp_path, monkeypatch):
    make = _generator()
    monkeypatch.setattr(make, "NOTEBOOKS", {"99_probe": (0, [make.md("# A heading"), "# a comment\nx = 1"])})
    (path,) = make.build(tmp_path)
    cells = nbformat.read(path, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code"]


def test_the_quickstart_names_its_two_measures_apart():
    """Its titles (object overlap of all object pixels, per image) and its text (the untouched
    object's mask IoU over 32 seeds) are different measures: each is named, neither as "layout"."""
    cells = nbformat.read(ROOT / "notebooks" / "01_quickstart.ipynb", as_version=4).cells
    titles = next(c.source for c in cells if c.cell_type == "code" and "layout_iou" in c.source)
    rate = next(c.source for c in cells if c.cell_type == "markdown" and "32 seeds" in c.source)
    assert "object overlap {" in titles and "layout {" not in titles
    assert "untouched object's IoU" in rate and "not the titles' object overlap" in rate


def test_a_notebook_opens_a_sweep_in_the_sweep_explorer():
    sources = {p.name: "".join(c.source for c in nbformat.read(p, as_version=4).cells) for p in NOTEBOOKS}
    found = [name for name, text in sources.items() if "SweepExplorer(" in text and "run_sweep(" in text]
    assert found, "no notebook runs a sweep and opens it in the SweepExplorer"
    assert all("tempfile" in sources[name] for name in found)  # written outside the clone
