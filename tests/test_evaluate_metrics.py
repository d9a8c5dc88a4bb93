"""PIE-Bench metrics against hand computations; pocket-bench's target fidelity and mask IoU; loaders.

Models are built from small configs with random weights (the real geometries are heavy on CPU; the
comparison with the benchmark's own code uses them). That comparison runs here only when
P2P_PNPINVERSION names a checkout of the benchmark's repository.
"""

import dataclasses
import importlib.util
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from torch.nn import functional as F

from p2p_widgets.errors import P2PError
from p2p_widgets.evaluate.cases import EditCase
from p2p_widgets.evaluate.metrics import (
    ALL_METRIC_NAMES,
    METRIC_NAMES,
    POCKET_METRIC_NAMES,
    LpipsSqueeze,
    MetricModels,
    MetricSettings,
    dino_input,
    dino_resized_size,
    image_processor_kind,
    load_clip,
    load_dino,
    load_lpips,
    mask_iou,
    score,
    score_batch,
    ssim,
    target_fidelity,
)
from p2p_widgets.evaluate.pocket_bench import make_pocket_bench, truth_of

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models():
    return MetricModels.random(0)


def _image(rng, h=64, w=64):
    base = np.asarray(
        Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    )
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


def _case(tmp_path, source, mask, name="c", prompt="a red car on a road"):
    path = tmp_path / f"{name}.png"
    Image.fromarray(source).save(path)
    return EditCase(name, path, "a car on a road", prompt, 6, ("car", "car"), np.asarray(mask, bool))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A source, an edit that differs everywhere a little and inside the mask a lot, and the case."""
    rng = np.random.default_rng(0)
    source = _image(rng)
    mask = np.zeros((64, 64), bool)
    mask[20:45, 10:40] = True
    edited = source.astype(np.float64) + rng.normal(0, 4, source.shape)
    edited[mask] = 255 - edited[mask]
    edited = np.clip(np.rint(edited), 0, 255).astype(np.uint8)
    return _case(tmp_path_factory.mktemp("pair"), source, mask), edited


@pytest.fixture(scope="module")
def scores(models, pair):
    case, edited = pair
    return score(case, Image.fromarray(edited), models)


# ---------------------------------------------------------------- pixel metrics by formula


def test_psnr_and_mse_on_the_unedited_part_follow_the_formula(pair, scores):
    case, edited = pair
    keep = (~case.mask)[..., None]
    a = np.asarray(case.image(), np.float64) / 255 * keep
    b = edited.astype(np.float64) / 255 * keep
    mse = np.mean((a - b) ** 2)  # over the whole image: the edited part counts as zeros
    assert scores["mse_unedit_part"] == pytest.approx(mse, rel=1e-5)
    assert scores["psnr_unedit_part"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-6)


def _np_ssim(a, b, pad_reflect, clamp=True):
    """SSIM written out: an 11x11 Gaussian (sigma 1.5) window at every position, valid windows only
    (or after reflect padding), C1 = (0.01)^2, C2 = (0.03)^2, averaged over channels and positions;
    ``clamp``: local variances clamped at 0."""
    x = np.arange(11) - 5
    g = np.exp(-((x / 1.5) ** 2) / 2)
    g /= g.sum()
    window = np.outer(g, g)
    if pad_reflect:
        a, b = (np.pad(v, ((5, 5), (5, 5), (0, 0)), mode="reflect") for v in (a, b))

    def local(v):
        return np.einsum("hwcij,ij->hwc", sliding_window_view(v, (11, 11), axis=(0, 1)), window)

    mu_a, mu_b = local(a), local(b)
    var_a, var_b = local(a * a) - mu_a**2, local(b * b) - mu_b**2
    if clamp:
        var_a, var_b = np.maximum(var_a, 0), np.maximum(var_b, 0)
    cov = local(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return np.mean(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))


@pytest.mark.parametrize("crop", [True, False])
@pytest.mark.parametrize("clamp", [True, False])
def test_ssim_matches_a_written_out_window_computation(crop, clamp):
    rng = np.random.default_rng(3)
    a = rng.random((40, 52, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ours = ssim(*(torch.tensor(v, dtype=torch.float32).permute(2, 0, 1)[None] for v in (a, b)), crop, clamp)
    assert float(ours[0]) == pytest.approx(_np_ssim(a, b, pad_reflect=not crop, clamp=clamp), abs=2e-6)


def _torchmetrics_1_2_0_ssim(preds, target):
    """torchmetrics 1.2.0's ``_ssim_update`` (2-d, Gaussian kernel, data_range=1.0 as PIE-Bench passes
    it) written out operation for operation: reflect padding, one grouped convolution of the five
    stacked inputs, the variances NOT clamped at 0 (1.3.2 added that), the map cropped to its valid
    part (1.5 stopped), averaged per image."""
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    channel, dtype = preds.size(1), preds.dtype
    size = int(3.5 * 1.5 + 0.5) * 2 + 1
    dist = torch.arange(start=(1 - size) / 2, end=(1 + size) / 2, step=1, dtype=dtype)
    gauss = torch.exp(-torch.pow(dist / 1.5, 2) / 2)
    gauss = (gauss / gauss.sum()).unsqueeze(dim=0)
    kernel = torch.matmul(gauss.t(), gauss).expand(channel, 1, size, size)
    pad = (size - 1) // 2
    preds = F.pad(preds, (pad, pad, pad, pad), mode="reflect")
    target = F.pad(target, (pad, pad, pad, pad), mode="reflect")
    input_list = torch.cat((preds, target, preds * preds, target * target, preds * target))
    output_list = F.conv2d(input_list, kernel, groups=channel).split(preds.shape[0])
    mu_pred_sq, mu_target_sq = output_list[0].pow(2), output_list[1].pow(2)
    mu_pred_target = output_list[0] * output_list[1]
    sigma_pred_sq = output_list[2] - mu_pred_sq
    sigma_target_sq = output_list[3] - mu_target_sq
    sigma_pred_target = output_list[4] - mu_pred_target
    upper = 2 * sigma_pred_target.to(dtype) + c2
    lower = (sigma_pred_sq + sigma_target_sq).to(dtype) + c2
    full = ((2 * mu_pred_target + c1) * upper) / ((mu_pred_sq + mu_target_sq + c1) * lower)
    ssim_idx = full[..., pad:-pad, pad:-pad]
    return ssim_idx.reshape(ssim_idx.shape[0], -1).mean(-1)


def test_published_ssim_is_torchmetrics_1_2_0_to_the_bit(pair, models, tmp_path):
    """The published numbers came from torchmetrics <= 1.2.0, which does not clamp the variances:
    an image compared with itself scores exactly 1 there. Clamping (as 1.3.2 and later do) keeps the
    float32 variances of flat regions that round below 0 at 0 while their covariance stays negative:
    0.99995 on flat blocks."""
    case, edited = pair
    keep = torch.from_numpy((~case.mask).astype(np.float32))[None, None]
    a = torch.from_numpy(np.asarray(case.image(), np.float32) / 255).permute(2, 0, 1)[None] * keep
    b = torch.from_numpy(edited.astype(np.float32) / 255).permute(2, 0, 1)[None] * keep
    # 36 flat 16x16 blocks of random greys: some local variances round below 0 on any CPU
    blocks = np.kron(np.random.default_rng(0).integers(0, 256, (6, 6, 3)), np.ones((16, 16, 1))).astype(np.uint8)
    flat = torch.from_numpy(blocks.astype(np.float32) / 255).permute(2, 0, 1)[None]
    for x, y in ((a, b), (b, a), (a, a), (flat, flat), (flat, flat.flip(-1))):
        assert torch.equal(ssim(x, y), _torchmetrics_1_2_0_ssim(x, y))
    assert float(ssim(flat, flat)[0]) == 1.0
    clamped = float(ssim(flat, flat, clamp_variance=True)[0])
    assert clamped < 1 - 1e-5, clamped  # the clamp matters on this input (0.99995 on a 2-core EPYC)
    blocky = _case(tmp_path, blocks, np.zeros((96, 96), bool), "blocks")
    assert score(blocky, Image.fromarray(blocks), models)["ssim_unedit_part"] == 1.0
    clamped_only = models.with_settings(dataclasses.replace(MetricSettings.published(), ssim_clamp_variance=True))
    assert score(blocky, Image.fromarray(blocks), clamped_only)["ssim_unedit_part"] == clamped


def test_comparisons_follow_the_torchmetrics_version_that_changed_each_behaviour():
    from p2p_widgets.evaluate.compare_metrics import settings_for

    published = MetricSettings.published()
    assert settings_for("1.2.0", antialias=False) == published
    for version, changed in [
        ("1.2.1", {"lpips_eps_inside": True}),  # the epsilon moved inside the root in 1.2.1, not 1.3
        ("1.3.0.post0", {"lpips_eps_inside": True}),
        ("1.3.1", {"lpips_eps_inside": True}),
        ("1.3.2", {"lpips_eps_inside": True, "ssim_clamp_variance": True}),
        ("1.4.0.post0", {"lpips_eps_inside": True, "ssim_clamp_variance": True}),
        ("1.5.0", {"lpips_eps_inside": True, "ssim_clamp_variance": True, "ssim_crop": False}),
        ("1.9.0", {"lpips_eps_inside": True, "ssim_clamp_variance": True, "ssim_crop": False}),
    ]:
        assert settings_for(version, antialias=False) == dataclasses.replace(published, **changed), version
    assert settings_for("1.9.0", antialias=True) == dataclasses.replace(
        MetricSettings.current(), clip_image_processor="pil"
    )


def test_ssim_known_cases():
    one = torch.rand(1, 3, 30, 30)
    assert float(ssim(one, one)[0]) == pytest.approx(1.0, abs=1e-6)
    c, d = 0.2, 0.7  # constant images: no variance, only the luminance term remains
    flat = [torch.full((1, 3, 20, 20), v, dtype=torch.float64) for v in (c, d)]  # float64: no cancellation noise
    assert float(ssim(*flat, crop=False)[0]) == pytest.approx((2 * c * d + 1e-4) / (c * c + d * d + 1e-4), rel=1e-9)


def test_the_edit_part_is_zeroed_in_both_images(pair, models, tmp_path):
    """Anything inside the mask does not count for the unedited-part metrics."""
    case, edited = pair
    other = edited.copy()
    other[case.mask] = 0
    again = score(case, Image.fromarray(other), models)
    base = score(case, Image.fromarray(edited), models)
    for name in METRIC_NAMES[1:5]:
        assert again[name] == base[name]


# ---------------------------------------------------------------- LPIPS


def _np_lpips(lpips, a, b):
    """LPIPS written out from the backbone's feature maps: unit-normalise each pixel's channels, square
    the difference, weight the channels by the linear layer, average over pixels, add the layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None]
    scale = torch.tensor([0.458, 0.448, 0.450])[None, :, None, None]
    taps = []
    for x in (a, b):
        x, out = (x - shift) / scale, []
        for i, layer in enumerate(lpips.features):
            x = layer(x)
            if i in (1, 4, 7, 9, 10, 11, 12):
                out.append(x[0].double().numpy())
        taps.append(out)
    total = 0.0
    for k, (fa, fb) in enumerate(zip(*taps)):
        ua = fa / (np.sqrt((fa**2).sum(0, keepdims=True)) + 1e-10)
        ub = fb / (np.sqrt((fb**2).sum(0, keepdims=True)) + 1e-10)
        w = getattr(lpips, f"lin{k}").model[1].weight.double().numpy()[0, :, 0, 0]
        total += np.mean(np.einsum("c,chw->hw", w, (ua - ub) ** 2))
    return total


