"""Engine numerics on the tiny fixture (CPU, fp32): the fast path against the explicit oracle."""

import threading

import numpy as np
import pytest
import torch

from p2p_widgets.engine.blend import LocalBlend
from p2p_widgets.engine.mapper import align
from p2p_widgets.engine.processors import P2PAttnProcessor
from p2p_widgets.engine.rules import EditRule, Replace
from p2p_widgets.engine.schedule import AlphaSchedule
from p2p_widgets.errors import P2PError

SRC = "a red circle on a gray background"
STEPS = 8


def both_paths(editor, *args, **kwargs):
    fast = editor.edit(*args, steps=STEPS, mode="fast", **kwargs)
    explicit = editor.edit(*args, steps=STEPS, mode="explicit", **kwargs)
    return fast, explicit


TOL = 1e-4  # fast vs explicit: float32 summation order (observed up to 4.6e-5 on latents up to 33)
NO_INJECTION = dict(cross=0.0, self_attn=0.0)

# each case with what to leave out so that the rule's own effect shows: the fast path must equal the
# explicit oracle within TOL, and the same call without the rule (or without its part under test)
# must end at least 100 * TOL away, so a fast path that scaled the injected term by 0.95 would fail
CASES = {
    "replace": (dict(targets="a blue circle on a gray background"), NO_INJECTION),
    "replace_multi_token": (dict(targets="a jellybeans circle on a gray background", cross=0.6), NO_INJECTION),
    "refine": (dict(targets="a red circle on a striped gray background", kind="refine"), NO_INJECTION),
    "reweight_on_replace": (dict(targets="a blue circle on a gray background", reweight={"blue": 3.0}), {}),
    # a word the source has: refine injects it, so the reweight scales it ('big', new in the target,
    # gets no injected attention in the default mode and its reweight changes nothing)
    "reweight_on_refine": (
        dict(targets="a big red circle on a gray background", kind="refine", reweight={"circle": 4.0}),
        {},
    ),
    # the authors' choice: a new word's own attention is scaled too
    "reweight_new_word_reference": (
        dict(targets="a big red circle on a gray background", kind="refine", reweight={"big": 5.0}, compat="reference"),
        {},
    ),
    # at 64 px the word maps are nearly flat: from threshold 0.9 the mask leaves part of the image out
    "local_blend": (dict(targets="a red square on a gray background", blend=LocalBlend(["circle", "square"], 0.9)), {}),
    "word_windows": (
        dict(targets="a blue square on a gray background", cross={"default_": 1.0, "square": 0.0}),
        dict(cross=1.0),
    ),
    "sweep": (dict(targets=[SRC, SRC, SRC], reweight=[{"red": 0.5}, {"red": 0.0}, {"red": -0.5}]), {}),
    "no_guidance_low_memory": (dict(targets="a blue circle on a gray background", guidance=1.0), NO_INJECTION),
}
LEFT_OUT = ("reweight", "blend")  # a case without these is given {} and drops them


def _without(kwargs, change):
    out = {k: v for k, v in kwargs.items() if k not in LEFT_OUT or k in change}
    return {**out, **change}


def check_oracle(name, fast, explicit, without, tol=TOL):
    """Fast equals explicit within ``tol`` and the rule's effect on the edited rows is >= 100 tol."""
    difference = float((fast.latents - explicit.latents).abs().max())
    assert difference <= tol, f"{name}: fast vs explicit {difference:.3g} > {tol:g}"
    # every edited row: the smallest of their largest changes
    effect = float((fast.latents[1:] - without.latents[1:]).abs().flatten(1).amax(1).min())
    assert effect >= 100 * tol, f"{name}: effect {effect:.3g} is {effect / tol:.0f} x the tolerance {tol:g} (< 100)"
    return effect / tol


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_matches_explicit_oracle(editor, case):
    kwargs, change = CASES[case]
    kwargs = dict(kwargs)
    targets = kwargs.pop("targets")
    fast, explicit = both_paths(editor, SRC, targets, **kwargs)
    without = editor.edit(SRC, targets, steps=STEPS, **_without(kwargs, change))
    ratio = check_oracle(case, fast, explicit, without)
    print(f"{case}: effect / tolerance {ratio:.0f}")
    for grid in fast.store.grids:  # the stored (post-edit) maps agree too
        assert torch.allclose(fast.store.average(max(grid)), explicit.store.average(max(grid)), atol=1e-5)


