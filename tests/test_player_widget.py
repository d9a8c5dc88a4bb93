"""AttentionPlayer (Python side): streaming, throttling, backfill, the frame cache and replay,
Stop, and errors surfacing in the ``error`` trait. Uses the tiny fixture pipeline (CPU)."""

import io
import threading

import numpy as np
import pytest
import traitlets

from p2p_widgets.errors import P2PError
from p2p_widgets.stream.frames import decode_frame, decode_image
from p2p_widgets.widgets.player import AttentionPlayer, default_tokens

SOURCE = "a red cat on a mat"
TARGET = "a blue dog on a mat"
STEPS = 5


class Recorder:
    """Stands in for the comm: records every custom message with its buffers as bytes."""

    def __init__(self, widget):
        self.messages = []
        widget.send = self.send

    def send(self, content, buffers=None):
        self.messages.append((content, [bytes(b) for b in buffers or []]))

    def types(self):
        return [c["type"] for c, _ in self.messages]

    def frames(self):
        return [(c, b) for c, b in self.messages if c["type"] == "frame"]

    def clear(self):
        self.messages.clear()


@pytest.fixture
def player():
    p = AttentionPlayer()
    return p, Recorder(p)


@pytest.fixture(scope="module")
def streamed(editor):
    """One streamed run: the player, its recorder, the result, and what was sent before edit() returned."""
    p = AttentionPlayer(min_interval=0.0, max_share=1.0)  # no throttling: every step goes live
    rec = Recorder(p)
    seen_live = []
    result = p.run(
        editor, SOURCE, TARGET, steps=STEPS, seed=1, callback=lambda ev: seen_live.append((ev.step, len(rec.frames())))
    )
    return p, rec, result, seen_live


def test_run_streams_header_frames_and_end(streamed):
    p, rec, result, seen_live = streamed
    types = rec.types()
    assert types[0] == "run" and types[-1] == "end"
    assert types.count("frame") == STEPS
    header = rec.messages[0][0]
    assert [row["text"] for row in header["prompts"]] == [SOURCE, TARGET]
    assert header["prompts"][0]["tokens"][0].startswith("<|startoftext|>")
    # frames are sent while the sampler runs: after step k's callback, k + 1 frames are out
    assert seen_live == [(k, k + 1) for k in range(STEPS)]
    assert [c["step"] for c, _ in rec.frames()] == list(range(STEPS))
    end = rec.messages[-1][0]
    assert end == {"type": "end", "run": header["run"], "status": "done", "steps": list(range(STEPS))}
    assert (p.status, p.n_evals, p.cached_steps) == ("done", STEPS, list(range(STEPS)))
    assert p.grids == [[16, 16], [8, 8]]


def test_frames_carry_previews_and_token_maps(streamed, editor):
    p, rec, result, _ = streamed
    content, buffers = rec.frames()[-1]
    n_tokens = max(len(editor.prompt(t).tokens) for t in (SOURCE, TARGET))
    assert content["tokens"] == n_tokens and content["n_images"] == 2
    assert content["mime"] == "image/png" and content["image_size"] == [64, 64]
    decoded = decode_frame(content, buffers)
    assert [im.shape for im in decoded["images"]] == [(64, 64, 3)] * 2
    assert decoded["maps"][(16, 16)].shape == (2, n_tokens, 16, 16)
    assert decoded["maps"][(8, 8)].dtype == np.uint8
    # the last frame's preview is the final x0 prediction: close to the decoded result image
    final = np.asarray(result.images[1]).astype(int)
    assert np.abs(decoded["images"][1].astype(int) - final).mean() < 8
    # the stored maps agree with the engine's store for that step
    want = result.store.step_maps(STEPS - 1, 16)[1, ..., :n_tokens].permute(2, 0, 1).numpy()
    got = p.token_heat(decoded, 1, 0, 16)[None]
    assert np.abs(got - want[:1]).max() < 2 * want[:1].max() / 255 + 1e-3


