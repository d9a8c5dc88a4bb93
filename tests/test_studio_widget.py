"""Studio (Python side): composition, runs in a worker thread, Stop, errors in the panel,
export/import of the edit, images and GIF. Uses the tiny fixture pipeline except where noted."""

import io
import json
import threading

import numpy as np
import pytest
import torch

from p2p_widgets.errors import P2PError
from p2p_widgets.stream.frames import decode_image
from p2p_widgets.widgets.player import AttentionPlayer
from p2p_widgets.widgets.studio import Studio, StudioPanel

SOURCE = "a red cat on a mat"
TARGET = "a blue dog on a mat"


class Sink:
    def __init__(self, widget):
        self.messages = []
        widget.send = lambda content, buffers=None: self.messages.append((content, [bytes(b) for b in buffers or []]))


@pytest.fixture
def studio(editor):
    s = Studio(editor=editor, source=SOURCE, target=TARGET, steps=4, guidance=7.5)
    Sink(s.player)
    Sink(s.panel)
    yield s
    if s.running:
        s.stop()
        s.wait(30)


def test_composes_panel_aligner_timeline_and_player(studio):
    from p2p_widgets.widgets.aligner import TokenAligner
    from p2p_widgets.widgets.timeline import AlphaTimeline

    panel, aligner, timeline, player = studio.children
    assert isinstance(panel, StudioPanel) and isinstance(player, AttentionPlayer)
    assert isinstance(aligner, TokenAligner) and isinstance(timeline, AlphaTimeline)
    assert panel.has_aligner and panel.has_timeline
    assert (aligner.source, aligner.target, timeline.target, timeline.n_evals) == (SOURCE, TARGET, TARGET, 4)
    assert panel.target_words == ["a", "blue", "dog", "on", "mat"]


def test_settings_flow_into_the_parts(studio):
    studio.panel.reweight = {"dog": 2.0, "blue": 1.0}  # 1 means unchanged and is dropped
    assert studio.panel.reweight == {"dog": 2.0}
    studio.panel.target = "a blue bird on a mat"
    assert studio.aligner.target == studio.timeline.target == "a blue bird on a mat"
    assert studio.panel.reweight == {}  # "dog" is gone from the target
    studio.panel.steps = 10
    assert studio.timeline.n_evals == 10 and studio.children[2] is studio.timeline
    assert studio.timeline.windows["cross"] == [0, 8]  # 0.8 of the run, as before
    from p2p_widgets.engine.mapper import align

    before = [list(x) for x in studio.aligner.links]
    studio.panel.kind = "refine"  # the alignment select re-aligns the aligner
    src, tgt = studio.panel.prompt(SOURCE), studio.panel.prompt("a blue bird on a mat")
    refine = [
        [i, j, w]
        for i, j, w in align(src, tgt, studio.editor.tokenizer, "refine").links
        if i < src.n_tokens and j < tgt.n_tokens
    ]
    assert studio.aligner.links == refine != before
    assert studio.spec().rules[0]["rule"] == "Refine"


def test_prompts_edited_in_the_aligner_reach_the_panel(studio):
    studio.aligner.set_state({"target": "a blue bird on a mat"})  # typed into the aligner's box
    assert studio.aligner.error == ""
    assert studio.panel.target == studio.timeline.target == "a blue bird on a mat"
    assert "bird" in studio.panel.target_words
    assert studio.spec().rules[0]["mapper"]["target"] == "a blue bird on a mat"


def test_run_message_runs_in_a_worker_thread(studio):
    studio.panel._handle_custom_msg({"type": "run"}, [])
    result = studio.wait(60)
    p = studio.panel
    assert (p.status, p.progress, p.error) == ("done", [4, 4], "")
    assert [im["label"] for im in p.images] == ["source", "edit"]
    assert all(decode_image(im["png"]).shape == (64, 64, 3) for im in p.images)
    assert np.array_equal(decode_image(p.images[1]["png"]), np.asarray(result.images[1]))
    assert json.loads(p.spec_json)["prompts"] == [SOURCE, TARGET]
    assert studio.player.cached_steps == [0, 1, 2, 3] and studio.player.status == "done"


def test_a_prompt_the_panel_refuses_is_refused_in_the_aligner_too(studio):
    """An empty target typed into the aligner was kept there (its links re-made for it) while the
    panel refused it: Run then used the aligner's links against the panel's prompt."""
    links = [list(x) for x in studio.aligner.links]
    studio.aligner.set_state({"target": "   "})
    assert "empty" in studio.aligner.error
    assert studio.aligner.target == studio.panel.target == TARGET
    assert [list(x) for x in studio.aligner.links] == links
    studio.aligner.set_state({"target": "a blue bird on a mat"})  # what the panel takes, it takes
    assert studio.aligner.error == "" and studio.panel.target == "a blue bird on a mat"


def test_without_a_timeline_word_windows_follow_the_target(editor):
    """The panel shows no word rows without a timeline, yet it kept a loaded row for a word the
    new target lacks (every Run then failed) and took rows for words of neither prompt."""
    studio = Studio(editor=editor, source=SOURCE, target=TARGET, steps=4, timeline=False)
    Sink(studio.panel), Sink(studio.player)
    studio.panel.windows = {**studio.panel.windows, "words": [["dog", 0, 2]]}
    studio.panel.set_state({"target": "a blue bird on a mat"})
    assert studio.panel.windows["words"] == []
    studio.run(background=False)
    assert studio.panel.status == "done"
    studio.panel.set_state({"windows": {**studio.panel.windows, "words": [["zebra", 0, 2]]}})
    assert "zebra" in studio.panel.error and studio.panel.windows["words"] == []