def test_lpips_follows_its_formula_is_symmetric_and_zero_on_identical_images(models, pair, scores):
    case, edited = pair
    keep = torch.from_numpy((~case.mask).astype(np.float32))[None, None]
    a = torch.from_numpy(np.asarray(case.image(), np.float32) / 255).permute(2, 0, 1)[None] * keep
    b = torch.from_numpy(edited.astype(np.float32) / 255).permute(2, 0, 1)[None] * keep
    expected = _np_lpips(models.lpips, a * 2 - 1, b * 2 - 1)
    assert expected > 0
    assert scores["lpips_unedit_part"] == pytest.approx(expected, rel=1e-4)
    with torch.no_grad():
        assert float(models.lpips(a, b)[0]) == float(models.lpips(b, a)[0])
        assert float(models.lpips(a, a)[0]) == 0.0
        inside = float(models.lpips(a, b, eps_inside=True)[0])
    assert inside == pytest.approx(float(models.lpips(a, b)[0]), rel=1e-4)


def test_lpips_loads_torchvision_and_torchmetrics_key_layouts(models, tmp_path):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in models.lpips.state_dict().items()}
    save_file({k: v for k, v in state.items() if k.startswith("features.")}, tmp_path / "squeezenet1_1.safetensors")
    save_file({k: v for k, v in state.items() if k.startswith("lin")}, tmp_path / "lins.safetensors")
    loaded = load_lpips([tmp_path / "squeezenet1_1.safetensors", tmp_path / "lins.safetensors"])
    slices = [range(2), range(2, 5), range(5, 8), range(8, 10), range(10, 11), range(11, 12), range(12, 13)]
    where = {i: s for s, r in enumerate(slices) for i in r}
    renamed = {
        (f"net.slices.{where[int(k.split('.')[1])]}.{k.split('.', 1)[1]}" if k.startswith("features.") else k): v
        for k, v in state.items()
    }
    save_file(renamed, tmp_path / "torchmetrics.safetensors")
    loaded_tm = load_lpips(tmp_path / "torchmetrics.safetensors")
    x, y = torch.rand(1, 3, 48, 48) * 2 - 1, torch.rand(1, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        want = models.lpips(x, y)
        assert torch.equal(loaded(x, y), want) and torch.equal(loaded_tm(x, y), want)
    save_file({k: v for k, v in state.items() if k.startswith("lin")}, tmp_path / "only_lins.safetensors")
    with pytest.raises(P2PError, match="LPIPS weights lack .* keys: features"):
        load_lpips(tmp_path / "only_lins.safetensors")
    (tmp_path / "squeeze.pth").write_bytes(b"pickle")
    with pytest.raises(P2PError, match="safetensors"):
        load_lpips(tmp_path / "squeeze.pth")


# ---------------------------------------------------------------- structure distance


def test_dino_input_resizes_as_the_benchmark_and_keeps_0_255_pixels():
    assert dino_resized_size(512, 512) == (224, 224)
    assert dino_resized_size(384, 512) == (224, 298)
    assert dino_resized_size(512, 384) == (298, 224)
    assert dino_resized_size(100, 1000) == (48, 480)  # the long side capped at 480
    white = dino_input(torch.full((3, 32, 32), 255.0), antialias=False)
    assert white.shape == (3, 224, 224)
    expected = (255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(white[:, 100, 100], expected)  # no division by 255 first: the benchmark's quirk


def _written_out_structure(models, source, edited):
    """Keys of the last block caught by a hook on its qkv layer during a full forward (as the
    benchmark's extractor does), cosine self-similarity in float64, mean squared difference."""
    caught = []
    hook = models.dino.blocks[-1].attn.qkv.register_forward_hook(lambda m, i, o: caught.append(o))
    sims = []
    try:
        for img in (source, edited):
            x = torch.tensor(img, dtype=torch.float32).permute(2, 0, 1)[None]
            x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
            mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
            x = (x - mean) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
            with torch.no_grad():
                models.dino(x)
            dim = caught[-1].shape[-1] // 3
            keys = caught[-1][0, :, dim : 2 * dim].double().numpy()
            unit = keys / np.linalg.norm(keys, axis=1, keepdims=True)
            sims.append(unit @ unit.T)
    finally:
        hook.remove()
    return float(np.mean((sims[0] - sims[1]) ** 2))


def test_structure_distance_is_the_written_out_self_similarity_distance(models, pair, scores):
    case, edited = pair
    expected = _written_out_structure(models, np.asarray(case.image()), edited)
    assert expected > 0
    assert scores["structure_distance"] == pytest.approx(expected, rel=1e-4)


def test_structure_distance_is_zero_on_identical_images_and_symmetric(models, pair, tmp_path):
    case, edited = pair
    source = np.asarray(case.image())
    same = score(case, Image.fromarray(source), models)
    assert same["structure_distance"] == 0.0
    assert same["psnr_unedit_part"] == math.inf and same["mse_unedit_part"] == 0.0
    assert same["ssim_unedit_part"] == 1.0 and same["lpips_unedit_part"] == 0.0  # published: unclamped
    swapped = _case(tmp_path, edited, case.mask)
    there = score(case, Image.fromarray(edited), models)["structure_distance"]
    back = score(swapped, Image.fromarray(source), models)["structure_distance"]
    assert back == pytest.approx(there, rel=1e-6)


def test_dino_keys_stop_early_but_equal_the_full_forward_and_handle_other_grids(models):
    x = torch.randn(2, 3, 224, 296)
    caught = []
    hook = models.dino.blocks[-1].attn.qkv.register_forward_hook(lambda m, i, o: caught.append(o))
    with torch.no_grad():
        models.dino(x)
        keys = models.dino.keys(x)
    hook.remove()
    dim = keys.shape[-1]
    assert keys.shape == (2, 1 + 28 * 37, dim)
    assert torch.equal(keys, caught[0][..., dim : 2 * dim])


# ---------------------------------------------------------------- CLIP score


def test_clip_score_is_100_times_the_cosine_clamped_at_zero(models, pair, scores):
    case, edited = pair
    proc, tok, clip = models.clip_image_processor, models.clip_tokenizer, models.clip
    inside = edited * case.mask[..., None].astype(np.uint8)
    with torch.no_grad():
        pixels = proc(images=[Image.fromarray(edited), Image.fromarray(inside)], return_tensors="pt")["pixel_values"]
        image = clip.get_image_features(pixel_values=pixels)
        image = image if isinstance(image, torch.Tensor) else image.pooler_output
        ids = tok([case.target_prompt], return_tensors="pt")
        text = clip.get_text_features(ids["input_ids"], ids["attention_mask"])
        text = text if isinstance(text, torch.Tensor) else text.pooler_output
    cos = F.cosine_similarity(image.double(), text.double()).numpy()
    assert cos.min() > 0  # the random CLIP shares a direction between the towers: scores are not clamped
    assert scores["clip_similarity_target_image"] == pytest.approx(100 * cos[0], rel=1e-5)
    assert scores["clip_similarity_target_image_edit_part"] == pytest.approx(100 * cos[1], rel=1e-5)


# ---------------------------------------------------------------- NaN policy, batching, inputs


def test_nan_policy_follows_the_benchmark(models, tmp_path):
    rng = np.random.default_rng(5)
    source, edited = _image(rng, 40, 40), _image(rng, 40, 40)
    whole = score(_case(tmp_path, source, np.ones((40, 40)), "all"), Image.fromarray(edited), models)
    assert all(math.isnan(whole[k]) for k in METRIC_NAMES[1:5])
    assert not math.isnan(whole["clip_similarity_target_image_edit_part"])
    empty = score(_case(tmp_path, source, np.zeros((40, 40)), "none"), Image.fromarray(edited), models)
    assert math.isnan(empty["clip_similarity_target_image_edit_part"])
    assert all(math.isfinite(empty[k]) for k in METRIC_NAMES if k != "clip_similarity_target_image_edit_part")
    assert all(math.isnan(empty[k]) for k in POCKET_METRIC_NAMES)  # not a pocket-bench case
    assert list(empty) == list(ALL_METRIC_NAMES)


def test_batches_give_the_single_scores_and_seeds_reproduce(models, tmp_path):
    rng = np.random.default_rng(6)
    cases, edits = [], []
    for k, (h, w) in enumerate([(48, 48), (48, 48), (40, 56), (48, 48), (32, 32)]):
        mask = np.zeros((h, w), bool)
        mask[5:20, 8:30] = True
        cases.append(_case(tmp_path, _image(rng, h, w), mask, f"b{k}", prompt=f"a photo number {k}"))
        edits.append(Image.fromarray(_image(rng, h, w)))
    batched = score_batch(cases, edits, models, batch_size=3)
    for case, edit, row in zip(cases, edits, batched):
        single = score(case, edit, models, device="cpu")
        for name in METRIC_NAMES:
            assert row[name] == pytest.approx(single[name], rel=1e-5, abs=1e-9), name
    quick = dataclasses.replace(models, clip_batch=4)  # CLIP's image tower batched: the last float32 digits move
    for row, fast in zip(batched, score_batch(cases, edits, quick)):
        assert fast["clip_similarity_target_image"] == pytest.approx(row["clip_similarity_target_image"], abs=1e-4)
    with pytest.raises(P2PError, match="clip_batch"):
        dataclasses.replace(models, clip_batch=0)
    twin = MetricModels.random(0)
    assert all(torch.equal(a, b) for a, b in zip(twin.dino.state_dict().values(), models.dino.state_dict().values()))
    assert score_batch(cases, edits, twin, batch_size=3) == batched
    other = MetricModels.random(1)
    assert score(cases[0], edits[0], other)["structure_distance"] != batched[0]["structure_distance"]


def test_settings_switch_the_library_behaviours(models, pair, tmp_path):
    case, edited = pair
    published = score(case, Image.fromarray(edited), models)
    current = score(case, Image.fromarray(edited), models.with_settings(MetricSettings.current()))
    assert MetricSettings() == MetricSettings.published()
    assert current["ssim_unedit_part"] != published["ssim_unedit_part"]  # cropped vs whole SSIM map
    assert current["psnr_unedit_part"] == published["psnr_unedit_part"]
    # antialiasing acts only where DINO's input is shrunk: the 64 px pair is enlarged to 224, where
    # both resizes agree up to rounding (equal on one CPU, not on another). A 320 px image of pixel
    # noise shrunk to 224 is where it must matter: the plain resize keeps the noise, the antialiased
    # one averages it away.
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)
    pixels = torch.tensor(noise, dtype=torch.float32).permute(2, 0, 1)
    plain, smooth = dino_input(pixels, antialias=False), dino_input(pixels, antialias=True)
    assert plain.shape == smooth.shape == (3, 224, 224)
    assert float(smooth.std()) < 0.8 * float(plain.std())  # 153 vs 217 on a 2-core EPYC
    mask = np.zeros((320, 320), bool)
    mask[90:230, 90:230] = True
    changed = noise.copy()
    changed[100:220, 100:220] = 255 - changed[100:220, 100:220]
    noisy = _case(tmp_path, noise, mask, "noise")
    published = score(noisy, Image.fromarray(changed), models)["structure_distance"]
    now = models.with_settings(MetricSettings.current())
    current = score(noisy, Image.fromarray(changed), now)["structure_distance"]
    assert abs(current - published) > 0.5 * max(current, published), (published, current)  # 4.8e-4 vs 1.3e-4


def test_the_clip_image_processor_is_a_setting(models, pair):
    """The published numbers used transformers' PIL-based CLIPImageProcessor; transformers 5 picks a
    torchvision one where torchvision is installed, and the scores move."""
    assert MetricSettings.published().clip_image_processor == "pil"
    assert image_processor_kind(models.clip_image_processor) == "pil"
    assert models.image_processor() is models.clip_image_processor
    with pytest.raises(P2PError, match="clip_image_processor must be one of"):
        MetricSettings(clip_image_processor="fast")
    case, edited = pair
    other = models.with_settings(dataclasses.replace(MetricSettings.published(), clip_image_processor="torchvision"))
    if importlib.util.find_spec("torchvision") is None:
        with pytest.raises(P2PError, match="needs torchvision installed"):
            score(case, Image.fromarray(edited), other)
        assert MetricSettings.current().clip_image_processor == "pil"  # what transformers falls back to
    else:
        assert image_processor_kind(other.image_processor()) == "torchvision"
        assert MetricSettings.current().clip_image_processor == "torchvision"
        base = score(case, Image.fromarray(edited), models)["clip_similarity_target_image"]
        assert score(case, Image.fromarray(edited), other)["clip_similarity_target_image"] != base


def test_bad_input_is_named(models, pair, tmp_path):
    case, edited = pair
    with pytest.raises(P2PError, match="edited image is 32x32 but case 'c'"):
        score(case, Image.new("RGB", (32, 32)), models)
    with pytest.raises(P2PError, match="edited must be an RGB PIL image"):
        score(case, "edit.png", models)
    with pytest.raises(P2PError, match="models must be MetricModels"):
        score(case, Image.fromarray(edited), object())
    with pytest.raises(P2PError, match="2 cases but 1 edited"):
        score_batch([case, case], [Image.fromarray(edited)], models)
    with pytest.raises(P2PError, match="mask is"):
        score(_case(tmp_path, edited, np.zeros((10, 10))), Image.fromarray(edited), models)
    with pytest.raises(P2PError, match="size must be one of"):
        MetricModels.random(0, size="huge")


# ---------------------------------------------------------------- loaders


def test_dino_loads_dino_named_safetensors_and_transformers_vit(models, tmp_path):
    from safetensors.torch import save_file
    from transformers import ViTConfig, ViTModel

    save_file({k: v.contiguous() for k, v in models.dino.state_dict().items()}, tmp_path / "dino.safetensors")
    loaded = load_dino(tmp_path / "dino.safetensors", heads=3)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.keys(x), models.dino.keys(x))
    torch.manual_seed(0)
    config = ViTConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96)
    config.update(dict(image_size=32, patch_size=8, layer_norm_eps=1e-6, qkv_bias=True))
    vit = ViTModel(config, add_pooling_layer=False).eval()
    vit.save_pretrained(tmp_path / "vit")
    dino = load_dino(tmp_path / "vit")
    caught = []
    layer = vit.layers[-1] if hasattr(vit, "layers") else vit.encoder.layer[-1]  # transformers 5.2x / earlier
    key = layer.attention.k_proj if hasattr(layer.attention, "k_proj") else layer.attention.attention.key
    hook = key.register_forward_hook(lambda m, i, o: caught.append(o))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        vit(pixel_values=x)
        hook.remove()
        assert torch.allclose(dino.keys(x), caught[0], atol=1e-5)
    with pytest.raises(P2PError, match="weights file not found"):
        load_dino(tmp_path / "missing.safetensors")
    with pytest.raises(P2PError, match="cannot load DINO"):
        load_dino(tmp_path / "not-a-folder")