def test_no_binary_data_in_widget_state(streamed):
    from ipywidgets.widgets.widget import _remove_buffers

    p = streamed[0]
    _, _, buffers = _remove_buffers(p.get_state())
    assert buffers == []  # frames travel as messages, never as traits


def test_throttled_run_backfills_the_skipped_steps(editor, player):
    p, rec = player
    p.min_interval = 1000.0  # only the first and the last step go live
    result = p.run(editor, SOURCE, TARGET, steps=STEPS, seed=2)
    steps = [c["step"] for c, _ in rec.frames()]
    assert steps[:2] == [0, STEPS - 1]  # live: first and last
    assert sorted(steps) == list(range(STEPS))  # then the rest, after the run
    assert p.stats["live_frames"] == 2 and p.stats["frames"] == STEPS
    assert rec.types()[-1] == "end" and not result.stopped
    # a backfilled frame decodes like a live one
    d = p.frame(2)
    assert d["images"][0].shape == (64, 64, 3) and d["step"] == 2


def test_without_backfill_only_live_steps_exist(editor, player):
    p, rec = player
    p.min_interval, p.backfill = 1000.0, False
    p.run(editor, SOURCE, TARGET, steps=STEPS, seed=2)
    assert [c["step"] for c, _ in rec.frames()] == [0, STEPS - 1]
    assert p.cached_steps == [0, STEPS - 1]


def test_replay_resends_the_cached_frames_identically(streamed):
    p, rec, _, _ = streamed
    originals = {c["step"]: (c, b) for c, b in rec.frames()}
    sink = Recorder(p)
    p._handle_custom_msg({"type": "replay", "run": None, "have": []}, [])
    assert sink.types() == ["run", *["frame"] * STEPS, "end"]
    for c, b in sink.frames():
        assert (c, b) == originals[c["step"]]  # byte-identical
    sink.clear()
    p._handle_custom_msg({"type": "replay", "run": p.run_id, "have": [0, 1, 3]}, [])
    assert [c["step"] for c, _ in sink.frames()] == [2, 4]
    sink.clear()
    p._handle_custom_msg({"type": "replay", "run": p.run_id - 1, "have": [0, 1, 3]}, [])  # an older run
    assert [c["step"] for c, _ in sink.frames()] == list(range(STEPS))
    assert p.error == ""
    rec.send = sink.send  # keep later tests reading the module fixture unaffected
    p.send = rec.send


def test_replay_before_any_run_sends_nothing(player):
    p, rec = player
    p._handle_custom_msg({"type": "replay", "run": None, "have": []}, [])
    assert rec.messages == [] and p.error == ""


@pytest.mark.parametrize(
    "content,message",
    [
        ({"type": "replay", "have": "all"}, "'have'"),
        ({"type": "replay", "have": [-1]}, "'have'"),
        ({"type": "replay", "run": "x"}, "'run'"),
        ({"type": "no_such_thing"}, "unknown message type"),
        ({"type": "export_gif"}, "no frames"),
    ],
)
def test_malformed_messages_set_error_and_the_widget_stays_usable(player, editor, content, message):
    p, rec = player
    p._handle_custom_msg(content, [])
    assert message in p.error
    p.clear_error()
    p.run(editor, SOURCE, TARGET, steps=2, seed=0)
    assert p.status == "done" and p.error == ""


def test_front_end_writes_are_validated(streamed):
    p = streamed[0]
    p.set_state({"step": 3, "tokens": [[1, 2], [0, 1], [1, 2]], "normalize": "global", "opacity": 0.25})
    assert (p.step, p.tokens, p.normalize, p.opacity, p.error) == (3, [[0, 1], [1, 2]], "global", 0.25, "")
    for bad, message in [
        ({"step": STEPS}, "step"),
        ({"tokens": [[2, 0]]}, "prompt index"),
        ({"tokens": [[0, 99]]}, "position 99"),
        ({"resolution": 12}, "resolution"),
        ({"opacity": 1.5}, "opacity"),
        ({"status": "done"}, "cannot be set from the page"),
        ({"n_evals": 3}, "cannot be set from the page"),
        ({"controlled": [[0]]}, "cannot be set from the page"),
        ({"unet_cells": []}, "cannot be set from the page"),
    ]:
        p.clear_error()
        p.set_state(bad)
        assert message in p.error, bad
    assert (p.step, p.opacity, p.n_evals) == (3, 0.25, STEPS)  # unchanged
    p.set_state({"resolution": 8})
    assert p.resolution == 8


