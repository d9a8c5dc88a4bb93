"""Layer 4: the real quickstart (notebooks/01_quickstart.ipynb) run with Run All in JupyterLab, as
a newcomer runs it: its figures drawn by plotly.js, the Studio shown, and what its text promises
about the seeds grid true of the output: each edit's title carries the object overlap the kernel
measured for that image, named as such (the text's 32-seed rate is another measure, named apart)."""

import re

import pytest

pytestmark = pytest.mark.e2e

OUT = ".jp-OutputArea"


def test_the_quickstart_runs_in_lab_and_its_titles_report_the_measured_object_overlap(lab_notebook):
    nb = lab_notebook("notebooks/01_quickstart.ipynb")
    nb.run_all()
    page = nb.page
    page.locator(f"{OUT} .p2p-studio").wait_for(state="visible", timeout=60_000)
    plots = page.locator(f"{OUT} .js-plotly-plot")
    assert plots.count() == 3  # the image, the seeds grid, the word maps
    titles = plots.nth(1).locator(".annotation-text").all_text_contents()
    shown = [float(m) for t in titles for m in re.findall(r"object overlap\s*(\d\.\d\d)", t)]
    measured = nb.kernel_eval("[round(v, 2) for pair in kept for v in pair]")
    assert len(measured) == 2 * nb.kernel_eval("len(seeds)") and shown == measured
    assert nb.kernel_eval("STEPS") == 10  # the steps the text's measured rate was taken at
    assert not nb.errors, nb.errors
