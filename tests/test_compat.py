"""compat="reference": P2P with the authors' choices where this project corrects them (tokens after
a length change by absolute position, cross windows over n + 1 steps, self-attention at <= 16 x 16
queries, LocalBlend on the 16 x 16 maps, Reweight scaling new tokens' own attention)."""

import pytest
import torch

from p2p_widgets.engine.mapper import align
from p2p_widgets.engine.rules import Refine, Reweight
from p2p_widgets.engine.schedule import AlphaSchedule
from p2p_widgets.engine.spec import EditSpec
from p2p_widgets.errors import P2PError

SRC = "a red circle on a gray background"


def test_same_length_swap_is_the_same_mapper(tokenizer):
    ours = align(SRC, "a blue circle on a gray background", tokenizer, "replace")
    ref = align(SRC, "a blue circle on a gray background", tokenizer, "replace", compat="reference")
    assert torch.equal(ours.matrix, ref.matrix)


def test_after_a_longer_target_word_the_reference_maps_by_absolute_position(tokenizer):
    # target: BOS a jelly beans circle EOS ...; source: BOS a red circle EOS ...
    target = "a jellybeans circle"
    ours = align("a red circle", target, tokenizer, "replace")
    ref = align("a red circle", target, tokenizer, "replace", compat="reference")
    assert ref.matrix[2, 2] == ref.matrix[2, 3] == 0.5  # the swapped word spreads as in ours
    assert ours.matrix[3, 4] == 1 and ours.matrix[4, 4] == 0  # circle reads circle
    assert ref.matrix[4, 4] == 1 and ref.matrix[3, 4] == 0  # circle reads the source's EOS


def test_after_a_longer_source_word_the_last_columns_get_nothing(tokenizer):
    ref = align("a jellybeans circle", "a red circle", tokenizer, "replace", compat="reference")
    assert ref.matrix[3, 3] == 1  # target circle reads source "beans"
    assert ref.matrix[:, -1].sum() == 0  # the walk ends at the source's end first
    ours = align("a jellybeans circle", "a red circle", tokenizer, "replace")
    assert ours.matrix[:, -1].sum() == 1


def test_reference_swap_needs_equal_word_counts(tokenizer):
    with pytest.raises(P2PError, match="same number of words"):
        align("a red circle", "a red big circle", tokenizer, "replace", compat="reference")


def test_refine_padding_by_absolute_position(tokenizer):
    target = "a big red circle on a gray background"
    ours, ref = (align(SRC, target, tokenizer, "refine", compat=c) for c in ("project", "reference"))
    j = ref.target.eos_position + 1
    assert ref.matrix[j, j] == 1 and ours.matrix[j - 1, j] == 1  # ours keeps the one-token offset
    assert torch.equal(ours.matrix[:, :j], ref.matrix[:, :j])  # the prompt itself aligns alike


def test_cross_windows_count_n_plus_one_steps():
    ours = AlphaSchedule.build(10, cross=0.55, self_attn=0.55, words={"x": (0.1, 1.0)})
    ref = AlphaSchedule.build(10, cross=0.55, self_attn=0.55, words={"x": (0.1, 1.0)}, compat="reference")
    assert ours.cross == (0, 5) and ref.cross == (0, 6)  # int(0.55 * 11)
    assert ref.words["x"] == (1, 10)  # the end capped at the run
    assert ours.self_attn == ref.self_attn == (0, 5)  # self windows: int(f * n) in both
    with pytest.raises(P2PError, match="compat"):
        AlphaSchedule.build(10, compat="authors")


def test_reference_reweight_scales_a_new_words_own_attention(tokenizer):
    target = "a big red circle on a gray background"
    mapper = align(SRC, target, tokenizer, "refine")
    schedule = AlphaSchedule.build(10, cross=0.5)
    big = mapper.target.positions("big")
    ours = Reweight(Refine(mapper, schedule), {"big": 3.0})
    ref = Reweight(Refine(mapper, schedule), {"big": 3.0}, compat="reference")

    class Ctx:
        step = 2

    (p0, q0), (p1, q1) = ours.cross_weights(Ctx), ref.cross_weights(Ctx)
    assert torch.equal(p0, p1)
    assert (q0[big] == 1).all() and (q1[big] == 3).all()  # alpha * c + 1 - alpha, alpha = 1
    Ctx.step = 7  # outside the window the two agree
    assert ours.cross_weights(Ctx) is None and ref.cross_weights(Ctx) is None


@pytest.mark.parametrize(
    "target, options",
    [
        ("a jellybeans circle on a gray background", {}),
        ("a big red circle on a gray background", {"reweight": {"big": 2.0}}),
        ("a blue circle on a gray background", {"blend": ["circle"], "reweight": {"blue": 2.0}}),
    ],
)
def test_reference_mode_runs_fast_as_explicit_and_reruns_from_json(editor, target, options):
    run = dict(steps=6, compat="reference", cross=0.55, **options)
    fast = editor.edit(SRC, target, mode="fast", **run)
    explicit = editor.edit(SRC, target, mode="explicit", **run)
    tol = 1e-4  # fast vs explicit: float32 summation order (observed up to 3.3e-5)
    assert (fast.latents - explicit.latents).abs().max() <= tol
    # injection and the switch each move the edit by >= 100 tol: a fast path that scaled the
    # injected term by 0.95, or a switch that changed little, would fail
    none = editor.edit(SRC, target, **{**run, "cross": 0.0, "self_attn": 0.0})
    project = editor.edit(SRC, target, **{**run, "compat": "project"})
    for what, other in (("injection", none), ("compat", project)):
        effect = float((fast.latents[1] - other.latents[1]).abs().max())
        print(f"{target} {options}: {what} effect / tolerance {effect / tol:.0f}")
        assert effect >= 100 * tol, f"{what}: effect {effect:.3g} is {effect / tol:.0f} x the tolerance (< 100)"
    assert torch.equal(editor.run(EditSpec.from_json(fast.spec.to_json())).latents, fast.latents)
    base = fast.rules[0].base if "reweight" in options else fast.rules[0]
    assert base.self_max_resolution == 16


def test_a_reference_swap_from_a_longer_source_word_reruns_from_its_spec(editor):
    """The authors' walk leaves the last target columns unfed but aligned (their attention drops to
    0 in the window); the exported mapper keeps that, so the spec reruns to the same latents."""
    run = dict(steps=4, compat="reference", seed=1)
    result = editor.edit("a jellybeans circle on a gray background", SRC, **run)
    mapper = result.rules[0].mapper
    assert mapper.aligned[-1] == 1 and mapper.matrix[:, -1].sum() == 0  # aligned, fed by nothing
    again = editor.run(EditSpec.from_json(result.spec.to_json()))
    assert torch.equal(again.rules[0].mapper.aligned, mapper.aligned)
    assert torch.equal(again.latents, result.latents)