def test_stop_ends_the_run_early_and_sends_its_last_step(editor, player):
    p, rec = player
    p.min_interval = 1000.0  # only steps forced out go live
    stop = threading.Event()

    def stop_at_two(ev):
        if ev.step == 2:
            stop.set()

    result = p.run(editor, SOURCE, TARGET, steps=8, seed=0, stop_event=stop, callback=stop_at_two)
    assert result.stopped
    steps = [c["step"] for c, _ in rec.frames()]
    assert steps[0] == 0 and sorted(steps) == [0, 1, 2]
    end = rec.messages[-1][0]
    assert end["status"] == "stopped" and end["steps"] == [0, 1, 2]
    assert p.status == "stopped"


def test_stop_set_before_the_step_callback_sends_that_step_live(editor, player):
    p, rec = player
    p.min_interval, p.backfill = 1000.0, False
    stop = threading.Event()
    cb = p.begin([SOURCE, TARGET], tokenizer=editor.tokenizer, stop_event=stop)

    def both(ev):
        if ev.step == 3:
            stop.set()  # e.g. the Stop button, between two steps
        cb(ev)

    result = editor.edit(SOURCE, TARGET, steps=8, seed=0, callback=both, stop_event=stop)
    p.end(result)
    assert [c["step"] for c, _ in rec.frames()] == [0, 3]
    assert p.status == "stopped"


def test_a_streaming_failure_never_breaks_the_sampler(editor, player, monkeypatch):
    import p2p_widgets.widgets.player as mod

    p, rec = player

    def broken(**kwargs):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(mod, "encode_frame", broken)
    result = p.run(editor, SOURCE, TARGET, steps=3, seed=0)
    assert len(result.images) == 2 and not result.stopped
    assert "streaming stopped" in p.error and "encoder exploded" in p.error
    assert rec.types()[-1] == "end"


def test_a_failed_run_reports_the_error(editor, player):
    p, rec = player
    with pytest.raises(ValueError, match="not in the prompt"):
        p.run(editor, SOURCE, TARGET, steps=3, reweight={"zebra": 2.0})
    assert p.status == "error" and "zebra" in p.error
    assert rec.types()[-1] == "end" and rec.messages[-1][0]["status"] == "error"


def test_gif_export(streamed):
    from PIL import Image

    p = streamed[0]
    data = p.to_gif(scale=2)
    assert data[:6] == b"GIF89a"
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.n_frames == STEPS
        n_cols = 1 + max(sum(1 for b, _ in p.tokens if b == k) for k in range(2))
        assert gif.size == ((n_cols * 65 - 1) * 2, (2 * 65 - 1) * 2)


def test_gif_download_message(streamed):
    p, rec, _, _ = streamed
    sink = Recorder(p)
    p._handle_custom_msg({"type": "export_gif"}, [])
    ((content, buffers),) = sink.messages
    assert content == {"type": "download", "name": "p2p_playback.gif", "mime": "image/gif"}
    assert buffers[0][:6] == b"GIF89a"
    p.send = rec.send


def test_default_token_selection_picks_the_edited_words(tokenizer):
    from p2p_widgets.engine.prompts import Prompt

    a, b = (Prompt.from_text(t, tokenizer) for t in (SOURCE, TARGET))
    chosen = default_tokens([a.tokens, b.tokens])
    assert [a.tokens[p] for k, p in chosen if k == 0] == ["red", "cat"]
    assert [b.tokens[p] for k, p in chosen if k == 1] == ["blue", "dog"]
    same = default_tokens([a.tokens, a.tokens])  # nothing differs: the first content tokens
    assert [p for _, p in same] == [1, 2, 1, 2]


