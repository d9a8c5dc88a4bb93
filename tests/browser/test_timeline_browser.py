"""Layer 3: the AlphaTimeline bundle in real Chromium, bound to a real Python AlphaTimeline."""

import pytest

from p2p_widgets.engine.schedule import AlphaSchedule
from p2p_widgets.widgets import AlphaTimeline

pytestmark = pytest.mark.browser

TGT = "a photo of a big tabby cat."
EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def timeline(tokenizer, tiny_pipe):
    return AlphaTimeline(TGT, steps=50, scheduler=tiny_pipe, tokenizer=tokenizer)


def handle(page, row, edge):
    return page.page.locator(f'.p2p-timeline__handle[data-row="{row}"][data-edge="{edge}"]')


def boundary_x(page, row, k, n):
    """Page x of boundary k on a row's track (handles sit at k/n of the track's padding box)."""
    left, width = page.page.evaluate(
        """(row) => {
            const t = document.querySelector(`.p2p-timeline__track[data-row="${row}"]`);
            const r = t.getBoundingClientRect();
            return [r.left + t.clientLeft, t.clientWidth];
        }""",
        row,
    )
    return left + width * k / n


def drag_edge(page, row, edge, k, n):
    box = handle(page, row, edge).bounding_box()
    mouse = page.page.mouse
    mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    mouse.down()
    mouse.move(boundary_x(page, row, k, n), box["y"] + box["height"] / 2, steps=10)
    mouse.up()


def test_dragging_an_edge_changes_the_schedule(widget_page, timeline):
    page = widget_page(timeline)
    drag_edge(page, "cross", "end", 25, 50)
    assert page.saves() == 1  # one write on release, not one per move
    page.sync()
    assert timeline.error == ""
    assert timeline.schedule.cross == (0, 25)
    assert timeline.schedule == AlphaSchedule.build(50, cross=(0, 25))
    assert handle(page, "cross", "end").get_attribute("aria-valuenow") == "25"
    # snapping: a release between boundaries lands on the nearest step
    drag_edge(page, "self_attn", "start", 6.4, 50)
    page.sync()
    assert timeline.schedule.self_attn == (6, 20)
    page.screenshot("timeline_drag")


def test_keyboard_moves_an_edge(widget_page, timeline):
    page = widget_page(timeline)
    handle(page, "cross", "end").focus()
    for _ in range(3):
        page.page.keyboard.press("ArrowLeft")
    page.page.keyboard.press("PageDown")
    page.sync()
    assert timeline.schedule.cross == (0, 32)
    assert page.page.evaluate("() => document.activeElement.dataset.edge") == "end"
    assert "step 32" in page.page.locator(".p2p-live").text_content()


def test_word_rows_presets_and_playhead(widget_page, timeline):
    page = widget_page(timeline)
    page.page.select_option("select.p2p-timeline__word", "tabby")
    page.click("button.p2p-timeline__add")
    page.sync()
    assert timeline.schedule.words == {"tabby": (0, 40)}
    drag_edge(page, "word:tabby", "end", 10, 50)
    page.sync()
    assert timeline.schedule.words == {"tabby": (0, 10)}
    page.click('button[data-preset="no_injection"]')
    page.sync()
    assert (timeline.schedule.cross, timeline.schedule.self_attn, timeline.schedule.words) == ((0, 0), (0, 0), {})
    assert page.page.locator(".p2p-timeline__track").count() == 4  # axis + cross + self + blend
    timeline.playhead = 25
    head = page.page.locator('.p2p-timeline__track[data-row="cross"] .p2p-timeline__playhead')
    assert head.is_visible()
    hx = head.bounding_box()["x"]
    assert abs(hx - boundary_x(page, "cross", 25.5, 50)) < 3


def test_malformed_write_is_rejected_visibly(widget_page, timeline):
    page = widget_page(timeline)
    timeline.send_state = lambda key=None: page.push_state(timeline.get_state(key))  # the kernel's resync
    page.page.evaluate(
        """() => { const m = window.harness.model;
                   m.set('windows', {cross: [0, 0.5], self_attn: [0, 20], words: [], blend_start: 10});
                   m.save_changes(); }"""
    )
    page.sync()
    banner = page.page.locator(".p2p-error")
    assert banner.is_visible() and "integer step" in banner.text_content()
    assert timeline.schedule.cross == (0, 40)
    assert page.get("windows")["cross"] == [0, 40]
    handle(page, "cross", "end").focus()
    page.page.keyboard.press("ArrowRight")
    page.sync()
    assert timeline.schedule.cross == (0, 41) and banner.is_hidden()


def test_html_in_the_prompt_renders_as_text(widget_page, tokenizer, tiny_pipe):
    timeline = AlphaTimeline(
        EVIL, steps=10, scheduler=tiny_pipe, tokenizer=tokenizer, schedule=AlphaSchedule.build(10, words={"<img": 0.5})
    )
    page = widget_page(timeline)
    dialogs = []
    page.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    assert page.text(".p2p-timeline__prompt") == EVIL
    assert page.page.locator(".p2p-timeline__labeltext").nth(1).text_content() == "word “<img”"
    options = page.page.locator("select.p2p-timeline__word option").all_text_contents()
    assert options == ["src=x", "onerror=alert(1)>"]
    page.page.wait_for_timeout(100)
    assert dialogs == []
    assert page.page.evaluate("() => document.querySelectorAll('img').length") == 0


def test_cleanup_leaves_no_listeners(widget_page, timeline):
    page = widget_page(timeline, views=2)
    assert page.page.locator(".p2p-timeline").count() == 2
    assert page.unmount() == 0


def test_a_rules_windows_render_as_labelled_read_only_bands(widget_page, timeline):
    from p2p_widgets.engine.controls import MutualSelfAttention, PlugAndPlay
    from p2p_widgets.engine.rules import Combine

    page = widget_page(timeline)
    assert page.page.locator(".p2p-timeline__track--band").count() == 0
    timeline.show_rule(Combine(MutualSelfAttention(start_step=10), PlugAndPlay()))
    bands = page.page.locator(".p2p-timeline__track--band")
    bands.first.wait_for()
    labels = page.page.locator(".p2p-timeline__label--band").all_text_contents()
    assert labels == [
        "MutualSelfAttention: mutual self-attention",
        "PlugAndPlay: ResNet features",
        "PlugAndPlay: self-attention Q, K",
    ]
    # drawn where the rule acts: MasaCtrl's bar starts at 10/50 of its track and runs to the end
    track, bar = bands.nth(0).bounding_box(), bands.nth(0).locator(".p2p-timeline__bar").bounding_box()
    assert abs(bar["x"] - boundary_x(page, "cross", 10, 50)) < 3
    assert abs((bar["x"] + bar["width"]) - (track["x"] + track["width"])) < 3
    assert bands.nth(1).locator(".p2p-timeline__handle").count() == 0  # read-only
    # keyboard: Tab reaches each band; its name is the text alternative a screen reader reads
    handle(page, "blend", "start").focus()
    page.page.keyboard.press("Tab")
    focused = page.page.evaluate("() => document.activeElement.getAttribute('aria-label')")
    assert focused.startswith("MutualSelfAttention: mutual self-attention: steps 10 (t = ")
    assert focused.endswith("40 of 50 (read-only)")
    page.page.keyboard.press("Tab")
    assert page.page.evaluate("() => document.activeElement.dataset.band") == "1"
    page.screenshot("timeline_rule_bands")
    timeline.clear_rule()
    page.page.wait_for_function("() => !document.querySelector('.p2p-timeline__track--band')")
