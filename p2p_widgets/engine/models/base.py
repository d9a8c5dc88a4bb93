"""What every model family gives the sampler: :class:`ModelBackend`.

A backend wraps one diffusers pipeline and answers, in the pipeline's own terms, everything the
sampler, the inversion and the widgets ask of a model: prompt encoding (``conditioning``), one
guided prediction (``predict``), latent shapes, the VAE in both directions (scale and shift), the
scheduler and how to set its timesteps, sizes, the attention sites, and the run lock. The sampler
never calls a denoiser itself and never reads a family's module names; a new family is one
backend here plus its attention sites.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import weakref

import numpy as np
import torch

from ...errors import P2PError, RunStopped, check_int
from ..defaults import SD_DEFAULTS, SamplingDefaults, registered_defaults
from ..prompts import Prompt
from ..threads import choose_cpu_threads

_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_RUN_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # denoiser -> the lock of its runs
_RUN_LOCKS_GUARD = threading.Lock()


def run_lock(denoiser) -> threading.RLock:
    """The lock a run (sampling or inversion) holds on ``denoiser``: one run per model at a time,
    whichever Editor, thread or widget starts it (re-entrant for the thread that holds it)."""
    with _RUN_LOCKS_GUARD:
        lock = _RUN_LOCKS.get(denoiser)
        if lock is None:
            lock = _RUN_LOCKS[denoiser] = threading.RLock()
        return lock


class ModelBackend:
    """One model family's answers (see the module docstring). Subclasses set ``family``, the
    denoiser (``self.denoiser``: the UNet or the transformer) and the family-specific methods."""

    family = "base"
    guidance_mode = "cfg"  # "cfg": [uncond; cond] in one batch; "distilled": guidance is a model input
    inversion_family = None  # the inversions engine.inversion makes on it: "ddim", "flow" or None

    def __init__(self, pipe, denoiser, device=None):
        self.pipe, self.denoiser, self.vae = pipe, denoiser, pipe.vae
        if device is not None:
            pipe.to(device)
        self.tokenizer = pipe.tokenizer  # the tokenizer whose tokens the widgets show and mappers align
        self.vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.defaults = registered_defaults(pipe) or dataclasses.replace(
            self.family_defaults(), name=type(pipe).__name__
        )
        if self.device.type == "cpu":
            choose_cpu_threads()  # torch's one-per-core default collapses when a core is busy

    def family_defaults(self) -> SamplingDefaults:
        """What the family samples well with where the pipeline registered none (diffusers' pipeline
        defaults; the reference's 50 steps at 7.5 on Stable Diffusion)."""
        return SD_DEFAULTS

    @property
    def inversion_methods(self) -> tuple[str, ...]:
        """The methods ``engine.inversion.invert`` takes on this model, best first (() where it
        inverts no images): ``engine.inversion.methods_of(self.inversion_family)``."""
        from ..inversion.record import methods_of

        return methods_of(self.inversion_family)

    # -- sizes ---------------------------------------------------------------------------------------
    # diffusers' own device / dtype walk every module (offloading and layerwise-casting hooks, modules
    # kept in float32): 6 ms a call on a 12-block DiT, ten calls a run. A run reads them once (pinned).
    @property
    def device(self):
        pinned = getattr(self, "_pinned", None)
        return self.denoiser.device if pinned is None else pinned[0]

    @property
    def dtype(self):
        pinned = getattr(self, "_pinned", None)
        return self.denoiser.dtype if pinned is None else pinned[1]

    @contextlib.contextmanager
    def pinned(self):
        """The denoiser's device and dtype read once for the block (a run); a block inside another, or
        beside another thread's, reads the same values."""
        if getattr(self, "_pinned", None) is not None:
            yield
            return
        self._pinned = (self.denoiser.device, self.denoiser.dtype)
        try:
            yield
        finally:
            self._pinned = None

    @property
    def default_size(self) -> int:
        # Flux's transformer names no sample size: its pipeline's default is 128 latent pixels
        return self.defaults.size or self.denoiser.config.get("sample_size", 128) * self.vae_factor

    @property
    def size_multiple(self) -> int:
        raise NotImplementedError

    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels

    def latent_shape(self, size) -> tuple:
        """(1, C, h, w) of the (spatial, unpacked) latents of an image of ``size`` = (height, width)."""
        return (1, self.latent_channels, *(side // self.vae_factor for side in size))

    def check_size(self, height=None, width=None) -> tuple[int, int]:
        """``(height, width)`` (default: the model's size), or a P2PError naming the bad side."""
        # only None means the default: 0 is a size, refused below
        height = self.default_size if height is None else height
        width = self.default_size if width is None else width
        for name, v in (("height", height), ("width", width)):
            check_int(name, v, 8, 4096)
            if v % self.size_multiple:
                raise P2PError(f"{name} {v} must be a multiple of {self.size_multiple}")
        return int(height), int(width)

    # -- runs ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def exclusive(self, wait: bool = True, on_wait=None, stop_event=None):
        """Hold this model for one run. If another run holds it, wait for it (calling ``on_wait()``
        once first, e.g. to say so in a widget; a set ``stop_event`` ends the wait with a
        :class:`RunStopped`), or with ``wait=False`` raise a :class:`P2PError` at once."""
        lock = run_lock(self.denoiser)
        if not lock.acquire(blocking=False):
            if not wait:
                raise P2PError(
                    "another run is using this model (another thread, cell or the Studio): "
                    "wait for it to finish, or pass wait=True to queue behind it"
                )
            if on_wait is not None:
                on_wait()
            while not lock.acquire(timeout=0.1):
                if stop_event is not None and stop_event.is_set():
                    raise RunStopped("stopped while waiting for another run")
        try:
            yield self
        finally:
            lock.release()

    def sites(self):
        """The model's attention sites (:mod:`p2p_widgets.engine.sites`), in execution order."""
        from ..sites import sites_of

        return sites_of(self.denoiser)

    # -- schedulers ------------------------------------------------------------------------------------
    def default_scheduler(self):
        """The scheduler a run uses when the edit names none (a fresh object each call)."""
        raise NotImplementedError

    def set_timesteps(self, sched, steps: int, size) -> None:
        """Set ``sched``'s timesteps for a run of ``steps`` at ``size``, as the family's pipeline does."""
        sched.set_timesteps(steps, device=self.device)

    def x0(self, out, output, latents, sched, i) -> torch.Tensor:
        """The step's prediction of the clean latents (``out``: the scheduler's step output; the next
        latents where a scheduler gives none)."""
        x0 = getattr(out, "pred_original_sample", None)
        return out.prev_sample if x0 is None else x0

    # -- text ----------------------------------------------------------------------------------------
    def prompt(self, text) -> Prompt:
        return text if isinstance(text, Prompt) else Prompt.from_text(text, self.tokenizer)

    def align(self, source: Prompt, target: Prompt, kind: str = "auto", compat: str = "project"):
        """The mapper from ``source`` to ``target`` over the text tokens the denoiser attends to."""
        from ..mapper import align

        return align(self.prompt(source), self.prompt(target), None, kind, compat)

    def conditioning(self, prompts: list[Prompt], size=None, uncond: bool = False):
        """What the denoiser reads for ``prompts`` (``uncond``: the empty prompt, once per prompt)."""
        raise NotImplementedError

    def predict(self, controller, latents, t, cond, uncond, guidance, low_memory=False) -> torch.Tensor:
        """The guided model output for spatial ``latents`` at timestep ``t`` (``uncond`` None: no
        guidance batch). Sets ``controller.block`` to the batch layout of each call."""
        raise NotImplementedError

    # -- images --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def safe_vae(self):
        """Context giving the VAE ready to run (SDXL upcasts its fp16 VAE for the duration)."""
        yield self.vae

    def _shift(self) -> float:
        return self.vae.config.get("shift_factor", None) or 0.0

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(B, H, W, 3) uint8 images from latents."""
        with self.safe_vae() as vae:
            z = latents.to(vae.dtype) / vae.config.scaling_factor + self._shift()
            images = vae.decode(z).sample
        return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    @torch.no_grad()
    def encode_image(self, pixels: np.ndarray) -> torch.Tensor:
        """(1, C, h, w) latents of an (H, W, 3) uint8 image: the VAE posterior mean, shifted and scaled."""
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1
        with self.safe_vae() as vae:
            posterior = vae.encode(x.to(vae.device, vae.dtype)).latent_dist
            return ((posterior.mean - self._shift()) * vae.config.scaling_factor).to(self.dtype)

    # Linear latent -> RGB approximation for SD's VAE (least squares over decoded images; a preview,
    # not a decode): used where a full decode per step would cost too much.
    _RGB = torch.tensor(
        [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
    )

    @torch.no_grad()
    def preview(self, x0: torch.Tensor, max_decode_side: int = 32) -> np.ndarray:
        """Images of x0 predictions: a real decode for small latents, the linear map above otherwise
        (SD's 4-channel VAE; other VAEs are decoded)."""
        if max(x0.shape[-2:]) <= max_decode_side or x0.shape[1] != 4 or self._shift():
            return self.decode(x0)
        rgb = torch.einsum("bchw,cr->bhwr", x0.float().cpu(), self._RGB)
        return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    # -- identity ------------------------------------------------------------------------------------
    def fingerprint_tensors(self) -> list:
        """A few weights that identify the model (first and last layer, the VAE, the token table)."""
        raise NotImplementedError

    def model_id(self) -> str:
        """The model's name (when loaded from a path or hub id) and a fingerprint of a few of its weights."""
        fp = _FINGERPRINTS.get(self.denoiser)
        if fp is None:
            h = hashlib.sha256()
            for tensor in self.fingerprint_tensors():
                h.update(tensor.detach().float().cpu().numpy().tobytes())
            fp = _FINGERPRINTS[self.denoiser] = h.hexdigest()[:12]
        name = (
            getattr(self.pipe, "name_or_path", None)
            or self.pipe.config.get("_name_or_path")
            or type(self.denoiser).__name__
        )
        return f"{name}@{fp}"