def test_clear_forgets_frames(editor, player):
    p, rec = player
    p.run(editor, SOURCE, TARGET, steps=2, seed=0)
    assert p.cached_steps == [0, 1]
    rec.clear()
    p.clear()
    assert rec.types() == ["clear"] and p.cached_steps == [] and p.status == "idle"
    p._handle_custom_msg({"type": "replay", "run": None, "have": []}, [])
    assert rec.types() == ["clear"]


def test_preview_images_are_pngs(streamed):
    _, rec, _, _ = streamed
    content, buffers = rec.frames()[0]
    assert all(b.startswith(b"\x89PNG") for b in buffers[:2])
    assert decode_image(buffers[0]).shape == (64, 64, 3)


def test_to_gif_names_bad_settings(editor):
    """Found in review: fps=0 divided by zero, a token out of range raised IndexError."""
    from p2p_widgets.errors import P2PError

    player = AttentionPlayer()
    player.send = lambda *a, **k: None
    player.run(editor, "a red cat", "a blue cat", steps=2)
    assert player.to_gif(scale=1)[:3] == b"GIF"
    for kwargs, message in [
        (dict(fps=0), "fps"),
        (dict(opacity=2), "opacity"),
        (dict(normalize="x"), "normalize"),
        (dict(tokens=[[0, 99]]), "not positions"),
        (dict(tokens=["a"]), "tokens must be"),
    ]:
        with pytest.raises(P2PError, match=message):
            player.to_gif(**kwargs)


# -- what the rules controlled: the UNet strip's data, and plots.unet_diagram -----------------------

MASA_SOURCE = "a red circle on a gray background"
MASA_TARGET = "a blue circle on a gray background"
CONTROL_STEPS = 6


def _up_self(cells):
    return [k for k, c in enumerate(cells) if c["block"].startswith("up ") and c["kind"] == "self"]


@pytest.fixture(scope="module")
def masactrl_run(editor):
    """A MasaCtrl run streamed live (every step), from the first up-block self-attention layer."""
    from p2p_widgets.engine.controls import MutualSelfAttention
    from p2p_widgets.stream.unet_layers import model_cells

    cells = model_cells(editor)
    selfs = [k for k, c in enumerate(cells) if c["kind"] == "self"]
    rule = MutualSelfAttention(start_step=2, start_layer=selfs.index(_up_self(cells)[0]))
    p = AttentionPlayer(min_interval=0.0, max_share=1.0)
    Recorder(p)
    live = []
    result = p.run(
        editor,
        MASA_SOURCE,
        MASA_TARGET,
        steps=CONTROL_STEPS,
        rules=[rule],
        callback=lambda ev: live.append(list(p.controlled)),
    )
    return p, result, live


def test_masactrl_marks_exactly_the_up_block_self_attention_from_its_start_step(masactrl_run):
    p, result, live = masactrl_run
    up_self = _up_self(p.unet_cells)
    assert len(up_self) == 4 and len(p.unet_cells) == 14  # tiny UNet: 7 attention modules, self + cross each
    assert p.controlled == [[], []] + [up_self] * (CONTROL_STEPS - 2)
    assert [c["name"] for c in p.controlled_cells(3)] == [p.unet_cells[k]["name"] for k in up_self]
    assert {(c["block"], c["kind"]) for c in p.controlled_cells(3)} == {("up 0", "self"), ("up 1", "self")}
    # streamed: each step's control reached the front end with (before) its frame
    assert [len(rows) for rows in live] == list(range(1, CONTROL_STEPS + 1))
    assert live[-1] == p.controlled
    # the same as the engine's record
    assert [sorted(p.unet_cells[k]["name"] for k in row) for row in p.controlled] == [
        sorted(name for name, _ in step) for step in result.controlled
    ]
    with pytest.raises(P2PError, match="step must be a step the player knows"):
        p.controlled_cells(CONTROL_STEPS)


