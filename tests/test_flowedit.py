"""FlowEdit (issue 27): the edit's maths on a tiny SD3 and Flux, its settings named when bad, and
the authors' FlowEditSD3 beside ours when a checkout is given (P2P_FLOWEDIT)."""

from __future__ import annotations

import os

import pytest
import torch

from p2p_widgets.errors import P2PError

SRC = "a big red circle left of a small blue square on a gray background"
TGT = "a big green circle left of a small blue square on a gray background"


@pytest.fixture(scope="module")
def picture():
    from p2p_widgets.engine.images import load_image
    from p2p_widgets.pocket.scenes import make_dataset

    images, _, _ = make_dataset(1, 0)
    return load_image(images[0], (64, 64))


@pytest.fixture(scope="module")
def sd3():
    from p2p_widgets.bench.mmdit_geometries import tiny_sd3_pipeline
    from p2p_widgets.engine.sampler import Editor

    return Editor(tiny_sd3_pipeline(0))


@pytest.fixture(scope="module")
def flux():
    from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline
    from p2p_widgets.engine.sampler import Editor

    return Editor(tiny_flux_pipeline(0, guidance_embeds=True))


def _edit(editor, picture, target=TGT, **kwargs):
    from p2p_widgets.engine.flowedit import flow_edit

    kwargs = {"steps": 4, "n_max": 3, "source_guidance": 2.0, "target_guidance": 5.0, "size": 64, **kwargs}
    return flow_edit(editor, picture, SRC, target, **kwargs)


def test_the_same_prompt_leaves_the_picture_and_a_new_one_moves_it(sd3, flux, picture):
    for editor in (sd3, flux):
        same = _edit(editor, picture, target=SRC, target_guidance=2.0)
        # the same prompt and guidance: the two velocities differ only by the rounding of
        # z_tar = x + z_src - x, so the edit stays at the picture
        assert float((same.latents - same.source_latents).abs().max()) < 1e-4
        moved = _edit(editor, picture)
        assert float((moved.latents - moved.source_latents).abs().max()) > 1e-2
        assert moved.model_calls == 2 * 3 and moved.image.size == (64, 64)


def test_n_max_past_the_steps_runs_every_step(sd3, picture):
    assert _edit(sd3, picture, n_max=50).model_calls == 2 * 4
    assert torch.equal(_edit(sd3, picture, n_max=50).latents, _edit(sd3, picture, n_max=4).latents)


def test_seeded_runs_repeat_and_n_max_zero_changes_nothing(sd3, picture):
    a, b = _edit(sd3, picture, seed=3), _edit(sd3, picture, seed=3)
    assert torch.equal(a.latents, b.latents)
    assert not torch.equal(a.latents, _edit(sd3, picture, seed=4).latents)
    none = _edit(sd3, picture, n_max=0)
    assert torch.equal(none.latents, none.source_latents) and none.model_calls == 0


def test_one_step_is_the_velocity_difference(sd3, picture):
    """n_max 1 of 1 step: z = x + (0 - 1) (v_tar(n) - v_src(n)) with z_src = z_tar = the noise n."""
    from types import SimpleNamespace

    noise = torch.randn(sd3.model.latent_shape((64, 64)), generator=torch.Generator().manual_seed(0))
    out = _edit(sd3, picture, steps=1, n_max=1, noise=lambda like: noise.to(like))
    model, t = sd3.model, torch.tensor(1000.0)
    controller = SimpleNamespace(block=None)

    def v(text, g):
        prompt = [sd3.prompt(text)]
        cond, uncond = model.conditioning(prompt, (64, 64)), model.conditioning(prompt, (64, 64), uncond=True)
        return model.predict(controller, noise, t, cond, uncond, g)

    want = out.source_latents - (v(TGT, 5.0) - v(SRC, 2.0))
    assert torch.allclose(out.latents, want, atol=1e-5)