def test_stop_message_ends_a_run_early_and_the_studio_runs_again(studio):
    reached, release = threading.Event(), threading.Event()

    def gate(event):
        if event.step == 1:
            reached.set()
            release.wait(30)

    studio.panel.steps = 12
    studio.run(callback=gate)
    assert reached.wait(60)
    assert studio.panel.status == "running"
    studio.panel._handle_custom_msg({"type": "stop"}, [])  # what the Stop button sends
    assert studio.panel.status == "stopping"
    release.set()
    result = studio.wait(60)
    assert result.stopped and studio.panel.status == "stopped"
    assert studio.panel.progress == [2, 12]
    assert studio.panel.images[1]["label"] == "edit (stopped early)"
    assert studio.player.status == "stopped" and studio.player.cached_steps == [0, 1]

    studio.run()
    again = studio.wait(60)
    assert not again.stopped and studio.panel.status == "done" and studio.panel.progress == [12, 12]


def _run_held_at(studio, step):
    """Start a background run that waits at ``step``; returns, once it is there, the event that lets it go on."""
    reached, release = threading.Event(), threading.Event()

    def gate(event):
        if event.step == step:
            reached.set()
            release.wait(30)

    studio.run(callback=gate)
    assert reached.wait(60)
    return release


def test_stop_as_the_run_finishes_leaves_the_studio_usable(studio, monkeypatch):
    """Stop read status 'running', the worker then wrote 'done', and Stop wrote 'stopping' over it:
    no thread behind it, so Run was refused and the settings frozen for good."""
    finish = _run_held_at(studio, 3)
    status = type(StudioPanel.status)
    plain_get = status.__get__

    def get_then_let_the_run_finish(self, obj, cls=None):
        value = plain_get(self, obj, cls)
        if obj is studio.panel and value == "running" and threading.current_thread() is threading.main_thread():
            finish.set()  # the worker finishes between Stop's read of the status and its write
            for _ in range(40):  # bounded: with the fix the worker waits for Stop to finish first
                if plain_get(self, obj, cls) != "running":
                    break
                threading.Event().wait(0.05)
        return value

    monkeypatch.setattr(status, "__get__", get_then_let_the_run_finish)
    studio.stop()
    monkeypatch.undo()
    studio.wait(60)
    assert studio.panel.status in ("done", "stopped") and not studio.running
    studio.panel.seed = 3  # settings are free again
    studio.run()
    assert not studio.wait(60).stopped and studio.panel.status == "done"


def test_the_aligner_and_timeline_take_no_edits_during_a_run(studio):
    """Only the panel froze during a run: links, prompts and windows edited in the aligner or the
    timeline went through (and into the panel), so the settings shown no longer made the results."""
    release = _run_held_at(studio, 1)
    try:
        links, windows = [list(x) for x in studio.aligner.links], studio.timeline.windows
        studio.aligner.set_state({"target": "a blue bird on a mat"})
        assert "run is in progress" in studio.aligner.error
        assert studio.aligner.target == studio.panel.target == TARGET
        studio.timeline.set_state({"windows": {**windows, "cross": [0, 1]}})
        assert "run is in progress" in studio.timeline.error and studio.timeline.windows == windows
        studio.aligner._handle_custom_msg({"type": "auto_align", "kind": "refine"}, [])
        assert "run is in progress" in studio.aligner.error and [list(x) for x in studio.aligner.links] == links
        studio.aligner.set_state({"show_special": True})  # what is shown, not the edit: allowed
        assert studio.aligner.show_special
    finally:
        release.set()
    studio.wait(60)
    studio.aligner.set_state({"target": "a blue bird on a mat"})  # after the run: taken
    assert studio.panel.target == "a blue bird on a mat"


def test_a_second_run_while_running_is_refused(studio):
    reached, release = threading.Event(), threading.Event()
    studio.run(callback=lambda e: (reached.set(), release.wait(30)) if e.step == 0 else None)
    assert reached.wait(60)
    studio.panel._handle_custom_msg({"type": "run"}, [])
    assert "a run is in progress" in studio.panel.error
    studio.panel.set_state({"seed": 5})  # settings are frozen during a run
    assert "while a run is in progress" in studio.panel.error and studio.panel.seed == 0
    release.set()
    studio.wait(60)
    assert studio.panel.status == "done"


