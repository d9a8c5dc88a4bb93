"""Layer 4: the quickstart's Studio (``p2p.Studio(pipe)`` on the pocket model) as a newcomer
meets it in JupyterLab: the model's own defaults, and keys that stay in the widget (sliders,
selects, the section tabs) instead of reaching JupyterLab's shortcuts."""

import pytest

pytestmark = pytest.mark.e2e

OUT = ".jp-OutputArea"
POCKET_SOURCE = "a big red circle left of a small blue square on a gray background"
POCKET_TARGET = "a big red star left of a small blue square on a gray background"


def status_is(value):
    return f"() => (document.querySelector('{OUT} .p2p-studio') || {{}}).dataset?.status === '{value}'"


@pytest.fixture
def quickstart(lab_notebook):
    nb = lab_notebook("tests/e2e/notebooks/quickstart_studio.ipynb")
    nb.run_all()
    nb.page.locator(f"{OUT} .p2p-studio__run").wait_for(state="visible", timeout=60_000)
    return nb


def test_the_quickstart_studio_takes_the_pocket_models_defaults(quickstart):
    page = quickstart.page
    assert page.locator(f"{OUT} .p2p-studio__source").input_value() == POCKET_SOURCE
    assert page.locator(f"{OUT} .p2p-studio__target").input_value() == POCKET_TARGET
    assert page.locator(f"{OUT} .p2p-studio__steps").input_value() == "25"
    assert float(page.locator(f"{OUT} .p2p-studio__guidance").input_value()) == 5.0
    assert "pocket" in page.locator(f"{OUT} .p2p-studio__model").text_content()
    assert quickstart.kernel_eval("(studio.panel.steps, studio.panel.guidance)") == (25, 5.0)


def _no_heading_collapsed(nb):
    return nb._evaluate(
        "return !panel.node.querySelector('.jp-collapseHeadingButton[data-heading-collapsed=\"true\"]');"
    )


# every slider the issue names, and the alignment select (ArrowDown is "select the cell below" there)
CONTROLS = [
    (".p2p-studio__threshold", "ArrowLeft"),
    ('.p2p-studio__weight[data-word="star"] .p2p-studio__slider', "ArrowLeft"),
    (".p2p-player__opacity", "ArrowLeft"),
    (".p2p-player__slider", "ArrowLeft"),
    (".p2p-studio__kind", "ArrowDown"),
]


def test_keys_move_a_focused_control_and_stay_in_the_widget(quickstart):
    nb, page = quickstart, quickstart.page
    for selector, key in CONTROLS:
        if selector == ".p2p-player__slider":  # the step slider needs frames: one short run
            nb.kernel_exec("studio.panel.steps = 5")
            page.locator(f"{OUT} .p2p-studio__run").click()
            page.wait_for_function(status_is("done"), timeout=120_000)
            nb._evaluate("panel.content.mode = 'command'; panel.content.node.focus();")
        control = page.locator(f"{OUT} {selector}").first
        control.scroll_into_view_if_needed()
        control.focus()
        cell = nb._evaluate("return panel.content.activeCellIndex;")
        before = control.input_value()
        page.keyboard.press(key)
        page.keyboard.press(key)
        focused = page.evaluate("(sel) => document.activeElement === document.querySelector(sel)", f"{OUT} {selector}")
        assert focused, f"{key} moved the focus away from {selector}"
        assert control.input_value() != before, f"{key} did not change {selector}"
        assert nb._evaluate("return panel.content.activeCellIndex;") == cell, selector
        assert _no_heading_collapsed(nb) and page.locator(f"{OUT} .p2p-studio").is_visible(), selector
    # the section tabs: ArrowLeft chooses the tab before (the last from the first), not a heading
    page.locator(f"{OUT} .p2p-studio__tab[data-section='playback']").focus()
    page.keyboard.press("ArrowLeft")
    assert nb.wait_kernel_eval("studio.panel.section", "schedule") == "schedule"
    assert page.evaluate("() => document.activeElement.dataset.section") == "schedule"
    assert _no_heading_collapsed(nb) and page.locator(f"{OUT} .p2p-timeline").is_visible()
    assert page.locator(f"{OUT} .p2p-player").is_hidden()
    assert not nb.errors, nb.errors
