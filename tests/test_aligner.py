"""Layer 1: TokenAligner state, validation of front-end writes, and the mapper it builds."""

import json
import math

import pytest
import torch
import traitlets

from p2p_widgets.engine.mapper import Mapper, align
from p2p_widgets.errors import P2PError
from p2p_widgets.widgets import TokenAligner
from p2p_widgets.widgets.aligner import MAX_WEIGHT, token_rows

SRC = "a photo of an orange cat."  # BOS a photo of an orange cat . EOS -> positions 0..8
TGT = "a photo of a big tabby cat."  # BOS a photo of a big tabby cat . EOS -> positions 0..9


@pytest.fixture
def w(tokenizer):
    widget = TokenAligner(SRC, TGT, tokenizer=tokenizer, kind="replace")
    widget.outbox, widget.resent = [], []
    widget.send = lambda content, buffers=None: widget.outbox.append(content)
    # every send_state call: trait changes send their own name, resyncs send a list of names
    widget.send_state = lambda key=None: widget.resent.append(key)
    return widget


def test_tokens_are_plain_data_with_words_and_specials(w):
    texts = [t["text"] for t in w.source_tokens]
    assert texts == ["<|startoftext|>", "a", "photo", "of", "an", "orange", "cat", ".", "<|endoftext|>"]
    assert [t["pos"] for t in w.target_tokens] == list(range(10))
    assert w.source_tokens[0]["special"] == "bos" and w.source_tokens[-1]["special"] == "eos"
    cat, dot = w.source_tokens[6], w.source_tokens[7]
    assert cat["word"] == dot["word"] == 5 and cat["word_text"] == dot["word_text"] == "cat."
    assert w.source_tokens[0]["word"] == -1
    json.dumps(w.get_state(["source_tokens", "target_tokens", "links"]))  # JSON-able as sent


def test_starts_from_the_engine_alignment_and_the_mapper_matches_it(w, tokenizer):
    for kind in ("replace", "refine"):
        w.auto_align(kind)
        expected = align(SRC, TGT, tokenizer, kind)
        mapper = w.mapper
        assert isinstance(mapper, Mapper)
        assert torch.equal(mapper.matrix, expected.matrix), kind
        assert torch.equal(mapper.aligned, expected.aligned), kind
        assert all(i < 9 and j < 10 for i, j, _ in w.links)  # padding is never a hand link


def test_links_default_to_the_kind_given(tokenizer):
    refine = TokenAligner(SRC, TGT, tokenizer=tokenizer, kind="refine")
    assert torch.equal(refine.mapper.matrix, align(SRC, TGT, tokenizer, "refine").matrix)
    given = TokenAligner(SRC, TGT, tokenizer=tokenizer, links=[[5, 5, 1]])
    assert given.links == [[5, 5, 1.0]]


def test_a_hand_link_reaches_the_matrix_and_unlinked_targets_are_new(w):
    w.links = [[5, 6, 1.0]]  # orange -> tabby only
    m = w.mapper
    assert m.matrix[5, 6] == 1.0
    assert m.matrix[0, 0] == 1.0 and m.matrix[8, 9] == 1.0  # BOS and EOS fed automatically
    assert m.matrix[9, 10] == 1.0  # padding keeps the offset
    assert m.aligned[6] == 1.0 and m.aligned[5] == 0.0 and m.aligned[2] == 0.0  # 'big' is a new token


def test_link_splits_a_source_evenly_and_unlink_removes(w):
    w.links = []
    w.link(5, 5)
    w.link(5, 6)
    assert w.links == [[5, 5, 0.5], [5, 6, 0.5]]
    w.link(5, 7, weight=0.2)
    assert w.links == [[5, 5, 0.5], [5, 6, 0.5], [5, 7, 0.2]]
    w.unlink(5, 7)
    assert [x[1] for x in w.links] == [5, 6]
    with pytest.raises(KeyError):
        w.unlink(1, 9)
    assert w.mapper.matrix[5, 5] == pytest.approx(0.5)


def test_python_assignment_validates(w):
    with pytest.raises(traitlets.TraitError, match="out of range"):
        w.links = [[9, 0, 1.0]]
    with pytest.raises(traitlets.TraitError, match="finite"):
        w.links = [[1, 1, math.inf]]
    with pytest.raises(P2PError):
        w.auto_align("diagonal")


def test_links_are_stored_sorted_as_floats(w):
    w.set_state({"links": [[5, 6, 1], [1, 1, 0.5], [5, 5, 1]]})
    assert w.error == ""
    assert w.links == [[1, 1, 0.5], [5, 5, 1.0], [5, 6, 1.0]]
    assert all(isinstance(x[2], float) for x in w.links)


