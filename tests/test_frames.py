"""Frame encoding, throttling and the frame cache (p2p_widgets/frames.py): pure, no widgets."""

import json

import numpy as np
import pytest
import torch

from p2p_widgets.stream.frames import (
    HEAT_ANCHORS,
    Frame,
    FrameCache,
    FrameError,
    Throttle,
    decode_frame,
    decode_image,
    dequantize,
    encode_frame,
    encode_image,
    heat_lut,
    quantize,
    run_header,
)


def _image(h=8, w=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# -- images -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("webp", b"RIFF")])
def test_images_encode_losslessly(fmt, magic):
    image = _image()
    data = encode_image(image, fmt)
    assert isinstance(data, bytes) and data.startswith(magic)
    back = decode_image(data)
    assert back.dtype == np.uint8 and back.shape == (8, 12, 3)
    assert np.array_equal(back, image)


def test_flat_previews_compress_well():
    flat = np.full((64, 64, 3), 200, np.uint8)
    assert len(encode_image(flat)) < flat.nbytes / 20


@pytest.mark.parametrize(
    "bad,message",
    [
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((4, 4, 4), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((0, 4, 3), np.uint8), "sides"),
    ],
)
def test_bad_images_are_rejected(bad, message):
    with pytest.raises(FrameError, match=message):
        encode_image(bad)


def test_unknown_image_format():
    with pytest.raises(FrameError, match="png"):
        encode_image(_image(), "jpeg")


# -- quantisation -------------------------------------------------------------------------------------


def test_quantize_scales_each_map_to_its_own_peak():
    maps = np.stack([np.linspace(0, 0.5, 16).reshape(4, 4), np.linspace(0, 0.01, 16).reshape(4, 4), np.zeros((4, 4))])
    q, scales = quantize(maps)
    assert q.dtype == np.uint8 and q.shape == (3, 4, 4)
    assert scales.dtype == np.float32 and scales.shape == (3,)
    assert q[0].max() == 255 and q[1].max() == 255 and q[2].max() == 0
    assert scales.tolist() == pytest.approx([0.5, 0.01, 0.0])
    back = dequantize(q, scales)
    assert back.dtype == np.float32
    assert np.abs(back - maps).max() <= 0.5 / 255 / 2 + 1e-7  # within half a quantisation step


def test_quantize_accepts_torch_and_drops_negative_and_nan():
    t = torch.tensor([[[-1.0, float("nan")], [0.25, 0.5]]])
    q, scales = quantize(t)
    assert q.tolist() == [[[0, 0], [128, 255]]]
    assert scales.tolist() == [0.5]


# -- frames -------------------------------------------------------------------------------------------


def _maps(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        (8, 8): torch.rand(b, 8, 8, 77, generator=g),
        (16, 16): torch.rand(b, 16, 16, 77, generator=g),
    }


def test_frame_layout_sizes_and_dtypes():
    images = np.stack([_image(32, 32, 1), _image(32, 32, 2)])
    maps = _maps()
    frame = encode_frame(run=3, step=7, timestep=521, images=images, maps=maps, n_tokens=9)
    c = frame.content
    assert json.loads(json.dumps(c)) == c  # plain JSON, no arrays inside
    assert c == {
        "type": "frame",
        "run": 3,
        "step": 7,
        "timestep": 521,
        "mime": "image/png",
        "n_images": 2,
        "image_size": [32, 32],
        "tokens": 9,
        "grids": [[16, 16], [8, 8]],  # finest grid first
    }
    assert all(isinstance(b, bytes) for b in frame.buffers)
    assert len(frame.buffers) == 2 + 2 + 1
    png0, png1, fine, coarse, scales = frame.buffers
    assert np.array_equal(decode_image(png0), images[0]) and np.array_equal(decode_image(png1), images[1])
    assert len(fine) == 2 * 9 * 16 * 16 and len(coarse) == 2 * 9 * 8 * 8  # uint8: one byte per value
    assert len(scales) == 4 * 2 * 2 * 9  # float32 (grids, prompts, tokens)
    assert frame.nbytes == sum(len(b) for b in frame.buffers)


def test_frame_round_trip_keeps_only_the_first_tokens():
    images = np.stack([_image(16, 16, 3), _image(16, 16, 4)])
    maps = _maps(seed=5)
    frame = encode_frame(run=1, step=0, timestep=999, images=images, maps=maps, n_tokens=5)
    d = decode_frame(frame.content, frame.buffers)
    assert d["step"] == 0 and d["timestep"] == 999
    assert set(d["maps"]) == {(16, 16), (8, 8)}
    for grid, m in maps.items():
        q, s = d["maps"][grid], d["scales"][grid]
        assert q.dtype == np.uint8 and q.shape == (2, 5, *grid)
        assert s.dtype == np.float32 and s.shape == (2, 5)
        want = m[..., :5].permute(0, 3, 1, 2).numpy()
        assert np.abs(dequantize(q, s) - want).max() < 1.0 / 255
    assert all(np.array_equal(a, b) for a, b in zip(d["images"], images, strict=True))


def test_frame_rejects_mismatched_maps():
    images = np.stack([_image(16, 16)])
    with pytest.raises(FrameError, match="maps at"):
        encode_frame(run=1, step=0, timestep=1, images=images, maps=_maps(b=2), n_tokens=4)
    with pytest.raises(FrameError, match="n_tokens"):
        encode_frame(run=1, step=0, timestep=1, images=images, maps=_maps(b=1), n_tokens=0)
    with pytest.raises(FrameError, match="at one grid"):
        encode_frame(run=1, step=0, timestep=1, images=images, maps={}, n_tokens=4)


def test_decode_rejects_wrong_buffers():
    frame = encode_frame(run=1, step=0, timestep=1, images=np.stack([_image(16, 16)]), maps=_maps(b=1), n_tokens=3)
    with pytest.raises(FrameError, match="buffers"):
        decode_frame(frame.content, frame.buffers[:-1])
    short = list(frame.buffers)
    short[1] = short[1][:-1]
    with pytest.raises(FrameError, match="bytes"):
        decode_frame(frame.content, short)
    with pytest.raises(FrameError, match="integer"):
        decode_frame({**frame.content, "step": "3"}, frame.buffers)


def test_run_header(tokenizer):
    from p2p_widgets.engine.prompts import Prompt

    prompts = [Prompt.from_text(t, tokenizer) for t in ("a red cat", "a blue cat")]
    header = run_header(4, prompts, 25)
    assert header == {
        "type": "run",
        "run": 4,
        "n_evals": 25,
        "mime": "image/png",
        "prompts": [
            {"text": "a red cat", "tokens": list(prompts[0].tokens)},
            {"text": "a blue cat", "tokens": list(prompts[1].tokens)},
        ],
    }
    assert json.loads(json.dumps(header)) == header
    with pytest.raises(FrameError):
        run_header(1, [])


# -- throttle -----------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_throttle_always_sends_first_and_last():
    clock = FakeClock()
    th = Throttle(min_interval=10.0, max_share=0.01, clock=clock)
    assert th.due(0, 20)
    th.record(0.5)
    clock.t += 1.0
    assert not th.due(5, 20)  # too soon and over budget
    assert th.due(19, 20)  # the last step goes whatever the budget
    assert th.due(7, 20, last=True)  # a stopped run's last step too


def test_throttle_keeps_sending_within_its_share_of_sampling_time():
    clock = FakeClock()
    step_time, send_cost, n = 0.09, 0.012, 200
    th = Throttle(min_interval=0.05, max_share=0.05, clock=clock)
    sent = []
    for step in range(n):
        clock.t += step_time  # the UNet evaluation
        if th.due(step, n):
            clock.t += send_cost
            th.record(send_cost)
            sent.append(step)
    sampling = n * step_time
    assert th.spent == pytest.approx(len(sent) * send_cost)
    assert th.spent / sampling <= 0.05 + 2 * send_cost / sampling  # budget plus the forced last frame
    assert 10 <= len(sent) < n / 2  # it still streams regularly
    gaps = np.diff(sent[1:-1])  # after the first frame has been paid off
    assert gaps.max() - gaps.min() <= 1  # evenly spread


def test_throttle_min_interval_wins_when_sending_is_free():
    clock = FakeClock()
    th = Throttle(min_interval=0.25, max_share=1.0, clock=clock)
    sent = []
    for step in range(40):
        clock.t += 0.1
        if th.due(step, 40):
            th.record(0.0)
            sent.append(step)
    assert sent[:4] == [0, 3, 6, 9] and sent[-1] == 39


def test_throttle_arguments_are_checked():
    with pytest.raises(ValueError):
        Throttle(min_interval=-1)
    with pytest.raises(ValueError):
        Throttle(max_share=0)


# -- cache --------------------------------------------------------------------------------------------


def _frame(step, run=1, size=100):
    return Frame({"type": "frame", "run": run, "step": step}, (bytes(size),))


def test_cache_replaces_and_lists_missing_steps():
    cache = FrameCache()
    cache.begin({"type": "run", "run": 1})
    for s in (0, 3, 1, 2):
        cache.add(_frame(s))
    cache.add(_frame(1, size=10))  # a repeated step replaces the older copy
    assert cache.steps == [0, 1, 2, 3]
    assert cache.nbytes == 310
    assert [f.step for f in cache.missing([0, 2])] == [1, 3]
    with pytest.raises(FrameError):
        cache.add(_frame(4, run=2))


def test_cache_is_bounded_and_thins_evenly():
    cache = FrameCache(max_bytes=1000)
    cache.begin({"type": "run", "run": 1})
    for s in range(50):
        cache.add(_frame(s))
        assert cache.nbytes <= 1000
    steps = cache.steps
    assert steps[0] == 0 and steps[-1] == 49  # the first and the newest survive
    assert len(steps) >= 5
    inner = np.diff(steps[:-1])
    assert inner.min() == inner.max()  # even stride


def test_heat_lut_matches_its_anchors():
    lut = heat_lut()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[0]) == HEAT_ANCHORS[0] and tuple(lut[255]) == HEAT_ANCHORS[-1]
    assert (np.diff(lut.astype(int).sum(1)) >= -3).all()  # brightens along the map
