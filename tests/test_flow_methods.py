"""The flow-model methods in the evaluation (issue 27): presets, JSON, parameters, and rows run as
the sweep's worker runs them on a tiny SD3."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

from p2p_widgets.errors import P2PError
from p2p_widgets.evaluate.methods import Method, get_method, presets

SRC = "a big red circle left of a small blue square on a gray background"
TGT = "a big green circle left of a small blue square on a gray background"


@pytest.fixture(scope="module")
def sd3():
    from p2p_widgets.bench.mmdit_geometries import tiny_sd3_pipeline
    from p2p_widgets.engine.sampler import Editor

    return Editor(tiny_sd3_pipeline(0))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    from p2p_widgets.pocket.scenes import make_dataset

    images, _, _ = make_dataset(1, 0)
    path = tmp_path_factory.mktemp("case") / "scene.png"
    Image.fromarray(images[0]).resize((64, 64), Image.NEAREST).save(path)
    return SimpleNamespace(source_prompt=SRC, target_prompt=TGT, image_path=str(path), blended_words=[])


def test_flow_presets_exist_and_round_trip_through_json():
    found = presets()
    for name in ("flowedit", "rf-solver-edit", "fireflow-edit", "p2p-joint"):
        method = found[name]
        assert Method.from_dict(method.to_dict()) == method
        assert get_method(method.to_dict()) == method
    assert found["flowedit"].direct == {"method": "flowedit"} and found["flowedit"].inversion is None
    assert found["rf-solver-edit"].inversion == "rf-solver" and found["p2p-joint"].inversion == "fireflow"
    assert "direct" not in found["pie-p2p"].to_dict()  # methods without it keep their JSON


def test_flowedit_parameters_are_declared_once_and_checked():
    flowedit = presets()["flowedit"]
    assert flowedit.parameters() == dict.fromkeys(
        ("steps", "n_max", "n_min", "n_avg", "source_guidance", "target_guidance"), "model"
    )
    tuned = flowedit.with_params(n_max=10, target_guidance=7.0)
    assert tuned.direct == {"method": "flowedit", "n_max": 10, "target_guidance": 7.0}
    assert tuned.with_params(n_max="model").direct == {"method": "flowedit", "target_guidance": 7.0}
    with pytest.raises(P2PError, match=r"n_max must be an integer in \[0, 1000\], got -1"):
        flowedit.with_params(n_max=-1)
    with pytest.raises(P2PError, match="unknown parameter 'cross' for method 'flowedit'"):
        flowedit.with_params(cross=0.5)
    with pytest.raises(P2PError, match="it takes no inversion, template or rule"):
        Method("x", "fireflow", direct={"method": "flowedit"})
    with pytest.raises(P2PError, match="'direct' must be null or an object with 'method' one of 'flowedit'"):
        Method("x", direct={"method": "sdedit"})
    with pytest.raises(P2PError, match="unknown FlowEdit setting"):
        Method.from_dict({"name": "x", "direct": {"method": "flowedit", "strength": 1}})


def test_a_flowedit_row_runs_as_the_worker_runs_it(sd3, case):
    method = presets()["flowedit"].with_params(steps=4, n_max=3)
    image, record = method.run_direct(case, sd3, seed=1)
    assert image.size == (64, 64)
    assert record["prompts"] == [SRC, TGT] and record["steps"] == 4 and record["n_max"] == 3
    assert record["target_guidance"] == 13.5  # SD3's default from the authors' settings
    again, _ = method.run_direct(case, sd3, seed=1)
    assert again.tobytes() == image.tobytes()


@pytest.mark.parametrize("name", ["p2p-joint", "fireflow-edit"])
def test_inverting_flow_presets_edit_a_case_on_sd3(sd3, case, name):
    method = get_method(name).with_params(steps=3, guidance=2.0)
    inversion = sd3.invert(case.image_path, SRC, method=method.inversion, steps=3, guidance=2.0)
    source, target, options = method.edit_arguments(case, sd3, 0, inversion)
    if name == "fireflow-edit":  # its values go to Flux's single-stream blocks: SD3 has none (it injected nothing)
        with pytest.raises(P2PError, match="this model has no single-stream blocks"):
            sd3.edit(source, target, **options)
        return
    result = sd3.edit(source, target, **options)
    assert len(result.images) == 2 and result.images[1].size == (64, 64)


def test_rf_inversion_is_a_direct_method_with_its_settings_checked(sd3, case):
    method = presets()["rf-inversion"]
    assert Method.from_dict(method.to_dict()) == method and method.source_prompt == ""
    assert set(method.parameters()) == {
        "steps", "gamma", "eta", "start", "stop", "decay_eta", "eta_decay_power", "source_guidance", "guidance"
    }  # fmt: skip
    with pytest.raises(P2PError, match=r"eta must be a number in \[0, 1\], got 2"):
        method.with_params(eta=2)
    with pytest.raises(P2PError, match="start 0.5 is after stop 0.25"):
        method.with_params(start=0.5)
    image, record = method.with_params(steps=3).run_direct(case, sd3, seed=0)
    assert image.size == (64, 64) and record["prompts"] == ["", TGT] and record["eta"] == 1.0


def test_rf_inversion_with_full_control_returns_to_the_picture(sd3, case):
    """eta 1 over the whole edit: every step moves by (y_0 - x) / sigma_i times sigma_i - sigma_i+1,
    so the last step (to sigma 0) lands on the picture's latents whatever the inversion gave."""
    from p2p_widgets.engine.rf_inversion import rf_inversion

    result = rf_inversion(sd3, case.image_path, "", TGT, steps=4, eta=1.0, start=0.0, stop=1.0, gamma=0.3)
    assert float((result.latents - result.source_latents).abs().max()) < 1e-5
    free = rf_inversion(sd3, case.image_path, "", TGT, steps=4, eta=0.0, gamma=0.3)
    assert float((free.latents - free.source_latents).abs().max()) > 1e-2