def test_clip_loads_a_saved_folder_and_scores_alike(models, pair, tmp_path):
    case, edited = pair
    models.clip.save_pretrained(tmp_path / "clip")
    models.clip_tokenizer.save_pretrained(tmp_path / "clip")
    models.clip_image_processor.save_pretrained(tmp_path / "clip")
    clip = load_clip(tmp_path / "clip")
    again = MetricModels(models.dino, *clip, models.lpips)
    a = score(case, Image.fromarray(edited), models)
    b = score(case, Image.fromarray(edited), again)
    # from_pretrained may pick another attention kernel than the constructor: equal to float32 rounding
    assert b["clip_similarity_target_image"] == pytest.approx(a["clip_similarity_target_image"], rel=1e-6)
    loaded = MetricModels.load(models.dino, tmp_path / "clip", models.lpips, device="cpu")
    assert isinstance(loaded.lpips, LpipsSqueeze) and loaded.device == torch.device("cpu")
    with pytest.raises(P2PError, match="cannot load CLIP"):
        load_clip(tmp_path / "nothing-here")


# ---------------------------------------------------------------- pocket-bench extras


@pytest.fixture(scope="module")
def pocket_cases(tmp_path_factory):
    return make_pocket_bench(tmp_path_factory.mktemp("pocket"), n=14, seed=11)


