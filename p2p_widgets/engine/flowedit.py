"""FlowEdit (Kulikov et al. 2024, arXiv 2412.08629): editing a picture on a flow model without
inverting it.

The edit is an ODE in latent space that starts at the picture's latents ``x`` and integrates, down
the model's own sigmas, the difference between the target prompt's velocity and the source
prompt's velocity. At a step of sigma ``s`` a fresh noise ``n`` puts the picture at that noise
level, ``z_src = (1 - s) x + s n``; the edit's current offset from the picture carries it over to
the target side, ``z_tar = z_edit + z_src - x``; and ``z_edit`` moves by ``(s_next - s)`` times
``v(z_tar, target) - v(z_src, source)``, averaged over ``n_avg`` noises. Only the last ``n_max``
of the ``steps`` run (the earliest, noisiest ones are skipped: how far the edit may stray; unset,
the authors' share of the steps, 24 of 28 on Flux and 33 of 50 on SD3, see :func:`default_n_max`), and
the final ``n_min`` are plain sampling of the target from ``z_edit`` noised to that level (their
``n_min = 0`` default samples nothing). Each velocity is guided as the sampler guides (true CFG
against the empty prompt above guidance 1, or Flux dev's embedded guidance), with its own
guidance for the source and the target.

``flow_edit(editor, image, source_prompt, target_prompt, ...)`` returns a :class:`FlowEditResult`;
its noise comes from ``seed`` (a CPU generator, drawn in the spatial layout) unless ``noise`` gives
a function of the latents that returns each draw (the reference bench feeds the authors' code and
this one the same draws).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch

from ..errors import P2PError, check_int, is_int, is_number
from .images import load_image

# the authors' settings (their SD3_exp.yaml and FLUX_exp.yaml)
FLOWEDIT_DEFAULTS = {
    "sd3": dict(steps=50, n_max=33, n_min=0, n_avg=1, source_guidance=3.5, target_guidance=13.5),
    "flux": dict(steps=28, n_max=24, n_min=0, n_avg=1, source_guidance=1.5, target_guidance=5.5),
}
FLOWEDIT_PARAMS = ("steps", "n_max", "n_min", "n_avg", "source_guidance", "target_guidance")


@dataclass
class FlowEditResult:
    image: object  # the edited picture (PIL)
    latents: torch.Tensor  # (1, C, h, w) its latents
    source_latents: torch.Tensor  # (1, C, h, w) the picture's latents (the VAE's posterior mean, scaled)
    pixels: np.ndarray = field(repr=False, default=None)  # the prepared input picture
    params: dict = field(default_factory=dict)  # FLOWEDIT_PARAMS and the seed, as run
    model_calls: int = 0

    @property
    def images(self) -> list:
        return [self.image]


def default_n_max(family: str, steps: int) -> int:
    """FlowEdit's ``n_max`` for a run of ``steps`` that sets none: the authors' share of their steps
    (``family`` "flux": 24 of 28, "sd3": 33 of 50), rounded half up, so a run of fewer steps still
    skips its noisiest ones (their 24 at 10 steps would run every step); their own steps give theirs."""
    defaults = FLOWEDIT_DEFAULTS[family]
    return max(1, (2 * steps * defaults["n_max"] + defaults["steps"]) // (2 * defaults["steps"]))


def check_flowedit_settings(settings: dict) -> None:
    """A P2PError naming the first setting that no model could run (without a model: names, types
    and ranges that hold for every model)."""
    unknown = sorted(set(settings) - set(FLOWEDIT_PARAMS))
    if unknown:
        raise P2PError(f"unknown FlowEdit setting(s) {', '.join(unknown)}: use {', '.join(FLOWEDIT_PARAMS)}")
    for name in ("steps", "n_max", "n_min", "n_avg"):
        if name in settings:
            check_int(name, settings[name], 1 if name in ("steps", "n_avg") else 0, 1000)
    for name in ("source_guidance", "target_guidance"):
        if name in settings and (not is_number(settings[name]) or settings[name] < 0):
            raise P2PError(f"{name} must be a finite number >= 0, got {settings[name]!r}")


def flowedit_params(model, **given) -> dict:
    """The run's FlowEdit settings: the authors' defaults for the model family, overridden by the
    given ones (None: the default; an unset ``n_max`` is the authors' share of the run's steps,
    :func:`default_n_max`), each checked, or a P2PError naming the bad one."""
    family = "flux" if model.family == "flux" else "sd3"
    unknown = sorted(set(given) - set(FLOWEDIT_PARAMS))
    if unknown:
        raise P2PError(f"unknown FlowEdit setting(s) {', '.join(unknown)}: use {', '.join(FLOWEDIT_PARAMS)}")
    params = {**FLOWEDIT_DEFAULTS[family], **{k: v for k, v in given.items() if v is not None}}
    check_int("steps", params["steps"], 1, model.pipe.scheduler.config.num_train_timesteps)
    derived = given.get("n_max") is None
    if derived:
        params["n_max"] = default_n_max(family, params["steps"])
    # n_max past the steps runs every step (the authors' loop skips while steps - i > n_max)
    check_int("n_max", params["n_max"], 0, 1000)
    if derived and is_int(params["n_min"]) and params["n_min"] > params["n_max"]:  # say where the bound came from
        ours = FLOWEDIT_DEFAULTS[family]
        raise P2PError(
            f"n_min must be an integer in [0, {params['n_max']}], got {params['n_min']!r}: n_max is unset, so it "
            f"is default_n_max's {params['n_max']}, the authors' share ({ours['n_max']} of {ours['steps']}) of the "
            f"{params['steps']} steps; set n_max (up to {params['steps']}) to run more of them"
        )
    check_int("n_min", params["n_min"], 0, params["n_max"])
    check_int("n_avg", params["n_avg"], 1, 1000)
    for name in ("source_guidance", "target_guidance"):
        if not is_number(params[name]) or params[name] < 0:
            raise P2PError(f"{name} must be a finite number >= 0, got {params[name]!r}")
        params[name] = float(params[name])
    return params


def _noise_source(seed, noise):
    if noise is not None:
        if not callable(noise):
            raise P2PError(f"noise must be a function of the latents returning a draw, got {type(noise).__name__}")
        return noise
    if not is_int(seed):
        raise P2PError(f"seed must be an integer, got {seed!r}")
    generator = torch.Generator("cpu").manual_seed(int(seed))
    return lambda like: torch.randn(like.shape, generator=generator).to(like.device, like.dtype)


@torch.no_grad()
def flow_edit(
    editor,
    image,
    source_prompt: str,
    target_prompt: str,
    *,
    steps: int | None = None,
    n_max: int | None = None,
    n_min: int | None = None,
    n_avg: int | None = None,
    source_guidance: float | None = None,
    target_guidance: float | None = None,
    seed: int = 0,
    noise=None,
    size=None,
    crop="center",
    wait: bool = True,
) -> FlowEditResult:
    """Edit ``image`` (described by ``source_prompt``) into ``target_prompt`` with FlowEdit (see the
    module docstring); settings default to the authors' for the model family (:data:`FLOWEDIT_DEFAULTS`)."""
    model = editor.model
    if getattr(model, "inversion_family", None) != "flow":
        raise P2PError(f"FlowEdit runs on flow models (SD3, Flux); this is a {model.family} model")
    for name, text in (("source_prompt", source_prompt), ("target_prompt", target_prompt)):
        if not isinstance(text, str):
            raise P2PError(f"{name} must be a string, got {type(text).__name__}")
    params = flowedit_params(
        model,
        steps=steps,
        n_max=n_max,
        n_min=n_min,
        n_avg=n_avg,
        source_guidance=source_guidance,
        target_guidance=target_guidance,
    )
    draw = _noise_source(seed, noise)
    from .inversion import _check_size

    sizes = editor.check_size(*_check_size(size))
    pixels = load_image(image, sizes, crop)
    with editor.exclusive(wait):
        x, z, calls = _integrate(editor, pixels, source_prompt, target_prompt, params, draw)
        from PIL import Image

        picture = Image.fromarray(editor.decode(z)[0])
    return FlowEditResult(picture, z, x, pixels, {**params, "seed": seed}, calls)