def test_a_throttled_run_still_ends_with_every_steps_control(editor, player):
    from p2p_widgets.engine.controls import MutualSelfAttention

    p, _ = player
    p.min_interval = 1000.0  # only the first and last step go live
    result = p.run(editor, MASA_SOURCE, MASA_TARGET, steps=4, rules=[MutualSelfAttention(start_step=1, start_layer=0)])
    assert len(p.controlled) == 4 and p.controlled[0] == []
    assert all(len(row) == 7 for row in p.controlled[1:])  # every self-attention layer of the tiny UNet
    assert len(result.controlled) == 4
    p.run(editor, MASA_SOURCE, MASA_TARGET, steps=2)  # a plain P2P run: no stale control from the last one
    kinds = [{p.unet_cells[k]["kind"] for k in row} for row in p.controlled]
    assert len(kinds) == 2 and kinds[0] >= {"cross"} and set().union(*kinds) <= {"cross", "self"}


@pytest.fixture(scope="module")
def pnp_run(editor):
    from p2p_widgets.engine.controls import PlugAndPlay

    image = editor.edit(MASA_SOURCE, [], steps=CONTROL_STEPS).images[0]
    inversion = editor.invert(image, "", method="ddim", steps=CONTROL_STEPS)
    p = AttentionPlayer(min_interval=1000.0)
    Recorder(p)
    rule = PlugAndPlay(feature_until=0.5, attention_until=0.34)
    result = p.run(editor, "", MASA_TARGET, steps=CONTROL_STEPS, rules=[rule], inversion=inversion)
    return p, result


def test_plug_and_play_marks_its_feature_module(pnp_run):
    from p2p_widgets.engine.controls import PNP_FEATURE

    p, result = pnp_run
    (feature,) = [k for k, c in enumerate(p.unet_cells) if c["kind"] == "feature"]
    cell = p.unet_cells[feature]
    assert (cell["name"], cell["block"]) == (PNP_FEATURE, "up 1")
    # in execution order: after the first attention of its block, before the second (resnet i, then attention i)
    names = [c["name"] for c in p.unet_cells]
    assert names.index("up_blocks.1.attentions.0.transformer_blocks.0.attn2.processor") < feature
    assert feature < names.index("up_blocks.1.attentions.1.transformer_blocks.0.attn1.processor")
    on = [feature in row for row in p.controlled]
    assert on == [True] * 3 + [False] * 3  # int(6 * 0.5) steps of features
    attention = [sorted(p.unet_cells[k]["kind"] for k in row if k != feature) for row in p.controlled]
    assert attention[:2] == [["self"] * 3] * 2 and attention[2:] == [[]] * 4  # int(6 * 0.34): Q, K of 3 layers


def test_cells_follow_the_unets_real_execution_order(tiny_pipe):
    import torch

    from p2p_widgets.stream.unet_layers import model_cells

    cells = model_cells(tiny_pipe, ["up_blocks.1.resnets.1.conv2", "down_blocks.0.resnets.0.conv1"])
    unet, seen, hooks = tiny_pipe.unet, [], []
    for c in cells:
        module = unet.get_submodule(c["name"].removesuffix(".processor"))
        hooks.append(module.register_forward_hook(lambda m, a, o, name=c["name"]: seen.append(name)))
    try:
        with torch.no_grad():
            unet(torch.zeros(1, 4, 16, 16), 10, encoder_hidden_states=torch.zeros(1, 77, 32))
    finally:
        for h in hooks:
            h.remove()
    assert seen == [c["name"] for c in cells]
    assert [c["depth"] for c in cells if c["kind"] == "self"] == [0, 1, 2, 1, 1, 0, 0]  # a U: down, mid, up


