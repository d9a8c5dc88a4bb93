"""The diffusers schedulers an edit may sample with, by name, and how the sampler drives them.

A run copies its scheduler (``fresh``), so the caller's object is never stepped and a second pass
(the baseline) starts from a clean state; the windows of the rules count the scheduler's real UNet
evaluations (``len(timesteps)``: Heun evaluates twice per step). Stochastic schedulers draw their
noise from the run's generator, seeded by the edit's seed, as diffusers' pipeline does.
"""

from __future__ import annotations

import inspect

from ..errors import P2PError

# the schedulers a user would pick, by class name, with what a menu calls them (only these are
# ever built from a JSON file)
LABELS = {
    "DDIMScheduler": "DDIM (deterministic, invertible)",
    "PNDMScheduler": "PNDM",
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler ancestral (stochastic)",
    "DPMSolverMultistepScheduler": "DPM-Solver++ 2M",
    "DPMSolverSinglestepScheduler": "DPM-Solver++ single-step",
    "UniPCMultistepScheduler": "UniPC",
    "LMSDiscreteScheduler": "LMS",
    "HeunDiscreteScheduler": "Heun (2 evaluations a step)",
    "KDPM2DiscreteScheduler": "KDPM2",
    "DEISMultistepScheduler": "DEIS",
}
SCHEDULERS = tuple(LABELS)
DDIM = "DDIMScheduler"
# what a flow model samples with when an edit names no scheduler, as its record names it: the
# model's own flow-matching scheduler, or the solver of the flow inversion it edits (never built by
# name: a rerun samples with the model's own again)
MODEL_OWN = ("FlowMatchEulerDiscreteScheduler", "FlowSolverScheduler")


def draws_noise(scheduler) -> bool:
    """Whether a run with ``scheduler`` may draw noise from its generator: every one but DDIM, which
    the sampler steps with eta 0, and flow-matching Euler unless it samples stochastically."""
    name = type(scheduler).__name__
    if name == "FlowMatchEulerDiscreteScheduler":
        return bool(scheduler.config.get("stochastic_sampling", False))
    return name != DDIM


def fresh(scheduler, steps: int, set_timesteps):
    """A new scheduler of ``scheduler``'s class and config, its timesteps set for ``steps`` by
    ``set_timesteps(copy, steps)`` (the model's backend: for flow models also the size's shift)."""
    try:
        copy = type(scheduler).from_config(scheduler.config)
        set_timesteps(copy, steps)
    except (ValueError, TypeError, KeyError, NotImplementedError) as exc:  # a config the class cannot use
        raise P2PError(f"{type(scheduler).__name__} cannot sample {steps} steps with its config: {exc}") from None
    return copy


def step_kwargs(scheduler, generator) -> dict:
    """What ``scheduler.step`` takes beyond (output, t, sample): the run's generator where it draws noise."""
    return {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}


def describe(scheduler) -> tuple[str, dict]:
    """(class name, config) for an edit spec (a class outside :data:`SCHEDULERS` runs but does not export)."""
    name = type(scheduler).__name__
    config = {k: _plain(v) for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    return name, config


def build(name: str, config: dict | None, pipeline_config):
    """The scheduler ``name`` from ``config`` (or from the pipeline's scheduler config)."""
    import diffusers

    if name not in SCHEDULERS:
        raise P2PError(f"unknown scheduler {name!r}: use one of {', '.join(SCHEDULERS)}")
    if config is not None and not isinstance(config, dict):
        raise P2PError(f"scheduler_config must be an object, got {type(config).__name__}")
    try:
        return getattr(diffusers, name).from_config(config if config is not None else pipeline_config)
    except ImportError as exc:  # LMS needs scipy
        raise P2PError(f"{name} needs a package that is not installed: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise P2PError(f"scheduler_config does not build a {name}: {exc}") from None


def of_spec(spec, pipeline_config):
    """The scheduler an EditSpec samples with: None for DDIM from the pipeline's config, else built."""
    if spec.scheduler == DDIM and spec.scheduler_config is None:
        return None
    return build(spec.scheduler, spec.scheduler_config, pipeline_config)


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