def test_the_ideal_edit_scores_full_mask_iou_and_high_fidelity(pocket_cases):
    fidelity = []
    for case in pocket_cases:
        truth = truth_of(case)
        ideal = truth.render_target()
        assert mask_iou(truth, np.asarray(case.image()), ideal) == 1.0
        fidelity.append(target_fidelity(truth, ideal))
    assert np.mean(fidelity) >= 0.85  # the reader's own accuracy bounds it


def test_an_unchanged_image_fails_the_edit(pocket_cases):
    missed, done = [], []
    for case in pocket_cases:
        truth, source = truth_of(case), np.asarray(case.image())
        assert mask_iou(truth, source, source) == 0.0
        if case.edit_type in (6, 8, 2, 3):  # colour, background, add, delete: a plain miss
            missed.append(target_fidelity(truth, source))
            done.append(target_fidelity(truth, truth.render_target()))
    assert np.mean(missed) < np.mean(done) - 0.05


def test_score_adds_the_pocket_metrics_for_pocket_cases(models, pocket_cases):
    case = pocket_cases[0]
    ideal = truth_of(case).render_target()
    row = score(case, Image.fromarray(ideal), models)
    assert row["mask_iou"] == 1.0
    assert row["target_fidelity"] == target_fidelity(truth_of(case), ideal)
    assert row["psnr_unedit_part"] == math.inf  # the ideal edit leaves the rest exactly as it was
    assert not any(math.isnan(row[k]) for k in METRIC_NAMES)


# ---------------------------------------------------------------- the benchmark's own code


@pytest.mark.needs_checkout(
    "P2P_PNPINVERSION",
    "cure-lab/PnPInversion (its evaluation/ code; facebookresearch/dino optional, P2P_DINO_REPO)",
    "python -m p2p_widgets.evaluate.compare_metrics --pnpinversion DIR [--dino-repo DIR]",
)
def test_metrics_equal_the_benchmarks_code():
    """In its own process: the comparison stubs torchvision, torch.hub and transformers' loaders."""
    command = [sys.executable, "-m", "p2p_widgets.evaluate.compare_metrics", "--size", "small"]
    command += ["--pnpinversion", os.environ["P2P_PNPINVERSION"]]
    if os.environ.get("P2P_DINO_REPO"):
        command += ["--dino-repo", os.environ["P2P_DINO_REPO"]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    found = dict(re.findall(r"max \|ours - theirs\| (\S+): (\S+) ok", done.stdout))
    assert set(METRIC_NAMES) <= set(found)
    assert all(float(v) <= 1e-5 for v in found.values())
    assert re.search(r"masks: \d\d+ compared, 0 differ", done.stdout)
