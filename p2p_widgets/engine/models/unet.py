"""Stable Diffusion 1.x / 2.x and SDXL base pipelines: the UNet family.

Prompt encoding as diffusers' SD pipelines (the text encoder's last layer; SDXL: both encoders'
penultimate layers, pooled text and size ids), classifier-free guidance as one [uncond; cond]
batch (or two passes with ``low_memory``), DDIM from the pipeline's scheduler config by default.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ...errors import P2PError
from ..tokenizer import TOKENIZER_LOCK, private_copy
from .base import ModelBackend


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


class UNetBackend(ModelBackend):
    """SD 1.x / 2.x / SDXL base pipelines (see the module docstring)."""

    family = "unet"
    inversion_family = "ddim"

    def __init__(self, pipe, device=None):
        for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            if getattr(pipe, part, None) is None:
                raise P2PError(f"the pipeline has no {part}: Editor needs a Stable Diffusion pipeline")
        self.is_xl = getattr(pipe, "text_encoder_2", None) is not None
        if self.is_xl:
            _check_xl(pipe)
        super().__init__(pipe, pipe.unet, device)
        self.unet, self.text_encoder = pipe.unet, pipe.text_encoder
        self.text_encoders = [(pipe.tokenizer, pipe.text_encoder)]
        if self.is_xl:
            self.text_encoders.append((pipe.tokenizer_2, pipe.text_encoder_2))
        self.family = "sdxl" if self.is_xl else "sd"

    @property
    def latent_channels(self) -> int:
        return self.unet.config.in_channels

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (the VAE factor times the UNet's downsampling)."""
        return self.vae_factor * 2 ** (len(self.unet.down_blocks) - 1)

    def attention_sides(self, latent_side: int | None = None) -> list[int]:
        """Query grid sides of the UNet's attention layers (for a latent of ``latent_side``)."""
        side = latent_side or self.unet.config.sample_size
        sides = {side // 2**i for i, blk in enumerate(self.unet.down_blocks) if getattr(blk, "attentions", None)}
        if getattr(self.unet.mid_block, "attentions", None):
            sides.add(side // 2 ** (len(self.unet.down_blocks) - 1))
        return sorted(sides)

    def default_scheduler(self):
        return self.ddim_scheduler()

    def ddim_scheduler(self, steps: int | None = None):
        """The DDIM scheduler the sampler and the inversion use, built from the pipeline's config."""
        return ddim_scheduler(self.pipe.scheduler.config, steps)

    # -- text ----------------------------------------------------------------------------------------
    @property
    def embedding_width(self) -> int:
        """Width of the token states the UNet attends to (SDXL: both encoders' widths added)."""
        return sum(enc.config.hidden_size for _, enc in self.text_encoders)

    @property
    def text_length(self) -> int:
        return int(self.tokenizer.model_max_length)

    @torch.no_grad()
    def encode(self, prompts: list) -> torch.Tensor:
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
            return private_copy(tokenizer)(  # user code may call the pipeline's tokenizer meanwhile
                [p.text for p in prompts],
                padding="max_length",
                max_length=prompts[0].max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids

    @torch.no_grad()
    def conditioning(self, prompts: list, size=None, uncond: bool = False) -> TextConditioning:
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

    def predict(self, controller, latents, t, cond, uncond, guidance, low_memory=False):
        if uncond is None:  # no guidance
            controller.block = "cond"
            return self.unet(latents, t, **cond.unet_kwargs()).sample
        if low_memory:  # two passes: uncond (never edited), then cond
            controller.block = "uncond"
            eps_u = self.unet(latents, t, **uncond.unet_kwargs()).sample
            controller.block = "cond"
            eps_c = self.unet(latents, t, **cond.unet_kwargs()).sample
        else:
            controller.block = "both"
            both = TextConditioning.cat(uncond, cond)
            eps = self.unet(torch.cat([latents, latents]), t, **both.unet_kwargs()).sample
            eps_u, eps_c = eps.chunk(2)
        return eps_u + guidance * (eps_c - eps_u)

    # -- images --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def safe_vae(self):
        """The VAE, in fp32 for the duration when it is SDXL's fp16 VAE, which overflows in fp16 (its
        config says ``force_upcast``), as diffusers' SDXL pipeline does."""
        vae = self.vae
        upcast = self.is_xl and vae.dtype == torch.float16 and vae.config.get("force_upcast", False)
        if upcast:
            vae.to(torch.float32)
        try:
            yield vae
        finally:
            if upcast:
                vae.to(torch.float16)

    def fingerprint_tensors(self) -> list:
        return [
            self.unet.conv_in.weight,
            self.unet.conv_out.weight,
            self.vae.encoder.conv_in.weight,
            self.text_encoder.get_input_embeddings().weight[:64],
        ]


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
