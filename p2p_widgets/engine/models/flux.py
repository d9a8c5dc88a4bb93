"""Flux.1 (dev, schnell, and the pocket flow model): MM-DiT over [text; image] tokens.

Text as diffusers' ``FluxPipeline`` encodes it: T5 token states (``max_sequence_length``: 512 for
dev, 256 for schnell) and CLIP-L's pooled vector. Latents are packed into 2x2 patches of tokens
for the transformer and unpacked after, so the sampler, LocalBlend and the store see spatial
latents. Guidance: dev embeds it as a model input (no unconditional half, ``guidance_mode
"distilled"``); a transformer without a guidance embedding (schnell, the pocket flow model) takes
true classifier-free guidance against the empty prompt when the guidance is above 1.
"""

from __future__ import annotations

import copy

import torch

from ..defaults import FLUX_DEV_DEFAULTS, FLUX_SCHNELL_DEFAULTS, SamplingDefaults
from .flow import FlowBackend


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """Spatial (B, C, h, w) latents as FluxPipeline packs them: 2x2 patches as tokens, (B, h/2 * w/2, 4C)."""
    b, c, h, w = latents.shape
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w // 4, c * 4)


def unpack_latents(packed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """:func:`pack_latents` undone: (B, h/2 * w/2, 4C) tokens back to spatial (B, C, h, w) latents."""
    b, _, c4 = packed.shape
    return packed.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c4 // 4, h, w)


def image_ids(h: int, w: int, device=None, dtype=None) -> torch.Tensor:
    """Flux's position ids of an (h, w) grid of image tokens: (h * w, 3) rows of (0, row, column)."""
    ids = torch.zeros(h, w, 3, device=device, dtype=dtype)
    ids[..., 1] = torch.arange(h, device=device)[:, None]
    ids[..., 2] = torch.arange(w, device=device)[None, :]
    return ids.reshape(h * w, 3)


class FluxBackend(FlowBackend):
    family = "flux"

    def family_defaults(self) -> SamplingDefaults:
        return FLUX_DEV_DEFAULTS if self.denoiser.config.guidance_embeds else FLUX_SCHNELL_DEFAULTS

    def __init__(self, pipe, device=None):
        super().__init__(pipe, device)
        # the T5 tokens are the text of the joint attention: prompts span the run's text length
        self.tokenizer = copy.deepcopy(pipe.tokenizer_2)
        self.tokenizer.model_max_length = self.text_length
        self.guidance_mode = "distilled" if self.transformer.config.guidance_embeds else "cfg"

    @property
    def patch(self) -> int:
        return 2  # FluxPipeline packs 2x2 latent pixels into a token

    @property
    def text_length(self) -> int:
        return self.defaults.text_length or min(int(self.pipe.tokenizer_2.model_max_length), 512)

    def schedule_kwargs(self, config, steps, size) -> dict:
        """FluxPipeline's sigmas (1 down to 1 / steps) and its size shift ``mu`` (passed always: the
        scheduler reads it only when it shifts dynamically)."""
        import numpy as np

        kwargs = {"mu": self.shift_mu(config, size)}
        if not config.get("use_flow_sigmas", False):
            kwargs["sigmas"] = np.linspace(1.0, 1 / steps, steps)
        return kwargs

    def _encode_prompt(self, texts):
        hidden, pooled, _ = self.pipe.encode_prompt(
            texts, None, device=self.device, max_sequence_length=self.text_length
        )
        return hidden, pooled

    def _velocity(self, latents, t, cond, guidance):
        b, _, h, w = latents.shape
        device = latents.device  # not self.device: diffusers' walks every module to find it, per call
        embedded = None
        if self.guidance_mode == "distilled":
            embedded = torch.full([b], float(guidance), device=device, dtype=torch.float32)
        out = self.transformer(
            hidden_states=pack_latents(latents),
            timestep=t.expand(b).to(latents.dtype) / 1000,
            guidance=embedded,
            pooled_projections=cond.pooled,
            encoder_hidden_states=cond.hidden,
            txt_ids=torch.zeros(cond.hidden.shape[1], 3, device=device, dtype=latents.dtype),
            img_ids=image_ids(h // 2, w // 2, device, latents.dtype),
            return_dict=False,
        )[0]
        return unpack_latents(out, h, w)

    def predict(self, controller, latents, t, cond, uncond, guidance, low_memory=False):
        if self.guidance_mode == "distilled":  # the guidance is an input: one conditional pass
            controller.block = "cond"
            return self._velocity(latents, t, cond, guidance)
        return super().predict(controller, latents, t, cond, uncond, guidance, low_memory)
