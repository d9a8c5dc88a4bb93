"""Inverting and sampling rectified-flow models (SD3, Flux) with three ODE solvers.

The model predicts a velocity ``v(x, sigma)``; the ODE ``dx / dsigma = v`` runs from the picture
(sigma 0) to noise (sigma 1) when inverting and back when sampling, over the model's own sigmas
(the pipeline's schedule, shifted for the size). One step from ``sigma`` to ``sigma + h`` (``h``
negative when sampling, positive when inverting):

- ``"euler"``: ``x + h v(x, sigma)``; one model call a step.
- ``"rf-solver"`` (Wang et al. 2024, arXiv 2411.04746): a second-order Taylor step. The velocity's
  derivative along the path is estimated from a second call at the half step,
  ``x_mid = x + h/2 v``, ``dv = (v(x_mid, sigma + h/2) - v) / (h/2)``, and
  ``x + h v + h^2/2 dv``; two model calls a step.
- ``"fireflow"`` (Deng et al. 2024, arXiv 2412.07517): a midpoint step whose first velocity is the
  previous step's midpoint velocity (the first step calls the model for it):
  ``x_mid = x + h/2 v_prev``, ``x + h v(x_mid, sigma + h/2)``; one model call a step plus one.

:func:`flow_trajectory` runs the inversion and returns the latents at every sigma; the sampler
regenerates with :class:`FlowSolverScheduler`, a scheduler that runs the same solver one model
call at a time (its ``timesteps`` list every call, as Heun's does), so an edit started from an
inversion integrates back with the solver that inverted it.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ..inversion_methods import FLOW_METHODS


def calls_per_run(method: str, steps: int) -> int:
    """Model calls of one inversion (or one regeneration) of ``steps`` steps with ``method``."""
    return {"euler": steps, "rf-solver": 2 * steps, "fireflow": steps + 1}[method]


def eval_sigmas(sigmas: list[float], method: str) -> list[float]:
    """The sigma of every model call when integrating along ``sigmas`` (the path, both ends
    included) with ``method``: each step's start (Euler), start and midpoint (RF-Solver), the first
    start then each midpoint (FireFlow)."""
    starts = sigmas[:-1]
    mids = [s + (n - s) / 2 for s, n in zip(sigmas[:-1], sigmas[1:])]
    if method == "euler":
        return list(starts)
    if method == "rf-solver":
        return [v for pair in zip(starts, mids) for v in pair]
    return [starts[0], *mids]


class FlowIntegrator:
    """The solver's state along one path of sigmas, fed one velocity at a time: ``feed(v)`` takes
    the velocity at the current call's point and returns the latents of the next call's point (or
    the path's next sigma after a step's last call). :func:`flow_trajectory` and
    :class:`FlowSolverScheduler` both step through it, so inversion and sampling share the maths."""

    def __init__(self, sigmas: list[float], method: str, x: torch.Tensor):
        if method not in FLOW_METHODS:
            raise ValueError(f"unknown flow solver {method!r}")
        self.sigmas, self.method = [float(s) for s in sigmas], method
        self.points = eval_sigmas(self.sigmas, method)
        self.call, self.step = 0, 0  # the next model call, the step it belongs to
        self.x = x  # the latents at sigmas[step]
        self.v = None  # RF-Solver: the step's first velocity; FireFlow: the velocity to reuse
        self.on_step = None  # called with (step, latents at sigmas[step + 1]) after every step

    @property
    def done(self) -> bool:
        return self.call >= len(self.points)

    def _h(self) -> float:
        return self.sigmas[self.step + 1] - self.sigmas[self.step]

    def _advance(self, x_next):
        self.x = x_next
        if self.on_step is not None:
            self.on_step(self.step, x_next)
        self.step += 1

    def feed(self, v: torch.Tensor) -> torch.Tensor:
        """The velocity at the current call's point; returns the latents at the next call's point."""
        method, first = self.method, self.call == 0
        self.call += 1
        if method == "euler":
            self._advance(self.x + self._h() * v)
            return self.x
        h = self._h()
        if method == "rf-solver":
            if self.v is None:  # the step's start: go to the half step
                self.v = v
                return self.x + h / 2 * v
            derivative = (v - self.v) / (h / 2)
            v0, self.v = self.v, None
            self._advance(self.x + h * v0 + 0.5 * h**2 * derivative)
            return self.x
        # FireFlow: the first call gives the first step's start velocity; every later call is a midpoint
        if not first:
            self._advance(self.x + h * v)
            if self.done:
                return self.x
            h = self._h()
        self.v = v
        return self.x + h / 2 * v


def _timestep(sigma: float, device, scale: float) -> torch.Tensor:
    # float32 as the pipelines' schedulers hold their timesteps
    return torch.tensor(sigma * scale, dtype=torch.float32, device=device)


@torch.no_grad()
def flow_trajectory(editor, z0, cond, uncond, guidance, method, sigmas, callback=None, stop_event=None):
    """[x at sigma 0 (the picture), ..., x at sigmas[0] (the start noise)]: the flow ODE run from
    ``z0`` up the reversed schedule ``sigmas`` (noisiest first, ending at 0) with ``method``, each
    velocity guided as the sampler guides it (``uncond`` None: the conditional velocity only). A set
    ``stop_event`` ends it after the current step with ``ddim._Stopped``."""
    from .ddim import InversionStep, _Stopped

    model = editor.model
    path = [float(s) for s in reversed(sigmas)]
    scale = float(model.pipe.scheduler.config.num_train_timesteps)
    integrator = FlowIntegrator(path, method, z0)
    latents = [z0]

    def on_step(i, x):
        latents.append(x)
        if callback is not None:
            callback(InversionStep("flow", i, len(path) - 1))
        if stop_event is not None and stop_event.is_set():
            raise _Stopped

    integrator.on_step = on_step
    controller = SimpleNamespace(block=None)  # predict names the batch layout on it; nothing reads it here
    x = z0
    for sigma in integrator.points:
        v = model.predict(controller, x, _timestep(sigma, z0.device, scale), cond, uncond, guidance)
        x = integrator.feed(v)
    return latents


class FlowSolverScheduler:
    """A scheduler for the sampler that integrates the flow ODE with one of :data:`FLOW_METHODS`
    over the schedule of the model's flow-matching scheduler (its config, ``base``, with
    ``solver`` added). ``timesteps`` hold every model call's timestep and ``sigmas`` every call's
    sigma and the final 0, so the sampler's windows count calls and its clean-latent estimate
    ``x - sigma v`` reads the call's own sigma; ``base_sigmas`` are the schedule's."""

    init_noise_sigma = 1.0
    order = 1

    def __init__(self, **config):
        from diffusers import FlowMatchEulerDiscreteScheduler

        config = dict(config)
        self.solver = config.pop("solver", "euler")
        if self.solver not in FLOW_METHODS:
            raise ValueError(f"unknown flow solver {self.solver!r}")
        self._base = FlowMatchEulerDiscreteScheduler.from_config(config)
        from diffusers.configuration_utils import FrozenDict

        self.config = FrozenDict({**dict(self._base.config), "solver": self.solver})
        self.timesteps = self.sigmas = self.base_sigmas = None
        self._integrator = self._returned = None

    @classmethod
    def from_config(cls, config, **overrides):
        return cls(**{k: v for k, v in dict(config).items() if not k.startswith("_")}, **overrides)

    @classmethod
    def for_model(cls, model, solver: str):
        return cls.from_config(model.default_scheduler().config, solver=solver)

    def set_timesteps(self, num_inference_steps=None, device=None, **kwargs):
        self._base.set_timesteps(num_inference_steps, device=device, **kwargs)
        self.base_sigmas = [float(s) for s in self._base.sigmas]
        points = eval_sigmas(self.base_sigmas, self.solver)
        scale = float(self._base.config.num_train_timesteps)
        self.timesteps = torch.tensor([p * scale for p in points], dtype=torch.float32, device=device)
        self.sigmas = torch.tensor([*points, 0.0], dtype=torch.float32)
        self._integrator = self._returned = None

    def set_begin_index(self, begin_index: int = 0):
        pass

    def step(self, model_output, timestep, sample, return_dict: bool = True):
        if self._integrator is None or self._integrator.done:
            self._integrator = FlowIntegrator(self.base_sigmas, self.solver, sample)
        else:
            # a rule or LocalBlend changed the latents between calls: the step carries the change
            self._integrator.x = self._integrator.x + (sample - self._returned)
        prev = self._integrator.feed(model_output).to(sample.dtype)
        self._returned = prev.clone()  # the sampler may change its latents in place
        return SimpleNamespace(prev_sample=prev) if return_dict else (prev,)
