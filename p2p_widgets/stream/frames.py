"""Per-step playback frames: pure encoding, throttling and the frame cache (no widgets, no comm).

A sampler step becomes one *frame*: a small JSON-able ``content`` dict plus binary ``buffers``
(never base64, never JSON number lists)::

    content = {"type": "frame", "run": 3, "step": 12, "timestep": 521,
               "mime": "image/png", "n_images": 2, "image_size": [32, 32],
               "tokens": 16, "grids": [[16, 16], [8, 8]]}
    buffers = [png_source, png_edit,            # one encoded x0 preview per prompt, source first
               maps_16x16, maps_8x8,            # uint8 (B, T, h, w) per grid, finest grid first
               scales]                          # float32 (G, B, T), little-endian

``maps_g[b, t]`` is token ``t`` of prompt ``b`` (positions 0 = BOS .. EOS; prompts shorter than
``T`` are zero-padded) quantised to its own maximum: the true value is ``q / 255 * scale``. The
front end therefore switches between per-token and global normalisation without new data.

A run starts with a header ``{"type": "run", "run", "n_evals", "prompts": [{"text", "tokens"}],
"mime"}`` and ends with ``{"type": "end", "run", "status", "steps"}``.

:class:`Throttle` decides which steps are sent live so that encoding and sending stay a small
share of the sampling time (first and last step always); :class:`FrameCache` keeps what was
sent, bounded in bytes, so a reloaded page can ask for everything again.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import FrameError, is_int

IMAGE_FORMATS = {"png": "image/png", "webp": "image/webp"}
MIME_FORMATS = {v: k for k, v in IMAGE_FORMATS.items()}
MAX_SIDE = 4096
# token positions of a prompt: CLIP's 77; Flux's T5 (up to 512, shown up to EOS); SD3's CLIP 77 + T5 256 (or 512)
MAX_TOKENS = 77 + 512
STATUSES = ("idle", "running", "done", "stopped", "error")


def to_numpy(x) -> np.ndarray:
    """A torch tensor (any device/dtype) or array-like as a float32 numpy array."""
    if hasattr(x, "detach"):  # torch, without importing it here
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


# -- images --------------------------------------------------------------------------------------


def encode_image(rgb, fmt: str = "png") -> bytes:
    """Encode an (H, W, 3) uint8 image losslessly as PNG or WebP bytes."""
    from PIL import Image

    if fmt not in IMAGE_FORMATS:
        raise FrameError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        raise FrameError(f"images must be uint8, got {a.dtype}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise FrameError(f"images must have shape (H, W, 3), got {a.shape}")
    if not (1 <= a.shape[0] <= MAX_SIDE and 1 <= a.shape[1] <= MAX_SIDE):
        raise FrameError(f"image sides must be in [1, {MAX_SIDE}], got {a.shape[:2]}")
    out = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(a), "RGB")
    if fmt == "png":
        image.save(out, format="PNG", compress_level=1)  # previews: speed over the last few bytes
    else:
        image.save(out, format="WEBP", lossless=True, method=0)
    return out.getvalue()


def decode_image(data) -> np.ndarray:
    """PNG/WebP bytes -> (H, W, 3) uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(bytes(data))) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, TypeError, Image.DecompressionBombError) as exc:
        raise FrameError(f"the frame's image bytes are not a PNG or WebP image ({exc})") from None


# -- attention maps -------------------------------------------------------------------------------


def quantize(maps) -> tuple[np.ndarray, np.ndarray]:
    """Maps (..., h, w) -> (uint8 maps (..., h, w), float32 scales (...)).

    Each map is divided by its own maximum and rounded to 0..255; negative and non-finite values
    become 0. An all-zero map has scale 0."""
    m = to_numpy(maps)
    if m.ndim < 2:
        raise FrameError(f"maps need at least 2 dimensions (h, w), got shape {m.shape}")
    m = np.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
    flat = m.reshape(-1, m.shape[-2] * m.shape[-1])
    scales = flat.max(axis=1) if flat.shape[1] else np.zeros(flat.shape[0], np.float32)
    safe = np.where(scales > 0, scales, 1.0)
    q = np.rint(flat / safe[:, None] * 255.0).clip(0, 255).astype(np.uint8)
    return q.reshape(m.shape), scales.astype(np.float32).reshape(m.shape[:-2])


def dequantize(q, scales) -> np.ndarray:
    """Inverse of :func:`quantize` (up to rounding): float32 maps."""
    q = np.asarray(q)
    return q.astype(np.float32) / 255.0 * np.asarray(scales, np.float32)[..., None, None]


# -- frames ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One encoded step: the message content and its binary buffers (bytes)."""

    content: dict
    buffers: tuple

    @property
    def step(self) -> int:
        return self.content["step"]

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.buffers)


def prompt_tokens(prompt) -> list[str]:
    """The displayed tokens of a prompt (BOS .. EOS), from a Prompt or a list of strings."""
    tokens = getattr(prompt, "tokens", prompt)
    return [str(t) for t in tokens]


