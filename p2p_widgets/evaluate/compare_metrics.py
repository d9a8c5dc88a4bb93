"""Our PIE-Bench metrics against the benchmark's own evaluation code, on the same images, masks and
random-weight metric networks:

    python -m p2p_widgets.evaluate.compare_metrics --pnpinversion DIR [--dino-repo DIR] [--cases 4]
        [--size full|small] [--seed 0]

``DIR`` is a checkout of the benchmark's repository (cure-lab/PnPInversion). This command imports its
``evaluation/`` package (``evaluate.py``: ``mask_decode``, ``calculate_metric``;
``matrics_calculator.py``: ``MetricsCalculator``), so it runs code from that checkout, and only when you
run it. Needs torchmetrics (the ``eval`` extra). What cannot be installed beside the project's torch is
stubbed for this process only:

- ``torchvision``: ``transforms.Resize`` / ``Normalize`` / ``Compose`` written here from torchvision's
  tensor behaviour (bilinear, ``max_size``; antialias off as before torchvision 0.17, on since: the run
  does both), and ``models.squeezenet1_1`` returning our SqueezeNet features with the random weights;
- ``torch.hub.load('facebookresearch/dino:main', 'dino_vitb8')``: DINO's own ``vision_transformer.py``
  from ``--dino-repo`` (a facebookresearch/dino checkout) with our random weights loaded, or our
  :class:`~p2p_widgets.evaluate.nets.DinoViT` without one;
- transformers' ``CLIPModel`` / ``CLIPProcessor.from_pretrained``: our random CLIP, its PIL image
  processor (the one behind the published numbers; with torchvision stubbed, transformers 5 would pick
  it too) and the package's tokenizer. transformers 5 returns an output object from
  ``get_*_features``; the stub hands torchmetrics the ``pooler_output`` tensor, as transformers 4 did;
- LPIPS's linear layers: torchmetrics' shipped ``squeeze.pth`` weights are copied into ours.

The settings compared follow the installed torchmetrics (:func:`settings_for`: LPIPS's epsilon inside
the root from 1.2.1, SSIM's variances clamped at 0 from 1.3.2, SSIM cropping before 1.5); with
torchmetrics 1.2.0 that is :meth:`MetricSettings.published`. ``--size full`` uses the real geometries
(DINO ViT-B/8, CLIP ViT-L/14); ``small`` keeps what the benchmark's code fixes (DINO: 12 blocks of width
768) and shrinks the rest.
The RLE decoder is checked against ``mask_decode`` on a synthetic mapping file. Prints the maximum
absolute difference per metric; exits 1 if any exceeds 1e-5 or any mask differs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import itertools
import json
import math
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import P2PError
from .cases import EditCase
from .datasets import IMAGES_DIR, MAPPING_FILE, dataset_root, decode_rle, read_entries, read_pie, write_pie
from .metrics import METRIC_NAMES, MetricModels, MetricSettings, _features, score_batch
from .nets import DinoViT
from .weights import randomize_weights

TOLERANCE = 1e-5
PROMPTS = ("a photo of a red bicycle", "a cat sitting on a wooden bench", "a watercolor painting of a house")


# ---------------------------------------------------------------- stand-ins for what cannot be installed


class _Resize:
    """torchvision's Resize(int, max_size=...) on tensors, bilinear; ``antialias`` per version."""

    default_antialias = False  # set per run: False is torchvision < 0.17's tensor behaviour

    def __init__(self, size, interpolation=None, max_size=None, antialias=None):
        self.size, self.max_size = size, max_size
        self.antialias = _Resize.default_antialias if antialias is None else antialias

    def _output_size(self, h, w):
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.size, int(self.size * long / short)
        if self.max_size is not None and new_long > self.max_size:
            new_short, new_long = int(self.max_size * new_short / new_long), self.max_size
        return [new_long, new_short] if w <= h else [new_short, new_long]

    def __call__(self, img):
        out = self._output_size(*img.shape[-2:])
        if list(img.shape[-2:]) == out:
            return img
        x = img[None] if img.ndim == 3 else img
        x = F.interpolate(x, size=out, mode="bilinear", align_corners=False, antialias=self.antialias)
        return x[0] if img.ndim == 3 else x


