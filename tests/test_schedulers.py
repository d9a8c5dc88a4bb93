"""Every scheduler a user would pick samples as diffusers' own StableDiffusionPipeline does, and an
edit made with it exports and reruns bitwise (stochastic ones from the seed).

Before: the sampler never called ``scale_model_input``, so Euler-type schedulers differed from the
pipeline by 36.6/255 on average, and the JSON recorded every edit as DDIM."""

import json

import pytest
import torch

from p2p_widgets.engine.export import spec_to_json
from p2p_widgets.engine.schedulers import SCHEDULERS
from p2p_widgets.engine.spec import EditSpec
from p2p_widgets.errors import P2PError

SRC, TGT = "a red cat on a mat", "a blue cat on a mat"
STEPS = 4
CHOICES = {name: {} for name in SCHEDULERS}
CHOICES["DPMSolverMultistepScheduler (SDE)"] = {"algorithm_type": "sde-dpmsolver++"}


def _scheduler(pipe, choice):
    import diffusers

    name = choice.split(" ")[0]
    return getattr(diffusers, name).from_config(pipe.scheduler.config, **CHOICES[choice])


@pytest.mark.parametrize("choice", sorted(CHOICES))
def test_plain_sampling_equals_the_diffusers_pipeline(tiny_pipe, editor, choice):
    ours = editor.sample(SRC, seed=5, steps=STEPS, guidance=6.0, scheduler=_scheduler(tiny_pipe, choice)).latents
    original = tiny_pipe.scheduler
    try:
        tiny_pipe.scheduler = _scheduler(tiny_pipe, choice)
        theirs = tiny_pipe(
            SRC,
            num_inference_steps=STEPS,
            guidance_scale=6.0,
            output_type="latent",
            generator=torch.Generator("cpu").manual_seed(5),
        ).images
    finally:
        tiny_pipe.scheduler = original
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


@pytest.mark.parametrize(
    "choice",
    ["EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler", "DPMSolverMultistepScheduler (SDE)", "PNDMScheduler"],
)
def test_an_edit_with_the_scheduler_exports_and_reruns_bitwise(tiny_pipe, editor, choice):
    scheduler = _scheduler(tiny_pipe, choice)
    result = editor.edit(SRC, TGT, seed=2, steps=STEPS, scheduler=scheduler, reweight={"blue": 2.0}, baseline=True)
    data = json.loads(spec_to_json(result))
    assert data["scheduler"] == choice.split(" ")[0] and data["scheduler_config"]
    again = editor.run(EditSpec.from_dict(data), baseline=True)
    assert torch.equal(again.latents, result.latents)
    assert [list(im.getdata()) for im in again.baseline] == [list(im.getdata()) for im in result.baseline]
    # the caller's scheduler object is copied, never stepped
    assert getattr(scheduler, "_step_index", None) is None and getattr(scheduler, "counter", 0) == 0


def test_windows_count_real_evaluations(editor, tiny_pipe):
    """Heun evaluates the UNet twice per step: a run of 4 steps has 7 evaluations and 7 events."""
    events = []
    result = editor.edit(
        SRC, TGT, steps=STEPS, scheduler=_scheduler(tiny_pipe, "HeunDiscreteScheduler"), callback=events.append
    )
    assert [e.step for e in events] == list(range(7)) and events[0].n_evals == 7
    assert json.loads(spec_to_json(result))["rules"][0]["schedule"]["n_evals"] == 7


def test_unknown_schedulers_are_refused_by_name(editor):
    data = json.loads(spec_to_json(editor.edit(SRC, TGT, steps=2)))
    data["scheduler"] = "MyOwnScheduler"
    with pytest.raises(P2PError, match="scheduler must be one of .*MyOwnScheduler"):
        EditSpec.from_dict(data)


def test_the_studio_offers_the_scheduler_and_its_export_reloads(editor):
    from p2p_widgets.widgets.studio import Studio

    studio = Studio(editor=editor, source=SRC, target="a blue dog on a mat", steps=STEPS)
    for widget in (studio.panel, studio.player, studio.aligner, studio.timeline):
        widget.send = lambda *a, **k: None
    assert [name for name, _ in studio.panel.scheduler_choices] == list(SCHEDULERS)
    studio.panel.set_state({"scheduler": "HeunDiscreteScheduler"})
    assert studio.panel.error == "" and studio.panel.n_evals == studio.timeline.n_evals == 2 * STEPS - 1
    first = studio.run(background=False)
    text = studio.to_json()
    assert json.loads(text)["scheduler"] == "HeunDiscreteScheduler"
    studio.panel.set_state({"scheduler": "DDIMScheduler"})
    assert studio.panel.n_evals == STEPS
    studio.load_json(text)
    assert studio.panel.scheduler == "HeunDiscreteScheduler" and studio.panel.n_evals == 2 * STEPS - 1
    assert torch.equal(studio.run(background=False).latents, first.latents)


def test_an_inversion_is_edited_with_ddim_only(editor, tiny_pipe):
    import numpy as np

    image = (np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3)
    inv = editor.invert(image, SRC, "ddim", steps=2, cache=False)
    euler = _scheduler(tiny_pipe, "EulerDiscreteScheduler")
    with pytest.raises(P2PError, match="edit it with the default DDIM scheduler, not EulerDiscreteScheduler"):
        editor.edit(SRC, TGT, inversion=inv, steps=2, scheduler=euler)
    spec = editor.edit(SRC, TGT, inversion=inv, steps=2).spec.replace(scheduler="EulerDiscreteScheduler")
    with pytest.raises(P2PError, match="not EulerDiscreteScheduler"):
        editor.run(spec, inversion=inv)


def test_given_latents_are_scaled_as_diffusers_scales_them(tiny_pipe, editor):
    """diffusers multiplies given latents by the scheduler's init_noise_sigma, as it does drawn
    noise; the sampler took them as they were, so Euler-type runs from latents= were off by ~15x."""
    euler = _scheduler(tiny_pipe, "EulerDiscreteScheduler")
    noise = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    ours = editor.sample(SRC, latents=noise, steps=STEPS, guidance=6.0, scheduler=euler).latents
    original = tiny_pipe.scheduler
    try:
        tiny_pipe.scheduler = _scheduler(tiny_pipe, "EulerDiscreteScheduler")
        theirs = tiny_pipe(
            SRC, num_inference_steps=STEPS, guidance_scale=6.0, output_type="latent", latents=noise
        ).images
    finally:
        tiny_pipe.scheduler = original
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
