"""What SD3 and Flux share: rectified flow with diffusers' ``FlowMatchEulerDiscreteScheduler``.

The model predicts a velocity ``v = noise - x_0``; a step is ``x_next = x + (sigma_next - sigma) v``
and the clean-latent estimate is ``x - sigma v``. The schedule may shift with the image size
(``mu`` from the number of image tokens, as the pipelines compute it). The start noise is unit
noise (no ``init_noise_sigma``) and the model input is not rescaled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import P2PError
from ..tokenizer import TOKENIZER_LOCK
from .base import ModelBackend


@dataclass
class JointConditioning:
    """What a joint-attention transformer reads: token states and the pooled text vector."""

    hidden: torch.Tensor  # (B, L, D) the text tokens of the joint sequence
    pooled: torch.Tensor  # (B, P) pooled text (adaLN modulation)

    @staticmethod
    def cat(first: JointConditioning, second: JointConditioning) -> JointConditioning:
        return JointConditioning(torch.cat([first.hidden, second.hidden]), torch.cat([first.pooled, second.pooled]))


def uses_cfg(model, guidance: float) -> bool:
    """Whether ``model`` (any backend) is guided at ``guidance`` with true classifier-free guidance,
    the empty prompt's batch beside the prompt's: above 1 where its ``guidance_mode`` is "cfg" (a
    UNet, SD3, a Flux without a guidance embedding); never where guidance is a model input (Flux
    dev). The one condition the sampler, the flow inversions, FlowEdit and RF-Inversion guide by."""
    return guidance > 1.0 and model.guidance_mode == "cfg"


def calculate_shift(image_seq_len, base_seq_len=256, max_seq_len=4096, base_shift=0.5, max_shift=1.15) -> float:
    """The schedule shift ``mu`` for ``image_seq_len`` image tokens: linear between the two
    (length, shift) points of the scheduler's config, as diffusers' Flux and SD3 pipelines."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * m + base_shift - m * base_seq_len


class FlowBackend(ModelBackend):
    """Shared by :class:`~p2p_widgets.engine.models.sd3.SD3Backend` and
    :class:`~p2p_widgets.engine.models.flux.FluxBackend` (see the module docstring)."""

    default_max_shift = 1.15  # the pipeline's fallback when the scheduler config names none
    inversion_family = "flow"  # engine.inversion.flow: Euler, RF-Solver, FireFlow

    def __init__(self, pipe, device=None):
        for part in ("transformer", "vae", "tokenizer", "text_encoder", "scheduler"):
            if getattr(pipe, part, None) is None:
                raise P2PError(f"the {type(pipe).__name__} has no {part}")
        super().__init__(pipe, pipe.transformer, device)
        self.transformer = pipe.transformer

    @property
    def size_multiple(self) -> int:
        return self.vae_factor * self.patch

    @property
    def patch(self) -> int:
        """Latent pixels per image token along a side."""
        raise NotImplementedError

    def attention_sides(self, latent_side: int | None = None) -> list[int]:
        """The one image-token grid side of every joint attention site."""
        side = latent_side or self.default_size // self.vae_factor
        return [side // self.patch]

    def image_tokens(self, size) -> int:
        h, w = (side // self.vae_factor // self.patch for side in size)
        return h * w

    def default_scheduler(self):
        return type(self.pipe.scheduler).from_config(self.pipe.scheduler.config)

    def schedule_kwargs(self, config, steps: int, size) -> dict:
        """What the pipeline passes to ``set_timesteps`` besides the steps: ``mu`` when the scheduler
        (of config ``config``) shifts with the image size."""
        return {"mu": self.shift_mu(config, size)} if config.get("use_dynamic_shifting", False) else {}

    def shift_mu(self, config, size) -> float:
        return calculate_shift(
            self.image_tokens(size),
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", self.default_max_shift),
        )

    def set_timesteps(self, sched, steps: int, size) -> None:
        kwargs = self.schedule_kwargs(sched.config, steps, size)
        sched.set_timesteps(None if "sigmas" in kwargs else steps, device=self.device, **kwargs)
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(0)

    def x0(self, out, output, latents, sched, i) -> torch.Tensor:
        """The clean-latent estimate of a velocity prediction: ``x - sigma v``."""
        return latents - float(sched.sigmas[i]) * output

    @property
    def text_length(self) -> int:
        raise NotImplementedError

    def _encode_prompt(self, texts: list[str]):
        raise NotImplementedError

    @torch.no_grad()
    def conditioning(self, prompts: list, size=None, uncond: bool = False) -> JointConditioning:
        texts = [""] * len(prompts) if uncond else [p.text for p in prompts]
        with TOKENIZER_LOCK:  # the pipeline's encode_prompt tokenizes
            hidden, pooled = self._encode_prompt(texts)
        return JointConditioning(hidden.to(self.dtype), pooled.to(self.dtype))

    def guided_conditioning(self, text, size, guidance: float):
        """``(cond, uncond)`` of one prompt for :meth:`predict` at ``guidance``: its conditioning and
        the empty prompt's where the model takes true CFG there (:func:`uses_cfg`), else None."""
        prompt = [self.prompt(text)]
        cond = self.conditioning(prompt, size)
        return cond, self.conditioning(prompt, size, uncond=True) if uses_cfg(self, guidance) else None

    def predict(self, controller, latents, t, cond, uncond, guidance, low_memory=False):
        if uncond is None:
            controller.block = "cond"
            return self._velocity(latents, t, cond, guidance)
        if low_memory:
            controller.block = "uncond"
            v_u = self._velocity(latents, t, uncond, guidance)
            controller.block = "cond"
            v_c = self._velocity(latents, t, cond, guidance)
        else:
            controller.block = "both"
            both = JointConditioning.cat(uncond, cond)
            v_u, v_c = self._velocity(torch.cat([latents, latents]), t, both, guidance).chunk(2)
        return v_u + guidance * (v_c - v_u)

    def _velocity(self, latents, t, cond, guidance) -> torch.Tensor:
        raise NotImplementedError

    def fingerprint_tensors(self) -> list:
        first = next(iter(self.transformer.parameters()))
        return [
            first.flatten()[:4096],
            self.vae.encoder.conv_in.weight,
            self.pipe.text_encoder.get_input_embeddings().weight[:64],
        ]