def test_edit_changes_the_image_and_injection_matters(editor):
    edited = editor.edit(SRC, "a blue square on a gray background", steps=STEPS, baseline=True)
    assert (edited.latents[0] - edited.latents[1]).abs().max() > 1e-3  # the edit is not the source
    base = editor.edit(SRC, "a blue square on a gray background", steps=STEPS, cross=0.0, self_attn=0.0)
    # no injection at all is exactly the fixed-seed baseline
    assert torch.allclose(
        base.latents,
        editor.edit(SRC, "a blue square on a gray background", steps=STEPS, rules=[EditRule()]).latents,
        atol=1e-4,
    )
    effect = float((edited.latents[1] - base.latents[1]).abs().max())
    assert effect >= 100 * TOL, f"injection moves the edit by {effect:.3g}, {effect / TOL:.0f} x the tolerance"
    assert len(edited.baseline) == 2


def test_custom_linear_rule_matches_explicit(editor):
    class DecoderOnly(EditRule):
        def __init__(self, inner):
            self.inner = inner

        def cross_weights(self, ctx):
            return self.inner.cross_weights(ctx) if ctx.place == "up" else None

    mapper = align(SRC, "a blue circle on a gray background", editor.tokenizer)
    rule = DecoderOnly(Replace(mapper, AlphaSchedule.build(STEPS, cross=1.0)))
    fast, explicit = both_paths(editor, SRC, mapper.target.text, rules=[rule])
    without = editor.edit(SRC, mapper.target.text, steps=STEPS, rules=[EditRule()])
    print(f"decoder-only replace: effect / tolerance {check_oracle('decoder-only', fast, explicit, without):.0f}")


def test_explicit_only_rule_refused_on_fast_path(editor):
    class Sharpen(EditRule):
        explicit_only = True

        def edit_cross(self, ctx, a_src, a_edit):
            return torch.softmax(a_src * 20, dim=-1)

    out = editor.edit(SRC, SRC, steps=2, rules=[Sharpen()], mode="explicit")
    assert out.images[1].size == (64, 64)
    with pytest.raises(ValueError, match="explicit"):
        editor.edit(SRC, SRC, steps=2, rules=[Sharpen()], mode="fast")


def test_same_prompt_full_injection_reproduces_the_source(editor):
    out = editor.edit(SRC, SRC, steps=STEPS, cross=1.0, self_attn=1.0)
    assert (out.latents[0] - out.latents[1]).abs().max() <= 1e-5


def test_stored_target_maps_are_source_maps_through_M(editor):
    target = "a blue jellybeans on a gray background"  # circle -> two tokens: M spreads the mass
    out = editor.edit(SRC, target, steps=STEPS, cross=1.0, kind="replace")
    M = align(SRC, target, editor.tokenizer, kind="replace").matrix
    for grid in out.store.grids:
        maps = out.store.average(max(grid))
        assert torch.allclose(maps[1], maps[0] @ M, atol=1e-6)


def test_seeds_are_bitwise_reproducible(editor):
    a = editor.edit(SRC, "a blue circle on a gray background", steps=4, seed=7)
    b = editor.edit(SRC, "a blue circle on a gray background", steps=4, seed=7)
    c = editor.edit(SRC, "a blue circle on a gray background", steps=4, seed=8)
    assert torch.equal(a.latents, b.latents) and not torch.equal(a.latents, c.latents)


def test_low_memory_two_passes_match_one_batch(editor):
    a = editor.edit(SRC, "a blue circle on a gray background", steps=4)
    b = editor.edit(SRC, "a blue circle on a gray background", steps=4, low_memory=True)
    assert (a.latents - b.latents).abs().max() <= 1e-4  # batch composition changes float sums only


