"""An edit's record names the scheduler that sampled it (issue 27): a flow model's edit that names
none sampled with the model's flow-matching Euler, or with its inversion's solver, and its saved
settings said "DDIMScheduler" (the field's default). They now name what ran, reload to the same
JSON and rerun bitwise; a UNet's edit still names DDIM."""

from __future__ import annotations

import json

import pytest
import torch

from p2p_widgets.engine.spec import EditSpec
from p2p_widgets.errors import P2PError

SRC = "a red circle on a gray background"
TGT = "a blue circle on a gray background"


@pytest.fixture(scope="module")
def flow():
    from p2p_widgets.engine.sampler import Editor
    from p2p_widgets.models import load_pipeline

    return Editor(load_pipeline("pocket-flow"))


@pytest.fixture(scope="module")
def unet():
    from p2p_widgets.engine.sampler import Editor
    from p2p_widgets.models import load_pipeline

    return Editor(load_pipeline("pocket"))


def test_a_flow_edit_records_flow_matching_euler_and_reruns_from_it(flow):
    result = flow.edit(SRC, TGT, seed=1, steps=3, guidance=2.0)
    text = result.spec.to_json()
    data = json.loads(text)
    assert data["scheduler"] == "FlowMatchEulerDiscreteScheduler" == type(flow.model.default_scheduler()).__name__
    assert "scheduler_config" not in data  # the model's own config
    loaded = EditSpec.from_json(text)
    assert loaded.sampled_with == result.spec.sampled_with and loaded.to_json() == text
    again = flow.run(loaded)
    assert torch.equal(again.latents, result.latents) and again.spec.to_json() == text


def test_an_edit_of_a_flow_inversion_records_its_solver(flow):
    from p2p_widgets.pocket.scenes import make_dataset

    images, _, _ = make_dataset(1, 0)
    inversion = flow.invert(images[0], SRC, method="fireflow", steps=3, guidance=2.0)
    result = flow.edit(SRC, TGT, inversion=inversion, steps=3, guidance=2.0)
    text = result.spec.to_json()
    assert json.loads(text)["scheduler"] == "FlowSolverScheduler"  # FireFlow's, the inversion names it
    again = flow.run(EditSpec.from_json(text), inversion=inversion)
    assert torch.equal(again.latents, result.latents) and again.spec.to_json() == text


def test_a_unet_edit_still_records_ddim_and_refuses_a_flow_record(unet, flow):
    result = unet.edit(SRC, TGT, seed=1, steps=2)
    assert json.loads(result.spec.to_json())["scheduler"] == "DDIMScheduler"
    data = json.loads(flow.edit(SRC, TGT, seed=1, steps=2, guidance=2.0).spec.to_json())
    data["rules"] = json.loads(result.spec.to_json())["rules"]  # a UNet's rule, a flow model's record
    with pytest.raises(P2PError, match="sampled with FlowMatchEulerDiscreteScheduler.*samples with DDIMScheduler"):
        unet.run(EditSpec.from_dict(data))


def test_a_recorded_model_scheduler_takes_no_config():
    data = {"prompts": [SRC, TGT], "rules": [{"rule": "KVInjection"}], "seed": 0, "steps": 2, "guidance": 2.0}
    # worded for both readings: a run's record of the model's own (drop the config), or an edit that named
    # the flow scheduler with a config of its own (not rerun from JSON)
    with pytest.raises(P2PError) as bad:
        EditSpec.from_dict({**data, "scheduler": "FlowMatchEulerDiscreteScheduler", "scheduler_config": {}})
    why = str(bad.value)
    assert why.startswith("scheduler FlowMatchEulerDiscreteScheduler comes with a scheduler_config")
    assert "where the edit named none" in why and "drop scheduler_config" in why
    assert "named it with a config of its own" in why and "Editor.edit" in why
    with pytest.raises(P2PError, match="scheduler must be one of .*got 'MyOwn' .*FlowSolverScheduler"):
        EditSpec.from_dict({**data, "scheduler": "MyOwn"})


def test_the_studio_refuses_a_flow_record_up_front_as_run_does(unet, flow):
    """A pocket-flow edit's record loaded into a pocket-UNet Studio: Editor.run refuses it by name, and
    load_json said nothing and loaded it (its Run then sampled it with DDIM). Now both give one reason."""
    from p2p_widgets.widgets import Studio

    text = flow.edit(SRC, TGT, seed=1, steps=2, guidance=2.0).spec.to_json()
    why = "sampled with FlowMatchEulerDiscreteScheduler.*this model samples with DDIMScheduler"
    with pytest.raises(P2PError, match=why) as ran:
        unet.run(EditSpec.from_json(text))
    studio = Studio(editor=unet, background=False, timeline=False)
    before = dict(source=studio.panel.source, steps=studio.panel.steps, guidance=studio.panel.guidance)
    with pytest.raises(P2PError, match=why) as loaded:
        studio.load_json(text)
    assert str(loaded.value) == str(ran.value)
    assert dict(source=studio.panel.source, steps=studio.panel.steps, guidance=studio.panel.guidance) == before
    studio.load_json(unet.edit(SRC, TGT, seed=1, steps=2).spec.to_json())  # a UNet's record still loads
    assert studio.panel.source == SRC and studio.panel.steps == 2


def test_a_record_naming_ddim_reruns_on_a_flow_model_and_unet_only_rules_refuse_by_name(unet, flow):
    """The choice documented in sampler._record_scheduler: a record that names DDIM and no sampled_with
    (a UNet's, or a flow model's written before records named what ran) reruns on a flow model with its
    own scheduler, recording it; a rule that runs on UNets only refuses there by name."""
    result = flow.edit(SRC, TGT, seed=1, steps=2, guidance=2.0)
    old = {**json.loads(result.spec.to_json()), "scheduler": "DDIMScheduler"}  # as such files were written
    again = flow.run(EditSpec.from_dict(old))
    assert torch.equal(again.latents, result.latents) and again.spec.sampled_with == "FlowMatchEulerDiscreteScheduler"
    from p2p_widgets.engine.controls import MutualSelfAttention

    masactrl = unet.edit(SRC, TGT, seed=1, steps=2, rules=[MutualSelfAttention()]).spec
    assert json.loads(masactrl.to_json())["scheduler"] == "DDIMScheduler"
    with pytest.raises(P2PError, match="MutualSelfAttention cannot run on flux: it edits UNet self-attention"):
        flow.run(EditSpec.from_json(masactrl.to_json()))
