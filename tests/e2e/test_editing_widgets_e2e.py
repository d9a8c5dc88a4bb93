"""Layer 4: TokenAligner and AlphaTimeline in a real JupyterLab on the pocket model."""

import pytest

pytestmark = pytest.mark.e2e


def _center(locator):
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_editing_widgets_in_jupyterlab(lab_notebook):
    nb = lab_notebook("tests/e2e/notebooks/editing_widgets.ipynb")
    outputs = nb.run_all()
    assert any("evaluations 20 first t 951" in o.get("text", "") for o in outputs[-1]), outputs[-1]
    page = nb.page

    # both widgets rendered in the notebook
    source_chip = page.locator('.jp-OutputArea .p2p-aligner__chip[data-side="source"][data-pos="5"]')
    target_chip = page.locator('.jp-OutputArea .p2p-aligner__chip[data-side="target"][data-pos="6"]')
    source_chip.wait_for(state="visible", timeout=30_000)
    assert source_chip.text_content() == "orange" and target_chip.text_content() == "tabby"
    ticks = page.locator(".jp-OutputArea .p2p-timeline__tick")
    ticks.first.wait_for(state="visible", timeout=30_000)
    assert ticks.first.text_content() == "951"

    # a pointer drag in the aligner changes the Python mapper
    assert nb.kernel_eval("float(aligner.mapper.matrix[5, 6])") == 0.0
    mouse = page.mouse
    mouse.move(*_center(source_chip))
    mouse.down()
    mouse.move(*_center(target_chip), steps=10)
    mouse.up()
    assert nb.wait_kernel_eval("float(aligner.mapper.matrix[5, 6])", 1.0) == 1.0
    assert nb.kernel_eval("aligner.error") == ""
    page.locator('.jp-OutputArea polyline.p2p-aligner__link[data-i="5"][data-j="6"]').wait_for(state="attached")

    # the keyboard path works inside JupyterLab without moving between cells
    active_before = nb._evaluate("return panel.content.activeCellIndex;")
    source_chip.focus()
    page.keyboard.press("Enter")  # pick orange
    page.keyboard.press("ArrowDown")  # to the target row
    for _ in range(4):
        page.keyboard.press("ArrowRight")  # a photo of a big
    page.keyboard.press("Enter")
    assert nb.wait_kernel_eval("round(float(aligner.mapper.matrix[5, 5]), 3)", 0.5) == 0.5
    assert nb._evaluate("return panel.content.activeCellIndex;") == active_before

    # dragging a timeline edge changes the Python schedule
    handle = page.locator('.jp-OutputArea .p2p-timeline__handle[data-row="cross"][data-edge="end"]')
    track = page.locator('.jp-OutputArea .p2p-timeline__track[data-row="cross"]')
    handle.scroll_into_view_if_needed()
    left, width = track.evaluate("(t) => [t.getBoundingClientRect().left + t.clientLeft, t.clientWidth]")
    hx, hy = _center(handle)
    mouse.move(hx, hy)
    mouse.down()
    mouse.move(left + width * 10 / 20, hy, steps=10)
    mouse.up()
    assert nb.wait_kernel_eval("timeline.schedule.cross", (0, 10)) == (0, 10)

    source_chip.scroll_into_view_if_needed()
    nb.screenshot("editing_widgets_lab")
    handle.scroll_into_view_if_needed()
    nb.screenshot("editing_widgets_lab_timeline")
    assert not nb.errors, nb.errors