@pytest.mark.parametrize("name", ["flowedit", "rf-inversion"])
def test_a_direct_row_reruns_bitwise_from_its_record(sd3, case, name):
    method = presets()[name].with_params(steps=3)
    image, record = method.run_direct(case, sd3, seed=2)
    settings = {k: v for k, v in record.items() if k not in ("prompts", "seed")}
    again = Method.from_dict({"name": "again", "direct": settings, "source_prompt": record["prompts"][0]})
    assert again.run_direct(case, sd3, seed=record["seed"])[0].tobytes() == image.tobytes()


def test_a_sweeps_steps_keep_flowedits_share_of_skipped_steps(sd3, case, tmp_path):
    """steps=N without n_max: FlowEdit's n_max is the authors' share of N (SD3: 33 of 50), not their
    33, which at 4 steps ran every step; an n_max the method sets stays."""
    from p2p_widgets.engine.flowedit import FLOWEDIT_DEFAULTS, default_n_max
    from p2p_widgets.evaluate.pocket_bench import make_pocket_bench
    from p2p_widgets.evaluate.sweep import plan_sweep

    assert default_n_max("sd3", 50) == 33 and default_n_max("flux", 28) == 24  # the authors' own
    assert [default_n_max("flux", n) for n in (1, 4, 7, 20)] == [1, 3, 6, 17]
    assert default_n_max("sd3", 25) == 17  # 16.5 rounds half up
    for family, settings in FLOWEDIT_DEFAULTS.items():
        assert default_n_max(family, settings["steps"]) == settings["n_max"]
    data = tmp_path / "bench"
    make_pocket_bench(data, n=1, seed=0, types=(6,))
    fixed = presets()["flowedit"].with_params(n_max=2)
    fixed = Method("fixed", direct=fixed.direct)
    plan = plan_sweep(data, ["flowedit", fixed], steps=4)
    scaled, kept = plan.methods
    _, record = scaled.run_direct(case, sd3, seed=0)
    assert record["steps"] == 4 and record["n_max"] == 3  # round(4 * 33 / 50)
    assert kept.run_direct(case, sd3, seed=0)[1]["n_max"] == 2


