"""Real-image inversion for editing: ``invert(editor, image, prompt, method=...)``.

An :class:`Inversion` holds what :meth:`Editor.edit` needs to start from a real image instead of
a seed: the DDIM trajectory of the image's latents (``latents``: x_0 first, x_T last) and, per
sampling step, the unconditional embedding to use with classifier-free guidance
(``uncond_embeddings``; ``None`` means the usual empty-prompt embedding; SDXL adds the pooled
unconditional text embedding per step, ``uncond_pooled``). Edit with
``editor.edit(inv.prompt, targets, inversion=inv, steps=inv.steps, guidance=inv.guidance)``.

Methods (``method=``):

- ``"ddim"``: DDIM inversion. The image is encoded with the VAE (posterior mean times the
  scaling factor) and the deterministic DDIM update is run backwards (ascending timesteps) with
  the conditional prediction only (guidance 1). Exact enough at guidance 1; at the guidance used
  for editing the regenerated image drifts away from the input.
- ``"null-text"``: null-text inversion (Mokady et al. 2022). Starting from the DDIM trajectory,
  the unconditional embedding of every sampling step is optimised (fp32, Adam, warm-started from
  the previous step's result, early stop) so that the guided DDIM step from the current latent
  lands on the trajectory's next latent; the current latent then advances with the optimised
  guided step. Slow (up to ``inner_steps`` UNet forward and backward passes per step) but
  reconstructs the image closely at the editing guidance.
- ``"negative-prompt"``: negative-prompt inversion (Miyake et al. 2023), no optimisation. The
  DDIM trajectory plus the prompt's own conditional embedding as the unconditional one at every
  step, so guidance cancels on the source branch and it regenerates like the guidance-1 DDIM
  path. As fast as ``"ddim"``.

Images (PIL, numpy or a file path) are converted to RGB, cropped and resized to the model's size
(see :func:`load_image`). Results are cached in memory per model (LRU of ``CACHE_SIZE`` entries)
under (hash of the prepared pixels, prompt, method, steps, guidance, options, the DDIM
scheduler config, model id).
``Inversion.save(prefix)`` writes ``prefix.json`` (metadata) and ``prefix.safetensors``
(latents, embeddings, prepared image); :meth:`Inversion.load` reads them back.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import P2PError, check_int, check_run_callbacks, is_int, is_number
from . import schedulers

METHODS = ("null-text", "ddim", "negative-prompt")
CROPS = ("center", "none")
CACHE_SIZE = 8  # inversions kept per model
FORMAT_VERSION = 1

# reference settings of the null-text optimisation (Mokady et al.; 50 steps at guidance 7.5)
NULL_TEXT_DEFAULTS = dict(inner_steps=10, lr=1e-2, early_stop=1e-5, early_stop_growth=2e-5)


# -- the result ------------------------------------------------------------------------------------
@dataclass
class InversionStep:
    """Progress report passed to ``callback`` after every step of each phase."""

    phase: str  # "ddim" (the inversion trajectory) or "null-text" (the optimisation)
    step: int  # 0-based index within the phase
    total: int
    loss: float | None = None  # null-text: the last inner iteration's loss for this step
    iterations: int = 0  # null-text: inner iterations run for this step


@dataclass
class Inversion:
    """An inverted image, ready to edit (see the module docstring)."""

    method: str
    prompt: str
    steps: int
    guidance: float
    latents: torch.Tensor  # (steps + 1, C, h, w) float32 on the CPU: x_0 (the image's latent) first, x_T last
    uncond_embeddings: list | None  # per sampling step (1, L, D) float32 tensors, noisiest step first; or None
    timesteps: list  # the sampling timesteps (noisiest first) the trajectory was computed on
    image: np.ndarray = field(repr=False, default=None)  # (H, W, 3) uint8: the prepared input image
    model: str = ""  # id of the model that produced it (see ``model_id``)
    prediction_type: str = "epsilon"
    options: dict = field(default_factory=dict)  # crop, size and the null-text optimisation settings
    losses: list = field(default_factory=list)  # null-text: the final loss of each optimised step
    iterations: list = field(default_factory=list)  # null-text: inner iterations used per step
    seconds: float = 0.0
    stopped: bool = False  # a stop event ended the optimisation early (later steps reuse the last embedding)
    uncond_pooled: list | None = None  # SDXL: per sampling step (1, P) pooled text of the unconditional branch

    @property
    def x_T(self) -> torch.Tensor:
        """The start latent for editing, (C, h, w)."""
        return self.latents[-1]

    @property
    def x_0(self) -> torch.Tensor:
        """The image's own latent (VAE posterior mean times the scaling factor), (C, h, w)."""
        return self.latents[0]

    @property
    def image_sha256(self) -> str:
        return pixels_hash(self.image) if self.image is not None else ""

    def describe(self) -> dict:
        """A JSON-able summary (no tensors): for an edit's spec and for ``save``."""
        return {
            "format": FORMAT_VERSION,
            "method": self.method,
            "prompt": self.prompt,
            "steps": self.steps,
            "guidance": self.guidance,
            "timesteps": [int(t) for t in self.timesteps],
            "model": self.model,
            "prediction_type": self.prediction_type,
            "latent_shape": list(self.latents.shape[1:]),
            "image_sha256": self.image_sha256,
            "options": self.options,
            "losses": [float(x) for x in self.losses],
            "iterations": [int(x) for x in self.iterations],
            "seconds": round(float(self.seconds), 3),
            "stopped": self.stopped,
        }

    def check(self, editor):
        """Raise a :class:`P2PError` naming the problem if ``editor`` cannot use this inversion."""
        model = editor.model
        if not model.invertible:
            raise P2PError(
                f"this inversion is a DDIM trajectory of a Stable Diffusion model; {model.family} cannot use it"
            )
        if self.uncond_pooled is not None and not model.is_xl:
            raise P2PError("the inversion has SDXL pooled text embeddings but this model is not an SDXL model")
        shape = (model.unet.config.in_channels, *self.latents.shape[-2:])
        if tuple(self.latents.shape[1:]) != shape:
            raise P2PError(
                f"the inversion's latents are {tuple(self.latents.shape[1:])} but this model uses "
                f"{model.unet.config.in_channels} latent channels"
            )
        if self.uncond_embeddings is not None:
            dim = model.embedding_width
            got = self.uncond_embeddings[0].shape[-1]
            if got != dim:
                raise P2PError(
                    f"the inversion's embeddings have width {got} but this model's text encoder has {dim}: "
                    "it was made with another model"
                )
        sched_prediction = model.pipe.scheduler.config.get("prediction_type", "epsilon")
        if sched_prediction != self.prediction_type:
            raise P2PError(
                f"the inversion was made for a {self.prediction_type} model but this model predicts {sched_prediction}"
            )
        self.check_timesteps(_timesteps(editor, self.steps), "this model's schedule")
        # last: the checks above name what differs, this one only that the weights do
        if self.model and self.model != model.model_id():
            raise P2PError(
                f"the inversion was made with model {self.model} but this model is {model.model_id()}: "
                "invert the image again with this model"
            )

    def check_timesteps(self, timesteps, what: str) -> None:
        """A P2PError unless ``timesteps`` (of ``what``) are the ones this inversion was made on: its
        start latent and per-step embeddings belong to them."""
        have = [int(t) for t in timesteps]
        if have != [int(t) for t in self.timesteps]:
            raise P2PError(
                f"the inversion's timesteps {list(self.timesteps)} differ from {what} {have} for "
                f"{self.steps} steps: edit with the scheduler it was inverted with (the pipeline's DDIM)"
            )

    def reconstruct(self, editor, **kwargs):
        """Regenerate the image from the inversion with its own prompt: an :class:`EditResult`."""
        self.check(editor)
        kwargs.setdefault("guidance", self.guidance)
        return editor.edit(self.prompt, [], inversion=self, steps=self.steps, **kwargs)

    def edit(self, editor, targets, **kwargs):
        """``editor.edit(self.prompt, targets, inversion=self, steps=self.steps, guidance=self.guidance, ...)``."""
        self.check(editor)
        kwargs.setdefault("guidance", self.guidance)
        return editor.edit(self.prompt, targets, inversion=self, steps=self.steps, **kwargs)

    # -- files --------------------------------------------------------------------------------------
    def save(self, path_prefix) -> tuple[Path, Path]:
        """Write ``<prefix>.json`` (metadata) and ``<prefix>.safetensors`` (tensors); return both paths."""
        from safetensors.torch import save_file

        json_path, tensor_path = _paths(path_prefix)
        tensors = {"latents": self.latents.detach().float().contiguous().cpu()}
        if self.uncond_embeddings is not None:
            tensors["uncond_embeddings"] = torch.stack(
                [e.detach().float().reshape(e.shape[-2:]).cpu() for e in self.uncond_embeddings]
            ).contiguous()
        if self.uncond_pooled is not None:
            tensors["uncond_pooled"] = torch.stack(
                [e.detach().float().reshape(-1).cpu() for e in self.uncond_pooled]
            ).contiguous()
        if self.image is not None:
            tensors["image"] = torch.from_numpy(np.ascontiguousarray(self.image))
        meta = {**self.describe(), "tensors": tensor_path.name}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tensor_path), metadata={"p2p_widgets": "inversion", "format": str(FORMAT_VERSION)})
        json_path.write_text(json.dumps(meta, indent=1))
        return json_path, tensor_path

    @classmethod
    def load(cls, path_prefix) -> Inversion:
        """Read an inversion written by :meth:`save` (``path_prefix`` with or without ``.json``).

        The tensors are copied into memory (the file may be overwritten afterwards); a malformed
        or corrupt file, or metadata pointing outside its folder, raises a P2PError naming it."""
        json_path, tensor_path = _paths(path_prefix)
        meta = _read_metadata(json_path)
        name = meta.get("tensors", tensor_path.name)
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise P2PError(f"{json_path}: 'tensors' must name a file beside the JSON, got {name!r}")
        tensors = _read_tensors(json_path.parent / name)
        steps = meta["steps"]
        _check_shapes(tensors, steps, json_path.parent / name)
        emb, pooled, image = (tensors.get(k) for k in ("uncond_embeddings", "uncond_pooled", "image"))
        return cls(
            method=meta["method"],
            prompt=meta["prompt"],
            steps=steps,
            guidance=float(meta["guidance"]),
            latents=tensors["latents"],
            uncond_embeddings=None if emb is None else [e[None] for e in emb],
            timesteps=list(meta["timesteps"]),
            image=None if image is None else image.numpy(),
            model=meta.get("model", ""),
            prediction_type=meta.get("prediction_type", "epsilon"),
            options=meta.get("options", {}),
            losses=meta.get("losses", []),
            iterations=meta.get("iterations", []),
            seconds=float(meta.get("seconds", 0.0)),
            stopped=bool(meta.get("stopped", False)),
            uncond_pooled=None if pooled is None else [e[None] for e in pooled],
        )


