"""PIE-Bench's seven metrics, computed as the benchmark's evaluation code computes them, plus
pocket-bench's target fidelity and mask IoU.

``score(case, edited, models)`` returns, for the source image of ``case`` and the edited PIL image
(same size; the benchmark's ``mask`` is 1 where the edit may change the image):

- ``structure_distance``: DINO ViT-B/8 keys of the last block, per image: the image as float
  pixels in 0..255 (not divided by 255, as the benchmark does) resized so the short side is 224
  (long side at most 480, bilinear) and normalised with ImageNet's mean and std; the token x token
  cosine self-similarity of the keys (CLS included, heads concatenated); the score is the mean
  squared difference of the two matrices. Whole images, no mask.
- ``psnr_unedit_part``, ``mse_unedit_part``, ``ssim_unedit_part`` (Gaussian 11x11, sigma 1.5) and
  ``lpips_unedit_part`` (SqueezeNet LPIPS, inputs in [-1, 1]): both images in [0, 1] multiplied by
  ``1 - mask``, over the whole image. NaN when the mask covers the whole image.
- ``clip_similarity_target_image`` and ``..._edit_part``: CLIP score ``max(100 cos, 0)`` of the
  edited image (edit part: the edited image times the mask) against the target prompt, the image
  prepared by transformers' PIL-based ``CLIPImageProcessor`` (see ``MetricSettings``); the edit
  part is NaN for an empty mask.
- pocket-bench cases only (NaN otherwise): ``target_fidelity``, the share of the target scene's
  attributes the pocket :class:`~p2p_widgets.pocket.metrics.SceneReader` reads back from the edited
  image (background, pattern, object count, and per object presence, colour, shape, size, plus the
  relation); ``mask_iou``, the IoU of the pixels the edit changed (RGB distance >
  ``CHANGE_DISTANCE``) with those the ideal edit changes (the target scene drawn as the source was;
  they lie inside the case's mask).

Values are raw, as the benchmark's CSV holds them (its tables print structure x 1e3, LPIPS x 1e3,
MSE x 1e4, SSIM x 1e2: each metric's ``table_scale`` in ``metric_registry.METRICS``). Library
changes since the benchmark's numbers were published move them; :class:`MetricSettings` chooses:
``dino_antialias`` (torchvision 0.17 began antialiasing tensor resizes), ``lpips_eps_inside``
(torchmetrics 1.2.1 moved LPIPS's epsilon inside the square root), ``ssim_clamp_variance`` (1.3.2
began clamping SSIM's local variances at 0), ``ssim_crop`` (1.5 stopped cropping the SSIM map to its
valid part) and ``clip_image_processor`` (transformers 5 with torchvision installed prepares CLIP's
input with a torchvision image processor instead of the PIL one). The default,
:meth:`MetricSettings.published`, is the earlier behaviour (torchvision < 0.17, torchmetrics <=
1.2.0, the PIL processor); :meth:`MetricSettings.current` is what the benchmark's code gives with
today's libraries. ``python -m p2p_widgets.evaluate.compare_metrics`` checks both against the
benchmark's own code.

The metric networks are built in plain torch (DINO's ViT, SqueezeNet: ``nets.py``) or come from
transformers (CLIP), their weights loaded or randomised by ``weights.py``: :meth:`MetricModels.load`
takes the real weights, :meth:`MetricModels.random` builds them from configs with random weights
(tests, comparisons). DINO and LPIPS run batched; CLIP's
image tower runs one image at a time unless ``MetricModels.clip_batch`` says otherwise (the scores then
equal the benchmark's to the bit on the same device).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import P2PError, is_int
from .cases import EditCase
from .metric_registry import ALL_METRIC_NAMES, METRIC_NAMES, POCKET_METRIC_NAMES  # noqa: F401  (imported from here)
from .nets import DinoViT, LpipsSqueeze
from .weights import (
    RANDOM_SIZES,
    image_processor_kind,
    load_clip,
    load_dino,
    load_lpips,
    pil_image_processor_class,
    random_clip,
    randomize_weights,
    torchvision_image_processor_class,
    torchvision_installed,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_SIZE, DINO_MAX_SIZE = 224, 480
SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03
CHANGE_DISTANCE = 48.0  # RGB distance (0..255) above which a pixel counts as changed (mask IoU)


CLIP_IMAGE_PROCESSORS = ("pil", "torchvision")


@dataclass(frozen=True)
class MetricSettings:
    """Library behaviours the benchmark's numbers depend on (see the module doc).

    - ``dino_antialias``: antialiased bilinear resize of DINO's input (torchvision >= 0.17).
    - ``ssim_crop``: SSIM averaged over the pixels whose window lies inside the image (torchmetrics
      < 1.5), else over the whole reflect-padded map.
    - ``ssim_clamp_variance``: the local variances clamped at 0 (torchmetrics >= 1.3.2). Without it an
      image compared with itself scores exactly 1; with it, flat regions whose float32 variance
      rounds below 0 pull the score under 1 (0.99995 for an image of flat 16 px blocks with itself).
    - ``lpips_eps_inside``: LPIPS normalises features by sqrt(1e-8 + |f|^2) (torchmetrics >= 1.2.1),
      else by |f| + 1e-10.
    - ``clip_image_processor``: ``"pil"``, transformers' PIL-based ``CLIPImageProcessor`` (the only one
      in the transformers 4.19-4.33 that PnPInversion's environment files pin; ``CLIPImageProcessorPil``
      in transformers 5), or ``"torchvision"``, the torchvision-based one that transformers 5 picks when
      torchvision is installed (it prepares the image differently, so CLIP scores move).
    """

    dino_antialias: bool = False
    ssim_crop: bool = True
    ssim_clamp_variance: bool = False
    lpips_eps_inside: bool = False
    clip_image_processor: str = "pil"

    def __post_init__(self):
        if self.clip_image_processor not in CLIP_IMAGE_PROCESSORS:
            raise P2PError(
                f"clip_image_processor must be one of {list(CLIP_IMAGE_PROCESSORS)}, got {self.clip_image_processor!r}"
            )

    @classmethod
    def published(cls) -> MetricSettings:
        """As the published PIE-Bench numbers were computed: torchvision < 0.17, torchmetrics <= 1.2.0
        (SSIM cropped, variances not clamped, LPIPS's epsilon outside the root), CLIP's PIL processor."""
        return cls(
            dino_antialias=False,
            ssim_crop=True,
            ssim_clamp_variance=False,
            lpips_eps_inside=False,
            clip_image_processor="pil",
        )

    @classmethod
    def current(cls) -> MetricSettings:
        """As the benchmark's code computes with torchvision >= 0.17, torchmetrics >= 1.5 and
        transformers 5 here: the torchvision CLIP processor where torchvision is installed (as
        transformers picks it), else the PIL one."""
        return cls(
            dino_antialias=True,
            ssim_crop=False,
            ssim_clamp_variance=True,
            lpips_eps_inside=True,
            clip_image_processor="torchvision" if torchvision_installed() else "pil",
        )


@dataclass
class MetricModels:
    """The metric networks: DINO ViT, CLIP (model, image processor, tokenizer) and SqueezeNet LPIPS."""

    dino: DinoViT
    clip: nn.Module
    clip_image_processor: object
    clip_tokenizer: object
    lpips: LpipsSqueeze
    settings: MetricSettings = field(default_factory=MetricSettings)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # CLIP's image tower one image at a time, as the benchmark runs it: then the scores equal its own
    # to the bit; larger batches are faster on a GPU and differ in the last float32 digits (~1e-5 of a
    # score near 100)
    clip_batch: int = 1
    text_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    processor_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not is_int(self.clip_batch) or self.clip_batch < 1:
            raise P2PError(f"clip_batch must be a positive integer, got {self.clip_batch!r}")
        for net in (self.dino, self.clip, self.lpips):
            net.eval().requires_grad_(False)

    def to(self, device) -> MetricModels:
        """Move the networks (in place) and return self."""
        device = torch.device(device)
        if device != self.device:
            for net in (self.dino, self.clip, self.lpips):
                net.to(device)
            self.device = device
            self.text_cache.clear()
        return self

    def with_settings(self, settings: MetricSettings) -> MetricModels:
        """The same networks under other :class:`MetricSettings`."""
        return replace(self, settings=settings)

    def image_processor(self):
        """CLIP's image processor of the kind ``settings.clip_image_processor`` names: the one held
        when it is of that kind, else one of that kind built from the held one's configuration."""
        kind = self.settings.clip_image_processor
        if image_processor_kind(self.clip_image_processor) == kind:
            return self.clip_image_processor
        if kind not in self.processor_cache:
            cls = pil_image_processor_class() if kind == "pil" else torchvision_image_processor_class()
            self.processor_cache[kind] = cls.from_dict(self.clip_image_processor.to_dict())
        return self.processor_cache[kind]

    @classmethod
    def load(cls, dino, clip, lpips, *, settings: MetricSettings | None = None, device=None) -> MetricModels:
        """The real metric networks from files, folders or hub ids (see :func:`load_dino`,
        :func:`load_clip`, :func:`load_lpips` for the expected files)."""
        models = cls(load_dino(dino), *load_clip(clip), load_lpips(lpips), settings or MetricSettings())
        return models.to(device) if device is not None else models

    @classmethod
    def random(cls, seed: int = 0, *, size: str = "small", settings: MetricSettings | None = None) -> MetricModels:
        """Networks built from configs with seeded random weights; ``size``: "small" (tests) or
        "full" (the real geometries: DINO ViT-B/8, CLIP ViT-L/14, SqueezeNet 1.1)."""
        if size not in RANDOM_SIZES:
            raise P2PError(f"size must be one of {sorted(RANDOM_SIZES)}, got {size!r}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            dino = randomize_weights(DinoViT(**RANDOM_SIZES[size]["dino"]))
            clip, image_processor, tokenizer = random_clip(RANDOM_SIZES[size]["clip"])
            lpips = randomize_weights(LpipsSqueeze(), positive_prefix="lin")
        return cls(dino, clip, image_processor, tokenizer, lpips, settings or MetricSettings())


# ---------------------------------------------------------------- the metrics


def dino_resized_size(height: int, width: int) -> tuple[int, int]:
    """(H, W) after the benchmark's resize: short side 224, long side at most 480."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = DINO_SIZE, int(DINO_SIZE * long / short)
    if new_long > DINO_MAX_SIZE:
        new_short, new_long = int(DINO_MAX_SIZE * new_short / new_long), DINO_MAX_SIZE
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    return new_h, new_w


def dino_input(image: torch.Tensor, antialias: bool) -> torch.Tensor:
    """(3, H, W) float pixels in 0..255 -> the resized, ImageNet-normalised DINO input (3, h, w)."""
    size = dino_resized_size(*image.shape[-2:])
    if tuple(image.shape[-2:]) != size:
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=antialias)[0]
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device)[:, None, None]
    return (image - mean) / std


def self_similarity(keys: torch.Tensor) -> torch.Tensor:
    """(B, N, D) -> (B, N, N) cosine similarity of every token pair (norms clamped at 1e-8)."""
    norms = keys.norm(dim=2, keepdim=True)
    return (keys @ keys.transpose(1, 2)) / torch.clamp(norms @ norms.transpose(1, 2), min=1e-8)


def structure_distances(models: MetricModels, sources, edits) -> list[float]:
    """Structure distance for pairs of (3, H, W) float 0..255 images (batched per resized size)."""
    inputs = [dino_input(img, models.settings.dino_antialias) for img in (*sources, *edits)]
    sims = [None] * len(inputs)
    by_size: dict[tuple, list[int]] = {}
    for i, x in enumerate(inputs):
        by_size.setdefault(tuple(x.shape), []).append(i)
    for idx in by_size.values():
        keys = models.dino.keys(torch.stack([inputs[i] for i in idx]))
        for i, sim in zip(idx, self_similarity(keys)):
            sims[i] = sim
    n = len(sources)
    return [float(((sims[i] - sims[n + i]) ** 2).mean()) for i in range(n)]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1] (data range 1), over every element."""
    sse = torch.sum(torch.pow(a - b, 2))
    return float(-torch.log(sse / a.numel()) * (10 / torch.log(torch.tensor(10.0))))


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    diff = (a - b).reshape(-1)
    return float(torch.sum(diff * diff, dim=0) / diff.numel())


def _gaussian_window(channels: int, dtype, device) -> torch.Tensor:
    size = int(3.5 * SSIM_SIGMA + 0.5) * 2 + 1
    dist = torch.arange((1 - size) / 2, (1 + size) / 2, 1, dtype=dtype, device=device)
    g = torch.exp(-torch.pow(dist / SSIM_SIGMA, 2) / 2)
    g = (g / g.sum())[None]
    return (g.t() @ g).expand(channels, 1, size, size)


def ssim(a: torch.Tensor, b: torch.Tensor, crop: bool = True, clamp_variance: bool = False) -> torch.Tensor:
    """SSIM per image of (B, C, H, W) in [0, 1] (Gaussian window 11, sigma 1.5, reflect padding);
    ``crop``: average over the pixels whose window lies inside the image (else over all);
    ``clamp_variance``: clamp the local variances at 0 (torchmetrics >= 1.3.2; the defaults are
    torchmetrics 1.2.0's computation, operation for operation)."""
    window = _gaussian_window(a.shape[1], a.dtype, a.device)
    pad = (window.shape[-1] - 1) // 2
    a, b = F.pad(a, (pad,) * 4, mode="reflect"), F.pad(b, (pad,) * 4, mode="reflect")
    stats = F.conv2d(torch.cat((a, b, a * a, b * b, a * b)), window, groups=a.shape[1]).split(a.shape[0])
    mu_a2, mu_b2, mu_ab = stats[0].pow(2), stats[1].pow(2), stats[0] * stats[1]
    var_a, var_b = stats[2] - mu_a2, stats[3] - mu_b2
    if clamp_variance:
        var_a, var_b = torch.clamp(var_a, min=0.0), torch.clamp(var_b, min=0.0)
    cov = stats[4] - mu_ab
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    full = ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_a2 + mu_b2 + c1) * (var_a + var_b + c2))
    if crop:
        full = full[..., pad:-pad, pad:-pad]
    return full.reshape(full.shape[0], -1).mean(-1)


