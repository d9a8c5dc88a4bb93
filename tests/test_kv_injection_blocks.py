"""KVInjection's block numbers against the model (issue 27's evaluation on the pocket flow model):
a block the model lacks is a named error when the run starts (it used to inject nothing), and
blocks given for a model of another depth (``single_of`` / ``double_of``: RF-Solver-Edit's
single blocks 20-37 of Flux.1's 38) are placed at the same depth of the model's blocks."""

from __future__ import annotations

import json

import pytest
import torch

from p2p_widgets.engine.joint_controls import KVInjection, place_blocks
from p2p_widgets.engine.rules import rule_from_dict
from p2p_widgets.engine.spec import EditSpec
from p2p_widgets.errors import P2PError

SRC = "a red circle on a gray background"
TGT = "a blue circle on a gray background"
RUN = dict(seed=0, steps=3, guidance=2.0)


@pytest.fixture(scope="module")
def flow():
    """The pocket flow model: 2 double-stream and 4 single-stream blocks."""
    from p2p_widgets.engine.sampler import Editor
    from p2p_widgets.models import load_pipeline

    return Editor(load_pipeline("pocket-flow"))


def _touched(result) -> set:
    return {layer.split(".attn")[0] for step in result.controlled for layer, _ in step}


def test_blocks_the_model_lacks_are_named_when_the_run_starts(flow):
    processors = dict(flow.model.denoiser.attn_processors)
    for rule, named in (
        (KVInjection(double=[], single=["20", "37"]), r"single block\(s\) 20, 37 .* 4 single-stream blocks \(0-3\)"),
        (KVInjection(double=["2"], single=[]), r"double block\(s\) 2 .* 2 double-stream blocks \(0-1\)"),
    ):
        with pytest.raises(P2PError, match=named) as caught:
            flow.edit(SRC, TGT, rules=[rule], **RUN)
        assert "single_of" in str(caught.value) or "double_of" in str(caught.value)  # says how to place them
    assert dict(flow.model.denoiser.attn_processors) == processors  # put back after the refusal
    # blocks it has run, and "all" is every block of its kind
    ok = flow.edit(SRC, TGT, rules=[KVInjection(double=["1"], single=["3"])], **RUN)
    assert _touched(ok) == {"transformer_blocks.1", "single_transformer_blocks.3"}


def test_a_model_without_single_blocks_refuses_single_block_numbers():
    from p2p_widgets.bench.mmdit_geometries import tiny_sd3_pipeline
    from p2p_widgets.engine.sampler import Editor

    sd3 = Editor(tiny_sd3_pipeline(0))
    layout = "(SD3 layout, [image; text] joint attention: 2 double-stream blocks, 0 single-stream)"
    for rule in (KVInjection(double=[], single=["0"]), KVInjection(double=[], single=["20"], single_of=38)):
        with pytest.raises(P2PError, match="has no single-stream blocks") as caught:
            sd3.edit(SRC, TGT, rules=[rule], steps=2, guidance=2.0, height=64, width=64)
        assert layout in str(caught.value)
    sd3.edit(SRC, TGT, rules=[KVInjection()], steps=2, guidance=2.0, height=64, width=64)  # "all" of none: fine


@pytest.mark.parametrize("missing, has", [("single", "num_layers"), ("double", "num_single_layers")])
def test_a_flux_layout_model_without_a_stream_is_named_as_flux_not_sd3(missing, has):
    """The refusal always said "(SD3's are all double-stream)"; a Flux-layout model lacking one stream
    (no single blocks, or no double ones) is now named as what its sites show."""
    from p2p_widgets.bench.mmdit_geometries import FLUX_VAE, TINY_FLUX, _flux_pipeline
    from p2p_widgets.engine.sampler import Editor

    config = {**TINY_FLUX, "guidance_embeds": True, ("num_single_layers" if missing == "single" else "num_layers"): 0}
    flux = Editor(_flux_pipeline(0, config, FLUX_VAE, 32, None))
    with pytest.raises(P2PError, match=f"has no {missing}-stream blocks") as caught:
        flux.edit(SRC, TGT, rules=[KVInjection(**{missing: ["0"]})], steps=2, guidance=2.0, height=64, width=64)
    counts = {"double": 2, "single": 2, missing: 0}
    layout = f"Flux layout, [text; image] joint attention: {counts['double']} double-stream blocks, {counts['single']}"
    assert layout in str(caught.value) and "SD3" not in str(caught.value)


