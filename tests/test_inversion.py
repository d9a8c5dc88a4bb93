"""Real-image inversion: DDIM, null-text and negative-prompt inversion, image input, cache, files.

Most tests use the tiny fixture made "latent-blind" (its UNet sees zeros instead of the latent,
so its prediction depends only on the timestep and the text): for such a model the DDIM update is
exactly invertible, which pins the inversion's arithmetic to the editor's sampler for epsilon and
v-prediction, while the text still steers the prediction, so guidance drift and its null-text
correction are real. One test runs the shipped pocket model on a generated scene.
"""

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from p2p_widgets.bench.geometries import latent_blind as _latent_blind
from p2p_widgets.bench.geometries import tiny_pipeline
from p2p_widgets.engine import inversion as inv_mod
from p2p_widgets.engine.images import load_image
from p2p_widgets.engine.inversion import Inversion, InversionStep, invert
from p2p_widgets.engine.inversion.ddim import _step_coefficients
from p2p_widgets.engine.sampler import Editor
from p2p_widgets.errors import P2PError

PROMPT = "a red circle on a gray background"
STEPS = 4


@pytest.fixture(scope="module", params=["epsilon", "v_prediction"])
def blind(request):
    """An editor on a latent-blind tiny model, for both prediction types."""
    return Editor(_latent_blind(tiny_pipeline(seed=0, prediction_type=request.param)))


@pytest.fixture(scope="module")
def blind_eps():
    return Editor(_latent_blind(tiny_pipeline(seed=0)))


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = np.full((64, 64, 3), 120, np.uint8)
    img[16:40, 20:44] = (220, 40, 40)
    return np.clip(img.astype(int) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)


def _latent_error(editor, inv, guidance):
    out = editor.edit(inv.prompt, [], inversion=inv, steps=inv.steps, guidance=guidance)
    return float((out.latents[0].cpu() - inv.x_0).pow(2).mean())


# -- the arithmetic ----------------------------------------------------------------------------------
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_step_coefficients_match_the_scheduler(prediction_type):
    from diffusers import DDIMScheduler

    from p2p_widgets.pocket.model import SCHEDULER_CONFIG

    sched = DDIMScheduler(**{**SCHEDULER_CONFIG, "prediction_type": prediction_type})
    sched.set_timesteps(7)
    gen = torch.Generator().manual_seed(0)
    z, out = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(1, 4, 8, 8, generator=gen)
    for t in sched.timesteps.tolist():
        a, b = _step_coefficients(sched, t, prediction_type)
        assert torch.allclose(sched.step(out, t, z).prev_sample, a * z + b * out, atol=1e-5)


def test_ddim_inversion_is_exact_for_a_latent_blind_model(blind, image):
    inv = invert(blind, image, PROMPT, "ddim", steps=STEPS, guidance=1.0, cache=False)
    assert inv.latents.shape == (STEPS + 1, 4, 16, 16) and inv.uncond_embeddings is None
    assert not torch.allclose(inv.x_T, inv.x_0)  # the trajectory moved
    assert inv.prediction_type == blind.pipe.scheduler.config.prediction_type
    # regenerating at guidance 1 retraces the trajectory back to the image's latent
    assert _latent_error(blind, inv, 1.0) < 1e-9 * max(1.0, float(inv.x_T.pow(2).mean()))
    z0 = blind.encode_image(inv.image)
    assert torch.allclose(inv.x_0, z0[0].float())


def test_null_text_reconstructs_much_closer_than_ddim_at_guidance(blind, image):
    ddim = invert(blind, image, PROMPT, "ddim", steps=STEPS, guidance=7.5, cache=False)
    # the tiny random text encoder's embeddings need a larger step than the reference's 1e-2
    null = invert(blind, image, PROMPT, "null-text", steps=STEPS, guidance=7.5, cache=False, inner_steps=20, lr=0.1)
    assert torch.equal(ddim.latents, null.latents)  # the same pivot trajectory
    assert len(null.uncond_embeddings) == STEPS and null.uncond_embeddings[0].shape == (1, 77, 32)
    assert len(null.losses) == len(null.iterations) == STEPS
    ddim_err, null_err = _latent_error(blind, ddim, 7.5), _latent_error(blind, null, 7.5)
    assert null_err < 0.05 * ddim_err, (null_err, ddim_err)
    # the embeddings moved away from the empty prompt's and differ per step (warm-started, not reset)
    empty = blind.model.encode([blind.prompt("")]).cpu()
    assert not torch.allclose(null.uncond_embeddings[0], empty)
    assert not torch.equal(null.uncond_embeddings[0], null.uncond_embeddings[-1])