def _features(output) -> torch.Tensor:
    """transformers 4 returns the projected features, 5 an output whose pooler_output holds them."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _text_features(models: MetricModels, prompt: str) -> torch.Tensor:
    """One prompt's CLIP text features, unpadded as the benchmark encodes it (cached: a prompt
    recurs for the whole and the edited-part score, and across the settings of a sweep)."""
    cache = models.text_cache
    if prompt not in cache:
        tokens = models.clip_tokenizer([prompt], padding=True, return_tensors="pt")
        limit = models.clip.config.text_config.max_position_embeddings  # longer captions are cut, as theirs
        ids, attention = tokens["input_ids"][..., :limit], tokens["attention_mask"][..., :limit]
        cache[prompt] = _features(models.clip.get_text_features(ids.to(models.device), attention.to(models.device)))[0]
        if len(cache) > 4096:
            cache.pop(next(iter(cache)))
    return cache[prompt]


def clip_scores(models: MetricModels, images: list[np.ndarray], prompts: list[str]) -> list[float]:
    """max(100 cos, 0) of each (H, W, 3) uint8 image with its prompt, as CLIPScore computes it."""
    tensors = [torch.from_numpy(np.array(img)).permute(2, 0, 1) for img in images]  # a writable copy
    pixels = models.image_processor()(images=tensors, return_tensors="pt")["pixel_values"].to(models.device)
    step = models.clip_batch
    parts = [models.clip.get_image_features(pixel_values=pixels[i : i + step]) for i in range(0, len(pixels), step)]
    image_feats = torch.cat([_features(part) for part in parts])
    text_feats = torch.stack([_text_features(models, prompt) for prompt in prompts])
    image_feats = image_feats / image_feats.norm(p=2, dim=-1, keepdim=True)
    text_feats = text_feats / text_feats.norm(p=2, dim=-1, keepdim=True)
    scores = 100 * (image_feats * text_feats).sum(axis=-1)
    return [float(s) for s in torch.clamp(scores, min=0.0)]


@dataclass
class _Pair:
    case: EditCase
    source: np.ndarray  # (H, W, 3) uint8
    edited: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) bool, the benchmark's (border included)


def _as_rgb(image, what: str) -> np.ndarray:
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image) if isinstance(image, np.ndarray) else None
    if array is None or array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise P2PError(f"{what} must be an RGB PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}")
    return array


def _pair(case: EditCase, edited) -> _Pair:
    if not isinstance(case, EditCase):
        raise P2PError(f"case must be an EditCase, got {type(case).__name__}")
    source = _as_rgb(case.image(), f"source image {case.image_path}")
    edit = _as_rgb(edited, "edited")
    if edit.shape != source.shape:
        raise P2PError(
            f"edited image is {edit.shape[1]}x{edit.shape[0]} but case {case.id!r}'s source is "
            f"{source.shape[1]}x{source.shape[0]}: score the edit at the source's size"
        )
    mask = np.asarray(case.mask, dtype=bool)
    if mask.shape != source.shape[:2]:
        raise P2PError(f"case {case.id!r}: mask is {mask.shape} but the image is {source.shape[:2]}")
    return _Pair(case, source, edit, mask)


def _unedited_metrics(models: MetricModels, pairs: list[_Pair], out: list[dict]):
    dev = models.device
    for pair, row in zip(pairs, out):
        keep = ~pair.mask
        if not keep.any():
            row.update({k: math.nan for k in METRIC_NAMES[1:5]})
            continue
        weight = torch.from_numpy(keep.astype(np.float32)).to(dev)[..., None]
        a = torch.from_numpy(pair.source.astype(np.float32) / 255).to(dev) * weight
        b = torch.from_numpy(pair.edited.astype(np.float32) / 255).to(dev) * weight
        a, b = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
        row["psnr_unedit_part"] = psnr(a, b)
        row["mse_unedit_part"] = mse(a, b)
        settings = models.settings
        row["ssim_unedit_part"] = float(ssim(a, b, settings.ssim_crop, settings.ssim_clamp_variance)[0])
        row["lpips_unedit_part"] = float(models.lpips(a * 2 - 1, b * 2 - 1, models.settings.lpips_eps_inside)[0])


def _network_metrics(models: MetricModels, pairs: list[_Pair], out: list[dict]):
    dev = models.device
    sources = [torch.from_numpy(p.source.astype(np.float32)).to(dev).permute(2, 0, 1) for p in pairs]
    edits = [torch.from_numpy(p.edited.astype(np.float32)).to(dev).permute(2, 0, 1) for p in pairs]
    for row, value in zip(out, structure_distances(models, sources, edits)):
        row["structure_distance"] = value
    images = [p.edited for p in pairs] + [p.edited * p.mask[..., None].astype(np.uint8) for p in pairs]
    prompts = [p.case.target_prompt for p in pairs] * 2
    scores = clip_scores(models, images, prompts)
    for i, (pair, row) in enumerate(zip(pairs, out)):
        row["clip_similarity_target_image"] = scores[i]
        row["clip_similarity_target_image_edit_part"] = scores[len(pairs) + i] if pair.mask.any() else math.nan


_reader = None
_reader_lock = threading.Lock()


def _scene_reader():
    """One pocket SceneReader per process (its calibration draws 600 scenes)."""
    global _reader
    with _reader_lock:
        if _reader is None:
            from ..pocket.metrics import SceneReader

            _reader = SceneReader()
        return _reader


def target_fidelity(truth, edited: np.ndarray) -> float:
    """Share of the target scene's attributes read back from the edited (32, 32, 3) image."""
    from ..pocket.metrics import match_objects, relation_of

    reader = _scene_reader()
    (background, pattern), found = reader.read(edited)
    target = truth.target
    checks = [background == target.background, pattern == target.pattern, len(found) == len(target.objects)]
    matched = match_objects(target, found)
    for want, got in zip(target.objects, matched):
        if got is None:
            checks += [False] * 4  # present, colour, shape, size
        else:
            checks += [True, got.color == want.color, got.shape == want.shape, reader.size_of(got) == want.size]
    if target.relation:
        checks.append(all(m is not None for m in matched) and relation_of(*matched) == target.relation)
    return float(np.mean(checks))


