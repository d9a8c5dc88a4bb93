"""Layer 3: the Studio's TokenAligner on a tiny SD3 in real Chromium (issue 26). The prompt runs
over CLIP's tokens then T5's: a labelled pair of rows each, one under the other. Real mouse drags
link tokens within a segment (the line stays in that pair's band, M changes in that segment's
block only) and a drag from a CLIP token onto a T5 one links nothing; the kernel's aligner and the
Studio's mapper follow."""

from __future__ import annotations

import dataclasses

import pytest

from p2p_widgets.widgets import Studio

pytestmark = pytest.mark.browser

SOURCE = "a big red circle left of a small blue square on a gray background"
TARGET = "a big green circle left of a small blue square on a gray background"
CLIP = 77


@pytest.fixture(scope="module")
def sd3():
    from p2p_widgets import Editor
    from p2p_widgets.bench.mmdit_geometries import tiny_sd3_pipeline
    from p2p_widgets.engine.defaults import SD3_DEFAULTS, register_defaults

    defaults = dataclasses.replace(SD3_DEFAULTS, steps=2, size=64, text_length=16, source=SOURCE, target=TARGET)
    return Editor(register_defaults(tiny_sd3_pipeline(0), defaults))


def chip(page, side, pos):
    return page.page.locator(f'.p2p-aligner__chip[data-side="{side}"][data-pos="{pos}"]')


def center(locator):
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def mouse_drag(page, src, dst, steps=10):
    mouse = page.page.mouse
    mouse.move(*center(src))
    mouse.down()
    mouse.move(*center(dst), steps=steps)
    mouse.up()


def row_box(page, side, segment):
    return page.page.locator(f'.p2p-aligner__row[data-side="{side}"][data-segment="{segment}"]').bounding_box()


def test_sd3_rows_per_segment_and_mouse_drags_link_within_one(widget_page, sd3):
    studio = Studio(editor=sd3, background=False)
    aligner = studio.aligner
    page = widget_page(aligner)
    labels = page.page.eval_on_selector_all(".p2p-aligner__row", "(rs) => rs.map((r) => r.getAttribute('aria-label'))")
    assert labels == ["source tokens, CLIP", "target tokens, CLIP", "source tokens, T5", "target tokens, T5"]
    # the pairs lie one under the other: CLIP's source, CLIP's target, T5's source, T5's target
    tops = [row_box(page, s, g)["y"] for g in ("CLIP", "T5") for s in ("source", "target")]
    assert tops == sorted(tops) and tops[1] - tops[0] > 30
    t5_source = '.p2p-aligner__row[data-segment="T5"][data-side="source"] .p2p-aligner__chip'
    words = page.page.eval_on_selector_all(t5_source, "(cs) => cs.map((c) => c.textContent)")
    assert words[:4] == ["a", "big", "red", "circle"]
    assert page.page.locator(".p2p-aligner__segmenthelp").is_visible()

    # "red" -> "circle" in T5 (77 + 2 -> 77 + 3): a real drag of the mouse
    red, circle = CLIP + 2, CLIP + 3
    mouse_drag(page, chip(page, "source", red), chip(page, "target", circle))
    page.sync()
    assert aligner.error == "" and [red, circle, 0.5] in aligner.links and [red, red, 0.5] in aligner.links
    mapper = studio.mapper()
    assert mapper.matrix[red, circle].item() == pytest.approx(0.5)
    assert mapper.matrix[3, 3] == 1 and mapper.matrix[3, 4] == 0  # CLIP's block untouched
    line = page.page.locator(f'.p2p-aligner__link[data-i="{red}"][data-j="{circle}"]')
    assert line.count() == 1
    ys = [float(p.split(",")[1]) for p in line.get_attribute("points").split()]
    stage = page.page.locator(".p2p-aligner__stage").bounding_box()
    t5_src, t5_tgt = row_box(page, "source", "T5"), row_box(page, "target", "T5")
    # drawn from T5's source row down to T5's target row, in T5's band (below CLIP's rows)
    assert ys[0] >= t5_src["y"] - stage["y"] and ys[-1] <= t5_tgt["y"] + t5_tgt["height"] - stage["y"]
    assert ys[-1] - ys[0] > 20
    cell = page.page.locator(f'.p2p-aligner__heat[data-segment="T5"] td[data-i="{red}"][data-j="{circle}"]')
    assert cell.text_content() == "0.5"

    # CLIP's "red" (3) dropped on T5's "circle": nothing is linked, the page says why
    before = [list(x) for x in aligner.links]
    saves = page.saves()
    mouse = page.page.mouse
    mouse.move(*center(chip(page, "source", 3)))
    mouse.down()
    mouse.move(*center(chip(page, "target", circle)), steps=10)
    assert chip(page, "target", circle).get_attribute("class").count("p2p-aligner__chip--drop") == 0
    mouse.up()
    assert page.saves() == saves
    page.sync()
    assert aligner.links == before
    assert "different token segments" in page.text(".p2p-live")
    page.screenshot("aligner_sd3_segments")


def test_sd3_keyboard_walks_the_rows_and_a_forged_cross_segment_write_is_refused(widget_page, sd3):
    studio = Studio(editor=sd3, background=False)
    aligner = studio.aligner
    page = widget_page(aligner)
    page.widget.send_state = lambda key=None: page.push_state(aligner.get_state(key))
    chip(page, "source", 1).focus()
    keyboard = page.page.keyboard
    keyboard.press("Enter")  # pick CLIP "a"
    keyboard.press("ArrowDown")  # CLIP's target row
    keyboard.press("ArrowDown")  # T5's source row
    keyboard.press("ArrowDown")  # T5's target row
    focused = page.page.evaluate("() => ({...document.activeElement.dataset})")
    assert focused["side"] == "target" and focused["segment"] == "T5"
    keyboard.press("Enter")  # placing CLIP's "a" in T5: refused, the pick stays
    assert page.saves() == 0 and "links to target tokens of CLIP only" in page.text(".p2p-live")
    # a write that crosses segments anyway (another front end): Python refuses it, the page is put back
    before = [list(x) for x in aligner.links]
    page.page.evaluate(
        f"""() => {{ const m = window.harness.model;
            m.set('links', [...m.get('links'), [1, {CLIP + 1}, 1]]); m.save_changes(); }}"""
    )
    page.sync()
    assert aligner.links == before and "a link stays within one segment" in aligner.error
    page.page.wait_for_function(
        f"() => !window.harness.model.get('links').some((l) => l[0] === 1 && l[1] === {CLIP + 1})"
    )