def test_blocks_of_another_depth_land_at_the_same_depth():
    assert place_blocks(range(20, 38), 38, 38) == frozenset(range(20, 38))  # the same model: the same blocks
    assert place_blocks(range(20, 38), 38, 4) == {2, 3}  # RF-Solver-Edit's later half on the pocket flow model
    assert place_blocks(range(20, 38), 38, 76) == frozenset(range(40, 76))  # a deeper model: still contiguous
    assert place_blocks([0, 1, 17, 18], 19, 2) == {0, 1}  # Stable Flow's vital double blocks
    assert place_blocks([0, 1, 17, 18], 19, 4) == {0, 3}
    assert place_blocks([9], 38, 4) == {1}  # block 9 of 38 starts in block 0's share but block 1 starts inside it
    for count in range(1, 50):  # a non-empty choice never vanishes, and the last block stays the last
        assert place_blocks([37], 38, count) == {count - 1}
        assert place_blocks(range(38), 38, count) == frozenset(range(count))


def test_the_presets_inject_in_the_pocket_flow_models_later_single_blocks(flow):
    """rf-solver-edit / fireflow-edit name Flux.1's single blocks 20-37 of 38: on the pocket flow
    model that is its single blocks 2 and 3 (before: nothing was injected)."""
    from p2p_widgets.evaluate.methods import presets

    for name in ("rf-solver-edit", "fireflow-edit"):
        data = presets()[name].rule
        assert data["single_of"] == 38 and data["single"] == [str(i) for i in range(20, 38)]
        rule = rule_from_dict(data, None, None)
        result = flow.edit(SRC, TGT, rules=[rule], **RUN)
        assert _touched(result) == {"single_transformer_blocks.2", "single_transformer_blocks.3"}
        plain = flow.edit(SRC, TGT, rules=[KVInjection(double=[], single=[], copy_keys=False)], **RUN)
        assert not torch.equal(result.latents[1], plain.latents[1])


def test_the_rule_saves_what_was_given_and_reruns_bitwise(flow):
    rule = KVInjection.rf_solver_edit(steps=2)  # Flux.1's blocks 20-37 of 38
    data = rule.to_dict()
    assert data["single"] == [str(i) for i in range(20, 38)] and data["single_of"] == 38 and data["double_of"] is None
    assert rule_from_dict(json.loads(json.dumps(data)), None, None).to_dict() == data
    result = flow.edit(SRC, TGT, rules=[rule], **RUN)
    assert result.spec.rules[0] == data  # the blocks as given, not as placed on this model
    text = result.spec.to_json()
    again = flow.run(EditSpec.from_json(text))
    assert torch.equal(again.latents, result.latents) and again.spec.to_json() == text
    assert KVInjection.stable_flow().to_dict()["double_of"] == 19  # Stable Flow's vital layers, as Flux.1's


def test_bad_block_numbers_are_named_before_any_run():
    from p2p_widgets.evaluate.methods import Method

    for values, named in (
        (dict(single=["38"], single_of=38), r"single block 38 is past single_of 38 \(blocks 0-37\)"),
        (dict(double=["19", "0"], double_of=19), "double block 19 is past double_of 19"),
        (dict(single_of=0), "single_of"),
    ):
        with pytest.raises(P2PError, match=named):
            KVInjection(**values)
    with pytest.raises(P2PError, match="single block 40 is past single_of 38"):  # a sweep plans before any row
        Method("x", "fireflow", rule={"rule": "KVInjection", "single": ["40"], "single_of": 38})