def changed_pixels(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(H, W) bool: the RGB distance between the two uint8 images exceeds CHANGE_DISTANCE."""
    return np.linalg.norm(after.astype(np.float32) - before.astype(np.float32), axis=-1) > CHANGE_DISTANCE


def mask_iou(truth, source: np.ndarray, edited: np.ndarray) -> float:
    """IoU of the pixels the edit changed with those the ideal edit changes (the target scene drawn
    as the source was): 1 for the ideal edit, 0 for an edit that changes none of the right pixels."""
    from ..pocket.metrics import iou

    return iou(changed_pixels(source, edited), changed_pixels(source, truth.render_target()))


def _pocket_metrics(pairs: list[_Pair], out: list[dict]):
    from .pocket_bench import truth_of

    for pair, row in zip(pairs, out):
        truth = truth_of(pair.case)
        row["target_fidelity"] = math.nan if truth is None else target_fidelity(truth, pair.edited)
        row["mask_iou"] = math.nan if truth is None else mask_iou(truth, pair.source, pair.edited)


def score_batch(cases, edited, models: MetricModels, *, device=None, batch_size: int = 8) -> list[dict[str, float]]:
    """:func:`score` for many cases, the networks run ``batch_size`` cases at a time."""
    cases, edited = list(cases), list(edited)
    if len(cases) != len(edited):
        raise P2PError(f"got {len(cases)} cases but {len(edited)} edited images")
    if not isinstance(models, MetricModels):
        raise P2PError(f"models must be MetricModels (MetricModels.load or .random), got {type(models).__name__}")
    if device is not None:
        models.to(device)
    step = max(int(batch_size), 1)
    rows: list[dict[str, float]] = []
    with torch.inference_mode():
        for start in range(0, len(cases), step):
            pairs = [_pair(c, e) for c, e in zip(cases[start : start + step], edited[start : start + step])]
            out = [{} for _ in pairs]
            _unedited_metrics(models, pairs, out)
            _network_metrics(models, pairs, out)
            _pocket_metrics(pairs, out)
            rows += [{k: row[k] for k in ALL_METRIC_NAMES} for row in out]
    return rows


def score(case: EditCase, edited, models: MetricModels, *, device=None) -> dict[str, float]:
    """Every metric of :data:`ALL_METRIC_NAMES` for one edit (the edited image as a PIL image at the
    source's size); NaN where the benchmark writes "nan" and for pocket metrics of other datasets."""
    return score_batch([case], [edited], models, device=device)[0]
