"""Sampling defaults per model: what the widgets and the CLI start from (``load_pocket`` registers
the pocket model's; any other pipeline gets Stable Diffusion's)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingDefaults:
    """What a model samples well with, and an edit that shows what it can do (the Studio's first state)."""

    steps: int
    guidance: float
    source: str = "a photo of a cat riding a bicycle"
    target: str = "a photo of a dog riding a bicycle"
    name: str = "Stable Diffusion"
    size: int | None = None  # image side in pixels (None: the denoiser's sample size)
    text_length: int | None = None  # T5 positions of SD3 / Flux (None: the family's pipeline default)


# what the pocket model was evaluated with, on a scene of its own
POCKET_DEFAULTS = SamplingDefaults(
    steps=25,
    guidance=5.0,
    source="a big red circle left of a small blue square on a gray background",
    target="a big red star left of a small blue square on a gray background",
    name="pocket model (built in)",
)
# the pocket flow model (pocket/flow.py): true classifier-free guidance, Flux's Euler steps
POCKET_FLOW_DEFAULTS = SamplingDefaults(
    steps=20,
    guidance=4.0,
    source=POCKET_DEFAULTS.source,
    target=POCKET_DEFAULTS.target,
    name="pocket flow model (built in)",
    size=32,
    text_length=16,
)
SD_DEFAULTS = SamplingDefaults(steps=50, guidance=7.5)  # the reference's Stable Diffusion settings
# diffusers' pipeline defaults for the MM-DiT families
SD3_DEFAULTS = SamplingDefaults(steps=28, guidance=7.0, name="Stable Diffusion 3")
FLUX_DEV_DEFAULTS = SamplingDefaults(steps=28, guidance=3.5, name="Flux.1 dev")
FLUX_SCHNELL_DEFAULTS = SamplingDefaults(steps=4, guidance=0.0, text_length=256, name="Flux.1 schnell")
_PIPE_DEFAULTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pipeline -> its SamplingDefaults


def register_defaults(pipe, defaults: SamplingDefaults):
    """Tell the widgets and the CLI what ``pipe`` samples well with (``load_pocket`` does this)."""
    _PIPE_DEFAULTS[pipe] = defaults
    return pipe


def registered_defaults(pipe) -> SamplingDefaults | None:
    """The defaults registered for ``pipe``, if any (a model backend falls back on its family's:
    ``ModelBackend.defaults``)."""
    return _PIPE_DEFAULTS.get(pipe)
