"""Where a run starts: the seed's noise, given latents, or an inversion (its last latents, its
per-step unconditional text, its trajectory for rules that follow it), checked against the model."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import P2PError


@dataclass
class RunStart:
    """Where a run starts: the seed's noise, or given latents (and per-step unconditional text)."""

    latents: torch.Tensor | None = None
    uncond: list | None = None  # per step (1, L, D)
    pooled: list | None = None  # SDXL: per step (1, P)
    trajectory: torch.Tensor | None = None  # an inversion's latents, x_0 first, x_T last

    @classmethod
    def of(cls, inversion, latents, uncond_embeddings):
        if inversion is not None:
            return cls(inversion.latents[-1], inversion.uncond_embeddings, inversion.uncond_pooled, inversion.latents)
        return cls(latents, uncond_embeddings)

    def source_path(self, rules, n_evals, like):
        """The source row's latents before each step and after the last (noisiest first), when a
        rule follows the inversion (Plug-and-Play reads the image's own trajectory); else None."""
        if not any(r.follows_inversion for r in rules):
            return None
        return self.trajectory.flip(0).to(like.device, like.dtype)[: n_evals + 1]

    def latents_for(self, model, spec, sched, batch, generator) -> torch.Tensor:
        shape = model.latent_shape(spec.size)
        latents = self.latents
        if latents is None:
            latents = torch.randn(shape, generator=generator)  # drawn on the CPU: the same on every device
        elif (
            not torch.is_tensor(latents)
            or tuple(latents.shape[-3:]) != shape[1:]
            or latents.ndim not in (3, 4)
            or (latents.ndim == 4 and latents.shape[0] not in (1, batch))
        ):
            raise P2PError(
                f"latents must be a tensor of shape {shape} (or one per prompt), "
                f"got {tuple(getattr(latents, 'shape', ()))}"
            )
        elif not bool(torch.isfinite(latents).all()):
            raise P2PError("the start latents hold NaN or infinite values")
        # drawn or given, unit noise is scaled for the scheduler, as diffusers' prepare_latents does
        # (DDIM's factor is 1: an inversion's start is unchanged)
        latents = latents * getattr(sched, "init_noise_sigma", 1.0)  # flow matching starts from unit noise
        return latents.reshape(-1, *shape[1:]).to(model.device, model.dtype).expand(batch, *shape[1:]).clone()

    def check_uncond(self, n_evals, model):
        if self.uncond is None:
            return
        if not isinstance(self.uncond, (list, tuple)) or not all(torch.is_tensor(e) for e in self.uncond):
            raise P2PError("uncond_embeddings must be a list of tensors, one (1, tokens, width) per step")
        if model.inversion_family != "ddim":
            raise P2PError(f"uncond_embeddings are for Stable Diffusion's guidance; {model.family} takes none")
        want = (model.text_length, model.embedding_width)
        bad = [tuple(e.shape) for e in self.uncond if tuple(e.shape[-2:]) != want or e.numel() != want[0] * want[1]]
        if bad:
            raise P2PError(f"uncond_embeddings must each be (1, {want[0]}, {want[1]}) for this model, got {bad[0]}")
        if len(self.uncond) != n_evals:
            raise P2PError(
                f"uncond_embeddings has {len(self.uncond)} entries but the run has {n_evals} "
                "steps: edit with the inversion's number of steps"
            )

    def uncond_at(self, model, i, uncond, batch):
        """The unconditional text of step ``i`` (the prompts' own unless the start gives one per step)."""
        if self.uncond is None:
            return uncond
        hidden = self.uncond[i].to(model.device, model.dtype).expand(batch, -1, -1)
        pooled = None if self.pooled is None else self.pooled[i].to(model.device, model.dtype)
        return uncond.with_hidden(hidden).with_pooled(pooled)
