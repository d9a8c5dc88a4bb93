"""Layer 1: AlphaTimeline state, the real time axis, validation of front-end writes, plotly."""

import json
import math

import pytest
import traitlets

from p2p_widgets.engine.schedule import AlphaSchedule
from p2p_widgets.errors import P2PError
from p2p_widgets.widgets import AlphaTimeline
from p2p_widgets.widgets.timeline import PRESETS, scheduler_timesteps

TGT = "a photo of a big tabby cat."


@pytest.fixture
def t(tokenizer):
    widget = AlphaTimeline(TGT, steps=50, tokenizer=tokenizer)
    widget.outbox, widget.resent = [], []
    widget.send = lambda content, buffers=None: widget.outbox.append(content)
    widget.send_state = lambda key=None: widget.resent.append(key)
    return widget


def test_time_axis_is_the_schedulers_real_evaluations(t, tiny_pipe):
    from diffusers import DDIMScheduler

    ref = DDIMScheduler.from_config(tiny_pipe.scheduler.config)
    ref.set_timesteps(50)
    assert t.timesteps == [int(x) for x in ref.timesteps]
    assert t.n_evals == 50 and t.timesteps[0] > t.timesteps[-1]  # noisiest first
    assert AlphaTimeline(TGT, steps=20, scheduler=tiny_pipe).timesteps == scheduler_timesteps(tiny_pipe.scheduler, 20)


def test_a_scheduler_with_extra_evaluations_sets_n_evals(tokenizer, tiny_pipe):
    from diffusers import PNDMScheduler

    pndm = PNDMScheduler.from_config(tiny_pipe.scheduler.config, skip_prk_steps=True)  # SD's PNDM setting
    pndm.set_timesteps(5)
    t = AlphaTimeline(TGT, steps=10, scheduler=pndm, tokenizer=tokenizer)
    assert t.n_evals == len(t.timesteps) == 11  # PNDM's PLMS warm-up adds an evaluation (the reference's 51)
    assert t.schedule.n_evals == 11
    assert len(pndm.timesteps) == 6  # the caller's scheduler is left as it was


def test_default_schedule_is_the_engines(t):
    assert t.schedule == AlphaSchedule.build(50)
    assert t.windows == {"cross": [0, 40], "self_attn": [0, 20], "words": [], "blend_start": 10}
    assert t.words == ["a", "photo", "of", "big", "tabby", "cat."]
    json.dumps(t.get_state(["windows", "timesteps", "words", "target", "playhead", "n_evals"]))


def test_schedule_in_and_out(tokenizer):
    s = AlphaSchedule.build(50, cross=0.6, self_attn=(0.1, 0.3), words={"tabby": (0.0, 0.2)}, blend_start=5)
    t = AlphaTimeline(TGT, steps=50, schedule=s, tokenizer=tokenizer)
    assert t.schedule == s
    assert AlphaTimeline(TGT, steps=50, schedule=s.to_dict(), tokenizer=tokenizer).schedule == s
    t.schedule = AlphaSchedule.build(50, cross=1.0)
    assert t.windows["cross"] == [0, 50] and t.windows["words"] == []
    with pytest.raises(P2PError, match="40 evaluations"):
        AlphaTimeline(TGT, steps=50, schedule=AlphaSchedule.build(40), tokenizer=tokenizer)
    with pytest.raises(traitlets.TraitError, match="not in the prompt"):
        AlphaTimeline(TGT, steps=50, schedule=AlphaSchedule.build(50, words={"dog": 0.5}), tokenizer=tokenizer)
    by_position = AlphaTimeline(TGT, steps=50, schedule=AlphaSchedule.build(50, words={4: 0.5}), tokenizer=tokenizer)
    assert by_position.windows["words"] == [["big", 0, 25]]  # word 4 of 'a photo of a big ...'


def test_windows_from_the_front_end_reach_the_schedule_and_the_alpha_table(t, tokenizer):
    from p2p_widgets.engine.prompts import Prompt

    w = {"cross": [0, 30], "self_attn": [2, 12], "words": [["tabby", 0, 5]], "blend_start": 7}
    t.set_state({"windows": w})
    assert t.error == ""
    s = t.schedule
    assert (s.cross, s.self_attn, s.words, s.blend_start) == ((0, 30), (2, 12), {"tabby": (0, 5)}, 7)
    alpha = s.cross_alpha(Prompt.from_text(TGT, tokenizer))
    tabby = 6  # BOS a photo of a big tabby
    assert alpha[:5, tabby].tolist() == [1.0] * 5 and alpha[5:, tabby].sum() == 0
    assert alpha[29, 5] == 1.0 and alpha[30, 5] == 0.0