_METADATA_TYPES = {"method": str, "prompt": str, "steps": int, "guidance": (int, float), "timesteps": list}


def _read_metadata(json_path: Path) -> dict:
    if not json_path.is_file():
        raise P2PError(f"no inversion metadata at {json_path}")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise P2PError(f"{json_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise P2PError(f"{json_path} is not an inversion file of format {FORMAT_VERSION}")
    for key, kind in _METADATA_TYPES.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise P2PError(f"{json_path}: {key!r} is missing or not a {getattr(kind, '__name__', 'number')}")
    if meta["method"] not in METHODS or meta["steps"] < 1 or not all(is_int(t) for t in meta["timesteps"]):
        raise P2PError(f"{json_path}: method, steps or timesteps hold values no inversion writes")
    if not isinstance(meta.get("options", {}), dict):
        raise P2PError(f"{json_path}: 'options' must be an object")
    return meta


def _read_tensors(tensor_path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not tensor_path.is_file():
        raise P2PError(f"the inversion's tensors file {tensor_path} is missing (it is written beside the JSON)")
    try:
        # from bytes, not memory-mapped: overwriting the file later cannot change (or crash) this inversion
        return load(tensor_path.read_bytes())
    except (SafetensorError, ValueError, OSError) as exc:
        raise P2PError(f"{tensor_path} is not a readable safetensors file: {exc}") from None


def _check_shapes(tensors: dict, steps: int, tensor_path: Path) -> None:
    latents = tensors.get("latents")
    if latents is None or latents.ndim != 4 or latents.shape[0] != steps + 1:
        raise P2PError(
            f"{tensor_path} holds latents of shape {None if latents is None else tuple(latents.shape)}; "
            f"expected ({steps + 1}, C, h, w) for {steps} steps"
        )
    for key, ndim in (("uncond_embeddings", 3), ("uncond_pooled", 2)):
        value = tensors.get(key)
        if value is not None and (value.ndim != ndim or value.shape[0] != steps):
            raise P2PError(f"{tensor_path} holds {key} of shape {tuple(value.shape)} for {steps} steps")
    image = tensors.get("image")
    if image is not None and (image.ndim != 3 or image.shape[-1] != 3 or image.dtype != torch.uint8):
        raise P2PError(f"{tensor_path} holds an image of shape {tuple(image.shape)}; expected (H, W, 3) uint8")


def check_inversion(recorded: dict | None, inversion) -> None:
    """Raise a :class:`P2PError` unless ``inversion`` is the one an edit recorded (``recorded``: the
    ``describe()`` saved in its spec)."""
    if not isinstance(inversion, Inversion):
        raise P2PError(f"inversion must be an Inversion, got {type(inversion).__name__}")
    if recorded is None:
        raise P2PError("this edit started from a seed, not from an inversion")
    have = inversion.describe()
    for key in ("image_sha256", "method", "prompt", "steps", "guidance", "timesteps", "options"):
        if recorded.get(key) != have.get(key):
            raise P2PError(
                f"the inversion's {key} is {have.get(key)!r} but the edit was made from one with {recorded.get(key)!r}"
            )


def _paths(path_prefix) -> tuple[Path, Path]:
    prefix = Path(path_prefix)
    if prefix.suffix in (".json", ".safetensors"):
        prefix = prefix.with_suffix("")
    return prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".safetensors")


# -- images ----------------------------------------------------------------------------------------
def load_image(image, size: int | tuple[int, int], crop="center") -> np.ndarray:
    """An (H, W, 3) uint8 array of ``image`` prepared for a model of ``size`` pixels (an int for a square).

    ``image``: a PIL image (any mode: converted to RGB, alpha dropped), a numpy array (H, W, 3),
    (H, W, 4) (alpha dropped) or (H, W) (grey), uint8 or float in [0, 1], or a file path.
    ``crop``: ``"center"`` crops the largest centred square, as the reference does, then resizes;
    ``"none"`` resizes the whole image (the aspect ratio changes if it is not square);
    ``(left, top, right, bottom)``: crop that pixel box (PIL's convention, right and bottom
    exclusive), then the centred square of it, then resize.
    """
    from PIL import Image

    pil = _to_pil(image)
    height, width = (size, size) if isinstance(size, int) else size
    if isinstance(crop, str):
        if crop not in CROPS:
            raise P2PError(f"crop must be 'center', 'none' or a (left, top, right, bottom) box, got {crop!r}")
    else:
        box = _check_box(crop, pil.size)
        pil = pil.crop(box)
    if crop != "none":
        w, h = pil.size
        target = width / height
        if w / h > target:  # too wide: keep the centre columns
            new_w = max(1, round(h * target))
            left = (w - new_w) // 2
            pil = pil.crop((left, 0, left + new_w, h))
        elif w / h < target:
            new_h = max(1, round(w / target))
            top = (h - new_h) // 2
            pil = pil.crop((0, top, w, top + new_h))
    if pil.size != (width, height):
        pil = pil.resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(pil, dtype=np.uint8).copy()


def _to_pil(image):
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.exists():
            raise P2PError(f"image file {path} does not exist")
        try:
            with Image.open(path) as f:
                f.load()
                image = f.copy()
        except UnidentifiedImageError:
            raise P2PError(f"{path} is not an image file PIL can read") from None
    if isinstance(image, Image.Image):
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA").convert("RGB")  # alpha dropped (the colours under it are kept)
        elif image.mode != "RGB":
            image = image.convert("RGB")
        _check_pixels(image.size[1], image.size[0])
        return image
    if torch.is_tensor(image):
        raise P2PError("pass the image as a PIL image, a numpy (H, W, 3) array or a file path, not a torch tensor")
    if not isinstance(image, np.ndarray):
        raise P2PError(f"image must be a PIL image, a numpy array or a file path, got {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        raise P2PError(f"image array has shape {arr.shape}: channels must come last, (H, W, 3)")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise P2PError(f"image array must be (H, W, 3), (H, W, 4) or (H, W), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        pass
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise P2PError("a float image array must hold values in [0, 1] (uint8 arrays hold 0..255)")
        arr = np.rint(arr * 255).astype(np.uint8)
    else:
        raise P2PError(f"image array dtype must be uint8 (0..255) or float (0..1), got {arr.dtype}")
    _check_pixels(*arr.shape[:2])
    pil = Image.fromarray(np.ascontiguousarray(arr))
    return pil if pil.mode == "RGB" else pil.convert("RGB")


def _check_pixels(h, w):
    if h < 8 or w < 8:
        raise P2PError(f"image is {w}x{h} pixels: too small to invert (at least 8x8)")


def _check_box(box, size):
    w, h = size
    try:
        left, top, right, bottom = (int(v) for v in box)
    except (TypeError, ValueError):
        raise P2PError(f"crop must be 'center', 'none' or a (left, top, right, bottom) box, got {box!r}") from None
    if not (0 <= left < right <= w and 0 <= top < bottom <= h):
        raise P2PError(
            f"crop box {(left, top, right, bottom)} is not inside the {w}x{h} image "
            "(left < right <= width, top < bottom <= height)"
        )
    _check_pixels(bottom - top, right - left)
    return left, top, right, bottom


def pixels_hash(pixels: np.ndarray) -> str:
    h = hashlib.sha256(str(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


# -- model facts -----------------------------------------------------------------------------------
def _scheduler(editor, steps):
    sched = editor.model.ddim_scheduler()  # the sampler's scheduler
    if sched.config.clip_sample or sched.config.thresholding:
        raise P2PError(
            "inversion needs a DDIM schedule without clip_sample or thresholding (the step must be "
            "invertible): set pipe.scheduler = DDIMScheduler.from_config(config, clip_sample=False, "
            "thresholding=False)"
        )
    sched.set_timesteps(steps)
    return sched


def _timesteps(editor, steps):
    return _scheduler(editor, steps).timesteps.tolist()


def _step_coefficients(sched, t: int, prediction_type: str) -> tuple[float, float]:
    """(A, B) with the deterministic DDIM step at ``t`` written as  x_prev = A * x_t + B * model_output.

    Same alphas as ``DDIMScheduler.step`` (eta 0): the previous timestep is t - T // steps and
    below 0 it is the schedule's final alpha. Inverting the step is x_t = (x_prev - B * out) / A.
    """
    prev = t - sched.config.num_train_timesteps // sched.num_inference_steps
    a_t = float(sched.alphas_cumprod[t])
    a_p = float(sched.alphas_cumprod[prev]) if prev >= 0 else float(sched.final_alpha_cumprod)
    if prediction_type == "epsilon":
        return math.sqrt(a_p / a_t), math.sqrt(1 - a_p) - math.sqrt(a_p * (1 - a_t) / a_t)
    if prediction_type == "v_prediction":
        return (
            math.sqrt(a_p * a_t) + math.sqrt((1 - a_p) * (1 - a_t)),
            math.sqrt((1 - a_p) * a_t) - math.sqrt(a_p * (1 - a_t)),
        )
    if prediction_type == "sample":
        return math.sqrt((1 - a_p) / (1 - a_t)), math.sqrt(a_p) - math.sqrt((1 - a_p) * a_t / (1 - a_t))
    raise P2PError(f"cannot invert a model with prediction_type {prediction_type!r}")


def _model_output(editor, latents, t, conditioning):
    return editor.model.unet(latents, t, **conditioning.unet_kwargs()).sample


@torch.no_grad()
def ddim_trajectory(editor, z0, cond, sched, prediction_type, callback=None, stop_event=None):
    """[x_0, ..., x_T]: the DDIM update run backwards with the conditional prediction only."""
    latents = [z0]
    z = z0
    ascending = sched.timesteps.flip(0).tolist()
    for i, t in enumerate(ascending):
        a, b = _step_coefficients(sched, t, prediction_type)
        out = _model_output(editor, z, t, cond)
        z = (z - b * out) / a
        latents.append(z)
        if callback is not None:
            callback(InversionStep("ddim", i, len(ascending)))
        if stop_event is not None and stop_event.is_set():
            raise _Stopped
    return latents


class _Stopped(Exception):
    pass


def null_text_optimisation(
    editor,
    trajectory,
    cond,
    uncond,
    sched,
    guidance,
    prediction_type,
    *,
    inner_steps,
    lr,
    early_stop,
    early_stop_growth,
    callback=None,
    stop_event=None,
):
    """Per-step unconditional embeddings that make the guided DDIM steps follow ``trajectory``.

    Step i (noisiest first): Adam on the embedding, warm-started from step i - 1's result, with
    learning rate ``lr * (1 - i / (2 * steps))`` (the reference's 1 - i / 100 at 50 steps), at most
    ``inner_steps`` iterations, stopping once the MSE to the trajectory falls below
    ``early_stop + early_stop_growth * i``; then the current latent advances with the guided step
    using the optimised embedding. SDXL's pooled unconditional text is optimised beside the token
    states (it steers the UNet as much). Returns (embeddings, pooled embeddings or None, final
    losses, iterations, stopped).
    """
    n = len(sched.timesteps)
    z = trajectory[-1]
    params = [uncond.hidden.detach().clone()]
    if uncond.added is not None:
        params.append(uncond.added["text_embeds"].detach().clone())
    history, losses, iterations = [], [], []
    stopped = False

    def conditioning(values):
        return uncond.with_hidden(values[0]).with_pooled(values[1] if len(values) > 1 else None)

    for i, t in enumerate(sched.timesteps.tolist()):
        if stop_event is not None and stop_event.is_set():
            stopped = True
            break
        a, b = _step_coefficients(sched, t, prediction_type)
        target = trajectory[n - 1 - i]
        with torch.no_grad():
            out_c = _model_output(editor, z, t, cond)
        params = [p.detach().requires_grad_(True) for p in params]
        optimiser = torch.optim.Adam(params, lr=lr * (1.0 - i / (2.0 * n)))
        loss_value, k = float("nan"), 0
        threshold = early_stop + early_stop_growth * i
        for k in range(1, inner_steps + 1):  # noqa: B007 (k, the iterations run, is read after the loop)
            with torch.enable_grad():
                out_u = _model_output(editor, z, t, conditioning(params))
                out = out_u + guidance * (out_c - out_u)
                loss = torch.nn.functional.mse_loss(a * z + b * out, target)
                grads = torch.autograd.grad(loss, params)  # no gradients into the model's weights
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            optimiser.step()
            loss_value = float(loss.detach())
            if loss_value < threshold:
                break
        params = [p.detach() for p in params]
        history.append([p.clone() for p in params])
        losses.append(loss_value)
        iterations.append(k)
        with torch.no_grad():
            out_u = _model_output(editor, z, t, conditioning(params))
            z = a * z + b * (out_u + guidance * (out_c - out_u))
        if callback is not None:
            callback(InversionStep("null-text", i, n, loss_value, k))
    if len(history) < n:  # stopped: the remaining steps reuse the last embedding (the next warm start)
        history += [[p.clone() for p in params] for _ in range(n - len(history))]
    embeddings = [h[0] for h in history]
    pooled = [h[1] for h in history] if len(params) > 1 else None
    return embeddings, pooled, losses, iterations, stopped


# -- the cache -------------------------------------------------------------------------------------
_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # unet -> OrderedDict(key -> Inversion)


def clear_cache(editor=None):
    """Forget cached inversions (of one editor's model, or all)."""
    if editor is None:
        _CACHES.clear()
    else:
        _CACHES.pop(editor.model.denoiser, None)


def cached_count(editor) -> int:
    return len(_CACHES.get(editor.model.denoiser, ()))


# -- the entry point -------------------------------------------------------------------------------
def invert(
    editor,
    image,
    prompt,
    method: str = "null-text",
    *,
    steps: int = 50,
    guidance: float = 7.5,
    crop="center",
    size=None,
    inner_steps: int | None = None,
    lr: float | None = None,
    early_stop: float | None = None,
    early_stop_growth: float | None = None,
    callback=None,
    progress=False,
    stop_event=None,
    cache: bool = True,
    wait: bool = True,
    on_wait=None,
) -> Inversion:
    """Invert ``image`` (described by ``prompt``) for editing with ``editor``; see the module docstring.

    - ``method``: ``"null-text"`` (default), ``"ddim"`` or ``"negative-prompt"``;
    - ``steps``, ``guidance``: the DDIM steps and the guidance the edits will use (edits must use
      the same steps; null-text embeddings are optimised for this guidance);
    - ``crop``/``size``: see :func:`load_image` (``size`` defaults to the model's size);
    - ``inner_steps``, ``lr``, ``early_stop``, ``early_stop_growth``: the null-text optimisation
      (defaults :data:`NULL_TEXT_DEFAULTS`, the reference's);
    - ``callback(InversionStep)`` after every step; ``progress``: ``True`` for a tqdm bar, or a
      tqdm-like class (called with ``total=``, ``desc=``; ``update``/``set_postfix``/``close``);
    - ``stop_event``: a ``threading.Event``; when set, null-text optimisation stops after the
      current step and the result has ``stopped=True`` (its later steps reuse the last embedding;
      it is not cached). Setting it during the DDIM phase raises :class:`P2PError`;
    - ``cache``: reuse (and keep) the result for identical inputs on this model;
    - ``wait``, ``on_wait``: when another run holds the model, wait for it (``on_wait()`` is called
      first) or, with ``wait=False``, raise (see :meth:`ModelBackend.exclusive`).
    """
    guidance, opts = _check_options(
        editor,
        prompt,
        method,
        steps,
        guidance,
        dict(inner_steps=inner_steps, lr=lr, early_stop=early_stop, early_stop_growth=early_stop_growth),
    )
    steps = int(steps)
    check_run_callbacks(callback, stop_event, on_wait)
    sizes = editor.check_size(*_check_size(size))
    pixels = load_image(image, sizes, crop)
    options = {"crop": crop if isinstance(crop, str) else list(crop), "size": list(sizes)}
    if method == "null-text":
        options.update(opts)
    key = (
        pixels_hash(pixels),
        prompt,
        method,
        steps,
        guidance,
        json.dumps(options, sort_keys=True),
        # the trajectory's timesteps and alphas come from the pipeline's scheduler config
        json.dumps(schedulers.describe(editor.model.ddim_scheduler())[1], sort_keys=True),
        editor.model_id(),
        str(editor.device),
        str(editor.dtype),
    )
    store = _CACHES.setdefault(editor.model.denoiser, OrderedDict())
    if cache and key in store:
        store.move_to_end(key)
        return store[key]
    t0 = time.perf_counter()
    bar = _progress_bar(progress, steps * (2 if method == "null-text" else 1), f"{method} inversion")
    try:
        with editor.exclusive(wait, on_wait, stop_event):
            result = _invert(
                editor, pixels, prompt, method, steps, guidance, opts, _reporter(callback, bar), stop_event
            )
    finally:
        if bar is not None:
            bar.close()
    result.options, result.seconds = options, time.perf_counter() - t0
    if cache and not result.stopped:
        store[key] = result
        while len(store) > CACHE_SIZE:
            store.popitem(last=False)
    return result


def _check_options(editor, prompt, method, steps, guidance, overrides) -> tuple[float, dict]:
    """Validate :func:`invert`'s arguments; returns the guidance and the null-text settings."""
    if not editor.model.invertible:
        raise P2PError(
            f"inverting images needs a Stable Diffusion (UNet) model; {editor.model.family} models cannot be "
            "inverted yet"
        )
    if method not in METHODS:
        raise P2PError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    if not isinstance(prompt, str):
        raise P2PError(f"the prompt must be a string describing the image, got {type(prompt).__name__}")
    if not prompt.strip() and method != "ddim":
        # DDIM inversion under the empty prompt is what Plug-and-Play reads; the optimised ones need
        # the caption the edit changes
        raise P2PError(f"the prompt is empty: {method} inversion needs a caption of the image (edits change its words)")
    check_int("steps", steps, 1, editor.pipe.scheduler.config.num_train_timesteps)
    if not is_number(guidance) or guidance < 0:
        raise P2PError(f"guidance must be a finite number >= 0, got {guidance!r}")
    opts = {**NULL_TEXT_DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    check_int("inner_steps", opts["inner_steps"], 1, 10_000)
    for name in ("lr", "early_stop", "early_stop_growth"):
        v = opts[name]
        if not is_number(v) or v < 0 or (name == "lr" and v == 0):
            raise P2PError(f"{name} must be a finite number {'> 0' if name == 'lr' else '>= 0'}, got {v!r}")
    if method == "null-text" and editor.dtype != torch.float32:
        dtype = str(editor.dtype).replace("torch.", "")
        raise P2PError(
            f"null-text inversion needs a float32 model but this one is {dtype}: "
            "the embedding is optimised by gradient descent through the UNet, which fails in half "
            "precision. Load the model in float32 (e.g. load_pocket(dtype=torch.float32)) or use "
            "method='negative-prompt' (no optimisation)"
        )
    return float(guidance), opts


def _check_size(size) -> tuple:
    """``size`` as (height, width) for ``check_size`` (None: the model's size)."""
    if size is None or is_int(size):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(is_int(v) for v in size):
        return tuple(size)
    raise P2PError(f"size must be an integer or a (height, width) pair of integers, got {size!r}")


def _invert(editor, pixels, prompt, method, steps, guidance, opts, report, stop_event) -> Inversion:
    """The DDIM trajectory of ``pixels``, then the method's unconditional embeddings."""
    sched = _scheduler(editor, steps)
    prediction_type = editor.pipe.scheduler.config.get("prediction_type", "epsilon")
    size = tuple(pixels.shape[:2])
    z0 = editor.encode_image(pixels).to(editor.device, editor.dtype)
    cond = editor.model.conditioning([editor.prompt(prompt)], size)
    try:
        trajectory = ddim_trajectory(editor, z0, cond, sched, prediction_type, report, stop_event)
    except _Stopped:
        raise P2PError("inversion stopped by the stop event during the DDIM phase (no result)") from None
    losses, iterations, stopped, uncond, uncond_pooled = [], [], False, None, None
    if method == "negative-prompt":
        uncond = [cond.hidden.detach().float().cpu()] * steps
        if cond.added is not None:  # SDXL: the prompt's pooled text on the unconditional branch too
            uncond_pooled = [cond.added["text_embeds"].detach().float().cpu()] * steps
    elif method == "null-text":
        empty = editor.model.conditioning([editor.prompt(prompt)], size, uncond=True)
        uncond, uncond_pooled, losses, iterations, stopped = null_text_optimisation(
            editor,
            trajectory,
            cond,
            empty,
            sched,
            guidance,
            prediction_type,
            inner_steps=opts["inner_steps"],
            lr=opts["lr"],
            early_stop=opts["early_stop"],
            early_stop_growth=opts["early_stop_growth"],
            callback=report,
            stop_event=stop_event,
        )
        uncond = [e.float().cpu() for e in uncond]
        if uncond_pooled is not None:
            uncond_pooled = [e.float().cpu() for e in uncond_pooled]
    return Inversion(
        method=method,
        prompt=prompt,
        steps=steps,
        guidance=guidance,
        latents=torch.cat(trajectory).float().cpu(),
        uncond_embeddings=uncond,
        timesteps=sched.timesteps.tolist(),
        image=pixels,
        model=editor.model_id(),
        prediction_type=prediction_type,
        losses=losses,
        iterations=iterations,
        stopped=stopped,
        uncond_pooled=uncond_pooled,
    )


def _progress_bar(progress, total, desc):
    if progress is False or progress is None:
        return None
    if progress is True:
        from tqdm.auto import tqdm

        progress = tqdm
    if not callable(progress):
        raise P2PError(f"progress must be True, False or a tqdm-like class, got {progress!r}")
    return progress(total=total, desc=desc)


def _reporter(callback, bar):
    if callback is None and bar is None:
        return None

    def report(event: InversionStep):
        if bar is not None:
            bar.update(1)
            if event.loss is not None and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{event.loss:.2e}", iters=event.iterations, refresh=False)
        if callback is not None:
            callback(event)

    return report
