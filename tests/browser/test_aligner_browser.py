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


def points(line):
    return [tuple(float(c) for c in p.split(",")) for p in line.get_attribute("points").split()]


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
    line = page.page.locator('.p2p-aligner__link[data-i="5"][data-j="6"]')
    assert line.count() == 1
    (_, y1), *_, (_, y2) = points(line)
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
    line = page.page.locator('.p2p-aligner__link[data-i="2"][data-j="2"]')
    (x1, y1), (x2, y2) = points(line)[1:3]  # the piece across the band between the rows
    stage = page.page.locator(".p2p-aligner__stage").bounding_box()
    page.page.mouse.click(stage["x"] + (x1 + x2) / 2, stage["y"] + (y1 + y2) / 2)
    page.sync()
    assert aligner.links == [[1, 1, 1.0]]
    assert aligner.mapper.matrix[2, 2] == 0.0
    assert page.page.locator(".p2p-aligner__link").count() == 1


def test_auto_align_and_prompt_edit_round_trip(widget_page, tokenizer):
    from p2p_widgets.engine.mapper import align

    aligner = TokenAligner(SRC, TGT, tokenizer=tokenizer, links=[])
    page = widget_page(aligner)
    page.page.select_option("select.p2p-aligner__kind", "replace")
    page.click("button.p2p-aligner__auto")
    page.sync()
    assert aligner.kind == "replace"
    assert aligner.mapper.matrix.equal(align(SRC, TGT, tokenizer, "replace").matrix)
    assert page.page.locator(".p2p-aligner__link").count() == len(aligner.links) - 2  # BOS/EOS hidden
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


# a long prompt pair whose chips fill several lines at 1100 and 1400 px if the rows wrap
LONG_SRC = (
    "a detailed oil painting of an old orange cat sleeping on a red velvet cushion beside a window "
    "with rain drops, soft morning light, wooden floor, potted plants and a sleeping dog nearby"
)
LONG_TGT = (
    "a detailed watercolor painting of a young tabby cat playing on a blue woollen cushion beside a window "
    "with snow flakes, warm evening light, marble floor, hanging lamps and a curious parrot nearby"
)

# every link shape (line or polyline) against every chip box, shrunk by a pixel so that a link
# touching its own chip's edge does not count; Liang-Barsky clipping of each segment
COUNT_CROSSINGS = """() => {
  const stage = document.querySelector('.p2p-aligner__stage').getBoundingClientRect();
  const chips = [...document.querySelectorAll('.p2p-aligner__chip')].map((c) => c.getBoundingClientRect());
  const segs = [];
  for (const link of document.querySelectorAll('.p2p-aligner__link')) {
    let pts;
    if (link.tagName === 'line') {
      pts = [['x1', 'y1'], ['x2', 'y2']].map(([a, b]) => [+link.getAttribute(a), +link.getAttribute(b)]);
    } else {
      pts = link.getAttribute('points').trim().split(/\\s+/).map((p) => p.split(',').map(Number));
    }
    pts = pts.map(([x, y]) => [x + stage.left, y + stage.top]);
    for (let k = 0; k + 1 < pts.length; k++) segs.push([pts[k], pts[k + 1]]);
  }
  const hits = (s, r) => {
    const [[x0, y0], [x1, y1]] = s;
    const dx = x1 - x0, dy = y1 - y0;
    let t0 = 0, t1 = 1;
    const edges = [
      [-dx, x0 - (r.left + 1)], [dx, (r.right - 1) - x0], [-dy, y0 - (r.top + 1)], [dy, (r.bottom - 1) - y0],
    ];
    for (const [p, q] of edges) {
      if (p === 0) { if (q < 0) return false; continue; }
      const t = q / p;
      if (p < 0) { if (t > t1) return false; if (t > t0) t0 = t; }
      else { if (t < t0) return false; if (t < t1) t1 = t; }
    }
    return t0 < t1;
  };
  let n = 0;
  for (const s of segs) for (const r of chips) if (hits(s, r)) n++;
  return { crossings: n, links: document.querySelectorAll('.p2p-aligner__link').length };
}"""


@pytest.mark.parametrize("width", [1100, 1400])
def test_links_never_cross_chips_when_the_prompts_are_long(widget_page, tokenizer, width):
    aligner = TokenAligner(LONG_SRC, LONG_TGT, tokenizer=tokenizer, kind="refine")
    page = widget_page(aligner)
    page.page.set_viewport_size({"width": width, "height": 900})
    page.page.wait_for_timeout(150)  # the relayout runs on the next animation frame
    # a long link from one end of the rows to the other, too
    chip(page, "source", 2).click()
    chip(page, "target", 30).click()
    page.sync()
    assert [2, 30, 0.5] in aligner.links
    page.page.wait_for_timeout(150)
    seen = page.page.evaluate(COUNT_CROSSINGS)
    assert seen["links"] >= 20
    assert seen["crossings"] == 0
    page.screenshot(f"aligner_long_{width}")


def test_adding_a_link_shows_that_the_source_weight_is_now_shared(widget_page, tokenizer):
    aligner = TokenAligner(SRC, TGT, tokenizer=tokenizer, links=[[1, 1, 1.0], [2, 2, 1.0], [5, 6, 1.0]])
    page = widget_page(aligner)
    notice = page.page.locator(".p2p-aligner__notice")
    assert notice.count() == 0 or notice.is_hidden()
    mouse_drag(page, chip(page, "source", 5), chip(page, "target", 5))  # orange -> big, beside tabby
    page.sync()
    assert [5, 5, 0.5] in aligner.links and [5, 6, 0.5] in aligner.links
    # the weights are written on both of orange's links, next to the lines
    for j in (5, 6):
        label = page.page.locator(f'.p2p-aligner__linkweight[data-i="5"][data-j="{j}"]')
        assert label.is_visible()
        assert label.text_content() == "0.5"
    # links whose weight is 1 carry no label: only what changed draws the eye
    assert page.page.locator('.p2p-aligner__linkweight[data-i="1"]').count() == 0
    # a visible notice says that the existing link was halved, and how to change it
    assert notice.is_visible()
    text = notice.text_content()
    assert '"orange"' in text and "shared" in text and '"tabby"' in text and "0.5" in text
    assert "shared" in page.page.locator(".p2p-live").text_content()
    # a link of its own (no split) clears the notice
    mouse_drag(page, chip(page, "source", 3), chip(page, "target", 3))
    page.sync()
    assert notice.is_hidden()
