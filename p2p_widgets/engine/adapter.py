"""What the sampler and the inversion need from a diffusers Stable Diffusion pipeline.

:class:`ModelAdapter` owns the model facts and conversions both use: prompt encoding (SD's last
text-encoder layer, or SDXL's two penultimate layers, pooled text and size ids), the VAE in both
directions (with SDXL's fp16 upcast), image sizes and attention grids, the DDIM scheduler built
from the pipeline's config, and a fingerprint of the weights. :class:`~p2p_widgets.engine.sampler.Editor`
is a ModelAdapter that also samples; the inversion functions take any ModelAdapter.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import P2PError, RunStopped, check_int
from .prompts import Prompt
from .threads import choose_cpu_threads
from .tokenizer import TOKENIZER_LOCK


@dataclass
class TextConditioning:
    """What the UNet reads from the prompts: token states, plus SDXL's pooled text and size ids."""

    hidden: torch.Tensor  # (B, L, D)
    added: dict | None = None  # SDXL: {"text_embeds": (B, P), "time_ids": (B, 6)}

    def unet_kwargs(self) -> dict:
        kwargs = {"encoder_hidden_states": self.hidden}
        if self.added is not None:
            kwargs["added_cond_kwargs"] = self.added
        return kwargs

    def with_hidden(self, hidden: torch.Tensor) -> TextConditioning:
        """The same extra conditioning (broadcast to ``hidden``'s batch) with other token states."""
        added = None if self.added is None else {k: v[:1].expand(len(hidden), -1) for k, v in self.added.items()}
        return TextConditioning(hidden, added)

    def with_pooled(self, pooled: torch.Tensor | None) -> TextConditioning:
        if pooled is None or self.added is None:
            return self
        pooled = pooled.to(self.added["text_embeds"]).expand(len(self.hidden), -1)
        return TextConditioning(self.hidden, {**self.added, "text_embeds": pooled})

    @staticmethod
    def cat(first: TextConditioning, second: TextConditioning) -> TextConditioning:
        added = None if first.added is None else {k: torch.cat([first.added[k], second.added[k]]) for k in first.added}
        return TextConditioning(torch.cat([first.hidden, second.hidden]), added)


