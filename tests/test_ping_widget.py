"""Layer 1: PingWidget state and messages (no browser)."""

import numpy as np
import pytest
import traitlets

from p2p_widgets.widgets import PingWidget


@pytest.fixture
def w():
    widget = PingWidget(label="a cat")
    widget.outbox = []
    widget.send = lambda content, buffers=None: widget.outbox.append((content, [bytes(b) for b in buffers or []]))
    return widget


def test_defaults_and_sync_flags():
    w = PingWidget()
    assert (w.label, w.count, w.last_ack, w.frames_sent, w.error) == ("ping", 0, None, 0, "")
    state = w.get_state()
    assert state["label"] == "ping" and state["count"] == 0
    assert "last_ack" not in state and "frames_sent" not in state  # Python-side only


def test_count_from_the_front_end_and_validation(w):
    w.set_state({"count": 3})
    assert w.count == 3
    with pytest.raises(traitlets.TraitError):
        w.count = -1
    w.set_state({"count": -5})  # a front-end write is not raised, it is reported
    assert w.count == 3 and "count must be >= 0" in w.error


def test_send_frame_message_and_buffer(w):
    img = np.array([[0, 1, 2], [3, 4, 255]], dtype=np.uint8)
    assert w.send_frame(img) == 0
    assert w.send_frame(img.T.copy()) == 1
    (c0, b0), (c1, b1) = w.outbox
    assert c0 == {"type": "frame", "shape": [2, 3], "seq": 0}
    assert b0 == [img.tobytes()]
    assert c1["shape"] == [3, 2] and c1["seq"] == 1
    assert w.frames_sent == 2


def test_send_frame_of_a_non_contiguous_view_sends_row_major_bytes(w):
    big = np.arange(16, dtype=np.uint8).reshape(4, 4)
    w.send_frame(big[:, 1:3])
    assert w.outbox[0][1] == [big[:, 1:3].tobytes()]


@pytest.mark.parametrize(
    "image, exc",
    [
        (np.zeros((2, 2), np.float32), TypeError),
        (np.zeros((2, 2, 3), np.uint8), ValueError),
        (np.zeros((0, 4), np.uint8), ValueError),
        (np.zeros((1, 5000), np.uint8), ValueError),
    ],
)
def test_send_frame_rejects_bad_images(w, image, exc):
    with pytest.raises(exc):
        w.send_frame(image)
    assert w.outbox == [] and w.frames_sent == 0


def test_ack_records_the_sum(w):
    seq = w.send_frame(np.full((2, 2), 100, np.uint8))
    w._handle_custom_msg({"type": "frame_ack", "sum": 400, "seq": seq}, [])
    assert w.last_ack == 400 and w.error == ""


def test_ack_without_seq_is_accepted(w):
    w._handle_custom_msg({"type": "frame_ack", "sum": 7}, [])
    assert w.last_ack == 7


@pytest.mark.parametrize(
    "content, buffers, fragment",
    [
        ({"type": "frame_ack"}, [], "'sum' must be a non-negative integer, got None"),
        ({"type": "frame_ack", "sum": "400"}, [], "got '400'"),
        ({"type": "frame_ack", "sum": True}, [], "got True"),
        ({"type": "frame_ack", "sum": -1}, [], "got -1"),
        ({"type": "frame_ack", "sum": 1.5}, [], "got 1.5"),
        ({"type": "frame_ack", "sum": 400, "seq": "0"}, [], "'seq' must be an integer"),
        ({"type": "frame_ack", "sum": 400, "seq": 99}, [], "no frame with seq 99"),
        ({"type": "frame_ack", "sum": 401, "seq": 0}, [], "front end summed 401, Python sent 400"),
        ({"type": "frame_ack", "sum": 400, "seq": 0}, [b"x"], "carries no buffers"),
    ],
)
def test_malformed_acks_set_error_and_keep_last_ack(w, content, buffers, fragment):
    w.send_frame(np.full((2, 2), 100, np.uint8))
    w._handle_custom_msg(content, buffers)
    assert fragment in w.error
    assert w.error.startswith("frame_ack: ")
    assert w.last_ack is None
    # still usable afterwards
    w.clear_error()
    seq = w.send_frame(np.ones((1, 3), np.uint8))
    w._handle_custom_msg({"type": "frame_ack", "sum": 3, "seq": seq}, [])
    assert (w.last_ack, w.error) == (3, "")


def test_pending_acks_are_bounded(w):
    for _ in range(300):
        w.send_frame(np.zeros((1, 1), np.uint8))
    assert len(w._pending) == 256
    w._handle_custom_msg({"type": "frame_ack", "sum": 0, "seq": 0}, [])
    assert "no frame with seq 0" in w.error  # evicted long ago