def test_negative_prompt_uses_the_conditional_embedding_and_regenerates_like_guidance_one(blind_eps, image):
    inv = invert(blind_eps, image, PROMPT, "negative-prompt", steps=STEPS, guidance=7.5, cache=False)
    cond = blind_eps.model.encode([blind_eps.prompt(PROMPT)]).cpu()
    assert len(inv.uncond_embeddings) == STEPS
    assert all(torch.equal(e, cond) for e in inv.uncond_embeddings)
    assert _latent_error(blind_eps, inv, 7.5) < 1e-9


def test_null_text_is_bitwise_reproducible(blind_eps, image):
    a = invert(blind_eps, image, PROMPT, "null-text", steps=3, guidance=5.0, cache=False, inner_steps=3)
    b = invert(blind_eps, image, PROMPT, "null-text", steps=3, guidance=5.0, cache=False, inner_steps=3)
    assert torch.equal(a.latents, b.latents)
    assert all(torch.equal(x, y) for x, y in zip(a.uncond_embeddings, b.uncond_embeddings))
    assert a.losses == b.losses


def test_null_text_does_not_touch_the_model_weights(blind_eps, image):
    before = {k: v.clone() for k, v in blind_eps.model.unet.state_dict().items()}
    invert(blind_eps, image, PROMPT, "null-text", steps=2, guidance=5.0, cache=False, inner_steps=2)
    assert all(p.grad is None for p in blind_eps.model.unet.parameters())
    assert all(torch.equal(v, blind_eps.model.unet.state_dict()[k]) for k, v in before.items())


def test_pocket_round_trip_null_text_and_negative_prompt_beat_ddim():
    """The shipped model on a generated scene, 8 steps at the pocket guidance (the bench runs 25)."""
    from p2p_widgets.pocket.metrics import psnr
    from p2p_widgets.pocket.model import load_pocket
    from p2p_widgets.pocket.scenes import make_dataset

    editor = Editor(load_pocket(device="cpu", dtype=torch.float32))
    images, captions, _ = make_dataset(1, seed=3)
    vae = psnr(images[0], editor.decode(editor.encode_image(images[0]))[0])
    got = {}
    for method in ("ddim", "null-text", "negative-prompt"):
        inv = invert(editor, images[0], captions[0], method, steps=8, guidance=5.0, cache=False)
        got[method] = psnr(images[0], np.asarray(inv.reconstruct(editor).images[0]))
    # measured: ddim 25.1, null-text 28.4, negative-prompt 28.3, the VAE alone 31.2 dB
    assert got["null-text"] > got["ddim"] + 2.0, got
    assert got["negative-prompt"] > got["ddim"] + 2.0, got
    assert max(got.values()) < vae + 0.5, (got, vae)  # no inversion beats the VAE's own round trip


# -- editing ----------------------------------------------------------------------------------------
def test_editor_takes_the_inversion_and_enforces_its_steps(blind_eps, image):
    inv = invert(blind_eps, image, PROMPT, "null-text", steps=STEPS, guidance=5.0, inner_steps=2, cache=False)
    out = inv.edit(blind_eps, "a blue circle on a gray background")
    assert len(out.images) == 2
    with pytest.raises(P2PError, match=rf"inversion used {STEPS} steps but the edit asks for {STEPS + 1}"):
        blind_eps.edit(PROMPT, "a blue circle on a gray background", inversion=inv, steps=STEPS + 1)


