"""Layer 3: the AttentionPlayer bundle in real Chromium: it paints frames (checked by pixels),
scrubbing changes the frame, a live run streams in, and a fresh page gets the frames replayed."""

import numpy as np
import pytest

from p2p_widgets.stream.frames import decode_frame, encode_frame, heat_lut, run_header
from p2p_widgets.widgets.player import AttentionPlayer

pytestmark = pytest.mark.browser

TOKENS = [
    ["<|startoftext|>", "a", "red", "cat", "<|endoftext|>"],
    ["<|startoftext|>", "a", "blue", "cat", "<|endoftext|>"],
]
PROMPTS = [{"text": "a red cat", "tokens": TOKENS[0]}, {"text": "a blue cat", "tokens": TOKENS[1]}]


def base_state(**extra):
    state = {
        "error": "",
        "status": "idle",
        "run_id": 0,
        "n_evals": 0,
        "prompts": [],
        "grids": [],
        "step": 0,
        "playing": False,
        "follow": True,
        "tokens": [[0, 2], [1, 2]],
        "resolution": 0,
        "normalize": "token",
        "opacity": 1.0,
        "fps": 6.0,
    }
    state.update(extra)
    return state


def solid(colour, size=16):
    return np.broadcast_to(np.array(colour, np.uint8), (size, size, 3)).copy()


def synthetic_frame(step, colours, left_hot=True, run=1):
    """Two 16x16 previews of solid colours; token 2's map is hot on the left (or right) half."""
    images = np.stack([solid(c) for c in colours])
    m = np.zeros((2, 4, 4, 5), np.float32)
    half = slice(0, 2) if left_hot else slice(2, 4)
    m[:, :, half, 2] = 0.3
    m[:, :, :, 1] = 0.1
    return encode_frame(run=run, step=step, timestep=900 - step, images=images, maps={(4, 4): m}, n_tokens=5)


def canvas_pixels(page, selector):
    data = page.evaluate(
        """(sel) => {
            const c = document.querySelector(sel);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
            return [c.width, c.height, Array.from(d.data)];
        }""",
        selector,
    )
    w, h, flat = data
    return np.array(flat, np.uint8).reshape(h, w, 4)


def wait_drawn(page, step, selector=".p2p-player__canvas"):
    page.page.wait_for_function(
        """([sel, step]) => { const cs = [...document.querySelectorAll(sel)];
            return cs.length > 0 && cs.every((c) => c.dataset.drawnStep === String(step)); }""",
        arg=[selector, step],
        timeout=10_000,
    )


def test_player_paints_previews_and_heat_maps(widget_page):
    page = widget_page("player", state=base_state())
    page.receive(run_header(1, PROMPTS, 4))
    f = synthetic_frame(0, [(255, 0, 0), (0, 0, 255)])
    page.receive(f.content, f.buffers)
    wait_drawn(page, 0)
    src = canvas_pixels(page.page, '.p2p-player__row[data-prompt="0"] .p2p-player__canvas--preview')
    edit = canvas_pixels(page.page, '.p2p-player__row[data-prompt="1"] .p2p-player__canvas--preview')
    assert src.shape == (16, 16, 4)
    assert (src[..., :3] == (255, 0, 0)).all() and (src[..., 3] == 255).all()
    assert (edit[..., :3] == (0, 0, 255)).all()
    heat = canvas_pixels(page.page, '.p2p-player__row[data-prompt="0"] .p2p-player__canvas--heat')
    lut = heat_lut()
    # opacity 1, per-token scale: the hot half is the top of the colour map, the cold half its bottom
    assert np.abs(heat[:, :8, :3].astype(int) - lut[255]).max() <= 1
    assert np.abs(heat[:, 8:, :3].astype(int) - lut[0]).max() <= 1
    assert page.text('.p2p-player__row[data-prompt="0"] .p2p-player__canvas--heat + figcaption') == "red"
    page.screenshot("player_synthetic")


