"""Layer 3: the TokenAligner bundle in real Chromium, bound to a real Python TokenAligner."""

import pytest

from p2p_widgets.widgets import TokenAligner

pytestmark = pytest.mark.browser

SRC = "a photo of an orange cat."  # BOS a photo of an orange cat . EOS
TGT = "a photo of a big tabby cat."  # BOS a photo of a big tabby cat . EOS
EVIL = "<img src=x onerror=alert(1)>"


def chip(page, side, pos):
    return page.page.locator(f'.p2p-aligner__chip[data-side="{side}"][data-pos="{pos}"]')


def center(locator):
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def mouse_drag(page, src, dst, steps=8):
    mouse = page.page.mouse
    mouse.move(*center(src))
    mouse.down()
    mouse.move(*center(dst), steps=steps)
    mouse.up()


def with_kernel_resync(page, widget):
    """Forward the widget's resyncs (send_state after a rejected write) to the page, as the kernel
    would over the comm; the harness only forwards trait changes."""
    widget.send_state = lambda key=None: page.push_state(widget.get_state(key))
    return page


@pytest.fixture
def aligner(tokenizer):
    return TokenAligner(SRC, TGT, tokenizer=tokenizer, links=[[1, 1, 1.0], [2, 2, 1.0]])


def test_pointer_drag_links_source_to_target_in_state_and_matrix(widget_page, aligner):
    page = widget_page(aligner)
    dialogs = []
    page.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    mouse_drag(page, chip(page, "source", 5), chip(page, "target", 6))  # orange -> tabby
    assert [5, 6, 1] in page.get("links")
    assert page.sync() == 1
    assert aligner.error == ""
    assert [5, 6, 1.0] in aligner.links
    assert aligner.mapper.matrix[5, 6] == 1.0
    # a second target splits orange evenly: orange -> big tabby
    mouse_drag(page, chip(page, "source", 5), chip(page, "target", 5))
    page.sync()
    assert aligner.mapper.matrix[5, 5].item() == pytest.approx(0.5)
    assert aligner.mapper.matrix[5, 6].item() == pytest.approx(0.5)
    # the drag did not leave the chip picked, and a line joins the two chips
    assert chip(page, "source", 5).get_attribute("aria-pressed") == "false"
    line = page.page.locator('line.p2p-aligner__link[data-i="5"][data-j="6"]')
    assert line.count() == 1
    y1, y2 = float(line.get_attribute("y1")), float(line.get_attribute("y2"))
    assert y2 - y1 > 20  # drawn from the source row down to the target row
    # the heat map shows the new column values
    cell = page.page.locator('td.p2p-aligner__cell[data-i="5"][data-j="6"]')
    assert cell.text_content() == "0.5"
    assert dialogs == []
    page.screenshot("aligner_drag")


def test_keyboard_path_links_tokens(widget_page, aligner):
    page = widget_page(aligner)
    chip(page, "source", 1).focus()
    keyboard = page.page.keyboard
    for _ in range(4):
        keyboard.press("ArrowRight")  # a -> photo -> of -> an -> orange
    keyboard.press("Enter")  # pick orange
    assert chip(page, "source", 5).get_attribute("aria-pressed") == "true"
    live = page.page.locator(".p2p-live")
    assert "picked source token" in live.text_content()
    keyboard.press("ArrowDown")  # target row, at its roving position (the first chip)
    for _ in range(4):
        keyboard.press("ArrowRight")  # a photo of a big
    assert page.page.evaluate("() => document.activeElement.dataset.pos") == "5"
    keyboard.press("Space")  # place: exactly one link, and no stray native click picking 'big' after it
    assert page.saves() == 1
    assert page.page.locator('.p2p-aligner__chip[aria-pressed="true"]').count() == 0
    assert "linked" in live.text_content()
    page.sync()
    assert [5, 5, 1.0] in aligner.links and aligner.mapper.matrix[5, 5] == 1.0
    keyboard.press("Delete")  # removes the links of the focused target chip
    page.sync()
    assert [5, 5, 1.0] not in aligner.links