def run_header(run: int, prompts: Sequence, n_evals: int | None = None, fmt: str = "png") -> dict:
    """The ``run`` message that starts a run (``prompts``: Prompt objects or dicts
    ``{"text", "tokens"}``)."""
    if fmt not in IMAGE_FORMATS:
        raise FrameError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    rows = []
    for p in prompts:
        if isinstance(p, Mapping):
            rows.append({"text": str(p["text"]), "tokens": [str(t) for t in p["tokens"]]})
        else:
            rows.append({"text": p.text, "tokens": prompt_tokens(p)})
    if not rows:
        raise FrameError("a run needs at least one prompt")
    for row in rows:
        if not 1 <= len(row["tokens"]) <= MAX_TOKENS:
            raise FrameError(f"a prompt has 1..{MAX_TOKENS} tokens, got {len(row['tokens'])}")
    return {"type": "run", "run": int(run), "n_evals": n_evals, "prompts": rows, "mime": IMAGE_FORMATS[fmt]}


def encode_frame(
    *,
    run: int,
    step: int,
    timestep: int,
    images,
    maps: Mapping,
    n_tokens: int,
    fmt: str = "png",
) -> Frame:
    """Encode one step.

    ``images``: (B, H, W, 3) uint8 previews, source first. ``maps``: grid (h, w) -> (B, h, w, L)
    head/layer-averaged cross-attention (torch or numpy, L >= ``n_tokens``); only the first
    ``n_tokens`` positions are kept."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise FrameError(f"images must have shape (B, H, W, 3), got {images.shape}")
    n_images = images.shape[0]
    if not is_int(n_tokens) or not 1 <= n_tokens <= MAX_TOKENS:
        raise FrameError(f"n_tokens must be an integer in [1, {MAX_TOKENS}], got {n_tokens!r}")
    encoded = [encode_image(im, fmt) for im in images]
    grids = sorted(maps, key=lambda g: (-(g[0] * g[1]), g))  # finest first
    if not grids:
        raise FrameError("a frame needs attention maps at one grid at least")
    planes, scales = [], []
    for grid in grids:
        m = maps[grid]
        m = m[..., :n_tokens]
        a = to_numpy(m)
        if a.ndim != 4 or a.shape[0] != n_images or tuple(a.shape[1:3]) != tuple(grid) or a.shape[3] != n_tokens:
            raise FrameError(
                f"maps at {tuple(grid)} must have shape ({n_images}, {grid[0]}, {grid[1]}, >= {n_tokens}), "
                f"got {tuple(getattr(m, 'shape', a.shape))}"
            )
        q, s = quantize(a.transpose(0, 3, 1, 2))  # (B, T, h, w)
        planes.append(np.ascontiguousarray(q).tobytes())
        scales.append(s)
    scale_bytes = np.ascontiguousarray(np.stack(scales), dtype="<f4").tobytes()
    content = {
        "type": "frame",
        "run": int(run),
        "step": int(step),
        "timestep": int(timestep),
        "mime": IMAGE_FORMATS[fmt],
        "n_images": int(n_images),
        "image_size": [int(images.shape[1]), int(images.shape[2])],
        "tokens": int(n_tokens),
        "grids": [[int(g[0]), int(g[1])] for g in grids],
    }
    return Frame(content, (*encoded, *planes, scale_bytes))


def decode_frame(content: dict, buffers: Sequence) -> dict:
    """Check a frame message and decode it: ``{"step", "timestep", "images": [(H, W, 3) uint8],
    "maps": {(h, w): uint8 (B, T, h, w)}, "scales": {(h, w): float32 (B, T)}}``."""
    if not isinstance(content, dict) or content.get("type") != "frame":
        raise FrameError("not a frame message")
    for key in ("run", "step", "timestep", "n_images", "tokens"):
        if not is_int(content.get(key)):
            raise FrameError(f"frame {key!r} must be an integer, got {content.get(key)!r}")
    b, t = content["n_images"], content["tokens"]
    grids = content.get("grids")
    if not isinstance(grids, list) or not grids:
        raise FrameError("frame 'grids' must be a non-empty list of [h, w]")
    if len(buffers) != b + len(grids) + 1:
        raise FrameError(f"frame needs {b + len(grids) + 1} buffers, got {len(buffers)}")
    images = [decode_image(x) for x in buffers[:b]]
    maps, scales = {}, {}
    raw_scales = np.frombuffer(bytes(buffers[-1]), dtype="<f4")
    if raw_scales.size != len(grids) * b * t:
        raise FrameError(f"scales buffer has {raw_scales.size} values, expected {len(grids) * b * t}")
    raw_scales = raw_scales.reshape(len(grids), b, t)
    for k, (h, w) in enumerate(grids):
        plane = np.frombuffer(bytes(buffers[b + k]), dtype=np.uint8)
        if plane.size != b * t * h * w:
            raise FrameError(f"maps at {h}x{w} have {plane.size} bytes, expected {b * t * h * w}")
        maps[(h, w)] = plane.reshape(b, t, h, w)
        scales[(h, w)] = raw_scales[k]
    return {"step": content["step"], "timestep": content["timestep"], "images": images, "maps": maps, "scales": scales}


# -- throttling -----------------------------------------------------------------------------------


class Throttle:
    """Which sampler steps to stream live.

    A step is sent when at least ``min_interval`` seconds have passed since the last send ended
    *and* the time spent sending so far stays within ``max_share`` of the time sampled so far
    (counting the expected cost of this send). The first and the last step are always sent. With a
    send costing ``c`` this keeps the overhead near ``max_share`` whatever the model's speed.
    """

    def __init__(
        self, min_interval: float = 0.05, max_share: float = 0.05, clock: Callable[[], float] = time.perf_counter
    ):
        if not (isinstance(min_interval, (int, float)) and math.isfinite(min_interval) and min_interval >= 0):
            raise ValueError(f"min_interval must be a finite number >= 0, got {min_interval!r}")
        if not (isinstance(max_share, (int, float)) and 0 < max_share <= 1):
            raise ValueError(f"max_share must be in (0, 1], got {max_share!r}")
        self.min_interval, self.max_share, self.clock = float(min_interval), float(max_share), clock
        self.start()

    def start(self) -> None:
        """Start a run."""
        self.t0 = self.clock()
        self.spent = 0.0
        self.last_end: float | None = None
        self.last_cost = 0.0
        self.sent = 0

    def due(self, step: int, n_evals: int, last: bool = False) -> bool:
        """Should ``step`` be sent? ``last``: the run ends after this step (e.g. stopped)."""
        if step == 0 or last or step >= n_evals - 1 or self.last_end is None:
            return True
        now = self.clock()
        if now - self.last_end < self.min_interval:
            return False
        sampled = (now - self.t0) - self.spent
        return self.spent + self.last_cost <= self.max_share * max(sampled, 0.0)

    def record(self, cost: float) -> None:
        """A send that took ``cost`` seconds just ended."""
        cost = max(float(cost), 0.0)
        self.spent += cost
        self.last_cost = cost
        self.last_end = self.clock()
        self.sent += 1


# -- the Python-side cache -----------------------------------------------------------------------


class FrameCache:
    """The frames of the current run, as sent, for replay after a page reload.

    Bounded by ``max_bytes``: when a new frame would exceed it, the stride doubles and every step
    off the stride is dropped (the first and the last step always stay), and later frames off the
    stride are not kept, so a long run thins out evenly instead of losing its end."""

    def __init__(self, max_bytes: int = 64 << 20):
        if not is_int(max_bytes) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        self.max_bytes = int(max_bytes)
        self.clear()

    def clear(self) -> None:
        self.header: dict | None = None
        self.end: dict | None = None
        self._frames: dict[int, Frame] = {}
        self.nbytes = 0
        self.stride = 1

    def begin(self, header: dict) -> None:
        self.clear()
        self.header = header

    @property
    def run(self) -> int | None:
        return None if self.header is None else self.header["run"]

    def add(self, frame: Frame) -> None:
        if self.header is None or frame.content["run"] != self.header["run"]:
            raise FrameError("frame of a run the cache did not begin")
        old = self._frames.pop(frame.step, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self._frames[frame.step] = frame
        self.nbytes += frame.nbytes
        self._purge()
        while self.nbytes > self.max_bytes and len(self._frames) > 2:
            self.stride *= 2
            self._purge()

    def _purge(self) -> None:
        """Drop the steps off the current stride (the first and the last step always stay)."""
        if self.stride == 1 or len(self._frames) <= 2:
            return
        first, last = min(self._frames), max(self._frames)
        for s in [s for s in self._frames if s not in (first, last) and (s - first) % self.stride]:
            self.nbytes -= self._frames.pop(s).nbytes
        if self.nbytes > self.max_bytes and self.stride > last - first:
            # nothing left to thin evenly: keep only the first and the last step
            for s in [s for s in self._frames if s not in (first, last)]:
                self.nbytes -= self._frames.pop(s).nbytes

    def finish(self, end: dict) -> None:
        self.end = end

    @property
    def steps(self) -> list[int]:
        return sorted(self._frames)

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, step: int) -> Frame:
        return self._frames[step]

    def frames(self) -> list[Frame]:
        return [self._frames[s] for s in self.steps]

    def missing(self, have: Iterable[int]) -> list[Frame]:
        """Cached frames whose step is not in ``have``, in step order."""
        have = set(have)
        return [self._frames[s] for s in self.steps if s not in have]


# -- colours (the same map as js/lib/heatmap.js) ---------------------------------------------------

#: anchor colours of the heat map, evenly spaced from 0 to 1 (dark blue -> magenta -> orange -> pale yellow)
HEAT_ANCHORS = ((13, 8, 48), (84, 18, 124), (168, 38, 112), (230, 92, 58), (250, 172, 40), (252, 246, 180))


def heat_lut() -> np.ndarray:
    """(256, 3) uint8 colour table interpolated between :data:`HEAT_ANCHORS`."""
    anchors = np.asarray(HEAT_ANCHORS, np.float64)
    x = np.linspace(0.0, 1.0, len(anchors))
    v = np.arange(256) / 255.0
    return np.stack([np.rint(np.interp(v, x, anchors[:, c])) for c in range(3)], axis=1).astype(np.uint8)
