"""Layer 3: the notebooks' plotly figures drawn by plotly.js in real Chromium: the quickstart's
first figure shows its whole title, and word maps share one colour scale that is shown."""

import json
from pathlib import Path

import numpy as np
import pytest

from p2p_widgets import plots

pytestmark = pytest.mark.browser

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "01_quickstart.ipynb"
SOURCE = "a big red star left of a small blue square on a gray background"


def _open(chromium, fig, tmp_path):
    path = tmp_path / "fig.html"
    path.write_text(fig.to_html(include_plotlyjs=True, full_html=True))
    page = chromium.new_page(viewport={"width": 1000, "height": 700})
    page.goto(path.as_uri())
    page.wait_for_selector(".main-svg")
    return page


def test_the_first_figures_title_is_not_clipped(chromium, tmp_path):
    fig = plots.images([np.zeros((32, 32, 3), np.uint8)], [SOURCE])  # as the quickstart draws it
    page = _open(chromium, fig, tmp_path)
    try:
        svg = page.locator(".main-svg").first.bounding_box()
        boxes = page.eval_on_selector_all(
            ".annotation-text",
            "(ts) => ts.map((t) => { const b = t.getBoundingClientRect(); return [b.left, b.right]; })",
        )
        lines = page.eval_on_selector_all(
            ".annotation-text",
            "(ts) => ts.flatMap((t) => { const ls = [...t.querySelectorAll('tspan.line')];"
            " return ls.length ? ls.map((l) => l.textContent) : [t.textContent]; })",
        )
        text = " ".join(lines)
        assert boxes and all(svg["x"] <= left and right <= svg["x"] + svg["width"] for left, right in boxes), boxes
        assert text.split() == SOURCE.split()  # every word is there (wrapped onto lines, none dropped)
    finally:
        page.close()


def test_word_maps_share_a_shown_colour_scale(chromium, tmp_path):
    maps = [np.random.default_rng(0).random((8, 8)).astype(np.float32) * s for s in (1, 3)]
    fig = plots._heatmap_row(maps, ["red", "star"], 230)
    page = _open(chromium, fig, tmp_path)
    try:
        assert page.locator(".colorbar").count() == 1  # one scale for both maps
    finally:
        page.close()
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == pytest.approx(float(maps[1].max()))


def test_the_quickstart_draws_its_word_maps_at_8x8():
    cells = json.loads(QUICKSTART.read_text())["cells"]
    calls = ["".join(c["source"]) for c in cells if "plots.token_maps" in "".join(c["source"])]
    assert calls and all("side=8" in c for c in calls), calls
