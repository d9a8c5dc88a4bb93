"""RF-Inversion (Rout et al. 2024, arXiv 2410.10792) as diffusers' community pipeline
``pipeline_flux_rf_inversion.py`` runs it: a controlled inversion, then a controlled edit.

Inversion (their Algorithm 1): from the picture's latents ``y_0`` the flow ODE runs towards a fixed
noise draw ``y_1``, its velocity pulled towards the straight line to ``y_1`` by ``gamma``:
``u_hat = u + gamma ((y_1 - Y) / (1 - t) - u)``, with ``u`` the model's velocity for the source
prompt (empty by default) at the source guidance (0 by default). As the community pipeline does
it, step ``i`` of ``steps`` evaluates the model at ``t = i / (steps + 1)`` and moves by the
schedule's ``sigma_i - sigma_{i+1}``.

Edit (their Algorithm 2): from the inverted latents the target prompt is sampled down the model's
sigmas with the velocity pulled back towards the picture, ``v_hat = v + eta_i ((y_0 - X) / (1 - t)
- v)`` with ``t = 1 - timestep / 1000``, ``eta_i = eta`` on the steps from ``start * steps`` to
``stop * steps`` (decayed by ``(1 - i / steps) ** eta_decay_power`` with ``decay_eta``) and 0
elsewhere.

Guidance: a transformer with a guidance embedding (Flux dev, the only model the community pipeline
runs) reads ``guidance`` / ``source_guidance`` as that input. A model without one (SD3, Flux
schnell-style transformers, the pocket flow model) is guided as the sampler and FlowEdit guide it:
true classifier-free guidance against the empty prompt above 1, no guidance at or below 1. (The
community pipeline would pass no guidance there at all, so the preset's 3.5 would silently mean
none; ``guidance=1`` gives that unguided run.) ``model_calls`` counts velocities, a guided one
(its two rows in one batch) once, as FlowEdit counts them.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ..errors import P2PError, check_int, is_number
from .flowedit import FlowEditResult, _noise_source
from .images import load_image

# the community pipeline's defaults (invert() and __call__)
RF_INVERSION_DEFAULTS = dict(
    steps=28,
    gamma=0.5,
    eta=1.0,
    start=0.0,
    stop=0.25,
    decay_eta=False,
    eta_decay_power=1.0,
    source_guidance=0.0,
    guidance=3.5,
)
RF_INVERSION_PARAMS = tuple(RF_INVERSION_DEFAULTS)


def check_rf_inversion_settings(settings: dict) -> dict:
    """The settings with defaults filled in, or a P2PError naming the first bad one."""
    unknown = sorted(set(settings) - set(RF_INVERSION_PARAMS))
    if unknown:
        raise P2PError(f"unknown RF-Inversion setting(s) {', '.join(unknown)}: use {', '.join(RF_INVERSION_PARAMS)}")
    params = {**RF_INVERSION_DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
    check_int("steps", params["steps"], 1, 1000)
    for name in ("gamma", "eta", "start", "stop"):
        if not is_number(params[name]) or not 0.0 <= params[name] <= 1.0:
            raise P2PError(f"{name} must be a number in [0, 1], got {params[name]!r}")
        params[name] = float(params[name])
    if params["start"] > params["stop"]:
        raise P2PError(f"start {params['start']} is after stop {params['stop']}")
    if not isinstance(params["decay_eta"], bool):
        raise P2PError(f"decay_eta must be true or false, got {params['decay_eta']!r}")
    for name in ("eta_decay_power", "source_guidance", "guidance"):
        if not is_number(params[name]) or params[name] < 0:
            raise P2PError(f"{name} must be a finite number >= 0, got {params[name]!r}")
        params[name] = float(params[name])
    return params


@torch.no_grad()
def rf_inversion(
    editor,
    image,
    source_prompt: str,
    target_prompt: str,
    *,
    seed: int = 0,
    noise=None,
    size=None,
    crop="center",
    wait: bool = True,
    **settings,
) -> FlowEditResult:
    """Invert ``image`` under ``source_prompt`` with RF-Inversion's controlled forward ODE and edit
    it into ``target_prompt`` with the controlled reverse ODE (see the module docstring; settings
    :data:`RF_INVERSION_PARAMS`, defaults the community pipeline's). ``noise``: a function of the
    latents returning the draw ``y_1`` (default: from ``seed``)."""
    model = editor.model
    if getattr(model, "inversion_family", None) != "flow":
        raise P2PError(f"RF-Inversion runs on flow models (SD3, Flux); this is a {model.family} model")
    for name, text in (("source_prompt", source_prompt), ("target_prompt", target_prompt)):
        if not isinstance(text, str):
            raise P2PError(f"{name} must be a string, got {type(text).__name__}")
    params = check_rf_inversion_settings(settings)
    draw = _noise_source(seed, noise)
    from .inversion import _check_size

    pixels = load_image(image, editor.check_size(*_check_size(size)), crop)
    with editor.exclusive(wait):
        x, z = _run(editor, pixels, source_prompt, target_prompt, params, draw)
        from PIL import Image

        picture = Image.fromarray(editor.decode(z)[0])
    return FlowEditResult(picture, z, x, pixels, {**params, "seed": seed}, 2 * params["steps"])


def _run(editor, pixels, source_prompt, target_prompt, params, draw):
    model = editor.model
    size = tuple(pixels.shape[:2])
    steps = params["steps"]
    sched = model.default_scheduler()
    model.set_timesteps(sched, steps, size)
    sigmas = [float(s) for s in sched.sigmas]
    scale = float(model.pipe.scheduler.config.num_train_timesteps)
    controller = SimpleNamespace(block=None)
    y0 = editor.encode_image(pixels).to(editor.device, editor.dtype)

    def velocity(latents, t, conds, guidance):
        return model.predict(controller, latents, t, conds[0], conds[1], guidance)

    # controlled forward ODE towards the draw y_1
    conds = model.guided_conditioning(source_prompt, size, params["source_guidance"])
    y1 = draw(y0)
    y = y0
    for i in range(steps):
        t = i / (steps + 1)
        u = velocity(y, torch.tensor(t * scale, dtype=torch.float64, device=y.device), conds, params["source_guidance"])
        u_hat = u + params["gamma"] * ((y1 - y) / (1 - t) - u)
        y = y + u_hat * (sigmas[i] - sigmas[i + 1])
    # controlled reverse ODE back towards the picture, under the target prompt
    conds = model.guided_conditioning(target_prompt, size, params["guidance"])
    start, stop = int(params["start"] * steps), min(int(params["stop"] * steps), steps)
    x = y
    for i, timestep in enumerate(sched.timesteps):
        t = 1 - timestep / scale  # as the pipeline: a float32 tensor like its timesteps
        v = -velocity(x, timestep, conds, params["guidance"])
        eta = params["eta"] if start <= i < stop else 0.0
        if params["decay_eta"]:
            eta = eta * (1 - i / steps) ** params["eta_decay_power"]
        v_hat = v + eta * ((y0 - x) / (1 - t) - v)
        x = x + v_hat * (sigmas[i] - sigmas[i + 1])
    return y0, x