def test_local_blend_mask_pools_upsamples_and_thresholds():
    blend = LocalBlend(["circle"], threshold=0.3)
    maps = torch.zeros(2, 4, 4, 77)
    maps[0, 0, 0, 3] = 1.0  # the source's word sits in the top-left cell
    maps[1, 3, 3, 3] = 0.2  # the edit's in the bottom-right one, weaker (normalised per image)
    maps[1, 0, 3, 5] = 0.5  # a token that is not a blend word
    weights = torch.zeros(2, 77)
    weights[:, 3] = 1.0
    mask = blend.mask(maps, weights, (8, 8))
    assert mask.shape == (2, 1, 8, 8)
    # nearest-upsampled (each cell is 2x2 latent pixels), then grown by max(1, 8 / 16) = 1 pixel
    assert mask[0, 0, :3, :3].all() and not mask[0, 0, 3:, :].any() and not mask[0, 0, :, 3:].any()
    assert mask[1, 0, 5:, 5:].all() and not mask[1, 0, :5, :].any()


def test_local_blend_pool_is_the_references_at_its_resolution():
    """At 64x64 latents from a 16x16 grid the growth equals the reference's 3x3 pool then upsample."""
    torch.manual_seed(0)
    maps = torch.rand(1, 16, 16, 77) ** 8  # peaky maps: thresholds cut through pooled regions
    weights = torch.zeros(1, 77)
    weights[0, 4] = 1.0
    blend = LocalBlend(["circle"], threshold=0.3)
    ours = blend.mask(maps, weights, (64, 64))
    m = maps[..., 4][:, None]
    m = torch.nn.functional.interpolate(torch.nn.functional.max_pool2d(m, 3, 1, 1), size=(64, 64))
    reference = m / m.amax() > 0.3
    assert torch.equal(ours, reference) and 0 < reference.float().mean() < 1


def test_local_blend_keeps_the_outside(editor):
    masks = []
    blend = LocalBlend(["circle"], threshold=0.99, start=0)
    original = blend.mask

    def spy(*args, **kwargs):
        masks.append(original(*args, **kwargs))
        return masks[-1]

    blend.mask = spy
    out = editor.edit(SRC, "a red square on a gray background", steps=STEPS, blend=blend)
    keep = ~(masks[-1][0] | masks[-1][1])[0]  # outside the union of the source's and the edit's mask
    diff = (out.latents[0] - out.latents[1]).abs().sum(0)
    assert keep.any() and (diff[keep] == 0).all()  # bit-identical to the source outside the mask
    assert (diff[~keep] > 0).any()  # and edited inside


def test_events_and_stop(editor):
    events, stop = [], threading.Event()

    def on_step(event):
        events.append(event)
        if event.step == 2:
            stop.set()

    out = editor.edit(SRC, "a blue circle on a gray background", steps=STEPS, callback=on_step, stop_event=stop)
    assert out.stopped and [e.step for e in events] == [0, 1, 2]
    assert events[0].timestep > events[-1].timestep  # noisy first
    assert events[0].preview().shape == (2, 64, 64, 3)
    assert set(events[0].attention) == {(8, 8), (16, 16)}


def _processor_types(editor):
    return {type(p) for p in editor.model.unet.attn_processors.values()}


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_processors_restored_after_exception_mid_run(editor, exc):
    before = dict(editor.model.unet.attn_processors)

    def boom(event):
        assert P2PAttnProcessor in _processor_types(editor)  # installed during the run
        if event.step == 1:
            raise exc("stop here")

    with pytest.raises(exc):
        editor.edit(SRC, "a blue circle on a gray background", steps=4, callback=boom)
    after = editor.model.unet.attn_processors
    assert all(after[k] is before[k] for k in before)
    assert editor.edit(SRC, "a blue circle on a gray background", steps=2).images  # still works


def test_sample_one_prompt_stores_attention(editor):
    out = editor.sample(SRC, steps=3)
    assert len(out.images) == 1 and out.store.average(8).shape == (1, 8, 8, 77)
    assert out.store.token_maps(0, [3], side=16).shape == (1, 16, 16)