def ddim_scheduler(config, steps: int | None = None):
    """A fresh DDIM scheduler from a scheduler config (timesteps set when ``steps`` is given)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(config)
    if steps is not None:
        sched.set_timesteps(steps)
    return sched


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_RUN_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # unet -> the lock of its runs
_RUN_LOCKS_GUARD = threading.Lock()


def run_lock(unet) -> threading.RLock:
    """The lock a run (sampling or inversion) holds on ``unet``: one run per UNet at a time,
    whichever Editor, thread or widget starts it (re-entrant for the thread that holds it)."""
    with _RUN_LOCKS_GUARD:
        lock = _RUN_LOCKS.get(unet)
        if lock is None:
            lock = _RUN_LOCKS[unet] = threading.RLock()
        return lock


class ModelAdapter:
    """Model facts and conversions of one SD 1.x / 2.x / SDXL base pipeline (see the module docstring)."""

    def __init__(self, pipe, device=None):
        for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            if getattr(pipe, part, None) is None:
                raise P2PError(f"the pipeline has no {part}: Editor needs a Stable Diffusion pipeline")
        self.is_xl = getattr(pipe, "text_encoder_2", None) is not None
        if self.is_xl:
            _check_xl(pipe)
        self.pipe = pipe
        if device is not None:
            pipe.to(device)
        self.unet, self.vae = pipe.unet, pipe.vae
        self.tokenizer, self.text_encoder = pipe.tokenizer, pipe.text_encoder
        self.text_encoders = [(pipe.tokenizer, pipe.text_encoder)]
        if self.is_xl:
            self.text_encoders.append((pipe.tokenizer_2, pipe.text_encoder_2))
        self.vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if self.device.type == "cpu":
            choose_cpu_threads()  # torch's one-per-core default collapses when a core is busy

    # -- sizes ---------------------------------------------------------------------------------------
    @property
    def device(self):
        return self.unet.device

    @property
    def dtype(self):
        return self.unet.dtype

    @property
    def default_size(self) -> int:
        return self.unet.config.sample_size * self.vae_factor

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (the VAE factor times the UNet's downsampling)."""
        return self.vae_factor * 2 ** (len(self.unet.down_blocks) - 1)

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

    def attention_sides(self, latent_side: int | None = None) -> list[int]:
        """Query grid sides of the UNet's attention layers (for a latent of ``latent_side``)."""
        side = latent_side or self.unet.config.sample_size
        sides = {side // 2**i for i, blk in enumerate(self.unet.down_blocks) if getattr(blk, "attentions", None)}
        if getattr(self.unet.mid_block, "attentions", None):
            sides.add(side // 2 ** (len(self.unet.down_blocks) - 1))
        return sorted(sides)

    def ddim_scheduler(self, steps: int | None = None):
        """The DDIM scheduler the sampler and the inversion use, built from the pipeline's config."""
        return ddim_scheduler(self.pipe.scheduler.config, steps)

    @contextlib.contextmanager
    def exclusive(self, wait: bool = True, on_wait=None, stop_event=None):
        """Hold this model's UNet for one run. If another run holds it, wait for it (calling
        ``on_wait()`` once first, e.g. to say so in a widget; a set ``stop_event`` ends the wait
        with a :class:`RunStopped`), or with ``wait=False`` raise a :class:`P2PError` at once."""
        lock = run_lock(self.unet)
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

    # -- text ----------------------------------------------------------------------------------------
    def prompt(self, text) -> Prompt:
        return text if isinstance(text, Prompt) else Prompt.from_text(text, self.tokenizer)

    @property
    def embedding_width(self) -> int:
        """Width of the token states the UNet attends to (SDXL: both encoders' widths added)."""
        return sum(enc.config.hidden_size for _, enc in self.text_encoders)

    @torch.no_grad()
    def encode(self, prompts: list[Prompt]) -> torch.Tensor:
        """(B, L, D) token states: the text encoder's last layer (SD), or SDXL's two penultimate layers."""
        return self._encode(prompts)[0]

    def _encode(self, prompts):
        if not self.is_xl:
            ids = self._ids(self.tokenizer, prompts)
            return self.text_encoder(ids.to(self.text_encoder.device))[0].to(self.dtype), None
        hidden, pooled = [], None
        for tokenizer, encoder in self.text_encoders:  # as diffusers' SDXL pipeline encodes prompts
            out = encoder(self._ids(tokenizer, prompts).to(encoder.device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]  # the second encoder's projected text embedding
        return torch.cat(hidden, dim=-1).to(self.dtype), pooled.to(self.dtype)

    @staticmethod
    def _ids(tokenizer, prompts):
        with TOKENIZER_LOCK:
            return tokenizer(
                [p.text for p in prompts],
                padding="max_length",
                max_length=prompts[0].max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids

    @torch.no_grad()
    def conditioning(self, prompts: list[Prompt], size=None, uncond: bool = False) -> TextConditioning:
        """What the UNet reads for ``prompts`` (``uncond``: the empty prompt, once per prompt) at ``size``.

        SDXL follows its pipeline's defaults: the unconditional embeddings are zeros when the
        pipeline says ``force_zeros_for_empty_prompt``; the size ids say original = target = ``size``,
        crop (0, 0).
        """
        if uncond:
            prompts = [self.prompt("")] * len(prompts)
        hidden, pooled = self._encode(prompts)
        if not self.is_xl:
            return TextConditioning(hidden)
        if uncond and self.pipe.config.get("force_zeros_for_empty_prompt", True):
            hidden, pooled = torch.zeros_like(hidden), torch.zeros_like(pooled)
        h, w = size or (self.default_size, self.default_size)
        time_ids = torch.tensor([[h, w, 0, 0, h, w]], device=self.device, dtype=self.dtype).expand(len(prompts), -1)
        return TextConditioning(hidden, {"text_embeds": pooled, "time_ids": time_ids})

    # -- images --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def safe_vae(self):
        """Context giving the VAE, in fp32 for the duration when it is SDXL's fp16 VAE, which overflows
        in fp16 (its config says ``force_upcast``), as diffusers' SDXL pipeline does."""
        vae = self.vae
        upcast = self.is_xl and vae.dtype == torch.float16 and vae.config.get("force_upcast", False)
        if upcast:
            vae.to(torch.float32)
        try:
            yield vae
        finally:
            if upcast:
                vae.to(torch.float16)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(B, H, W, 3) uint8 images from latents."""
        with self.safe_vae() as vae:
            images = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    @torch.no_grad()
    def encode_image(self, pixels: np.ndarray) -> torch.Tensor:
        """(1, C, h, w) latents of an (H, W, 3) uint8 image: VAE posterior mean times the scaling factor."""
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1
        with self.safe_vae() as vae:
            posterior = vae.encode(x.to(vae.device, vae.dtype)).latent_dist
            return (posterior.mean * vae.config.scaling_factor).to(self.dtype)

    # Linear latent -> RGB approximation for SD's VAE (least squares over decoded images; a preview,
    # not a decode): used where a full decode per step would cost too much.
    _RGB = torch.tensor(
        [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
    )

    @torch.no_grad()
    def preview(self, x0: torch.Tensor, max_decode_side: int = 32) -> np.ndarray:
        """Images of x0 predictions: a real decode for small latents, the linear map above otherwise."""
        if max(x0.shape[-2:]) <= max_decode_side or x0.shape[1] != 4:
            return self.decode(x0)
        rgb = torch.einsum("bchw,cr->bhwr", x0.float().cpu(), self._RGB)
        return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    # -- identity ------------------------------------------------------------------------------------
    def model_id(self) -> str:
        """The model's name (when loaded from a path or hub id) and a fingerprint of a few of its weights."""
        unet = self.unet
        fp = _FINGERPRINTS.get(unet)
        if fp is None:
            h = hashlib.sha256()
            for tensor in (
                unet.conv_in.weight,
                unet.conv_out.weight,
                self.vae.encoder.conv_in.weight,
                self.text_encoder.get_input_embeddings().weight[:64],
            ):
                h.update(tensor.detach().float().cpu().numpy().tobytes())
            fp = _FINGERPRINTS[unet] = h.hexdigest()[:12]
        name = getattr(self.pipe, "name_or_path", None) or self.pipe.config.get("_name_or_path") or type(unet).__name__
        return f"{name}@{fp}"


def _check_xl(pipe):
    """SDXL base pipelines only: both text encoders and the pooled-text + size conditioning."""
    for part in ("tokenizer_2", "text_encoder_2"):
        if getattr(pipe, part, None) is None:
            raise P2PError(f"the SDXL pipeline has no {part}")
    config = pipe.unet.config
    if config.get("addition_embed_type") != "text_time":
        raise P2PError("the pipeline has two text encoders but its UNet does not take SDXL's text_time conditioning")
    if pipe.config.get("requires_aesthetics_score", False):
        raise P2PError(
            "SDXL refiner pipelines (aesthetic-score conditioning) are not supported; use an SDXL base model"
        )