def _integrate(editor, pixels, source_prompt, target_prompt, params, draw):
    model = editor.model
    size = tuple(pixels.shape[:2])
    steps, n_max, n_min = params["steps"], params["n_max"], params["n_min"]
    sched = model.default_scheduler()
    model.set_timesteps(sched, steps, size)
    sigmas = [float(s) for s in sched.sigmas]
    x = editor.encode_image(pixels).to(editor.device, editor.dtype)
    controller = SimpleNamespace(block=None)  # no attention control: predict only names the batch on it
    g_src, g_tar = params["source_guidance"], params["target_guidance"]
    source = model.guided_conditioning(source_prompt, size, g_src)
    target = model.guided_conditioning(target_prompt, size, g_tar)
    z_edit, x_tar, calls = x.clone(), None, 0
    for i, t in enumerate(sched.timesteps):
        if steps - i > n_max:  # the noisiest steps are skipped
            continue
        s, s_next = sigmas[i], sigmas[i + 1]
        if steps - i > n_min:
            delta = torch.zeros_like(x)
            for _ in range(params["n_avg"]):
                z_src = (1 - s) * x + s * draw(x)
                z_tar = z_edit + z_src - x
                v_src = model.predict(controller, z_src, t, source[0], source[1], g_src)
                v_tar = model.predict(controller, z_tar, t, target[0], target[1], g_tar)
                delta += (1 / params["n_avg"]) * (v_tar - v_src)
                calls += 2
            z_edit = z_edit + (s_next - s) * delta
        else:  # the last n_min steps sample the target from the edit, noised to this level
            if x_tar is None:
                x_tar = z_edit + (s * draw(x) + (1 - s) * x) - x
            x_tar = x_tar + (s_next - s) * model.predict(controller, x_tar, t, target[0], target[1], g_tar)
            calls += 1
    return x, (z_edit if x_tar is None else x_tar), calls
