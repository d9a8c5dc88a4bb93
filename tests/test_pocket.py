"""The pocket model: scenes, the shipped weights, the training command (a few steps) and metrics."""

import json

import numpy as np
import torch

from p2p_widgets.pocket import scenes
from p2p_widgets.pocket.metrics import SceneReader, match_objects
from p2p_widgets.pocket.model import WEIGHTS_DIR, load_pocket
from p2p_widgets.pocket.train import main as train_main


def test_scenes_are_seeded_and_carry_ground_truth():
    a_images, a_captions, a_scenes = scenes.make_dataset(20, seed=5)
    b_images, b_captions, _ = scenes.make_dataset(20, seed=5)
    assert np.array_equal(a_images, b_images) and a_captions == b_captions
    assert a_images.shape == (20, 32, 32, 3) and a_images.dtype == np.uint8
    for scene in a_scenes:
        assert scene.masks.shape == (len(scene.objects), 32, 32)
        assert all(m.sum() > 0 for m in scene.masks)
        assert scene.caption.endswith("background")
        if scene.relation:
            assert f" {scene.relation} a " in scene.caption


def test_relation_places_objects():
    rng = np.random.default_rng(0)
    for _ in range(30):
        s = scenes.sample_scene(rng, p_two=1.0)
        a, b = s.objects
        if s.relation == "left of":
            assert a.cx < b.cx
        elif s.relation == "above":
            assert a.cy < b.cy


def test_reader_on_ground_truth():
    reader = SceneReader(n_calibration=200)
    _, _, found_scenes = scenes.make_dataset(60, seed=99)
    right = [
        f is not None and f.color == o.color
        for s in found_scenes
        for o, f in zip(s.objects, match_objects(s, reader.read(s.image)[1]))
    ]
    assert np.mean(right) > 0.9


def test_shipped_weights_load_offline_from_safetensors():
    files = sorted(p.name for p in WEIGHTS_DIR.iterdir())
    assert {"vae.safetensors", "text_encoder.safetensors", "unet.safetensors", "pocket.json"} <= set(files)
    assert not any(name.endswith((".bin", ".pt", ".pth", ".ckpt")) for name in files)
    assert sum((WEIGHTS_DIR / f).stat().st_size for f in files) < 25 * 2**20
    pipe = load_pocket(device="cpu")
    assert pipe.unet.dtype == torch.float32 and pipe.tokenizer.model_max_length == 77
    meta = json.loads((WEIGHTS_DIR / "pocket.json").read_text())["meta"]
    assert meta["unet_steps"] == sum(run["unet_steps"] for run in meta["history"])


def test_training_smoke_and_resume(tmp_path):
    args = [
        "--out",
        str(tmp_path),
        "--pool",
        "64",
        "--workers",
        "1",
        "--vae-steps",
        "2",
        "--vae-batch",
        "4",
        "--unet-steps",
        "2",
        "--batch",
        "4",
        "--save-every",
        "0",
        "--no-samples",
        "--device",
        "cpu",
    ]
    train_main(args)
    meta = json.loads((tmp_path / "pocket.json").read_text())["meta"]
    assert meta["vae_steps"] == 2 and meta["unet_steps"] == 2
    pipe = load_pocket(device="cpu", weights_dir=tmp_path)
    assert pipe.vae.config.scaling_factor > 0
    resume = [
        "--out",
        str(tmp_path),
        "--pool",
        "64",
        "--workers",
        "1",
        "--unet-steps",
        "3",
        "--batch",
        "4",
        "--save-every",
        "0",
        "--no-samples",
        "--device",
        "cpu",
        "--resume",
    ]
    train_main(resume)  # continues from step 2 with the saved optimiser state
    assert "unet step 3/3" in (tmp_path / "train.log").read_text()


def test_layout_iou_ignores_colour_and_sees_a_move():
    from p2p_widgets.pocket.metrics import layout_iou

    gray = np.asarray(scenes.pattern_colors("gray", "plain")[0], np.float32)
    canvas = np.broadcast_to(gray, (32, 32, 3)).astype(np.uint8)

    def square(x, rgb):
        im = canvas.copy()
        im[8:16, x : x + 8] = rgb
        return im

    blue, green = square(4, (40, 60, 220)), square(4, (40, 200, 60))
    assert layout_iou(blue, green) == 1.0  # recoloured in place: the layout is kept
    assert layout_iou(blue, square(8, (40, 60, 220))) == 4 / 12  # moved by half its width