BAD_WINDOWS = [
    ("x", "expected a dict"),
    ({"cross": [0, 40], "self_attn": [0, 20]}, "missing blend_start"),
    ({"cross": [0, 40], "self_attn": [0, 20], "blend_start": 0, "extra": 1}, "unknown key"),
    ({"cross": [0, 51], "self_attn": [0, 20], "blend_start": 0}, "cross window end 51 is outside [0, 50]"),
    ({"cross": [-1, 40], "self_attn": [0, 20], "blend_start": 0}, "outside"),
    ({"cross": [30, 20], "self_attn": [0, 20], "blend_start": 0}, "start 30 is after end 20"),
    ({"cross": [0, 0.8], "self_attn": [0, 20], "blend_start": 0}, "must be an integer step"),
    ({"cross": [0, math.nan], "self_attn": [0, 20], "blend_start": 0}, "must be an integer step"),
    ({"cross": [0, None], "self_attn": [0, 20], "blend_start": 0}, "must be an integer step"),
    ({"cross": [0, True], "self_attn": [0, 20], "blend_start": 0}, "must be an integer step"),
    ({"cross": [0], "self_attn": [0, 20], "blend_start": 0}, "must be [start, end]"),
    ({"cross": "0-40", "self_attn": [0, 20], "blend_start": 0}, "must be [start, end]"),
    ({"cross": [0, 40], "self_attn": [0, 20], "blend_start": 99}, "blend_start 99 is outside"),
    ({"cross": [0, 40], "self_attn": [0, 20], "blend_start": "3"}, "blend_start must be an integer"),
    ({"cross": [0, 40], "self_attn": [0, 20], "blend_start": 0, "words": [["dog", 0, 5]]}, "not in the prompt"),
    ({"cross": [0, 40], "self_attn": [0, 20], "blend_start": 0, "words": [["cat.", 0, 5], ["cat.", 1, 2]]}, "two rows"),
    ({"cross": [0, 40], "self_attn": [0, 20], "blend_start": 0, "words": [[3, 0, 5]]}, "must be [word, start, end]"),
    ({"cross": [0, 40], "self_attn": [0, 20], "blend_start": 0, "words": {"cat.": [0, 5]}}, "must be a list"),
    ({"cross": [0, 40], "self_attn": [0, 20], "blend_start": 0, "words": [["tabby", 0, 60]]}, "outside"),
]


@pytest.mark.parametrize("value, fragment", BAD_WINDOWS)
def test_malformed_windows_are_rejected_visibly_and_the_widget_stays_usable(t, value, fragment):
    before = json.loads(json.dumps(t.windows))
    t.set_state({"windows": value})  # must not raise
    assert t.error.startswith("not applied") and fragment in t.error
    assert t.windows == before
    assert ["windows"] in t.resent
    t.set_state({"windows": {**before, "cross": [1, 2]}})
    assert t.error == "" and t.schedule.cross == (1, 2)


@pytest.mark.parametrize(
    "update",
    [
        {"timesteps": [1, 2, 3]},
        {"n_evals": 3},
        {"words": ["x"]},
        {"target": "other"},
        {"playhead": 3},
        {"rule_windows": [{"rule": "", "what": "x", "start": 0, "end": 1}]},
    ],
)
def test_computed_traits_cannot_be_written_from_the_front_end(t, update):
    state = t.get_state()
    t.set_state(update)
    assert "cannot be set from the page" in t.error
    assert t.get_state() == {**state, "error": t.error}
    assert list(update) in t.resent


def test_presets(t):
    t.set_window("tabby", 0, 3)
    t._handle_custom_msg({"type": "preset", "name": "no_injection"}, [])
    assert (t.schedule.cross, t.schedule.self_attn, t.schedule.words) == ((0, 0), (0, 0), {})
    t._handle_custom_msg({"type": "preset", "name": "source_only"}, [])
    assert (t.schedule.cross, t.schedule.self_attn) == ((0, 50), (0, 50))
    t.apply_preset("default")
    assert t.schedule == AlphaSchedule.build(50)
    t._handle_custom_msg({"type": "preset", "name": "everything"}, [])
    assert "'name' must be one of" in t.error
    t._handle_custom_msg({"type": "preset"}, [])
    assert "got None" in t.error
    with pytest.raises(P2PError):
        t.apply_preset("everything")
    assert set(PRESETS) == {"default", "source_only", "no_injection"}