def test_pick_then_place_with_single_clicks(widget_page, aligner):
    page = widget_page(aligner)
    chip(page, "target", 6).click()  # pick 'tabby' first: either row may start
    assert chip(page, "target", 6).get_attribute("aria-pressed") == "true"
    chip(page, "source", 5).click()
    page.sync()
    assert [5, 6, 1.0] in aligner.links
    assert aligner.mapper.matrix[5, 6] == 1.0


def test_clicking_a_link_removes_it(widget_page, aligner):
    page = widget_page(aligner)
    line = page.page.locator('line.p2p-aligner__link[data-i="2"][data-j="2"]')
    x1, y1, x2, y2 = (float(line.get_attribute(a)) for a in ("x1", "y1", "x2", "y2"))
    stage = page.page.locator(".p2p-aligner__stage").bounding_box()
    page.page.mouse.click(stage["x"] + (x1 + x2) / 2, stage["y"] + (y1 + y2) / 2)
    page.sync()
    assert aligner.links == [[1, 1, 1.0]]
    assert aligner.mapper.matrix[2, 2] == 0.0
    assert page.page.locator("line.p2p-aligner__link").count() == 1


def test_auto_align_and_prompt_edit_round_trip(widget_page, tokenizer):
    from p2p_widgets.engine.mapper import align

    aligner = TokenAligner(SRC, TGT, tokenizer=tokenizer, links=[])
    page = widget_page(aligner)
    page.page.select_option("select.p2p-aligner__kind", "replace")
    page.click("button.p2p-aligner__auto")
    page.sync()
    assert aligner.kind == "replace"
    assert aligner.mapper.matrix.equal(align(SRC, TGT, tokenizer, "replace").matrix)
    assert page.page.locator("line.p2p-aligner__link").count() == len(aligner.links) - 2  # BOS/EOS hidden
    target = page.page.locator('input.p2p-aligner__input[data-side="target"]')
    target.fill("a photo of a big tabby dog.")
    target.press("Enter")
    page.sync()
    assert aligner.target == "a photo of a big tabby dog."
    assert chip(page, "target", 7).text_content() == "dog"


def test_malformed_write_is_rejected_visibly_and_the_widget_stays_usable(widget_page, aligner):
    page = with_kernel_resync(widget_page(aligner), aligner)
    weight = page.page.locator('input.p2p-aligner__weight[data-i="2"]')
    weight.fill("1e999")  # overflows to Infinity in the browser
    weight.press("Enter")
    page.sync()
    banner = page.page.locator(".p2p-error")
    assert banner.is_visible()
    assert "not a finite number" in banner.text_content()
    assert aligner.links == [[1, 1, 1.0], [2, 2, 1.0]]
    assert page.get("links") == [[1, 1, 1.0], [2, 2, 1.0]]  # the front end was put back
    weight = page.page.locator('input.p2p-aligner__weight[data-i="2"]')
    weight.fill("0.25")
    weight.press("Enter")
    page.sync()
    assert aligner.error == "" and banner.is_hidden()
    assert aligner.mapper.matrix[2, 2].item() == pytest.approx(0.25)


def test_html_in_prompts_renders_as_text(widget_page, tokenizer):
    aligner = TokenAligner(EVIL, f"a cat {EVIL}", tokenizer=tokenizer)
    page = widget_page(aligner)
    dialogs = []
    page.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    root = page.page.locator(".p2p-aligner")
    assert root.locator("img").count() == 0
    assert page.page.locator('input[data-side="source"]').input_value() == EVIL
    texts = page.page.locator('.p2p-aligner__chip[data-side="source"]').all_text_contents()
    assert texts == [t["text"] for t in aligner.source_tokens[1:-1]]
    assert "<" in texts and ">" in texts
    assert root.locator(".p2p-aligner__wordlabel").first.text_content() == "<img"
    page.page.wait_for_timeout(100)
    assert dialogs == []
    assert page.page.evaluate("() => document.querySelectorAll('img').length") == 0


def test_cleanup_leaves_no_listeners(widget_page, aligner):
    page = widget_page(aligner, views=2)
    assert page.page.locator(".p2p-aligner").count() == 2
    assert page.unmount() == 0
    assert page.page.locator(".p2p-aligner").count() == 0
