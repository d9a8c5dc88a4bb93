"""Front-end writes and messages on every widget: all or nothing, only the traits the page may
write, and random bad content shown in the error banner with the state unchanged.

Before: a rejected seed in an update that also changed the target kept the new target (and the
aligner kept new prompt text whose links were refused); the Ping widget let the page set _esm and
error."""

import math

import numpy as np
import pytest

from p2p_widgets.widgets.aligner import TokenAligner
from p2p_widgets.widgets.ping import PingWidget
from p2p_widgets.widgets.player import AttentionPlayer
from p2p_widgets.widgets.studio import Studio
from p2p_widgets.widgets.timeline import AlphaTimeline

SRC, TGT = "a red cat on a mat", "a blue dog on a mat"
BAD = [None, -1, 2**70, 1e400, -math.inf, "x", "", [], [1, 2, 3], {}, {"a": 1}, True, [[99, 0, 1.0]], "\ud800"]


def _mute(*widgets):
    for w in widgets:
        w.send = lambda *a, **k: None


@pytest.fixture
def studio(editor):
    s = Studio(editor=editor, source=SRC, target=TGT, steps=4)
    _mute(s.panel, s.player, s.aligner, s.timeline)
    return s


def _state(widget):
    return {k: getattr(widget, k) for k in widget.keys if k not in ("error", "error_field", "_esm", "_css")}


def test_a_refused_studio_update_changes_nothing(studio):
    before = _state(studio.panel)
    studio.panel.set_state({"target": "a blue bird on a mat", "reweight": {"bird": 2.0}, "seed": -5})
    assert "seed" in studio.panel.error
    assert _state(studio.panel) == before


def test_a_refused_aligner_update_keeps_the_old_prompt(tokenizer):
    aligner = TokenAligner(SRC, TGT, tokenizer=tokenizer)
    _mute(aligner)
    before = _state(aligner)
    aligner.set_state({"target": "a blue bird on a mat", "links": [[99, 0, 1.0]]})
    assert aligner.error and _state(aligner) == before


@pytest.mark.parametrize("trait", ["_esm", "error", "label"])
def test_the_page_cannot_write_pings_code_banner_or_label(trait):
    ping = PingWidget()
    _mute(ping)
    ping.set_state({trait: "<img src=x onerror=alert(1)>"})
    assert getattr(ping, trait) != "<img src=x onerror=alert(1)>"
    assert ping.error == f"not applied: {trait} cannot be set from the page"


def _widgets(editor, tokenizer):
    studio = Studio(editor=editor, source=SRC, target=TGT, steps=4)
    ping = PingWidget()
    aligner = TokenAligner(SRC, TGT, tokenizer=tokenizer)
    timeline = AlphaTimeline(TGT, steps=4, tokenizer=tokenizer)
    player = AttentionPlayer()
    _mute(studio.panel, studio.player, studio.aligner, studio.timeline, ping, aligner, timeline, player)
    return {"panel": studio.panel, "ping": ping, "aligner": aligner, "timeline": timeline, "player": player}


# action messages that ignore their content (they act, whatever it holds): not fuzzed here
ACTIONS = {"run", "stop", "export_gif", "clear_image"}


def test_fuzz_updates_and_messages_leave_every_widget_as_it_was(editor, tokenizer, caplog):
    rng = np.random.default_rng(1)
    cases = 0
    for name, widget in _widgets(editor, tokenizer).items():
        for key in sorted(widget._frontend_keys):
            for value in BAD:
                widget.clear_error()
                before = _state(widget)
                widget.set_state({key: value})
                cases += 1
                if widget.error:  # refused: nothing changed
                    assert _state(widget) == before, (name, key, value)
                elif _state(widget) != before:  # a value valid for this trait: undo it
                    widget.set_state({k: v for k, v in before.items() if k in widget._frontend_keys})
        for kind in sorted(set(widget._message_handlers) - ACTIONS):
            for _ in range(12):
                content = {
                    "type": kind,
                    **{
                        k: BAD[rng.integers(len(BAD))]
                        for k in ("name", "kind", "text", "run", "have", "sum", "message", "seq")
                    },
                }
                before = _state(widget)
                widget._handle_custom_msg(content, [b"\x00" * int(rng.integers(3))])
                cases += 1
                assert _state(widget) == before, (name, content)
    assert cases >= 500
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []  # no handler crashed
