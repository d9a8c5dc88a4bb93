"""Layer 1: the shared widget base (no browser)."""

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

from p2p_widgets.widgets._base import STATIC_DIR, MessageError, P2PWidget, _as_buffer, on_message


class Echo(P2PWidget):
    _bundle = "ping"  # any built bundle will do
    _frontend_keys = frozenset({"level"})
    level = traitlets.Int(0).tag(sync=True)

    @traitlets.validate("level")
    def _check_level(self, proposal):
        if proposal["value"] > 10:
            raise traitlets.TraitError("level must be <= 10")
        return proposal["value"]

    @on_message("echo")
    def _on_echo(self, content, buffers):
        if "text" not in content:
            raise MessageError("missing 'text'")
        self.received.append((content["text"], [bytes(b) for b in buffers]))

    @on_message("boom")
    def _on_boom(self, content, buffers):
        raise RuntimeError("handler bug")


class EchoChild(Echo):
    @on_message("echo")  # overrides the parent's handler for the same kind
    def _on_echo_child(self, content, buffers):
        self.received.append(("child", []))


def make(cls=Echo, **kw):
    w = cls(**kw)
    w.received = []
    w.outbox = []
    w.send = lambda content, buffers=None: w.outbox.append((content, buffers))
    return w


def test_bundle_and_css_come_from_static():
    w = Echo()
    assert w._esm == (STATIC_DIR / "ping.js").read_text()
    assert w._css == (STATIC_DIR / "ping.css").read_text()
    assert "export" in w._esm  # an ES module, not a path string


def test_missing_bundle_fails_at_class_definition():
    with pytest.raises(FileNotFoundError, match="npm run build"):

        class Broken(P2PWidget):
            _bundle = "no_such_widget"


def test_unknown_kwargs_are_rejected_with_the_settable_names():
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) levl.*level"):
        Echo(levl=3)
    assert Echo(level=3).level == 3


def test_error_trait_is_synced_and_starts_empty():
    w = Echo()
    assert w.error == ""
    assert w.trait_metadata("error", "sync") is True
    assert w.get_state()["error"] == ""


def test_handlers_collected_along_the_mro():
    assert Echo._message_handlers == {
        "client_error": "_on_client_error",
        "write": "_on_write",  # a front-end update sent as a message, in order with the actions
        "echo": "_on_echo",
        "boom": "_on_boom",
    }
    assert EchoChild._message_handlers["echo"] == "_on_echo_child"
    assert P2PWidget._message_handlers == {}  # the base itself is not a subclass


def test_message_reaches_its_handler_with_buffers():
    w = make()
    w._handle_custom_msg({"type": "echo", "text": "hi"}, [b"\x01\x02"])
    assert w.received == [("hi", [b"\x01\x02"])]
    assert w.error == ""


@pytest.mark.parametrize(
    "content, expected",
    [
        (["not", "a", "dict"], "message: message must be an object, got list"),
        ({"text": "no type"}, "message: message has no string 'type'"),
        ({"type": 3}, "message: message has no string 'type'"),
        ({"type": "nope"}, "nope: unknown message type 'nope'"),
        ({"type": "echo"}, "echo: missing 'text'"),
        ({"type": "client_error", "message": 5}, "client_error: 'message' must be a string"),
    ],
)
def test_malformed_messages_set_error_and_widget_stays_usable(content, expected):
    w = make()
    w._handle_custom_msg(content, [])
    assert w.error == expected
    w._handle_custom_msg({"type": "echo", "text": "still alive"}, [])
    assert w.received == [("still alive", [])]


def test_handler_bug_is_reported_not_raised(caplog):
    w = make()
    w._handle_custom_msg({"type": "boom"}, [])
    assert w.error == "boom: internal error RuntimeError: handler bug"
    assert "handler for 'boom' failed" in caplog.text


def test_client_error_is_shown():
    w = make()
    w._handle_custom_msg({"type": "client_error", "message": "bad frame: x"}, [])
    assert w.error == "front end: bad frame: x"
    w.clear_error()
    assert w.error == ""


def test_report_error_truncates_long_text():
    w = make()
    w.report_error("x" * 10_000)
    assert len(w.error) == 2000


def test_invalid_front_end_update_sets_error_and_resyncs():
    w = make(level=2)
    synced = []
    w.send_state = lambda key=None: synced.append(key)
    w.set_state({"level": 99})  # what ipywidgets runs for a comm "update"
    assert w.level == 2
    assert "level must be <= 10" in w.error
    assert ["level"] in synced  # the front end is put back to level=2
    w.set_state({"level": 4})
    assert w.level == 4


def test_send_binary_converts_arrays_and_checks_content():
    w = make()
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)[:, ::2]  # not contiguous
    w.send_binary({"type": "blob", "n": 1}, [a, b"ab", bytearray(b"c")])
    ((content, buffers),) = w.outbox
    assert content == {"type": "blob", "n": 1}
    assert [bytes(b) for b in buffers] == [a.tobytes(), b"ab", b"c"]
    assert all(isinstance(b, memoryview) for b in buffers)
    with pytest.raises(TypeError, match="string 'type'"):
        w.send_binary({"kind": "x"})
    with pytest.raises(TypeError, match="buffers must be"):
        w.send_binary({"type": "x"}, ["text"])


def test_as_buffer_casts_wide_dtypes_to_bytes():
    mv = _as_buffer(np.array([1.0, 2.0], dtype=np.float32))
    assert mv.format == "B" and mv.nbytes == 8
    assert bytes(mv) == np.array([1.0, 2.0], dtype=np.float32).tobytes()


def test_state_has_no_binary_buffers_for_plain_traits():
    w = Echo()
    state, paths, buffers = _remove_buffers(w.get_state())
    assert buffers == [] and paths == []
    assert state["_anywidget_id"].endswith("Echo")
