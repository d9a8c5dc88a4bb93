"""MasaCtrl: the authors' ``MasaCtrlPipeline`` with ``MutualSelfAttentionControl`` beside ours."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

from ...errors import P2PError
from .inputs import GUIDANCE
from .shim import Recorder, _components, _missing, _quiet, authors_imports

MASA_PROMPTS = ("a photo of a cat sitting on the grass", "a photo of a cat standing on the grass")

# the DDIM of MasaCtrl's playground notebooks (steps_offset 0, which their pipeline's constructor,
# StableDiffusionPipeline's, turns into 1 with a deprecation notice: timesteps end at 1)
MASACTRL_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False
)


def masactrl_authors(directory: Path, pipe, noise, steps: int, changes: list):
    """MasaCtrl's pipeline with ``MutualSelfAttentionControl(4, 10)`` registered: final latents (2 rows)."""
    from diffusers import DDIMScheduler

    if _missing("einops"):
        raise P2PError("MasaCtrl's code needs einops: pip install einops")
    with authors_imports(directory, changes):
        from masactrl.diffuser_utils import MasaCtrlPipeline
        from masactrl.masactrl import MutualSelfAttentionControl
        from masactrl.masactrl_utils import regiter_attention_editor_diffusers
    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers' notice that it sets steps_offset to 1 (below)
        model = MasaCtrlPipeline(
            **_components(pipe, copy.deepcopy(pipe.unet)),
            scheduler=DDIMScheduler(**MASACTRL_SCHEDULER),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        control = MutualSelfAttentionControl(start_step=4, start_layer=10, total_steps=steps)
    changes.append("MasaCtrlPipeline built from our model's components (a copy of the UNet), not from_pretrained")
    record = Recorder()
    model.latent2image = record
    changes.append("MasaCtrlPipeline.latent2image records the final latents instead of decoding them")
    with _quiet():
        regiter_attention_editor_diffusers(model, control)
        model(
            list(MASA_PROMPTS), latents=noise.expand(2, -1, -1, -1), num_inference_steps=steps, guidance_scale=GUIDANCE
        )
    return record.latents


def masactrl_ours(pipe, noise, steps: int):
    from ...engine.controls import MutualSelfAttention
    from ...engine.sampler import Editor

    # our default DDIM: the playground's settings with steps_offset 1, which is what their
    # scheduler becomes (StableDiffusionPipeline's constructor rewrites steps_offset 0 to 1)
    result = Editor(pipe).edit(
        MASA_PROMPTS[0],
        MASA_PROMPTS[1],
        rules=[MutualSelfAttention(start_step=4, start_layer=10)],
        steps=steps,
        guidance=GUIDANCE,
        latents=noise,
    )
    return result.latents