class _Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, img):
        mean = torch.as_tensor(self.mean, dtype=img.dtype, device=img.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=img.dtype, device=img.device).view(-1, 1, 1)
        return img.clone().sub_(mean).div_(std)


class _Compose:
    def __init__(self, steps):
        self.steps = steps

    def __call__(self, img):
        for step in self.steps:
            img = step(img)
        return img


class _ClipV4(torch.nn.Module):
    """A CLIPModel whose get_*_features return tensors, as transformers 4's did."""

    def __init__(self, clip):
        super().__init__()
        self.clip, self.config = clip, clip.config

    def get_image_features(self, *args, **kwargs):
        return _features(self.clip.get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs):
        return _features(self.clip.get_text_features(*args, **kwargs))


def _dino_for_hub(models: MetricModels, dino_repo):
    if dino_repo is None:
        return models.dino
    sys.path.insert(0, str(Path(dino_repo).resolve()))
    vits = importlib.import_module("vision_transformer")
    cfg = models.dino.config
    theirs = vits.VisionTransformer(
        patch_size=cfg["patch"], embed_dim=cfg["dim"], depth=cfg["depth"], num_heads=cfg["heads"],
        mlp_ratio=cfg["mlp_hidden"] / cfg["dim"], qkv_bias=True, num_classes=0,
        norm_layer=lambda d: torch.nn.LayerNorm(d, eps=cfg["eps"]),
    )  # fmt: skip
    theirs.load_state_dict(models.dino.state_dict(), strict=True)
    return theirs.eval()


def install_stubs(models: MetricModels, dino_repo=None):
    """Put the stand-ins in place (sys.modules, torch.hub.load, transformers' from_pretrained)."""
    import transformers

    # torchmetrics asks whether torchvision is installed while it imports: answer before the stub exists
    for name in ("torchmetrics", "torchmetrics.image", "torchmetrics.multimodal", "torchmetrics.regression"):
        importlib.import_module(name)
    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.Resize, tv.transforms.Normalize, tv.transforms.Compose = _Resize, _Normalize, _Compose
    tv.models = types.ModuleType("torchvision.models")
    tv.models.squeezenet1_1 = lambda weights=None, pretrained=None: types.SimpleNamespace(
        features=models.lpips.features
    )
    tv.models.SqueezeNet1_1_Weights = types.SimpleNamespace(DEFAULT="random", IMAGENET1K_V1="random")
    for module in (tv, tv.transforms, tv.models):
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
        sys.modules[module.__name__] = module
    hub_model = _dino_for_hub(models, dino_repo)

    def hub_load(repo, name, *args, **kwargs):
        if (repo, name) != ("facebookresearch/dino:main", "dino_vitb8"):
            raise P2PError(f"the comparison stubs only dino_vitb8, asked for {repo} {name}")
        return hub_model

    torch.hub.load = hub_load
    processor = transformers.CLIPProcessor(image_processor=models.clip_image_processor, tokenizer=models.clip_tokenizer)
    clip = _ClipV4(models.clip)
    transformers.CLIPModel.from_pretrained = classmethod(lambda cls, *a, **k: clip)
    transformers.CLIPProcessor.from_pretrained = classmethod(lambda cls, *a, **k: processor)
    for name in ("torchmetrics.image.lpip", "torchmetrics.functional.image.lpips"):
        module = importlib.import_module(name)
        if hasattr(module, "_TORCHVISION_AVAILABLE"):
            module._TORCHVISION_AVAILABLE = True  # the stub stands in for the package check
        if name.endswith(".lpips") and not hasattr(module, "tv"):
            module.tv = tv.models  # torchmetrics <= 1.2 imported torchvision's models at import, as `tv`