def test_a_failing_run_shows_its_error_and_the_studio_stays_usable(studio, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(studio.editor, "run", broken)
    studio.run()
    with pytest.raises(RuntimeError):
        studio.wait(60)
    assert studio.panel.status == "error"
    assert "the GPU caught fire" in studio.panel.error
    monkeypatch.undo()
    studio.run()
    studio.wait(60)
    assert studio.panel.status == "done" and studio.panel.error == ""


def test_errors_building_the_edit_show_in_the_panel(studio, monkeypatch):
    def bad_mapper():
        raise P2PError("word 'zebra' is not in the prompt")

    monkeypatch.setattr(studio, "mapper", bad_mapper)
    studio.panel._handle_custom_msg({"type": "run"}, [])  # the Run button
    assert "zebra" in studio.panel.error and studio.panel.status == "error"
    assert not studio.running
    monkeypatch.undo()
    studio.panel._handle_custom_msg({"type": "run"}, [])
    studio.wait(60)
    assert studio.panel.status == "done" and studio.panel.error == ""


@pytest.mark.parametrize(
    "update,message",
    [
        ({"seed": -5}, "seed"),
        ({"steps": 0}, "steps"),
        ({"guidance": 99.0}, "guidance"),
        ({"target": "cat " * 90}, "tokens"),
        ({"reweight": {"zebra": 2.0}}, "not a word of the target"),
        ({"reweight": {"dog": 50}}, "outside"),
        ({"blend_words": ["zebra"]}, "neither prompt"),
        ({"windows": {"cross": [0, 9], "self_attn": [0, 1], "blend_start": 0}}, "cross window"),
        ({"status": "done"}, "cannot be set from the page"),
        ({"images": []}, "cannot be set from the page"),
    ],
)
def test_bad_front_end_writes_set_error_and_change_nothing(studio, update, message):
    before = {k: getattr(studio.panel, k) for k in ("seed", "steps", "guidance", "target", "reweight", "status")}
    studio.panel.set_state(update)
    assert message in studio.panel.error
    assert {k: getattr(studio.panel, k) for k in before} == before


def test_bad_messages_set_error(studio):
    for content, message in [
        ({"type": "load_spec", "text": "{nope"}, "not JSON text"),
        ({"type": "load_spec"}, "'text'"),
        ({"type": "export_gif"}, "no frames"),
        ({"type": "launch_rockets"}, "unknown message type"),
    ]:
        studio.panel.clear_error()
        studio.panel._handle_custom_msg(content, [])
        assert message in studio.panel.error
    studio.run(background=False)
    assert studio.panel.status == "done"


@pytest.mark.parametrize(
    "text, says",
    [
        (
            '{"format": "p2p-edit", "version": 2}',
            "is not an edit saved by p2p_widgets (format 'p2p-edit'; an edit's is 'p2p_widgets.edit')",
        ),
        ("{nope", "is not JSON text"),
        ("[1, 2]", "is not an edit saved by p2p_widgets (a JSON list, not an object)"),
        ('{"prompts": ["a"]}', "could not be loaded as an edit: "),
        ('{"format": "p2p_widgets.edit", "version": 2, "prompts": []}', "could not be loaded as an edit: "),
    ],
)
def test_a_malformed_edit_file_says_what_the_user_did_and_what_the_file_must_be(studio, text, says):
    before = (studio.panel.seed, studio.panel.target)
    studio.panel._handle_custom_msg({"type": "load_spec", "text": text, "name": "mine.json"}, [])
    error = studio.panel.error
    assert error.startswith("Loading mine.json: the file ") and says in error, error
    assert "load_spec" not in error  # the message type is no word for the user
    if "could not be loaded" not in says:  # what the file must be, and where one comes from
        assert "'Export edit JSON'" in error and "save_edit" in error, error
    assert (studio.panel.seed, studio.panel.target) == before
    studio.panel._handle_custom_msg({"type": "load_spec", "text": "{nope"}, [])  # no name: still plain words
    assert studio.panel.error.startswith("Loading the edit file: the file is not JSON text")


def test_run_right_after_a_refused_write_runs_nothing(studio):
    """Ctrl+Enter in a prompt sends its write and the run together: a refused prompt must not
    start a run of the previous one (the page shows the refused text)."""
    panel = studio.panel
    panel._handle_custom_msg({"type": "write", "state": {"target": "cat " * 90}}, [])
    error = panel.error
    panel._handle_custom_msg({"type": "run"}, [])
    assert studio.result is None and panel.status == "idle" and panel.error == error and "77" in error
    panel._handle_custom_msg({"type": "write", "state": {"target": TARGET}}, [])  # fixed: runs again
    panel._handle_custom_msg({"type": "run"}, [])
    studio.wait(60)
    assert panel.status == "done" and panel.error == ""


def test_the_kernels_own_value_typed_back_clears_a_refusal(studio):
    """After a refused prompt the page's model holds the kernel's value again, so typing that value
    back changes nothing there: the page's "write" message still carries it (issue 23)."""
    panel = studio.panel
    panel.set_state({"target": ""})
    assert panel.error_field == "target" and panel.target == TARGET
    panel._handle_custom_msg({"type": "write", "state": {"target": TARGET}}, [])
    assert (panel.error, panel.error_field, panel.target) == ("", "", TARGET)
    panel.set_state({"seed": -3})
    panel._handle_custom_msg({"type": "write", "state": {"seed": -4}}, [])  # checked as any write
    assert panel.error_field == "seed" and "seed must be from 0" in panel.error and panel.seed == 0
    bad_states = [({"state": []}, "'state'"), ({"state": {}}, "'state'"), ({"state": {"status": "done"}}, "cannot")]
    for bad, message in bad_states:
        panel._handle_custom_msg({"type": "write", **bad}, [])
        assert message in panel.error and panel.status == "idle"


def test_exported_json_reloads_and_reruns_to_the_same_image(studio):
    studio.panel.reweight = {"blue": 1.5}
    studio.panel.blend_words = ["cat", "dog"]
    studio.panel.seed = 7
    studio.timeline.set_window("dog", 1, 3)
    first = studio.run(background=False)
    text = studio.to_json()
    spec = json.loads(text)
    assert spec["rules"][0]["values"] == {"blue": 1.5}
    assert spec["rules"][0]["base"]["schedule"]["words"] == {"dog": [1, 3]}
    assert spec["blend"]["words"] == ["cat", "dog"]

    # change everything, then load the export through the front end's message
    studio.panel.seed, studio.panel.reweight, studio.panel.blend_words = 1, {}, []
    studio.panel.target = "a green frog on a mat"
    studio.panel._handle_custom_msg({"type": "load_spec", "text": text}, [])
    assert studio.panel.error == ""
    assert (studio.panel.target, studio.panel.seed, studio.panel.reweight) == (TARGET, 7, {"blue": 1.5})
    assert studio.timeline.schedule.to_dict() == spec["rules"][0]["base"]["schedule"]
    again = studio.run(background=False)
    assert torch.equal(again.latents, first.latents)
    assert studio.panel.images[1]["png"] == decode_png_bytes(first)
    assert json.loads(studio.to_json()) == spec


def decode_png_bytes(result):
    from p2p_widgets.stream.frames import encode_image

    return encode_image(np.asarray(result.images[1]))


def test_reload_and_rerun_without_aligner_and_timeline(editor):
    s = Studio(
        editor=editor, source=SOURCE, target="a red cat sitting on a mat", steps=3, aligner=False, timeline=False
    )
    Sink(s.player)
    assert s.children == (s.panel, s.player) and not s.panel.has_aligner and not s.panel.has_timeline
    s.panel.kind = "refine"
    s.panel.windows = {"cross": [0, 2], "self_attn": [0, 1], "words": [], "blend_start": 0}
    first = s.run(background=False)
    text = s.to_json()
    s.panel.kind, s.panel.seed = "auto", 9
    s.load_json(text)
    assert torch.equal(s.run(background=False).latents, first.latents)


def test_load_rejects_specs_the_studio_cannot_hold(studio, editor):
    result = editor.edit(SOURCE, [TARGET, "a green frog on a mat"], steps=2)
    from p2p_widgets.engine.export import spec_to_json

    with pytest.raises(P2PError, match="one target"):
        studio.load_json(spec_to_json(result))
    studio.panel._handle_custom_msg({"type": "load_spec", "text": spec_to_json(result)}, [])
    assert "one target" in studio.panel.error


def test_images_and_gif_export(studio, tmp_path):
    from PIL import Image

    studio.panel.baseline = True
    studio.run(background=False)
    assert [im["label"] for im in studio.panel.images] == ["source", "edit", "without P2P (same seed)"]
    paths = studio.save_images(tmp_path)
    assert sorted(p.name for p in paths) == ["baseline.png", "edit.png", "source.png"]
    assert Image.open(paths[1]).size == (64, 64)
    sink = Sink(studio.panel)
    studio.panel._handle_custom_msg({"type": "export_gif"}, [])
    ((content, buffers),) = sink.messages
    assert content["type"] == "download" and content["mime"] == "image/gif"
    with Image.open(io.BytesIO(buffers[0])) as gif:
        assert gif.n_frames == 4


def test_default_studio_uses_the_pocket_model():
    from p2p_widgets.engine.defaults import POCKET_DEFAULTS

    POCKET_SOURCE, POCKET_TARGET = POCKET_DEFAULTS.source, POCKET_DEFAULTS.target

    s = Studio()
    Sink(s.player)
    p = s.panel
    assert (p.source, p.target, p.steps, p.guidance) == (POCKET_SOURCE, POCKET_TARGET, 25, 5.0)
    assert "pocket" in p.model_name and s.editor.default_size == 32
    p.steps = 3
    result = s.run(background=False)
    assert result.images[1].size == (32, 32) and p.status == "done"
    assert s.player.grids == [[16, 16], [8, 8]]


# -- real images ------------------------------------------------------------------------------------


def _png_bytes(side=80, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = np.full((side, side, 3), 120, np.uint8)
    img[20:50, 25:60] = (220, 40, 40)
    img = np.clip(img.astype(int) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_an_uploaded_image_is_inverted_and_edited(studio):
    from p2p_widgets.engine.inversion import clear_cache

    clear_cache(studio.editor)
    studio.panel.invert_method = "negative-prompt"
    studio.panel._handle_custom_msg({"type": "image", "name": "photo.png"}, [memoryview(_png_bytes())])
    p = studio.panel
    assert p.error == "" and p.input_name == "photo.png"
    assert decode_image(p.input_image).shape == (64, 64, 3)  # centre-cropped and resized to the model
    phases, progress = [], []
    p.observe(lambda c: phases.append(c["new"]), names=["phase"])
    p.observe(lambda c: progress.append(list(c["new"])), names=["progress"])
    p.baseline = True
    studio.run()
    result = studio.wait(60)
    assert phases == ["inverting (negative-prompt)", "sampling", ""]
    assert [4, 4] in progress[:5]  # the inversion's own progress came first
    assert [im["label"] for im in p.images] == ["input image", "reconstruction", "edit", "without P2P (same noise)"]
    assert np.array_equal(decode_image(p.images[0]["png"]), studio.image)
    spec = json.loads(p.spec_json)
    assert spec["start"] == "latents" and spec["inversion"]["method"] == "negative-prompt"

    # the same edit again: the inversion is cached, the result identical
    studio.run(background=False)
    assert torch.equal(studio.result.latents, result.latents)

    # the JSON reloads while that image is loaded; without it, it is refused with the reason
    studio.load_json(p.spec_json)
    assert p.error == "" and p.invert_method == "negative-prompt"
    studio.panel._handle_custom_msg({"type": "clear_image"}, [])
    assert studio.image is None and p.input_image == b""
    with pytest.raises(P2PError, match="load that image"):
        studio.load_json(spec)
    studio.run(background=False)
    assert [im["label"] for im in p.images] == ["source", "edit", "without P2P (same seed)"]


def test_null_text_inversion_in_the_studio_stops_cleanly(studio):
    studio.set_image(_png_bytes(64, seed=1), name="photo.png")
    studio.panel.invert_method = "null-text"
    studio.panel.steps = 6
    reached = threading.Event()
    studio.panel.observe(lambda c: reached.set() if c["new"][0] >= 8 else None, names=["progress"])
    studio.run()
    assert reached.wait(60)
    studio.stop()
    studio.wait(60)
    assert studio.panel.status == "stopped" and studio.panel.phase == ""
    assert studio.panel.images == []  # nothing was edited
    studio.panel.invert_method = "ddim"
    studio.run(background=False)
    assert studio.panel.status == "done" and len(studio.panel.images) == 3


@pytest.mark.parametrize(
    "buffers,message",
    [
        ([], "one buffer"),
        ([b"not an image"], "not an image file"),
        ([b""], "1 to"),
    ],
)
def test_bad_image_messages_set_error_and_keep_the_image(studio, buffers, message):
    studio.set_image(_png_bytes(), name="first.png")
    studio.panel._handle_custom_msg({"type": "image", "name": "x.png"}, [memoryview(b) for b in buffers])
    assert message in studio.panel.error
    assert studio.panel.input_name == "first.png" and studio.image is not None
    studio.panel._handle_custom_msg({"type": "image", "name": 5}, [memoryview(_png_bytes())])
    assert "'name'" in studio.panel.error
    studio.panel.set_state({"input_image": b"x"})  # Python writes the image trait, not the page
    assert "cannot be set from the page" in studio.panel.error


def test_a_spec_the_controls_cannot_hold_is_refused_before_anything_changes(studio, editor):
    """load_json used to drop LocalBlend's resolution, per-prompt blend words and a rule's
    self-attention limit (the rerun differed), and half-loaded specs beyond the panel's ranges."""
    from p2p_widgets.engine.blend import LocalBlend
    from p2p_widgets.engine.mapper import align
    from p2p_widgets.engine.rules import Replace
    from p2p_widgets.engine.schedule import AlphaSchedule

    LONGER = "a red zebracornish on a mat"  # noqa: N806
    longer = align(LONGER, TARGET, editor.tokenizer, compat="reference")
    assert not longer.aligned_by_links
    cases = {
        "a LocalBlend resolution": dict(blend=LocalBlend(["cat", "dog"], resolution=16)),
        # per-prompt lists that mark other tokens than their union would (the target's "cat" too)
        "LocalBlend words per prompt": dict(target="a blue dog by a cat", blend=[["cat"], ["dog"]]),
        "guidance above 50": dict(guidance=60.0),
        # the authors' swap from a longer word: the Studio rebuilds mappers from links alone
        "a mapper with aligned positions no link feeds": dict(
            source=LONGER, rules=[Replace(longer, AlphaSchedule.build(4))]
        ),
        "weights beyond": dict(reweight={"blue": 20.0}),
    }
    for what, kwargs in cases.items():
        source, target = kwargs.pop("source", SOURCE), kwargs.pop("target", TARGET)
        spec = editor.edit(source, target, steps=4, **kwargs).spec
        before = {k: getattr(studio.panel, k) for k in ("source", "target", "seed", "guidance", "reweight")}
        with pytest.raises(P2PError, match=f"cannot show {what}"):
            studio.load_json(spec.to_json())
        assert {k: getattr(studio.panel, k) for k in before} == before


def test_per_prompt_blend_words_load_as_the_one_list_that_marks_the_same_tokens(studio, editor):
    """Pocket-bench and PIE-Bench cases blend [[source word], [target word]]; the Studio refused
    to load them, though its one list of words marks the same tokens on these prompts."""
    from p2p_widgets.engine.blend import LocalBlend

    result = editor.edit(SOURCE, TARGET, steps=4, seed=2, blend=LocalBlend([["cat"], ["dog"]], start=0.5))
    studio.load_json(result.spec.to_json())
    assert studio.panel.blend_words == ["cat", "dog"]
    assert torch.equal(studio.run(background=False).latents, result.latents)


def test_a_spec_that_fails_half_way_through_loading_changes_nothing(studio, editor):
    """What _apply's panel validators refuse (a rule the panel does not combine with P2P; a word the
    engine matched through its punctuation, "dog" for "Dog,") was found half-way through: the
    prompts, seed and method were already replaced, and the error read 'internal error TraitError'."""
    from p2p_widgets.engine.controls import MutualSelfAttention
    from p2p_widgets.engine.mapper import align
    from p2p_widgets.engine.rules import Combine, Replace
    from p2p_widgets.engine.schedule import AlphaSchedule

    other = ("a green bird on a box", "a pink bird on a box")
    base = Replace(align(*other, editor.tokenizer), AlphaSchedule.build(4))
    combined = editor.edit(*other, steps=4, seed=7, rules=[Combine(base, MutualSelfAttention(union=True))]).spec
    punctuated = editor.edit("a red Cat, on a mat.", "a blue Dog, on a mat.", steps=4, reweight={"dog": 2.0}).spec
    studio.aligner.links = [[1, 1, 1.0], [2, 2, 0.5], [3, 3, 1.0]]  # hand-made: kept too
    keys = ("source", "target", "seed", "method", "combine_p2p", "reweight", "windows", "blend_words")
    for spec in (combined, punctuated):
        before = {k: getattr(studio.panel, k) for k in keys}
        links = [list(x) for x in studio.aligner.links]
        with pytest.raises(P2PError, match="the Studio cannot show"):
            studio.load_json(spec.to_json())
        assert {k: getattr(studio.panel, k) for k in keys} == before
        assert [list(x) for x in studio.aligner.links] == links
    studio.panel.method = "MutualSelfAttention"  # the refused spec's values were not kept for it
    assert studio.panel.method_values["union"] is False


def test_a_loaded_blend_start_reruns_as_saved(studio, editor):
    from p2p_widgets.engine.blend import LocalBlend

    result = editor.edit(SOURCE, TARGET, steps=4, seed=2, blend=LocalBlend(["cat", "dog"], start=0.5))
    studio.load_json(result.spec.to_json())
    assert torch.equal(studio.run(background=False).latents, result.latents)


def test_a_real_image_with_another_scheduler_is_refused_before_inverting(studio):
    studio.set_image(np.zeros((64, 64, 3), np.uint8))
    studio.panel.scheduler = "EulerDiscreteScheduler"
    with pytest.raises(P2PError, match="choose the DDIM scheduler"):
        studio.run(background=False)
    assert studio.panel.status != "running" and "DDIM" in studio.panel.error


# -- the method menu: every registered rule with declared parameters ---------------------------------


@pytest.fixture
def own_rule():
    """A rule registered inside the test (removed from the registry afterwards)."""
    from p2p_widgets.engine import rules as rules_module
    from p2p_widgets.engine.params import Param
    from p2p_widgets.engine.rules import ParamRule, register_rule

    @register_rule(name="StudioTestShare")
    class ShareSelf(ParamRule):
        """Test rule: a share of the source's self-attention in the chosen steps."""

        params = (
            Param("share", "float", 0.5, "share of the source's self-attention", low=0.0, high=1.0),
            Param("until", "int", 2, "last step, exclusive", low=0),
            Param("words", "words", (), "unused words"),
            Param("mode", "choice", "all", "which layers", choices=("all", "coarse")),
            Param("object", "words", None, "words of the source marking the object"),  # no default
        )

        def bind(self, source, target):
            self.positions = [k for w in self.object for k in source.positions(w)]

        def self_weight(self, ctx):
            return self.share if ctx.step < self.until else 0.0

    yield ShareSelf
    rules_module._REGISTRY.pop("StudioTestShare", None)


def test_the_method_menu_lists_p2p_and_every_registered_rule_with_parameters(studio, own_rule):
    from p2p_widgets.engine.rules import ParamRule, registered_rules, rule_class

    # every one that runs on a UNet: K/V injection edits joint attention (SD3, Flux) and is offered there
    expected = ["p2p"] + [n for n in registered_rules() if issubclass(rule_class(n), ParamRule) and n != "KVInjection"]
    assert "KVInjection" in registered_rules()
    assert "StudioTestShare" not in [m["name"] for m in studio.panel.methods]  # registered after the Studio
    studio.panel.set_state({"method": "StudioTestShare"})  # the menu is read again for a name it lacks
    assert studio.panel.error == "" and studio.panel.method == "StudioTestShare"
    menu = {m["name"]: m for m in studio.panel.methods}
    assert list(menu) == expected and {"MutualSelfAttention", "PlugAndPlay", "StyleAligned"} <= set(menu)
    assert "Replace" not in menu and "Combine" not in menu  # built from prompts, not from parameters
    entry = menu["StudioTestShare"]
    assert [p["name"] for p in entry["params"]] == ["share", "until", "words", "mode", "object"]
    assert entry["params"][0] == own_rule.params[0].describe()
    assert entry["help"].startswith("Test rule: a share") and entry["combinable"] and not entry["follows_inversion"]
    assert menu["PlugAndPlay"]["follows_inversion"]
    # each entry a human label (the class's own `label`, as the method's paper names it), its class kept
    labels = {name: (m["label"], m["class_name"]) for name, m in menu.items()}
    assert labels["p2p"][0] == "Prompt-to-Prompt"
    assert labels["MutualSelfAttention"] == ("MasaCtrl (mutual self-attention)", "MutualSelfAttention")
    assert labels["MaskedMutualSelfAttention"] == ("MasaCtrl with masks", "MaskedMutualSelfAttention")
    assert labels["PlugAndPlay"] == ("Plug-and-Play", "PlugAndPlay")
    assert labels["StyleAligned"] == ("StyleAligned", "StyleAligned")
    assert labels["StudioTestShare"] == ("StudioTestShare (Test rule)", "ShareSelf")  # no label: from its docstring
    # the defaults; "object" has none: the user fills it in
    assert studio.panel.method_values == {"share": 0.5, "until": 2, "words": [], "mode": "all", "object": None}
    fresh = Studio(editor=studio.editor, source=SOURCE, target=TARGET, steps=4, aligner=False, timeline=False)
    assert [m["name"] for m in fresh.panel.methods] == expected


@pytest.mark.parametrize(
    "values,param,words",
    [
        ({"start_step": -1}, "start_step", "start step must be at least 0; -1 is not"),
        ({"start_step": 2.5}, "start_step", "start step must be a whole number"),
        ({"start_step": "soon"}, "start_step", "start step must be a number; 'soon' is not"),
        ({"union": "yes"}, "union", "union must be on or off"),
        ({"end_layer": None, "start_step": None}, "start_step", "start step needs a value"),
        ({"heads": 2}, "heads", "has no parameter 'heads'"),
    ],
)
def test_a_bad_parameter_value_is_refused_naming_the_parameter(studio, values, param, words):
    p = studio.panel
    p.set_state({"method": "MutualSelfAttention", "method_values": {"start_step": 3}})
    assert p.error == "" and p.method_values["start_step"] == 3
    p.set_state({"method_values": {**p.method_values, **values}})
    assert words in p.error and "must be in [" not in p.error and "got" not in p.error  # plain words
    assert p.error_field == f"method_values.{param}"  # the page shows it beside that parameter
    assert p.method_values["start_step"] == 3  # nothing changed
    p.set_state({"method_values": {**p.method_values, **values}})  # the same bad value again: still refused
    assert words in p.error and p.error_field == f"method_values.{param}"
    p.set_state({"method_values": {**p.method_values, "start_step": 5}})  # fixed: the error goes
    assert (p.error, p.error_field, p.method_values["start_step"]) == ("", "", 5)


def test_an_empty_required_word_list_is_asked_for(studio):
    """MaskedMutualSelfAttention's source words must name a word (an empty list is plain MasaCtrl)."""
    p = studio.panel
    p.set_state({"method": "MaskedMutualSelfAttention"})
    p.set_state({"method_values": {**p.method_values, "source_words": []}})
    assert "source words needs a value" in p.error and p.error_field == "method_values.source_words"


def test_a_value_only_the_user_can_give_is_asked_for_beside_its_field(studio, own_rule):
    p = studio.panel
    p.set_state({"method": "StudioTestShare"})
    assert p.error == "" and p.method_values["object"] is None
    p._handle_custom_msg({"type": "run"}, [])  # the Run button
    assert p.error_field == "method_values.object"
    assert p.error == "object needs a value (words of the source marking the object)"
    p.set_state({"method_values": {**p.method_values, "object": ["zebra"]}})
    assert p.error == ""  # answered
    p._handle_custom_msg({"type": "run"}, [])
    assert p.error_field == "method_values.object" and "word 'zebra' is not in the prompt" in p.error
    assert studio.result is None and not studio.running
    p.set_state({"method_values": {**p.method_values, "object": ["cat"]}})
    result = studio.run(background=False)
    assert result.spec.rules[0] == {"rule": "StudioTestShare", **p.method_values}
    assert p.method_values["object"] == ["cat"]


def test_a_method_that_follows_an_inversion_needs_an_image_first(studio):
    studio.panel.set_state({"method": "PlugAndPlay"})
    with pytest.raises(P2PError, match="follows the inversion of a real image"):
        studio.run(background=False)
    studio.panel.clear_error()
    studio.panel._handle_custom_msg({"type": "run"}, [])  # the Run button: the message stays beside the menu
    assert "follows the inversion of a real image" in studio.panel.error
    assert studio.panel.error_field == "method" and studio.result is None and studio.panel.status != "running"
    studio.panel.set_state({"combine_p2p": True, "method": "MutualSelfAttention"})  # MasaCtrl runs from a seed
    assert studio.panel.error == ""  # the method's message went with the method
    assert studio.run(background=False).spec.rules[0]["rule"] == "Combine"


def test_p2p_combines_only_with_rules_that_keep_the_sources_keys(studio):
    p = studio.panel
    p.set_state({"method": "StyleAligned"})  # attends to both images' keys: P2P's self share cannot mix in
    assert not next(m for m in p.methods if m["name"] == "StyleAligned")["combinable"]
    p.set_state({"combine_p2p": True})
    assert "cannot run beside StyleAligned" in p.error and p.combine_p2p is False
    p.set_state({"method": "MutualSelfAttention"})
    p.set_state({"combine_p2p": True})
    assert p.error == "" and p.combine_p2p
    p.set_state({"method_values": {**p.method_values, "union": True}})  # union: both images' keys
    assert (p.error_field, p.method_values["union"]) == ("method_values.union", False)
    assert "untick 'combine with Prompt-to-Prompt' first" in p.error


def _round_trip(studio):
    """spec() -> JSON -> other settings -> load_json -> spec() again."""
    first = studio.spec()
    text = first.to_json()
    p = studio.panel
    p.set_state({"method": "p2p", "seed": 9, "reweight": {}})
    studio.load_json(text)
    assert p.error == ""
    return first, studio.spec()


@pytest.mark.parametrize(
    "method,values,combine",
    [
        ("p2p", {}, False),
        ("MutualSelfAttention", {"start_step": 1, "end_step": 3, "start_layer": 2, "union": True}, False),
        ("MutualSelfAttention", {"start_step": 2}, True),
        ("StyleAligned", {"adain_values": True, "share_attention": False}, False),
    ],
)
def test_spec_and_load_json_round_trip_for_each_method(studio, method, values, combine):
    p = studio.panel
    p.set_state({"method": method, "combine_p2p": combine, "reweight": {"blue": 1.5}, "seed": 3})
    p.set_state({"method_values": {**p.method_values, **values}})
    assert p.error == ""
    first, again = _round_trip(studio)
    assert again == first
    rule = first.rules[0]
    if method == "p2p":
        assert rule["rule"] == "Reweight"
    elif combine:
        assert rule["rule"] == "Combine" and [r["rule"] for r in rule["rules"]] == ["Reweight", method]
        assert {k: rule["rules"][1][k] for k in values} == values
    else:
        assert rule == {"rule": method, **p.method_values} and {k: rule[k] for k in values} == values
    assert (p.method, p.combine_p2p, p.seed) == (method, combine, 3)


def test_a_masactrl_edit_reruns_bitwise_after_reloading_and_its_windows_reach_the_timeline(studio):
    p = studio.panel
    p.set_state({"method": "MutualSelfAttention", "method_values": {"start_step": 1, "start_layer": 0}})
    first = studio.run(background=False)
    assert p.images[1]["label"] == "edit" and first.spec.rules[0]["rule"] == "MutualSelfAttention"
    if studio.timeline.has_trait("rule_windows"):  # the timeline's read-only bands, where it has them
        assert [(b["what"], b["start"], b["end"]) for b in studio.timeline.rule_windows] == [
            ("mutual self-attention", 1, 4)
        ]
    text = studio.to_json()
    p.set_state({"method": "p2p", "seed": 5})
    studio.load_json(text)
    assert torch.equal(studio.run(background=False).latents, first.latents)


def test_plug_and_play_on_an_image_under_the_empty_prompt_reruns_from_its_json(studio):
    p = studio.panel
    with pytest.raises(traitlets_error()):
        p.source = ""  # no image: an empty source prompt means nothing
    studio.set_image(_png_bytes(64, seed=2), name="photo.png")
    p.set_state({"method": "PlugAndPlay", "source": "", "invert_method": "null-text"})
    assert p.error == "" and p.source == ""
    with pytest.raises(P2PError, match="DDIM"):  # the optimised inversions need a caption
        studio.run(background=False)
    assert p.error_field == "invert_method"
    p.set_state({"invert_method": "ddim"})
    first = studio.run(background=False)
    assert [im["label"] for im in p.images] == ["input image", "reconstruction", "edit"]
    text = studio.to_json()
    assert json.loads(text)["rules"][0] == {"rule": "PlugAndPlay", "feature_until": 0.8, "attention_until": 0.5}
    with pytest.raises(P2PError, match="source prompt is empty"):
        studio.clear_image()  # nothing to start from without the image
    p.set_state({"method": "p2p", "source": SOURCE})
    studio.load_json(text)
    assert (p.method, p.source, p.invert_method) == ("PlugAndPlay", "", "ddim")
    assert torch.equal(studio.run(background=False).latents, first.latents)


def traitlets_error():
    import traitlets

    return traitlets.TraitError


def test_specs_the_studio_cannot_hold_name_what(studio, editor):
    from p2p_widgets.engine.controls import MutualSelfAttention, StyleAligned
    from p2p_widgets.engine.rules import Combine

    both = Combine(MutualSelfAttention(), StyleAligned())
    spec = editor.edit(SOURCE, TARGET, steps=4, rules=[both]).spec
    with pytest.raises(P2PError, match=r"Combine\(MutualSelfAttention, StyleAligned\)"):
        studio.load_json(spec.to_json())
    assert studio.panel.method == "p2p"


def test_the_tabs_show_one_section_and_work_during_a_run(studio):
    shown = lambda: [w.layout.display != "none" for w in (studio.player, studio.aligner, studio.timeline)]  # noqa: E731
    assert studio.panel.section == "playback" and shown() == [True, False, False]
    studio.panel.set_state({"section": "alignment"})
    assert shown() == [False, True, False]
    studio.show("schedule")
    assert shown() == [False, False, True]
    with pytest.raises(P2PError, match="section"):
        studio.show("gallery")
    studio.panel.steps = 6  # a new timeline replaces the old one: still the section shown
    assert shown() == [False, False, True] and studio.timeline.n_evals == 6
    studio.panel.status = "running"  # switching sections changes no setting: allowed mid-run
    studio.panel.set_state({"section": "playback"})
    studio.panel.set_state({"seed": 4})
    assert shown() == [True, False, False] and studio.panel.seed == 0
    studio.panel.status = "done"
    bare = Studio(editor=studio.editor, source=SOURCE, target=TARGET, steps=4, aligner=False, timeline=False)
    bare.panel.set_state({"section": "schedule"})
    assert "no schedule section" in bare.panel.error and bare.panel.section == "playback"


def test_changed_words_are_offered_first(studio):
    assert studio.panel.changed_words == {"source": ["red", "cat"], "target": ["blue", "dog"]}
    studio.panel.target = "a red cat sitting on a mat"
    assert studio.panel.changed_words == {"source": [], "target": ["sitting"]}