def test_python_helpers(t):
    t.set_window("cross", 3, 30)
    t.set_window("tabby", 0, 10)
    t.set_window("tabby", 0, 12)
    assert t.windows["words"] == [["tabby", 0, 12]]
    t.remove_word("tabby")
    with pytest.raises(KeyError):
        t.remove_word("tabby")
    with pytest.raises(traitlets.TraitError):
        t.set_window("self_attn", 10, 5)
    assert t.edit_kwargs() == {"steps": 50, "cross": (3, 30), "self_attn": (0, 20), "words": None}


def test_edit_kwargs_drive_the_editor_with_the_same_alpha(t, editor):
    from p2p_widgets.engine.prompts import Prompt

    t.set_window("tabby", 0, 4)
    kwargs = t.edit_kwargs()
    source, target = editor.prompt("a photo of a cat."), editor.prompt(TGT)
    (rule,) = editor.build_rules(
        source, [target], t.n_evals, cross=kwargs["cross"], self_attn=kwargs["self_attn"], words=kwargs["words"]
    )
    assert rule.schedule == AlphaSchedule.build(
        50, cross=(0, 40), self_attn=(0, 20), words={"tabby": (0, 4)}, blend_start=0.2
    )
    assert rule.schedule.cross_alpha(target).equal(t.schedule.cross_alpha(Prompt.from_text(TGT, editor.tokenizer)))


def test_target_edit_drops_rows_of_missing_words(t):
    t.set_window("tabby", 0, 10)
    t.set_window("big", 0, 5)
    t.target = "a photo of a big cat."
    assert t.words == ["a", "photo", "of", "big", "cat."]
    assert t.windows["words"] == [["big", 0, 5]]
    with pytest.raises(traitlets.TraitError, match="tokens"):
        t.target = " ".join(["cat"] * 80)


def test_playhead(t):
    t.playhead = 12
    t.playhead = None
    with pytest.raises(traitlets.TraitError, match="outside"):
        t.playhead = 50


def test_bad_constructor_arguments(tokenizer):
    with pytest.raises(P2PError, match="steps"):
        AlphaTimeline(TGT, steps=0, tokenizer=tokenizer)
    with pytest.raises(P2PError, match="scheduler"):
        AlphaTimeline(TGT, scheduler="ddim", tokenizer=tokenizer)
    with pytest.raises(P2PError, match="schedule must be"):
        AlphaTimeline(TGT, schedule=[0, 40], tokenizer=tokenizer)
    with pytest.raises(TypeError, match="unknown keyword"):
        AlphaTimeline(TGT, colour="red", tokenizer=tokenizer)


def test_to_plotly(t):
    import plotly.graph_objects as go

    t.set_window("tabby", 0, 10)
    t.playhead = 7
    fig = t.to_plotly()
    assert isinstance(fig, go.Figure)
    (bar,) = fig.data
    assert list(bar.y) == ["cross (default)", "word: tabby", "self-attention", "LocalBlend"]
    assert list(bar.base) == [0, 0, 0, 10] and list(bar.x) == [40, 10, 20, 40]
    assert fig.layout.xaxis.ticktext[0] == str(t.timesteps[0])
    assert any(shape.x0 == 7.5 for shape in fig.layout.shapes)  # the playhead


# -- a rule's windows as read-only bands ------------------------------------------------------------


