"""Layer 3: the ping bundle in real Chromium on the harness page."""

import numpy as np
import pytest

from p2p_widgets.widgets import PingWidget

pytestmark = pytest.mark.browser

BASE_STATE = {"label": "hello", "count": 0, "error": ""}


def test_label_is_text_not_markup(widget_page):
    label = 'a <b>cat</b> & <img src=x onerror="window.pwned=1">'
    page = widget_page("ping", state={**BASE_STATE, "label": label})
    assert page.text(".p2p-ping__label") == label
    assert page.page.locator(".p2p-ping__label b, .p2p-ping__label img").count() == 0
    assert page.page.evaluate("() => window.pwned") is None


def test_click_sets_count_and_saves(widget_page):
    page = widget_page("ping", state=BASE_STATE)
    page.click("button.p2p-ping__button")
    page.click("button.p2p-ping__button")
    assert page.get("count") == 2
    assert page.saves() == 2
    assert [e["state"] for e in page.log()] == [{"count": 1}, {"count": 2}]
    assert page.text(".p2p-ping__count") == "count: 2"


def test_frame_is_drawn_into_the_canvas_and_acknowledged(widget_page):
    page = widget_page("ping", state=BASE_STATE)
    gray = np.array([[0, 50, 100], [150, 200, 255]], dtype=np.uint8)
    page.receive({"type": "frame", "shape": [2, 3], "seq": 0}, [gray.tobytes()])
    (ack,) = page.wait_for_sent("frame_ack")
    assert ack == {"content": {"type": "frame_ack", "sum": int(gray.sum()), "seq": 0}, "buffers": []}
    rgba = page.page.evaluate(
        """() => {
            const c = document.querySelector('canvas.p2p-ping__canvas');
            return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];
        }"""
    )
    width, height, data = rgba
    assert (width, height) == (3, 2)
    pixels = np.array(data, dtype=np.uint8).reshape(2, 3, 4)
    assert (pixels[..., 0] == gray).all() and (pixels[..., 1] == gray).all() and (pixels[..., 2] == gray).all()
    assert (pixels[..., 3] == 255).all()
    assert page.page.locator("canvas.p2p-ping__canvas").is_visible()


def test_malformed_frame_is_reported_back(widget_page):
    page = widget_page("ping", state=BASE_STATE)
    page.receive({"type": "frame", "shape": [2, 2]}, [b"\x01\x02\x03"])
    (msg,) = page.wait_for_sent("client_error")
    assert "needs 4" in msg["content"]["message"]
    assert page.wait_for_sent("frame_ack", count=0) == []


def test_error_banner_follows_the_error_trait(widget_page):
    page = widget_page("ping", state=BASE_STATE)
    banner = page.page.locator(".p2p-error")
    assert banner.is_hidden()
    page.set_from_kernel("error", "frame_ack: <sum> bad")
    assert banner.is_visible()
    assert banner.text_content() == "frame_ack: <sum> bad"
    assert banner.get_attribute("role") == "alert"
    page.set_from_kernel("error", "")
    assert banner.is_hidden()


def test_two_views_share_one_model(widget_page):
    page = widget_page("ping", state=BASE_STATE, views=2)
    buttons = page.page.locator("button.p2p-ping__button")
    assert buttons.count() == 2
    buttons.nth(1).click()
    counts = page.page.locator(".p2p-ping__count").all_text_contents()
    assert counts == ["count: 1", "count: 1"]
    page.receive({"type": "frame", "shape": [1, 1]}, [b"\x09"])
    assert len(page.wait_for_sent("frame_ack")) == 1  # one ack per frame, not per view
    assert page.page.locator("canvas[data-sum='9']").count() == 2


def test_cleanup_leaves_no_listeners(widget_page):
    page = widget_page("ping", state=BASE_STATE)
    assert page.unmount() == 0
    assert page.page.locator(".p2p-ping").count() == 0


def test_round_trip_with_a_real_python_widget(widget_page):
    w = PingWidget(label="bound <widget>")
    page = widget_page(w)
    assert page.text(".p2p-ping__label") == "bound <widget>"

    page.click("button.p2p-ping__button")
    assert page.sync() == 1
    assert w.count == 1

    w.label = "changed in Python"  # Python -> front end
    assert page.text(".p2p-ping__label") == "changed in Python"

    image = (np.arange(64, dtype=np.uint16) * 4 % 256).astype(np.uint8).reshape(8, 8)
    seq = w.send_frame(image)  # Python -> front end (binary), front end -> Python (ack)
    page.wait_for_sent("frame_ack")
    page.sync()
    assert (seq, w.last_ack, w.error) == (0, int(image.sum()), "")

    w._pending[99] = 1  # make the next ack disagree with what Python "sent"
    page.receive({"type": "frame", "shape": [1, 1], "seq": 99}, [b"\x02"])
    page.wait_for_sent("frame_ack", count=2)
    page.sync()
    assert "front end summed 2, Python sent 1" in w.error
    assert page.page.locator(".p2p-error").text_content() == w.error  # the error reached the banner
    page.screenshot("ping_round_trip")