def test_scrubbing_changes_the_frame(widget_page):
    page = widget_page("player", state=base_state())
    page.receive(run_header(1, PROMPTS, 4))
    for step, colours, left in [(0, [(255, 0, 0)] * 2, True), (2, [(0, 255, 0)] * 2, False)]:
        f = synthetic_frame(step, colours, left)
        page.receive(f.content, f.buffers)
    wait_drawn(page, 2)  # follows the newest frame
    preview = '.p2p-player__row[data-prompt="0"] .p2p-player__canvas--preview'
    heat = '.p2p-player__row[data-prompt="1"] .p2p-player__canvas--heat'
    assert (canvas_pixels(page.page, preview)[..., :3] == (0, 255, 0)).all()
    hot_right = canvas_pixels(page.page, heat)
    page.page.locator(".p2p-player").focus()
    page.page.keyboard.press("ArrowLeft")  # back to step 0
    wait_drawn(page, 0)
    assert (canvas_pixels(page.page, preview)[..., :3] == (255, 0, 0)).all()
    hot_left = canvas_pixels(page.page, heat)
    assert not np.array_equal(hot_left, hot_right)
    assert np.array_equal(hot_left[:, :8], hot_right[:, 8:])  # the hot half moved sides
    # the slider scrubs too, and the released position reaches the model
    page.page.locator(".p2p-player__slider").fill("3")
    wait_drawn(page, 2)
    assert page.get("step") == 3 and page.get("follow") is False
    assert "showing 3" not in page.text(".p2p-player__step")
    assert page.text(".p2p-player__step").startswith("step 4 / 4 (showing 2)")


def test_live_run_streams_into_the_page(widget_page, editor):
    player = AttentionPlayer(min_interval=0.0, max_share=1.0)
    page = widget_page(player)
    result = player.run(editor, "a red cat on a mat", "a blue dog on a mat", steps=4, seed=0)
    page.page.wait_for_function("() => document.querySelector('.p2p-player').dataset.status === 'done'")
    assert page.page.locator(".p2p-player").get_attribute("data-frames") == "4"
    wait_drawn(page, 3)
    last = decode_frame(*_last_frame(player))
    edit = canvas_pixels(page.page, '.p2p-player__row[data-prompt="1"] .p2p-player__canvas--preview')
    assert np.array_equal(edit[..., :3], last["images"][1])  # the PNG preview, pixel for pixel
    assert len(result.images) == 2
    # choosing a token in the page reaches Python
    page.click('.p2p-player__chip[data-prompt="1"][data-token="1"]')
    page.sync()
    assert [1, 1] in player.tokens and player.error == ""
    page.screenshot("player_live")


def _last_frame(player):
    f = player._cache.get(player.cached_steps[-1])
    return f.content, f.buffers


def test_a_fresh_page_gets_the_frames_replayed(widget_page, editor):
    player = AttentionPlayer()
    player.send = lambda *a, **k: None  # streamed before any page was open (or the page was reloaded)
    player.run(editor, "a red cat on a mat", "a blue dog on a mat", steps=3, seed=0)
    page = widget_page(player)
    (request,) = page.wait_for_sent("replay")
    assert request["content"] == {"type": "replay", "run": None, "have": []}
    page.sync()  # Python answers from its cache
    page.page.wait_for_function("() => document.querySelector('.p2p-player').dataset.frames === '3'")
    wait_drawn(page, 2)
    assert page.page.locator(".p2p-player").get_attribute("data-status") == "done"


def test_two_views_share_the_frames_and_a_bad_frame_is_reported(widget_page):
    page = widget_page("player", state=base_state(), views=2)
    page.receive(run_header(1, PROMPTS, 4))
    f = synthetic_frame(0, [(9, 9, 9)] * 2)
    page.receive(f.content, f.buffers)
    page.page.wait_for_function(
        "() => [...document.querySelectorAll('.p2p-player')].every((r) => r.dataset.frames === '1')"
    )
    page.receive(f.content, f.buffers[:-1])
    (err,) = page.wait_for_sent("client_error")
    assert "frame needs 4 buffers" in err["content"]["message"]
    assert page.unmount() == 0