def test_check_names_a_schedule_or_model_mismatch(blind_eps, image):
    inv = invert(blind_eps, image, PROMPT, "null-text", steps=2, guidance=5.0, inner_steps=1, cache=False)
    inv.timesteps = [t + 1 for t in inv.timesteps]
    with pytest.raises(P2PError, match="timesteps .* differ from this model's schedule"):
        inv.check(blind_eps)
    inv.timesteps = [t - 1 for t in inv.timesteps]
    inv.uncond_embeddings = [torch.zeros(1, 77, 64)] * 2
    with pytest.raises(P2PError, match="embeddings have width 64 but this model's text encoder has 32"):
        inv.check(blind_eps)


# -- image input ------------------------------------------------------------------------------------
def test_image_inputs_convert_to_the_same_pixels(tmp_path, image):
    ref = load_image(image, 64)
    assert ref.shape == (64, 64, 3) and ref.dtype == np.uint8 and np.array_equal(ref, image)
    pil = Image.fromarray(image)
    assert np.array_equal(load_image(pil, 64), ref)
    assert np.array_equal(load_image(pil.convert("RGBA"), 64), ref)  # alpha dropped
    assert np.array_equal(load_image(np.dstack([image, np.full((64, 64), 255, np.uint8)]), 64), ref)
    assert np.array_equal(load_image(image.astype(np.float32) / 255, 64), ref)
    pil.save(tmp_path / "x.png")
    assert np.array_equal(load_image(tmp_path / "x.png", 64), ref)
    assert np.array_equal(load_image(str(tmp_path / "x.png"), 64), ref)
    grey = load_image(pil.convert("L"), 64)
    assert grey.shape == (64, 64, 3) and np.array_equal(grey[..., 0], grey[..., 2])


def test_crop_choices(image):
    wide = np.concatenate([np.zeros((64, 32, 3), np.uint8), image, np.full((64, 32, 3), 255, np.uint8)], axis=1)
    assert np.array_equal(load_image(wide, 64, "center"), image)  # the centred square of a 64x128 image
    squashed = load_image(wide, 64, "none")  # the whole image resized: the black and white sides stay
    assert squashed[:, 0].max() < 10 and squashed[:, -1].min() > 245
    assert np.array_equal(load_image(wide, 64, (32, 0, 96, 64)), image)
    boxed = load_image(wide, 32, (0, 0, 64, 64))  # box, then its centred square, then resize
    assert boxed.shape == (32, 32, 3)


