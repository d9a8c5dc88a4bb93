"""Bad input gets a clear error naming the problem, and the pipeline keeps working afterwards."""

import math

import pytest
import torch

from p2p_widgets.engine.blend import LocalBlend
from p2p_widgets.engine.mapper import align
from p2p_widgets.engine.rules import Replace
from p2p_widgets.engine.schedule import AlphaSchedule
from p2p_widgets.errors import P2PError

SRC = "a red circle on a gray background"
TGT = "a blue circle on a gray background"

BAD = {
    "word not in prompt": (dict(reweight={"dog": 2.0}), r"'dog' is not in the prompt .*'blue'"),
    "prompt over 77 tokens": (dict(targets=" ".join(["red"] * 80)), r"82 tokens .* takes 77"),
    "per-word window word missing": (dict(words={"square": 0.3}), r"'square' is not in the prompt"),
    "reweight list length": (dict(reweight=[{"blue": 2.0}, {"blue": 1.0}]), r"reweight has 2 entries but there are 1"),
    "rules list length": (dict(rules=[]), r"list of 1 EditRule"),
    "zero steps": (dict(steps=0), r"steps must be an integer in \[1, 1000\], got 0"),
    "fractional steps": (dict(steps=2.5), r"steps must be an integer"),
    "nan guidance": (dict(guidance=math.nan), r"guidance must be a finite number"),
    "negative guidance": (dict(guidance=-1.0), r"guidance must be a finite number >= 0"),
    "window start after end": (dict(cross=(0.8, 0.2)), r"start 0.8 is after end 0.2"),
    "fraction above one": (dict(self_attn=1.5), r"fraction 1.5 is outside \[0, 1\]"),
    "step beyond the run": (dict(cross=(0, 40)), r"step 40 is outside \[0, 4\]"),
    "nan reweight": (dict(reweight={"blue": math.nan}), r"reweight value for 'blue' is not a finite number"),
    "blend word in no prompt": (dict(blend=["dog"]), r"LocalBlend word 'dog' is in none of the prompts"),
    "blend threshold": (dict(blend=None, blend_threshold=1.5), r"threshold must be in \(0, 1\)"),
    "blend resolution": (dict(blend=None, blend_resolution=5), r"resolution 5 is not an attention grid.*\[8, 16\]"),
    "mapper for other prompts": (dict(mapper_for="a cat"), r"mapper is for 'a cat' -> .*, not"),
    "empty source": (dict(source="   "), r"source prompt is empty"),
    "unknown mode": (dict(mode="turbo"), r"mode must be 'fast' or 'explicit'"),
    "latents of the wrong shape": (dict(latents=torch.zeros(1, 4, 7, 7)), r"latents must be a tensor of shape"),
    "size not a multiple": (dict(height=60), r"height 60 must be a multiple of 8"),
    "negative seed": (dict(seed=-3), r"seed must be an integer"),
    "inversion steps mismatch": (dict(uncond_embeddings=[torch.zeros(1, 77, 32)] * 3), r"3 entries but the run has 4"),
    "prompt not a string": (dict(targets=[None]), r"a prompt must be a string, got NoneType"),
    "unknown align kind": (dict(kind="swap"), r"kind must be 'auto', 'replace' or 'refine'"),
    "zero height": (dict(height=0), r"height must be an integer in \[8, 4096\], got 0"),
    "zero width": (dict(width=0), r"width must be an integer in \[8, 4096\], got 0"),
    "targets a number": (dict(targets=5), r"targets must be a string or a list of strings, got 5"),
}


def _call(editor, case):
    kwargs = dict(BAD[case][0])
    source = kwargs.pop("source", SRC)
    targets = kwargs.pop("targets", TGT)
    if "blend_threshold" in kwargs:
        kwargs["blend"] = LocalBlend(["circle"], threshold=kwargs.pop("blend_threshold"))
    if "blend_resolution" in kwargs:
        kwargs["blend"] = LocalBlend(["circle"], resolution=kwargs.pop("blend_resolution"))
    if "mapper_for" in kwargs:
        kwargs["mappers"] = [align(kwargs.pop("mapper_for"), TGT, editor.tokenizer)]
    return editor.edit(source, targets, steps=kwargs.pop("steps", 4), **kwargs)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_named_and_pipeline_survives(editor, case):
    before = dict(editor.model.unet.attn_processors)
    with pytest.raises(P2PError, match=BAD[case][1]):
        _call(editor, case)
    after = editor.model.unet.attn_processors
    assert all(after[k] is before[k] for k in before)
    assert len(editor.edit(SRC, TGT, steps=1).images) == 2


def test_there_are_at_least_fifteen_kinds():
    assert len(BAD) >= 15


def test_rule_construction_errors(tokenizer):
    mapper = align(SRC, TGT, tokenizer)
    with pytest.raises(P2PError, match="needs an AlphaSchedule"):
        Replace(mapper, {"cross": 0.8})
    with pytest.raises(P2PError, match="n_evals must be a positive integer"):
        AlphaSchedule.build(0)
    with pytest.raises(P2PError, match="needs 'n_evals'"):
        AlphaSchedule.from_dict({"cross": [0, 3]})


def test_a_rules_mapper_must_be_for_the_prompts(editor):
    """As mappers= is checked: a rule built for other prompts would run, but its spec would not rerun."""
    from p2p_widgets.engine.rules import Combine, EditRule, Reweight

    other = align(SRC, "a blue square on a gray background", editor.tokenizer)
    schedule = AlphaSchedule.build(4)
    rule = Replace(other, schedule)
    for rules in ([rule], [Reweight(rule, {"blue": 2.0})], [Combine(EditRule(), Replace(other, schedule))]):
        with pytest.raises(P2PError, match="rule 0: mapper is for .*'a blue square on a gray background', not"):
            editor.edit(SRC, TGT, steps=4, rules=rules)