BAD_LINKS = [
    ("not a list", "links must be a list"),
    ({"0": [1, 1, 1]}, "links must be a list"),
    (None, "links must be a list"),
    ([[1, 1]], "must be [source, target, weight]"),
    ([[1, 1, 1, 1]], "must be [source, target, weight]"),
    ([5], "must be [source, target, weight]"),
    ([["1", 1, 1.0]], "source position must be an integer"),
    ([[1, True, 1.0]], "target position must be an integer"),
    ([[1.0, 1, 1.0]], "source position must be an integer"),
    ([[-1, 1, 1.0]], "source position -1 is out of range"),
    ([[9, 1, 1.0]], "source position 9 is out of range"),
    ([[1, 10, 1.0]], "target position 10 is out of range"),
    ([[1, 76, 1.0]], "target position 76 is out of range"),
    ([[1, 1, math.nan]], "not a finite number"),
    ([[1, 1, math.inf]], "not a finite number"),
    ([[1, 1, None]], "weight must be a number"),
    ([[1, 1, "0.5"]], "weight must be a number"),
    ([[1, 1, True]], "weight must be a number"),
    ([[1, 1, MAX_WEIGHT + 1]], "outside"),
    ([[1, 1, 0.5], [1, 1, 0.5]], "linked twice"),
]


@pytest.mark.parametrize("value, fragment", BAD_LINKS)
def test_malformed_links_from_the_front_end_are_rejected_visibly(w, value, fragment):
    before = [list(x) for x in w.links]
    w.set_state({"links": value})  # must not raise: the kernel would show a traceback
    assert w.error.startswith("not applied")
    if fragment:
        assert fragment in w.error
    assert w.links == before
    assert ["links"] in w.resent  # the front end is put back to the Python value
    # still usable: a valid write goes through and clears the error
    w.set_state({"links": [[5, 6, 1.0]]})
    assert (w.error, w.links) == ("", [[5, 6, 1.0]])
    assert w.mapper.matrix[5, 6] == 1.0


@pytest.mark.parametrize(
    "update, fragment",
    [
        ({"source_tokens": [{"pos": 0, "text": "x"}]}, "source_tokens cannot be set from the page"),
        ({"target_tokens": []}, "target_tokens cannot be set from the page"),
        ({"error": ""}, "error cannot be set from the page"),
        ({"kind": "diagonal"}, "kind"),
        ({"show_special": "yes"}, "show_special"),
        ({"source": 42}, "source"),
        ({"target": " ".join(["cat"] * 80)}, "tokens"),
    ],
)
def test_other_malformed_writes_are_rejected(w, update, fragment):
    state = {k: w.get_state()[k] for k in ("source", "target", "links", "kind", "show_special", "source_tokens")}
    w.set_state(update)
    assert "not applied" in w.error and fragment in w.error
    assert {k: w.get_state()[k] for k in state} == state
    assert list(update) in w.resent  # resync of what the front end wrote
    w.set_state({"show_special": True})
    assert w.error == "" and w.show_special is True


def test_editing_a_prompt_retokenises_and_keeps_the_links_that_still_make_sense(w):
    w.links = [[2, 2, 1.0], [5, 5, 0.5], [5, 6, 0.5], [6, 7, 1.0]]  # photo, orange -> big/tabby, cat
    w.set_state({"source": "a photo of an orange dog."})
    assert w.error == ""
    assert [t["text"] for t in w.source_tokens][6] == "dog"
    # cat (6) is gone from the source: its link goes; the others keep their positions
    assert w.links == [[2, 2, 1.0], [5, 5, 0.5], [5, 6, 0.5]]
    w.set_state({"target": "a nice photo of a big tabby cat."})
    # one token inserted before the rest of the target: links follow their tokens
    assert w.links == [[2, 3, 1.0], [5, 6, 0.5], [5, 7, 0.5]]
    assert w.mapper.matrix[5, 7] == pytest.approx(0.5)


def test_untouched_links_follow_a_prompt_edit_by_aligning_afresh(w, tokenizer):
    w.target = "a photo of a fluffy cat."
    assert torch.equal(w.mapper.matrix, align(SRC, "a photo of a fluffy cat.", tokenizer, "replace").matrix)


def test_auto_align_message_and_bad_messages(w, tokenizer):
    w.links = []
    w._handle_custom_msg({"type": "auto_align", "kind": "refine"}, [])
    assert w.error == ""
    assert torch.equal(w.mapper.matrix, align(SRC, TGT, tokenizer, "refine").matrix)
    w._handle_custom_msg({"type": "auto_align", "kind": 3}, [])
    assert "'kind' must be one of" in w.error
    w._handle_custom_msg({"type": "nonsense"}, [])
    assert "unknown message type" in w.error
    w._handle_custom_msg({"type": "auto_align", "kind": "replace"}, [])
    assert w.error == ""


def test_strict_constructor(tokenizer):
    with pytest.raises(TypeError, match="unknown keyword"):
        TokenAligner(SRC, TGT, tokenizer=tokenizer, colour="red")
    with pytest.raises(traitlets.TraitError, match="tokens"):
        TokenAligner(" ".join(["cat"] * 80), TGT, tokenizer=tokenizer)


def test_token_rows_of_an_empty_prompt(tokenizer):
    from p2p_widgets.engine.prompts import Prompt

    rows = token_rows(Prompt.from_text("", tokenizer))
    assert [r["special"] for r in rows] == ["bos", "eos"]


def test_html_in_a_prompt_is_kept_as_text(tokenizer):
    evil = "<img src=x onerror=alert(1)>"
    w = TokenAligner(evil, "a cat", tokenizer=tokenizer)
    assert w.source == evil
    assert "".join(t["text"] for t in w.source_tokens[1:-1]) == "<imgsrc=xonerror=alert(1)>"