def _release(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a version string such as "1.3.0.post0", "1.5.0rc1" or "1.2"."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts + [0] * (3 - len(parts)))


def settings_for(torchmetrics_version: str, antialias: bool) -> MetricSettings:
    """The MetricSettings a torchmetrics version computes (read in its sources at each tag): LPIPS's
    epsilon moved inside the square root in 1.2.1, SSIM's variances are clamped at 0 from 1.3.2, the
    SSIM map is no longer cropped from 1.5.0. ``antialias``: the torchvision resize the stub plays.
    CLIP's processor is the PIL one: the stub hands the benchmark's code ours."""
    version = _release(torchmetrics_version)
    return MetricSettings(
        dino_antialias=antialias,
        ssim_crop=version < (1, 5, 0),
        ssim_clamp_variance=version >= (1, 3, 2),
        lpips_eps_inside=version >= (1, 2, 1),
        clip_image_processor="pil",
    )


def their_settings(antialias: bool) -> MetricSettings:
    """The behaviour of the installed torchmetrics and of the torchvision the stub plays (MetricSettings)."""
    import torchmetrics

    return settings_for(torchmetrics.__version__, antialias)


# ---------------------------------------------------------------- data


def _smooth_image(rng, h, w) -> np.ndarray:
    from PIL import Image

    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    noisy = np.asarray(coarse, dtype=np.float32) + rng.normal(0, 6, (h, w, 3))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _ellipse(rng, h, w) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    ry, rx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.15, 0.35) * w
    return ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1