def test_scrubbing_never_leaves_later_runs_on_step_one(widget_page):
    page = widget_page("player", state=base_state())
    follow = page.page.locator(".p2p-player__follow input")
    slider = page.page.locator(".p2p-player__slider")
    # a finished run: scrubbing back leaves follow-live as it is
    page.receive(run_header(1, PROMPTS, 4))
    for step in range(4):
        f = synthetic_frame(step, [(step * 60, 0, 0)] * 2)
        page.receive(f.content, f.buffers)
    page.receive({"type": "end", "run": 1, "status": "done", "steps": 4})
    wait_drawn(page, 3)
    slider.fill("0")
    wait_drawn(page, 0)
    assert follow.is_checked() and page.get("follow") is True

    # during a live run scrubbing pauses following, and says so
    page.receive(run_header(2, PROMPTS, 4))
    for step in range(2):
        f = synthetic_frame(step, [(0, step * 60, 0)] * 2, run=2)
        page.receive(f.content, f.buffers)
    wait_drawn(page, 1)
    slider.fill("0")
    wait_drawn(page, 0)
    assert not follow.is_checked()
    assert "not following" in page.text(".p2p-player__step")
    # ... for that run only: the next run follows again and ends on its last step, not on noise
    page.receive(run_header(3, PROMPTS, 4))
    for step in range(4):
        f = synthetic_frame(step, [(0, 0, step * 60)] * 2, run=3)
        page.receive(f.content, f.buffers)
    page.receive({"type": "end", "run": 3, "status": "done", "steps": 4})
    wait_drawn(page, 3)
    assert follow.is_checked() and page.get("follow") is True


def strip_on(page):
    return page.page.evaluate(
        "() => [...document.querySelectorAll('.p2p-player__unetcells .p2p-player__cell')]"
        ".filter((c) => c.dataset.on === 'true').map((c) => Number(c.dataset.index))"
    )


def test_the_unet_strip_follows_the_step_slider(widget_page, editor):
    from p2p_widgets.engine.controls import MutualSelfAttention

    player = AttentionPlayer(min_interval=0.0, max_share=1.0)
    page = widget_page(player)
    player.run(
        editor,
        "a red cat on a mat",
        "a blue dog on a mat",
        steps=4,
        seed=0,
        rules=[MutualSelfAttention(start_step=2, start_layer=0)],
    )
    page.page.wait_for_function("() => document.querySelector('.p2p-player').dataset.status === 'done'")
    wait_drawn(page, 3)
    strip = page.page.locator(".p2p-player__unet")
    assert strip.is_visible()
    blocks = page.page.locator(".p2p-player__blocklabel").all_text_contents()
    assert blocks == ["down 0", "down 1", "mid", "up 0", "up 1"]
    selfs = [k for k, c in enumerate(player.unet_cells) if c["kind"] == "self"]
    assert strip_on(page) == selfs == player.controlled[3]  # MasaCtrl from layer 0: every self-attention layer
    slider = page.page.locator(".p2p-player__slider")
    slider.focus()
    for _ in range(2):
        page.page.keyboard.press("ArrowLeft")
    wait_drawn(page, 1)
    assert strip_on(page) == [] == player.controlled[1]  # before its start step: nothing under control
    assert page.text(".p2p-player__unetsummary") == "step 2: no layer under the rule's control"
    page.page.keyboard.press("ArrowRight")
    wait_drawn(page, 2)
    assert strip_on(page) == selfs
    assert (
        page.text(".p2p-player__unetsummary")
        == "step 3: self-attention in 7 of 7 layers (down 0, down 1, mid, up 0, up 1)"
    )
    # colours: a changed self-attention cell is filled with its kind's colour, an idle one is not
    fills = page.page.evaluate(
        "() => ['true', 'false'].map((on) => getComputedStyle(document.querySelector("
        "`.p2p-player__unetcells .p2p-player__cell[data-on='${on}']`)).backgroundColor)"
    )
    assert fills == ["rgb(46, 125, 50)", "rgba(0, 0, 0, 0)"]
    page.screenshot("player_unet_strip")
