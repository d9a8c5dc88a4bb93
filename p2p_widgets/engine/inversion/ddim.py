"""The DDIM maths of inversion: the deterministic step written as ``x_prev = A x_t + B out``
(``_step_coefficients``), the trajectory run backwards (:func:`ddim_trajectory`) and null-text
optimisation of the per-step unconditional embeddings (:func:`null_text_optimisation`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...errors import P2PError


@dataclass
class InversionStep:
    """Progress report passed to ``callback`` after every step of each phase."""

    phase: str  # "ddim" (the inversion trajectory) or "null-text" (the optimisation)
    step: int  # 0-based index within the phase
    total: int
    loss: float | None = None  # null-text: the last inner iteration's loss for this step
    iterations: int = 0  # null-text: inner iterations run for this step


# reference settings of the null-text optimisation (Mokady et al.; 50 steps at guidance 7.5)
NULL_TEXT_DEFAULTS = dict(inner_steps=10, lr=1e-2, early_stop=1e-5, early_stop_growth=2e-5)


def ddim_scheduler(editor, steps):
    sched = editor.model.ddim_scheduler()  # the sampler's scheduler
    if sched.config.clip_sample or sched.config.thresholding:
        raise P2PError(
            "inversion needs a DDIM schedule without clip_sample or thresholding (the step must be "
            "invertible): set pipe.scheduler = DDIMScheduler.from_config(config, clip_sample=False, "
            "thresholding=False)"
        )
    sched.set_timesteps(steps)
    return sched


def timesteps_of(editor, steps):
    return ddim_scheduler(editor, steps).timesteps.tolist()


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