def test_a_sweeps_guidance_is_flowedits_target_guidance(tmp_path):
    """guidance=G over every method: the edit's guidance, so FlowEdit's target guidance (its source
    guidance stays the authors'); before, "unknown parameter 'guidance'" failed the whole sweep."""
    from p2p_widgets.evaluate.pocket_bench import make_pocket_bench
    from p2p_widgets.evaluate.sweep import plan_sweep

    data = tmp_path / "bench"
    make_pocket_bench(data, n=1, seed=0, types=(6,))
    plan = plan_sweep(data, ["flowedit", "rf-inversion", "p2p-joint"], steps=4, guidance=7.0)
    flowedit, rf_inversion, joint = plan.methods
    assert flowedit.direct == {"method": "flowedit", "steps": 4, "target_guidance": 7.0}
    assert rf_inversion.direct == {"method": "rf-inversion", "steps": 4, "guidance": 7.0}
    assert joint.template["guidance"] == 7.0
    model = plan_sweep(data, [Method("f", direct={"method": "flowedit", "target_guidance": 9.0})], guidance="model")
    assert model.methods[0].direct == {"method": "flowedit"}  # "model": the authors' default for the family
    with pytest.raises(P2PError, match="unknown parameter 'guidance' for method 'flowedit'"):
        presets()["flowedit"].with_params(guidance=7.0)  # a grid names the method's own parameters


def test_rf_inversion_guides_a_model_without_a_guidance_embedding(sd3, case):
    """SD3 (like the pocket flow model and Flux without a guidance embedding) has no guidance input:
    the edit's guidance is true classifier-free guidance against the empty prompt, as FlowEdit and
    the sampler guide there (diffusers' community pipeline, Flux dev only, would drop it: before, 3.5
    gave the unguided picture). Guidance <= 1 stays unguided."""
    from types import SimpleNamespace

    import torch

    from p2p_widgets.engine.images import load_image
    from p2p_widgets.engine.rf_inversion import rf_inversion

    noise = torch.randn(sd3.model.latent_shape((64, 64)), generator=torch.Generator().manual_seed(0))
    run = dict(steps=1, gamma=0.0, eta=0.0, noise=lambda like: noise.to(like))
    guided = rf_inversion(sd3, case.image_path, "", TGT, guidance=3.5, **run)
    plain = rf_inversion(sd3, case.image_path, "", TGT, guidance=1.0, **run)
    assert not torch.equal(guided.latents, plain.latents)
    assert torch.equal(rf_inversion(sd3, case.image_path, "", TGT, guidance=0.5, **run).latents, plain.latents)
    # one step, no control: the picture's latents moved by the source's velocity, then back by the
    # target's guided one, v_u + 3.5 (v_c - v_u)
    model, controller, size = sd3.model, SimpleNamespace(block=None), (64, 64)
    sched = model.default_scheduler()
    model.set_timesteps(sched, 1, size)
    step = float(sched.sigmas[0] - sched.sigmas[1])
    y0 = sd3.encode_image(load_image(case.image_path, size)).to(sd3.device, sd3.dtype)
    source = model.conditioning([sd3.prompt("")], size)
    y = y0 + step * model.predict(controller, y0, torch.tensor(0.0, dtype=torch.float64), source, None, 0.0)
    cond, uncond = model.conditioning([sd3.prompt(TGT)], size), model.conditioning([sd3.prompt(TGT)], size, True)
    want = y - step * model.predict(controller, y, sched.timesteps[0], cond, uncond, 3.5)
    assert torch.allclose(guided.latents, want, atol=1e-5)