def test_show_rule_sets_read_only_bands_from_the_rules_windows(t):
    from p2p_widgets.engine.controls import MutualSelfAttention, PlugAndPlay
    from p2p_widgets.engine.rules import Combine

    t.show_rule(MutualSelfAttention(start_step=7))
    assert t.rule_windows == [{"rule": "MutualSelfAttention", "what": "mutual self-attention", "start": 7, "end": 50}]
    t.show_rule(Combine(MutualSelfAttention(end_step=30), PlugAndPlay(feature_until=0.5)))
    assert [(b["rule"], b["what"], b["start"], b["end"]) for b in t.rule_windows] == [
        ("MutualSelfAttention", "mutual self-attention", 4, 30),
        ("PlugAndPlay", "ResNet features", 0, 25),
        ("PlugAndPlay", "self-attention Q, K", 0, 25),
    ]
    t.show_rule([MutualSelfAttention(start_step=1), MutualSelfAttention(start_step=2)])  # one rule per edit
    assert [b["start"] for b in t.rule_windows] == [1, 2]
    assert t.windows == {"cross": [0, 40], "self_attn": [0, 20], "words": [], "blend_start": 10}  # left alone
    bars = t.to_plotly().data[0]
    assert list(bars.y)[-2:] == [
        "MutualSelfAttention: mutual self-attention",
        "MutualSelfAttention: mutual self-attention (2)",
    ]
    assert list(bars.base)[-2:] == [1, 2]
    t.show_rule(None)
    assert t.rule_windows == []
    t.show_rule(MutualSelfAttention())
    t.clear_rule()
    assert t.rule_windows == []


def test_a_p2p_rule_shows_its_alpha_windows(t, editor):
    prompts = [editor.prompt("a photo of a big cat."), editor.prompt(TGT)]
    (rule,) = editor.build_rules(prompts[0], prompts[1:], 50, words={"tabby": (0.0, 0.2)})
    t.show_rule(rule)
    assert {(b["what"], b["start"], b["end"]) for b in t.rule_windows} == {
        ("cross-attention", 0, 40),
        ("self-attention", 0, 20),
        ("cross-attention: tabby", 0, 10),
    }
    (short,) = editor.build_rules(prompts[0], prompts[1:], 10)
    with pytest.raises(P2PError, match="schedule covers 10 evaluations but the run has 50"):
        t.show_rule(short)  # a rule built for another run says so instead of drawing wrong bands


def test_show_rule_refuses_bad_input_naming_it(t):
    from p2p_widgets.engine.controls import MutualSelfAttention
    from p2p_widgets.engine.rules import EditRule

    with pytest.raises(P2PError, match="n_evals must be this timeline's 50"):
        t.show_rule(MutualSelfAttention(), n_evals=20)
    with pytest.raises(P2PError, match="rule must be an EditRule"):
        t.show_rule("MutualSelfAttention")

    class Overlong(EditRule):
        def windows(self, n_evals):
            return [("past the end", 0, n_evals + 5)]

    class Malformed(EditRule):
        def windows(self, n_evals):
            return [("no end", 0)]

    with pytest.raises(P2PError, match=r"rule windows: .*past the end.*0 <= start <= end <= 50"):
        t.show_rule(Overlong())
    with pytest.raises(P2PError, match=r"Malformed.windows\(\) item 0"):
        t.show_rule(Malformed())
    assert t.rule_windows == []  # nothing half-set


@pytest.mark.parametrize(
    "bands, fragment",
    [
        ([{"what": "x", "start": 0}], "must be {'rule', 'what', 'start', 'end'}"),
        ([{"what": "x", "start": 0, "end": 1, "colour": "red"}], "must be {'rule', 'what', 'start', 'end'}"),
        ([{"what": "", "start": 0, "end": 1}], "'what' must be a non-empty text"),
        ([{"what": "x" * 201, "start": 0, "end": 1}], "at most 200 characters"),
        ([{"rule": 3, "what": "x", "start": 0, "end": 1}], "'rule' a text"),
        ([{"what": "x", "start": 5, "end": 4}], "0 <= start <= end <= 50"),
        ([{"what": "x", "start": 0.5, "end": 4}], "integer steps"),
        ([{"what": "x", "start": True, "end": 4}], "integer steps"),
        (["x"], "rule_windows 0 must be"),
    ],
)
def test_rule_windows_are_validated(t, bands, fragment):
    with pytest.raises(traitlets.TraitError) as info:
        t.rule_windows = bands
    assert fragment in str(info.value)
    assert t.rule_windows == []
    t.rule_windows = [{"what": "<b>kept as text</b>", "start": 0, "end": 50}]
    assert t.rule_windows == [{"rule": "", "what": "<b>kept as text</b>", "start": 0, "end": 50}]
    assert "&lt;b&gt;kept as text&lt;/b&gt;" in t.to_plotly().data[0].y  # plotly shows it, does not read it