def synthetic_cases(folder, n: int = 4, seed: int = 0):
    """``n`` (>= 4) cases written as a PIE-format folder and read back, with edited images: square
    512, 384x512, 32x32, and a 64x64 case whose mask covers everything (the NaN path)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(512, 512), (384, 512), (32, 32), (64, 64)] + [(512, 512)] * max(n - 4, 0)
    items, edits = [], {}
    for k, (h, w) in enumerate(sizes):
        source = _smooth_image(rng, h, w)
        mask = np.ones((h, w), bool) if (h, w) == (64, 64) else _ellipse(rng, h, w)
        edited = source.astype(np.float32) + rng.normal(0, 3, source.shape)
        edited[mask] = 255 - edited[mask] * rng.uniform(0.5, 1.0)
        prompt = PROMPTS[k % len(PROMPTS)]
        case = EditCase(f"{k:012d}", Path(f"{k % 10}_synthetic/{k:012d}.png"), prompt, prompt + " at night", k % 10,
                        ("bicycle", "bicycle"), mask, "make it night")  # fmt: skip
        items.append((case, source))
        edits[case.id] = Image.fromarray(np.clip(np.rint(edited), 0, 255).astype(np.uint8))
    cases = write_pie(folder, items)
    return [(c, edits[c.id]) for c in cases]


def rle_check(mask_decode, folder) -> tuple[int, int]:
    """(masks compared, masks that differ) between their ``mask_decode`` and ours: odd runs (overlapping,
    unsorted, empty, past the end, starting past the end) on 512x512 and on other sizes, also read back
    through :func:`read_pie` from a mapping file in their format."""
    from PIL import Image

    n = 512 * 512
    runs = [[], [0, 1], [5, 10, 3, 4], [100, 50, 120, 10], [n - 20, 100], [n + 5, 3], [7, 0, 9, 1], [0, n]]
    runs += [[int(v) for v in np.random.default_rng(s).integers(0, n, 40)] for s in range(4)]
    shapes = [(512, 512)] * len(runs) + [(64, 48), (32, 32)]
    runs += [[10, 200, 3000, 7], [0, 5, 1020, 10]]
    compared = differ = 0
    root = Path(folder)
    (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    entries = {}
    for k, (rle, (h, w)) in enumerate(zip(runs, shapes)):
        theirs = mask_decode(rle, [h, w]).astype(bool)
        differ += int(not np.array_equal(theirs, decode_rle(rle, (h, w))))
        compared += 1
        Image.new("RGB", (w, h)).save(root / IMAGES_DIR / f"{k}.png")
        entries[f"{k:012d}"] = {"image_path": f"{k}.png", "original_prompt": "a [cat]", "editing_prompt": "a [dog]",
                                "editing_instruction": "", "editing_type_id": "1", "blended_word": "cat dog",
                                "mask": rle}  # fmt: skip
    (root / MAPPING_FILE).write_text(json.dumps(entries))
    for case in read_pie(root):
        rle, (h, w) = entries[case.id]["mask"], case.mask.shape
        differ += int(not np.array_equal(mask_decode(rle, [h, w]).astype(bool), case.mask))
        compared += 1
    return compared, differ


# ---------------------------------------------------------------- the comparison


def _their_values(evaluate, calculator, case: EditCase, edited) -> dict[str, float]:
    from PIL import Image

    rle = read_entries(dataset_root(case))[case.id]["mask"]
    mask = evaluate.mask_decode(rle, list(case.mask.shape))[:, :, np.newaxis].repeat([3], axis=2)
    with Image.open(case.image_path) as src:
        source = src.convert("RGB")
    out = {}
    for metric in METRIC_NAMES:
        value = evaluate.calculate_metric(
            calculator, metric, source, edited, mask, mask, case.source_prompt, case.target_prompt
        )
        out[metric] = float(value)  # "nan" -> nan; a 0-d array or a float as it is
    return out


def _difference(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b) or (math.isinf(a) and a == b):
        return 0.0
    return abs(a - b)


def compare(pnpinversion, dino_repo=None, n: int = 4, size: str = "full", seed: int = 0, out=print) -> dict:
    """Run the comparison; returns {metric: max |ours - theirs|} plus "masks_differ" and "masks_compared".

    It patches this process (sys.modules, torch.hub.load, transformers' from_pretrained): run it in a
    process of its own, as the command line does."""
    models = MetricModels.random(seed, size=size if size == "full" else "small")
    if size != "full":  # the benchmark's code fixes DINO's width (768) and block count (12)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            models.dino = randomize_weights(DinoViT(dim=768, depth=12, heads=12, mlp_hidden=768)).eval()
    install_stubs(models, dino_repo)
    sys.path.insert(0, str(Path(pnpinversion).resolve()))
    evaluate = importlib.import_module("evaluation.evaluate")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["masks_compared"], results["masks_differ"] = rle_check(evaluate.mask_decode, Path(tmp) / "rle")
        pairs = synthetic_cases(Path(tmp) / "cases", n, seed)
        for antialias in (False, True):
            _Resize.default_antialias = antialias
            calculator = evaluate.MetricsCalculator("cpu")
            _copy_lpips_lins(calculator, models)
            settings = their_settings(antialias)
            t0 = time.perf_counter()
            ours = score_batch([c for c, _ in pairs], [e for _, e in pairs], models.with_settings(settings))
            theirs = [_their_values(evaluate, calculator, c, e) for c, e in pairs]
            out(f"torchvision antialias {antialias}: {settings} ({time.perf_counter() - t0:.0f} s)")
            names = METRIC_NAMES if not antialias else ("structure_distance",)
            for name in names:
                key = name if not antialias else f"{name}_antialias"
                results[key] = max(_difference(o[name], t[name]) for o, t in zip(ours, theirs))
                shown = ", ".join(f"{o[name]:.6g}/{t[name]:.6g}" for o, t in zip(ours, theirs))
                out(f"  {key}: ours/theirs {shown}")
    return results


def _copy_lpips_lins(calculator, models: MetricModels):
    """torchmetrics loaded its trained linear layers; ours take the same weights."""
    net = calculator.lpips_metric_calculator.net
    with torch.no_grad():
        for k in range(7):
            getattr(models.lpips, f"lin{k}").model[1].weight.copy_(getattr(net, f"lin{k}").model[-1].weight)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.evaluate.compare_metrics", description=__doc__.split("\n")[0]
    )
    p.add_argument("--pnpinversion", required=True, help="checkout of cure-lab/PnPInversion (its evaluation/ is run)")
    p.add_argument("--dino-repo", help="checkout of facebookresearch/dino: its ViT code runs with our random weights")
    p.add_argument("--cases", type=int, default=4, help="synthetic cases (at least 4)")
    p.add_argument("--size", choices=("full", "small"), default="full")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not (Path(args.pnpinversion) / "evaluation" / "matrics_calculator.py").is_file():
        p.error(f"{args.pnpinversion} is not a PnPInversion checkout (no evaluation/matrics_calculator.py)")
    torch.set_grad_enabled(False)
    results = compare(args.pnpinversion, args.dino_repo, max(args.cases, 4), args.size, args.seed)
    print(f"masks: {results['masks_compared']} compared, {results['masks_differ']} differ")
    failed = results["masks_differ"] > 0
    for key, value in results.items():
        if key.startswith("masks_"):
            continue
        ok = value <= TOLERANCE
        failed |= not ok
        print(f"max |ours - theirs| {key}: {value:.3g} {'ok' if ok else 'FAIL'}")
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main())