def test_detail_store_keeps_heads_and_unet_parts_that_average_to_the_plain_maps(editor):
    from p2p_widgets.engine.store import AttentionStore

    store = AttentionStore(detail=True)
    editor.edit(SRC, "a blue circle on a gray background", steps=STEPS, store=store)
    for side in (8, 16):
        assert torch.allclose(store.detail_maps(side), store.average(side), atol=1e-5)  # the oracle
    assert {place for place, _ in store.detail_sums} == {"down", "mid", "up"}
    assert store.n_heads(16, "up") == 2
    heads = [store.detail_maps(16, "up", h) for h in range(2)]
    assert not torch.allclose(heads[0], heads[1])  # heads look at different things
    assert torch.allclose((heads[0] + heads[1]) / 2, store.detail_maps(16, "up"), atol=1e-6)
    word = store.token_maps(0, [3], side=16, place="down", head=1)
    assert word.shape == (1, 16, 16)
    for call, message in [
        (lambda: store.detail_maps(16, "mid"), "no 'mid' layers"),
        (lambda: store.detail_maps(16, "up", 5), "head 5 is out of range"),
        (lambda: store.token_maps(0, [3], step=0, place="up"), "over all steps"),
        (lambda: editor.edit(SRC, [], steps=2).store.detail_maps(), "detail=True"),
    ]:
        with pytest.raises(P2PError, match=message):
            call()


def _unet_rows(editor, *args, **kwargs):
    """``(result, batch rows of each UNet call)`` of ``editor.edit(*args, **kwargs)``."""
    rows = []
    hook = editor.model.unet.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    try:
        return editor.edit(*args, **kwargs), rows
    finally:
        hook.remove()


def test_the_baseline_reruns_only_the_targets_when_nothing_can_differ(editor):
    """Under DDIM (no noise drawn) the baseline's source row is the edit's own source row: the
    baseline pass runs the targets alone (a quarter fewer UNet rows for an edit + baseline)."""
    target = "a blue square on a gray background"
    edited, rows = _unet_rows(editor, SRC, target, steps=STEPS, seed=5, baseline=True)
    assert rows == [4] * STEPS + [2] * STEPS  # (source, target) x guidance, then the target x guidance
    assert edited.baseline[0] is edited.images[0]
    plain = editor.sample(target, steps=STEPS, seed=5).images[0]
    diff = np.abs(np.asarray(plain, np.int16) - np.asarray(edited.baseline[1], np.int16))
    assert diff.max() <= 1  # the same start and prompt, a different batch: rounding at most


def test_a_noise_drawing_scheduler_reruns_the_source_row_too(editor):
    from diffusers import EulerAncestralDiscreteScheduler

    scheduler = EulerAncestralDiscreteScheduler.from_config(editor.pipe.scheduler.config)
    _, rows = _unet_rows(
        editor, SRC, "a blue square on a gray background", steps=STEPS, scheduler=scheduler, baseline=True
    )
    # its noise is drawn for the whole batch: the baseline's target draws the edit's noise only in the same batch
    assert rows == [4] * (2 * STEPS)


def test_a_store_that_holds_a_run_is_refused_before_any_work(editor):
    """A second run would add to the first one's sums (LocalBlend reads them) or crash on another
    batch size: the store must be fresh, and the one given keeps its data."""
    from p2p_widgets.engine.store import AttentionStore

    store = AttentionStore()
    editor.edit(SRC, "a blue circle on a gray background", steps=2, store=store)
    sums = {g: s.clone() for g, s in store.sums.items()}
    for targets in ("a blue circle on a gray background", [SRC, SRC]):
        with pytest.raises(P2PError, match="already holds a run.*fresh AttentionStore"):
            editor.edit(SRC, targets, steps=2, store=store, blend=["circle"])
    assert store.n_steps == 2 and all(torch.equal(store.sums[g], s) for g, s in sums.items())


def test_numpy_scalars_are_windows_and_steps():
    """What np.linspace and sweep grids give: stored as plain Python numbers, so the JSON exports."""
    import json

    schedule = AlphaSchedule.build(np.int64(4), cross=np.int64(2), self_attn=np.float32(0.5))
    assert (schedule.n_evals, schedule.cross, schedule.self_attn) == (4, (0, 2), (0, 2))
    assert type(schedule.n_evals) is int and all(type(b) is int for b in schedule.cross)
    assert AlphaSchedule.from_dict(json.loads(json.dumps(schedule.to_dict()))) == schedule