def test_bad_settings_are_named(sd3, editor, picture):
    from p2p_widgets.engine.flowedit import flow_edit, flowedit_params

    for kwargs, message in (
        ({"n_max": 1001}, r"n_max must be an integer in \[0, 1000\]"),
        ({"n_min": 4}, r"n_min must be an integer in \[0, 3\]"),
        ({"n_avg": 0}, "n_avg must be an integer"),
        ({"target_guidance": -1}, "target_guidance must be a finite number"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"noise": 3}, "noise must be a function"),
    ):
        with pytest.raises(P2PError, match=message):
            _edit(sd3, picture, **kwargs)
    with pytest.raises(P2PError, match="unknown FlowEdit setting"):
        flowedit_params(sd3.model, strength=1)
    # an n_max the user never set is named as derived (the authors' share of the steps), not as theirs
    with pytest.raises(P2PError) as derived:
        flowedit_params(sd3.model, steps=4, n_min=4)
    assert str(derived.value) == (
        "n_min must be an integer in [0, 3], got 4: n_max is unset, so it is default_n_max's 3, the authors' "
        "share (33 of 50) of the 4 steps; set n_max (up to 4) to run more of them"
    )
    with pytest.raises(P2PError) as given:
        flowedit_params(sd3.model, steps=4, n_max=3, n_min=4)
    assert str(given.value) == "n_min must be an integer in [0, 3], got 4"
    with pytest.raises(P2PError, match="FlowEdit runs on flow models"):
        flow_edit(editor, picture, SRC, TGT)


@pytest.mark.needs_checkout(
    "P2P_FLOWEDIT", "fallenshock/FlowEdit", "python -m p2p_widgets.bench.reference_flow --flowedit DIR"
)
@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_equal_to_the_authors_flowedit(family):
    from p2p_widgets.bench import reference_flow

    row = getattr(reference_flow, f"flowedit_{family}_case")(os.environ["P2P_FLOWEDIT"])
    print(f"FlowEdit {family} vs ours: max latent difference {row['difference']:.3e}, effect {row['effect']:.3e}")
    assert row["difference"] <= reference_flow.TOLERANCE < row["effect"]


def test_flux_noise_is_packed_as_the_pipeline_packs_latents():
    from diffusers import FluxPipeline

    from p2p_widgets.engine.models.flux import image_ids, pack_latents, unpack_latents

    x = torch.randn(1, 4, 16, 24)
    assert torch.equal(pack_latents(x), FluxPipeline._pack_latents(x, 1, 4, 16, 24))
    assert torch.equal(unpack_latents(pack_latents(x), 16, 24), x)
    assert torch.equal(image_ids(8, 12), FluxPipeline._prepare_latent_image_ids(1, 8, 12, "cpu", torch.float32))


@pytest.mark.needs_checkout(
    "P2P_RF_INVERSION",
    "huggingface/diffusers (a checkout, or its examples/community/pipeline_flux_rf_inversion.py)",
    "python -m p2p_widgets.bench.reference_flow --rf-inversion DIR",
)
def test_equal_to_the_community_rf_inversion_pipeline():
    from p2p_widgets.bench import reference_flow

    row = reference_flow.rf_inversion_flux_case(os.environ["P2P_RF_INVERSION"])
    print(f"RF-Inversion vs ours: max latent difference {row['difference']:.3e}, effect {row['effect']:.3e}")
    assert row["difference"] <= reference_flow.TOLERANCE < row["effect"]


def test_every_flow_method_guides_by_the_one_condition(sd3, flux):
    """FlowEdit, RF-Inversion, the flow inversions and the sampler each wrote the true-CFG condition;
    it is models.flow.uses_cfg now (the outputs are bitwise the same: the reference comparisons above)."""
    from pathlib import Path

    import p2p_widgets
    from p2p_widgets.engine.models.flow import uses_cfg

    cond, uncond = sd3.model.guided_conditioning(SRC, (64, 64), 2.0)
    assert uncond is not None and torch.equal(cond.hidden, sd3.model.conditioning([sd3.prompt(SRC)], (64, 64)).hidden)
    assert sd3.model.guided_conditioning(SRC, (64, 64), 1.0)[1] is None  # no guidance at or below 1
    dev = flux.model
    assert not uses_cfg(dev, 3.5) and dev.guided_conditioning(SRC, (64, 64), 3.5)[1] is None  # an input there
    engine = Path(p2p_widgets.__file__).parent / "engine"
    written = [p.name for p in engine.rglob("*.py") if 'guidance_mode == "cfg"' in p.read_text()]
    assert written == ["flow.py"]
