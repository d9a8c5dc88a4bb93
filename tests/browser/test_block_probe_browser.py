"""Layer 3: the BlockProbe bundle in real Chromium, bound to a real Python BlockProbe.

Real mouse events: hovering a bar says its block and score, clicking bars toggles them into the
Python widget's selection (and so into its KVInjection); a write Python refuses is put back; the
bars are as tall as their scores; a probe of a tiny Flux model shows up as bars."""

import pytest

from p2p_widgets.engine.probe import BlockScore
from p2p_widgets.widgets.block_probe import BlockProbe

pytestmark = pytest.mark.browser

BAR = ".p2p-block-probe__bar"
RECORDS = [
    BlockScore("double 0", "double", 0, 0.4),
    BlockScore("double 1", "double", 1, 0.1),
    BlockScore("double 2", "double", 2, 0.0),
    BlockScore("single 0", "single", 0, 0.8),
    BlockScore("single 1", "single", 1, 0.02),
]


def bar(page, label):
    return page.page.locator(f'{BAR}[data-label="{label}"]')


def test_hover_says_the_block_and_its_score(widget_page):
    page = widget_page(BlockProbe(RECORDS, metric="latent-cosine"))
    readout = page.page.locator(".p2p-block-probe__readout")
    bar(page, "single 0").hover()
    assert readout.text_content() == "single 0: score 0.8"
    bar(page, "double 1").hover()
    assert readout.text_content() == "double 1: score 0.1"
    page.page.mouse.move(0, 0)
    assert readout.text_content().startswith("hover a bar")


def test_bars_are_as_tall_as_their_scores(widget_page):
    page = widget_page(BlockProbe(RECORDS))
    heights = page.page.evaluate(
        """() => [...document.querySelectorAll('.p2p-block-probe__bar')].map((b) => {
            const fill = b.querySelector('.p2p-block-probe__fill').getBoundingClientRect();
            return [b.dataset.label, fill.height, b.getBoundingClientRect().height];
        })"""
    )
    assert [h[0] for h in heights] == [r.label for r in RECORDS]
    full = heights[3][1]
    assert full > 50 and abs(full - heights[3][2]) <= 3  # the top score fills its bar
    for (label, height, _), record in zip(heights, RECORDS):
        expected = max(full * record.score / 0.8, 1)  # a zero score still shows a 1 px line
        assert abs(height - expected) <= 2, (label, height, expected)
    # double-stream bars left of single-stream ones
    xs = [page.page.locator(BAR).nth(k).bounding_box()["x"] for k in range(len(RECORDS))]
    assert xs == sorted(xs)


def test_clicks_toggle_the_python_selection_and_its_rule(widget_page):
    w = BlockProbe(RECORDS)
    page = widget_page(w)
    bar(page, "single 0").click()
    bar(page, "double 0").click()
    bar(page, "double 1").click()
    page.sync()
    assert w.selected_labels == ["double 0", "double 1", "single 0"]
    assert w.rule_params == {"double": ["0", "1"], "single": ["0"]}
    bar(page, "double 1").click()  # again: out of the selection
    page.sync()
    assert w.rule_params == {"double": ["0"], "single": ["0"]} and w.error == ""
    rule = w.rule()
    assert (list(rule.double), list(rule.single)) == (["0"], ["0"])
    assert bar(page, "double 0").get_attribute("aria-pressed") == "true"
    assert bar(page, "double 1").get_attribute("aria-pressed") == "false"
    assert page.text(".p2p-block-probe__selection") == "selected: double 0, single 0"
    page.page.locator(".p2p-block-probe__clear").click()
    page.sync()
    assert w.selected == [] and bar(page, "double 0").get_attribute("aria-pressed") == "false"


def test_keyboard_toggles_a_focused_bar(widget_page):
    w = BlockProbe(RECORDS)
    page = widget_page(w)
    bar(page, "single 1").focus()
    page.page.keyboard.press("Enter")
    assert page.text(".p2p-block-probe__readout") == "single 1: score 0.02 (selected)"
    page.page.keyboard.press("Shift+Tab")
    page.page.keyboard.press(" ")
    page.sync()
    assert w.selected_labels == ["single 0", "single 1"]


def test_a_write_python_refuses_is_put_back(widget_page):
    w = BlockProbe(RECORDS)
    page = widget_page(w)
    w.send_state = lambda key=None: page.push_state(w.get_state(key))  # the kernel's resync
    bar(page, "double 2").click()
    page.sync()
    assert w.selected == [2]
    page.page.evaluate("() => { const m = window.harness.model; m.set('selected', [2, 9]); m.save_changes(); }")
    page.sync()
    assert "9 is not a block index" in w.error and w.selected == [2]
    assert page.get("selected") == [2]  # the page shows the Python value again
    assert page.page.locator(".p2p-error").is_visible()
    assert page.page.locator(f"{BAR}[aria-pressed=true]").count() == 1
    bar(page, "single 1").click()
    page.sync()
    assert w.selected_labels == ["double 2", "single 1"] and w.error == ""


def test_a_probe_of_tiny_flux_becomes_bars(widget_page):
    from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline
    from p2p_widgets.engine.sampler import Editor

    w = BlockProbe()
    page = widget_page(w)
    assert page.text(".p2p-block-probe__empty") == "no probe result yet"
    prompt = "a big red circle left of a small blue square on a gray background"
    result = w.run(Editor(tiny_flux_pipeline(seed=0)), prompt, seed=0, steps=2, guidance=3.5, height=64, width=64)
    assert page.page.locator(BAR).count() == 4
    top = result.top(1)[0]
    bar(page, top).click()
    page.sync()
    assert w.selected_labels == [top]
    page.screenshot("block_probe")