def test_show_controlled_for_a_finished_result(masactrl_run, editor):
    p, result, _ = masactrl_run
    fresh = AttentionPlayer()
    with pytest.raises(P2PError, match="model: pass the pipeline"):
        fresh.show_controlled(result)  # it streamed nothing: which UNet is unknown
    fresh.show_controlled(result, editor.pipe)
    assert (fresh.unet_cells, fresh.controlled, fresh.n_evals) == (p.unet_cells, p.controlled, CONTROL_STEPS)
    fresh.show_controlled([result.controlled[3]])  # per-step sets; the model is remembered
    assert fresh.controlled == [p.controlled[3]]
    with pytest.raises(P2PError, match="controlled has 7 steps but the player's run has 6"):
        fresh.show_controlled(result.controlled + [frozenset()])
    with pytest.raises(P2PError, match="does not have"):
        fresh.show_controlled([{("up_blocks.9.attentions.0.transformer_blocks.0.attn1.processor", "self")}])
    with pytest.raises(P2PError, match="controlled step 0"):
        fresh.show_controlled([{("a layer", "everything")}])
    with pytest.raises(P2PError, match="controlled must be"):
        fresh.show_controlled("up_blocks")
    with pytest.raises(P2PError, match="model must be a pipeline"):
        fresh.show_controlled(result, model=object())
    assert fresh.controlled == [p.controlled[3]]  # refused calls changed nothing


def test_strip_traits_are_validated():
    p = AttentionPlayer()
    cell = {"name": "mid_block.attentions.0.transformer_blocks.0.attn1.processor", "kind": "self", "block": "mid"}
    for bad, fragment in [
        ([cell], "unet_cells 0 must be"),
        ([{**cell, "depth": -1}], "unet_cells 0 must be"),
        ([{**cell, "depth": 0, "kind": "everything"}], "unet_cells 0 must be"),
    ]:
        with pytest.raises(traitlets.TraitError, match=fragment):
            p.unet_cells = bad
    p.unet_cells = [{**cell, "depth": 0}]
    with pytest.raises(traitlets.TraitError, match=r"controlled step 1 must be a list of cell indices in \[0, 0\]"):
        p.controlled = [[0], [1]]
    with pytest.raises(traitlets.TraitError, match="controlled step 0"):
        p.controlled = [0]
    p.controlled = [[], [0]]
    assert p.controlled_cells(1) == p.unet_cells


def test_unet_diagram_colours_what_the_rule_changed(masactrl_run, pnp_run, editor):
    from p2p_widgets import plots

    p, result, _ = masactrl_run
    fig = plots.unet_diagram(editor.pipe, result, step=3)
    cells = {t.name: t for t in fig.data if t.showlegend is False}
    assert set(cells) == {"self-attention", "cross-attention"}  # MasaCtrl hooks no module
    self_trace = cells["self-attention"]
    changed = [c[1] == "changed at this step" for c in self_trace.customdata]
    assert changed == [False, False, False, True, True, True, True]  # the up blocks' self-attention
    assert len(set(self_trace.marker.color)) == 2  # idle and the kind's colour
    early = plots.unet_diagram(editor.pipe, result, step=0).data
    assert all(c[1] == "left alone at this step" for t in early if t.showlegend is False for c in t.customdata)
    whole = plots.unet_diagram(editor.model.unet, result.controlled)  # a UNet, per-step sets: the share of the run
    shares = [c[1] for t in whole.data if t.name == "self-attention" and t.showlegend is False for c in t.customdata]
    assert shares[-1] == f"changed in {4 / 6:.0%} of the 6 steps" and shares[0] == "changed in 0% of the 6 steps"
    labels = [a.text for a in whole.layout.annotations]
    assert labels == ["down 0", "down 1", "mid", "up 0", "up 1"]
    pnp = plots.unet_diagram(editor.pipe, pnp_run[1])
    (feature,) = [t for t in pnp.data if t.name == "module output" and t.showlegend is False]
    assert feature.customdata[0][0] == "up_blocks.1.resnets.1.conv2" and "50%" in feature.customdata[0][1]
    with pytest.raises(P2PError, match=r"step must be None or a step of the run in \[0, 5\]"):
        plots.unet_diagram(editor.pipe, result, step=6)
    with pytest.raises(P2PError, match="does not have"):
        plots.unet_diagram(
            editor.pipe, [{("up_blocks.7.resnets.0.conv1", "feature"), ("nowhere.attn1.processor", "self")}]
        )