BAD_IMAGES = {
    "channels first": (np.zeros((3, 64, 64), np.uint8), r"channels must come last"),
    "five channels": (np.zeros((64, 64, 5), np.uint8), r"must be \(H, W, 3\).*got shape \(64, 64, 5\)"),
    "float above one": (np.full((64, 64, 3), 2.0, np.float32), r"float image array must hold values in \[0, 1\]"),
    "int16": (np.zeros((64, 64, 3), np.int16), r"dtype must be uint8 .* got int16"),
    "too small": (np.zeros((4, 4, 3), np.uint8), r"image is 4x4 pixels: too small"),
    "tensor": (torch.zeros(64, 64, 3), r"not a torch tensor"),
    "list": ([[0, 1]], r"image must be a PIL image, a numpy array or a file path, got list"),
    "missing file": ("/no/such/image.png", r"image file /no/such/image.png does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_are_named(blind_eps, case):
    bad, message = BAD_IMAGES[case]
    with pytest.raises(P2PError, match=message):
        invert(blind_eps, bad, PROMPT, "ddim", steps=2)


def test_a_file_that_is_not_an_image(tmp_path, blind_eps):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(P2PError, match="is not an image file"):
        invert(blind_eps, tmp_path / "notes.png", PROMPT, "ddim", steps=2)


BAD_ARGS = {
    "empty prompt": (dict(prompt="  "), r"the prompt is empty"),
    "prompt not text": (dict(prompt=None), r"prompt must be a string"),
    "unknown method": (dict(method="edict"), r"method must be one of 'null-text', 'ddim', 'negative-prompt'"),
    "zero steps": (dict(steps=0), r"steps must be an integer in \[1, 1000\], got 0"),
    "nan guidance": (dict(guidance=float("nan")), r"guidance must be a finite number"),
    "unknown crop": (dict(crop="middle"), r"crop must be 'center', 'none' or a \(left, top, right, bottom\) box"),
    "crop outside": (dict(crop=(0, 0, 80, 64)), r"crop box \(0, 0, 80, 64\) is not inside the 64x64 image"),
    "size not a multiple": (dict(size=60), r"height 60 must be a multiple of 8"),
    "zero inner steps": (dict(inner_steps=0), r"inner_steps must be an integer in \[1, 10000\]"),
    "zero lr": (dict(lr=0.0), r"lr must be a finite number > 0"),
    "bad progress": (dict(progress="yes"), r"progress must be True, False or a tqdm-like class"),
    "fractional size": (dict(size=32.0), r"size must be an integer or a \(height, width\) pair of integers, got 32.0"),
    "one-sided size": (dict(size=(32,)), r"size must be an integer or a \(height, width\) pair of integers"),
    "zero size": (dict(size=0), r"height must be an integer in \[8, 4096\], got 0"),
    "callback not callable": (dict(callback=5), r"callback must be a function"),
    "on_wait not callable": (dict(on_wait=5), r"on_wait must be a function"),
    "stop_event not an event": (dict(stop_event="x"), r"stop_event must be a threading.Event"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_bad_arguments_are_named(blind_eps, image, case):
    kwargs, message = BAD_ARGS[case]
    kwargs = {"prompt": PROMPT, "method": "null-text", "steps": 2, **kwargs}
    with pytest.raises(P2PError, match=message):
        invert(blind_eps, image, kwargs.pop("prompt"), kwargs.pop("method"), cache=False, **kwargs)


def test_bad_arguments_are_refused_before_any_work(blind_eps, image, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the inversion started")

    monkeypatch.setattr(inv_mod, "_invert", no_work)
    for kwargs in ({"callback": 5}, {"stop_event": "x"}, {"size": (32,)}):
        with pytest.raises(P2PError):
            invert(blind_eps, image, PROMPT, "ddim", steps=2, cache=False, **kwargs)


def test_fp16_is_refused_for_null_text_with_the_reason(image):
    half = Editor(tiny_pipeline(seed=0).to(dtype=torch.float16))
    with pytest.raises(
        P2PError,
        match=r"null-text inversion needs a float32 model but this one is float16.*"
        r"half\s+precision.*method='negative-prompt'",
    ):
        invert(half, image, PROMPT, "null-text", steps=2)


# -- progress, stop, cache, files ---------------------------------------------------------------------
class FakeBar:
    made = []

    def __init__(self, total, desc):
        self.total, self.desc, self.n, self.postfix, self.closed = total, desc, 0, None, False
        FakeBar.made.append(self)

    def update(self, n):
        self.n += n

    def set_postfix(self, **kw):
        self.postfix = kw

    def close(self):
        self.closed = True


def test_progress_bar_and_callback(blind_eps, image):
    events = []
    FakeBar.made.clear()
    invert(
        blind_eps,
        image,
        PROMPT,
        "null-text",
        steps=3,
        guidance=5.0,
        inner_steps=2,
        cache=False,
        progress=FakeBar,
        callback=events.append,
    )
    (bar,) = FakeBar.made
    assert bar.total == 6 and bar.n == 6 and bar.closed and "null-text" in bar.desc and "loss" in bar.postfix
    assert [(e.phase, e.step) for e in events] == [
        ("ddim", 0),
        ("ddim", 1),
        ("ddim", 2),
        ("null-text", 0),
        ("null-text", 1),
        ("null-text", 2),
    ]
    assert all(isinstance(e, InversionStep) and 1 <= e.iterations <= 2 for e in events[3:])


def test_stop_event_ends_null_text_early(blind_eps, image):
    stop = threading.Event()

    def callback(event):
        if event.phase == "null-text" and event.step == 1:
            stop.set()

    inv = invert(
        blind_eps, image, PROMPT, "null-text", steps=5, guidance=5.0, inner_steps=2, callback=callback, stop_event=stop
    )
    assert inv.stopped and len(inv.losses) == 2
    assert len(inv.uncond_embeddings) == 5  # still usable: later steps reuse the last embedding
    assert all(torch.equal(e, inv.uncond_embeddings[1]) for e in inv.uncond_embeddings[2:])
    again = invert(blind_eps, image, PROMPT, "null-text", steps=5, guidance=5.0, inner_steps=2)
    assert again is not inv and not again.stopped  # a stopped result is never cached
    inv_mod.clear_cache(blind_eps)


def test_cache_returns_the_same_object_for_the_same_inputs(blind_eps, image, monkeypatch):
    inv_mod.clear_cache(blind_eps)
    a = invert(blind_eps, image, PROMPT, "ddim", steps=2, guidance=5.0)
    assert invert(blind_eps, Image.fromarray(image), PROMPT, "ddim", steps=2, guidance=5.0) is a  # same pixels
    assert inv_mod.cached_count(blind_eps) == 1
    others = [
        invert(blind_eps, image, PROMPT + ".", "ddim", steps=2, guidance=5.0),
        invert(blind_eps, image, PROMPT, "negative-prompt", steps=2, guidance=5.0),
        invert(blind_eps, image, PROMPT, "ddim", steps=3, guidance=5.0),
        invert(blind_eps, image, PROMPT, "ddim", steps=2, guidance=6.0),
        invert(blind_eps, image[::-1].copy(), PROMPT, "ddim", steps=2, guidance=5.0),
        invert(blind_eps, image, PROMPT, "ddim", steps=2, guidance=5.0, cache=False),
    ]
    assert all(o is not a for o in others)
    monkeypatch.setattr(inv_mod, "CACHE_SIZE", 2)
    invert(blind_eps, image, "a blue square", "ddim", steps=2)  # evicts all but the two newest
    assert inv_mod.cached_count(blind_eps) == 2
    assert invert(blind_eps, image, PROMPT, "ddim", steps=2, guidance=5.0) is not a
    inv_mod.clear_cache(blind_eps)
    assert inv_mod.cached_count(blind_eps) == 0


@pytest.mark.parametrize("method", ["null-text", "ddim", "negative-prompt"])
def test_save_and_load_round_trip(blind_eps, image, tmp_path, method):
    inv = invert(blind_eps, image, PROMPT, method, steps=3, guidance=5.0, inner_steps=2, cache=False)
    json_path, tensor_path = inv.save(tmp_path / "sub" / "cat")
    assert json_path.name == "cat.json" and tensor_path.name == "cat.safetensors"
    back = Inversion.load(tmp_path / "sub" / "cat.json")
    assert back.describe() == inv.describe()
    assert torch.equal(back.latents, inv.latents) and np.array_equal(back.image, inv.image)
    if method == "ddim":
        assert back.uncond_embeddings is None
    else:
        assert all(torch.equal(x, y) for x, y in zip(back.uncond_embeddings, inv.uncond_embeddings))
    a = inv.edit(blind_eps, "a blue circle on a gray background")
    b = back.edit(blind_eps, "a blue circle on a gray background")
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.images, b.images))


def test_load_names_missing_or_broken_files(blind_eps, image, tmp_path):
    with pytest.raises(P2PError, match="no inversion metadata at"):
        Inversion.load(tmp_path / "nothing")
    inv = invert(blind_eps, image, PROMPT, "ddim", steps=2, cache=False)
    _, tensors = inv.save(tmp_path / "x")
    tensors.unlink()
    with pytest.raises(P2PError, match=r"tensors file .*x.safetensors is missing"):
        Inversion.load(tmp_path / "x")
    (tmp_path / "y.json").write_text("{not json")
    with pytest.raises(P2PError, match="is not valid JSON"):
        Inversion.load(tmp_path / "y")


def test_an_edit_of_an_inverted_image_saves_and_reruns_with_its_inversion(blind_eps, image, tmp_path):
    from p2p_widgets.engine.export import edit_from_spec, load_edit, save_edit

    inv = invert(blind_eps, image, PROMPT, "negative-prompt", steps=STEPS, guidance=5.0, cache=False)
    target = "a blue circle on a gray background"
    result = inv.edit(blind_eps, target, reweight={"blue": 2.0})
    with pytest.raises(P2PError, match="pass its inversion"):
        save_edit(result, tmp_path / "edit.json")
    files = save_edit(result, tmp_path / "edit.json", inv)
    assert sorted(f.name for f in files) == ["edit.inversion.json", "edit.inversion.safetensors", "edit.json"]
    again = load_edit(blind_eps, tmp_path / "edit.json")
    assert torch.equal(again.latents, result.latents)
    # the JSON alone does not rerun, nor with another image's inversion
    spec = result.spec
    with pytest.raises(P2PError, match="pass its inversion"):
        edit_from_spec(blind_eps, spec)
    other = invert(blind_eps, 255 - image, PROMPT, "negative-prompt", steps=STEPS, guidance=5.0, cache=False)
    with pytest.raises(P2PError, match="image_sha256"):
        edit_from_spec(blind_eps, spec, other)
    seeded = blind_eps.edit(PROMPT, target, steps=STEPS)
    with pytest.raises(P2PError, match="started from a seed"):
        save_edit(seeded, tmp_path / "seeded.json", inv)


def test_the_cache_follows_the_scheduler_config(blind_eps, image, monkeypatch):
    """The trajectory is computed on the pipeline's DDIM schedule: another config is another inversion."""
    from diffusers import DDIMScheduler

    inv_mod.clear_cache(blind_eps)
    leading = invert(blind_eps, image, PROMPT, "ddim", steps=2)
    config = blind_eps.pipe.scheduler.config
    monkeypatch.setattr(blind_eps.pipe, "scheduler", DDIMScheduler.from_config(config, timestep_spacing="trailing"))
    trailing = invert(blind_eps, image, PROMPT, "ddim", steps=2)
    assert trailing is not leading and trailing.timesteps != leading.timesteps
    trailing.check(blind_eps)  # made for the schedule it is used with
    inv_mod.clear_cache(blind_eps)


def test_an_inversion_refuses_a_scheduler_with_other_timesteps(blind_eps, image):
    """Its start latent and per-step embeddings belong to its own timesteps: edit and run say so."""
    from diffusers import DDIMScheduler

    inv = invert(blind_eps, image, PROMPT, "negative-prompt", steps=STEPS, cache=False)
    config = blind_eps.pipe.scheduler.config
    trailing = DDIMScheduler.from_config(config, timestep_spacing="trailing")
    message = r"inversion's timesteps \[\d+, .*\] differ from the run's \[\d+, .*\]"
    with pytest.raises(P2PError, match=message):
        blind_eps.edit(PROMPT, [], inversion=inv, steps=STEPS, scheduler=trailing)
    same = blind_eps.edit(PROMPT, [], inversion=inv, steps=STEPS, scheduler=DDIMScheduler.from_config(config))
    assert torch.equal(blind_eps.run(same.spec, inversion=inv).latents, same.latents)
    spec = same.spec.replace(scheduler_config={**same.spec.scheduler_config, "timestep_spacing": "trailing"})
    with pytest.raises(P2PError, match=message):
        blind_eps.run(spec, inversion=inv)


def test_save_edit_names_the_inversion_after_the_whole_file_name(blind_eps, image, tmp_path):
    """edit.a and edit.b keep their own inversions; edit.json keeps edit.inversion.*, and a file
    written with the old naming (the stem: edit.inversion.* for edit.a) still loads."""
    from p2p_widgets.engine.export import load_edit, save_edit

    target = "a blue circle on a gray background"
    results = {}
    for name, pixels in (("edit.a", image), ("edit.b", 255 - image)):
        inv = invert(blind_eps, pixels, PROMPT, "ddim", steps=2, cache=False)
        results[name] = inv.edit(blind_eps, target)
        files = save_edit(results[name], tmp_path / name, inv)
        assert sorted(f.name for f in files) == [name, f"{name}.inversion.json", f"{name}.inversion.safetensors"]
    for name, result in results.items():
        assert torch.equal(load_edit(blind_eps, tmp_path / name).latents, result.latents)
    old = tmp_path / "old"
    old.mkdir()
    inv = invert(blind_eps, image, PROMPT, "ddim", steps=2, cache=False)
    inv.save(old / "edit.inversion")
    (old / "edit.a").write_text(results["edit.a"].spec.to_json())
    assert torch.equal(load_edit(blind_eps, old / "edit.a").latents, results["edit.a"].latents)
