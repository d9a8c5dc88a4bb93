"""Prompt-to-Prompt on joint attention (Flux): the fast path equals the explicit definition
(engine/joint.py) with an effect far above the tolerance, for every P2P rule; runs rerun from JSON;
processors come back after errors; rules written for UNets are named."""

from __future__ import annotations

import pytest
import torch

from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline, tiny_sd3_pipeline
from p2p_widgets.engine.blend import LocalBlend
from p2p_widgets.engine.controls import MutualSelfAttention
from p2p_widgets.engine.rules import EditRule
from p2p_widgets.engine.sampler import Editor
from p2p_widgets.engine.spec import EditSpec
from p2p_widgets.errors import P2PError

SRC = "a big red circle left of a small blue square on a gray background"
SWAP = SRC.replace("red", "green")
ADD = SRC.replace("a gray background", "a striped gray background")
# float64: a random tiny model's edits move its latents by 1e-4 to 1e-2, and in float32 the fused
# call and the materialised softmax already differ by ~1e-6; in float64 they differ by ~1e-15
TOL = 1e-9


@pytest.fixture(scope="module", params=["dev", "cfg"])
def editor(request):
    """Flux with its guidance embedded (dev) and with true classifier-free guidance (schnell-like)."""
    dev = request.param == "dev"
    return Editor(tiny_flux_pipeline(seed=1, guidance_embeds=dev).to(torch.float64)), (3.5 if dev else 4.0)


CASES = {
    "replace": dict(target=SWAP),
    "refine": dict(target=ADD),
    "reweight": dict(target=SWAP, reweight={"green": 3.0}),
    # the tiny model's mask covers everything below a high threshold (as on the tiny UNets)
    "local-blend": dict(target=SWAP, blend=LocalBlend(["circle"], threshold=0.95)),
    "word-window": dict(target=SWAP, words={"green": (0.0, 0.5)}),
    "self-past-cross": dict(target=SWAP, cross=0.4),  # steps with the self share and no word map
}


@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_equals_the_explicit_definition(editor, case):
    editor, guidance = editor
    options = dict(CASES[case])
    target = options.pop("target")
    run = {**dict(seed=3, steps=5, guidance=guidance, height=64, width=64, cross=1.0, self_attn=1.0), **options}
    fast = editor.edit(SRC, target, mode="fast", **run)
    explicit = editor.edit(SRC, target, mode="explicit", **run)
    plain = editor.edit(
        SRC,
        target,
        rules=[EditRule()],
        **{k: v for k, v in run.items() if k in ("seed", "steps", "guidance", "height", "width")},
    )
    diff = (fast.latents - explicit.latents).abs().max().item()
    effect = (fast.latents[1] - plain.latents[1]).abs().max().item()
    assert diff <= TOL, diff
    assert effect >= 100 * TOL, f"effect / tolerance = {effect / TOL:.0f}"
    assert (fast.latents[0] - plain.latents[0]).abs().max() <= TOL  # injection never changes the source
    assert torch.allclose(fast.store.average().float(), explicit.store.average().float(), atol=1e-5)
    if "blend" in options:  # the blend itself moves the edit, not only the swap under it
        swap = editor.edit(SRC, target, mode="fast", **{k: v for k, v in run.items() if k != "blend"})
        assert (fast.latents[1] - swap.latents[1]).abs().max() >= 100 * TOL
    kinds = {kind for step in fast.controlled for _, kind in step}
    assert kinds == {"cross", "self"}
    print(f"{case}: fast vs explicit {diff:.1e}, effect / tolerance {effect / TOL:.0f}")


def test_stored_maps_are_the_edits_post_injection_maps(editor):
    """Inside the cross window the edit's stored image -> text map of a swapped word is the
    source's map of the word it replaced (M maps red -> green one to one)."""
    editor, guidance = editor
    run = dict(seed=3, steps=4, guidance=guidance, height=64, width=64)
    out = editor.edit(SRC, SWAP, cross=1.0, **run)
    own = editor.edit(SRC, SWAP, rules=[EditRule()], **run)
    red, green = out.prompts[0].positions("red"), out.prompts[1].positions("green")
    maps, own_maps = out.store.step_maps(0).float(), own.store.step_maps(0).float()
    assert torch.allclose(maps[1, ..., green], maps[0, ..., red], atol=1e-3)  # fp16 steps: 1e-3
    assert (own_maps[1, ..., green] - maps[1, ..., green]).abs().max() > 1e-2 * maps[0, ..., red].max()


def test_json_round_trip_reruns_bitwise(editor):
    editor, guidance = editor
    result = editor.edit(SRC, SWAP, seed=5, steps=4, guidance=guidance, height=64, width=64, reweight={"green": 2.0})
    again = editor.run(EditSpec.from_json(result.spec.to_json()))
    assert torch.equal(again.latents, result.latents)


def test_processors_restored_after_an_error_mid_run(editor):
    editor, guidance = editor
    before = dict(editor.model.denoiser.attn_processors)

    def boom(event):
        if event.step == 1:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        editor.edit(SRC, SWAP, steps=3, guidance=guidance, height=64, width=64, callback=boom)
    assert dict(editor.model.denoiser.attn_processors) == before
    fresh = editor.edit(SRC, SWAP, steps=3, guidance=guidance, height=64, width=64)
    again = editor.edit(SRC, SWAP, steps=3, guidance=guidance, height=64, width=64)
    assert torch.equal(fresh.latents, again.latents)


def test_unet_rules_are_named_on_dits():
    flux = Editor(tiny_flux_pipeline(seed=0))
    with pytest.raises(P2PError, match="MutualSelfAttention cannot run on flux"):
        flux.edit(SRC, SWAP, rules=[MutualSelfAttention()], steps=2, guidance=3.5, height=64, width=64)
    sd3 = Editor(tiny_sd3_pipeline(seed=0))
    with pytest.raises(P2PError, match="MutualSelfAttention cannot run on sd3"):
        sd3.edit(SRC, SWAP, rules=[MutualSelfAttention()], steps=2, guidance=7.0, height=64, width=64)
    for editor in (flux, sd3):  # still working
        assert torch.isfinite(editor.sample(SRC, steps=2, guidance=3.5, height=64, width=64).latents).all()


SD3_MODELS = {"sd3": dict(), "sd3.5": dict(sd35=True), "sd3-without-t5": dict(t5=False)}


@pytest.mark.parametrize("model", list(SD3_MODELS))
def test_sd3_p2p_over_both_token_segments(model):
    """SD3's text keys are CLIP's 77 positions then T5's: a word's positions are in both, M is
    block-diagonal (a CLIP token never feeds a T5 one), and the fast path equals the definition."""
    editor = Editor(tiny_sd3_pipeline(seed=1, **SD3_MODELS[model]).to(torch.float64))
    prompt = editor.prompt(SRC)
    clip_length = 77
    assert prompt.max_length == clip_length + editor.model.t5_length
    red = prompt.positions("red")
    assert red[0] < clip_length and (len(red) == 2) == ("t5" not in SD3_MODELS[model])
    run = dict(seed=3, steps=6, guidance=7.0, height=64, width=64, cross=1.0, self_attn=1.0)
    for target in (SWAP, ADD):
        fast = editor.edit(SRC, target, mode="fast", **run)
        explicit = editor.edit(SRC, target, mode="explicit", **run)
        plain = editor.edit(SRC, target, rules=[EditRule()], **run)
        matrix = fast.rules[0].mapper.matrix
        assert (
            matrix[:clip_length, clip_length:].abs().sum() == 0 and matrix[clip_length:, :clip_length].abs().sum() == 0
        )
        diff = (fast.latents - explicit.latents).abs().max().item()
        effect = (fast.latents[1] - plain.latents[1]).abs().max().item()
        assert diff <= TOL and effect >= 100 * TOL, (diff, effect / TOL)
        print(
            f"{model} {fast.rules[0].mapper.kind}: fast vs explicit {diff:.1e}, effect / tolerance {effect / TOL:.0f}"
        )


# -- K/V injection (Stable Flow, RF-Solver-Edit, mutual self-attention on image tokens) ---------------
OTHER = "a small yellow star above a big white triangle on a checkered black background"  # far from SRC
KV_CASES = {
    "keys-and-values": dict(),
    "values-in-single-blocks": dict(double=(), copy_keys=False, end_step=4),  # RF-Solver-Edit's form
    "double-block-0": dict(double=("0",), single=()),
    "queries-and-keys": dict(copy_queries=True, copy_values=False),  # Shin et al.'s form
}


@pytest.mark.parametrize("case", list(KV_CASES))
def test_kv_injection_fast_equals_explicit_and_changes_the_edit(editor, case):
    from p2p_widgets.engine.joint_controls import KVInjection

    editor, guidance = editor
    run = dict(seed=3, steps=6, guidance=guidance, height=64, width=64)
    rule = KVInjection(**KV_CASES[case])
    fast = editor.edit(SRC, OTHER, rules=[rule], mode="fast", **run)
    explicit = editor.edit(SRC, OTHER, rules=[rule], mode="explicit", **run)
    plain = editor.edit(SRC, OTHER, rules=[EditRule()], **run)
    diff = (fast.latents - explicit.latents).abs().max().item()
    effect = (fast.latents[1] - plain.latents[1]).abs().max().item()
    assert diff <= TOL, diff
    assert effect >= 100 * TOL, f"effect / tolerance = {effect / TOL:.0f}"
    assert (fast.latents[0] - plain.latents[0]).abs().max() <= TOL
    for step in (0, len(fast.store.steps) - 1):  # the stored maps are the same post-injection maps (fp16 steps)
        assert torch.allclose(fast.store.step_maps(step).float(), explicit.store.step_maps(step).float(), atol=1e-3)
    touched = {layer for step in fast.controlled for layer, _ in step}
    sites = {s.name: s for s in editor.model.sites()}
    chosen = {s.place for s in (sites[n] for n in touched)}
    assert chosen == {p for p in ("double", "single") if KV_CASES[case].get(p, ("all",))}
    print(f"{case}: fast vs explicit {diff:.1e}, effect / tolerance {effect / TOL:.0f}")


def test_kv_injection_in_every_block_copies_the_source_exactly():
    """Keys and values of every block from the source, no text change, no guidance: the edit row
    attends exactly as the source row, so with the same prompt its image is the source's."""
    from p2p_widgets.engine.joint_controls import KVInjection

    editor = Editor(tiny_flux_pipeline(seed=2).to(torch.float64))
    out = editor.edit(SRC, SRC, rules=[KVInjection()], steps=3, guidance=3.5, height=64, width=64)
    assert torch.equal(out.latents[0], out.latents[1])
    other = editor.edit(SRC, SWAP, rules=[KVInjection()], steps=3, guidance=3.5, height=64, width=64)
    assert not torch.equal(other.latents[0], other.latents[1])  # the text still differs


def test_kv_injection_round_trip_presets_and_bad_parameters():
    from p2p_widgets.engine.joint_controls import KVInjection

    editor = Editor(tiny_flux_pipeline(seed=0))
    rule = KVInjection.rf_solver_edit(steps=2, first_single=1, n_single=2)
    assert rule.values == {**rule.values, "double": (), "single": ("1",), "copy_keys": False, "end_step": 2}
    result = editor.edit(SRC, SWAP, rules=[rule], seed=4, steps=3, guidance=3.5, height=64, width=64)
    again = editor.run(EditSpec.from_json(result.spec.to_json()))
    assert torch.equal(again.latents, result.latents)
    assert KVInjection.stable_flow().single == ("9", "34", "35", "37", "6")
    for bad, message in (
        (dict(double=("first",)), "double blocks must be 'all' or block indices"),
        (dict(copy_keys=False, copy_values=False), "copy_queries, copy_keys and copy_values are off"),
        (dict(start_step=-1), "start_step"),
    ):
        with pytest.raises(P2PError, match=message):
            KVInjection(**bad)
    with pytest.raises(P2PError, match="start_step 3 is after end_step 1"):
        editor.edit(
            SRC, SWAP, rules=[KVInjection(start_step=3, end_step=1)], steps=4, guidance=3.5, height=64, width=64
        )
    from p2p_widgets.bench.geometries import tiny_pipeline

    unet = Editor(tiny_pipeline())
    with pytest.raises(P2PError, match="KVInjection edits joint attention"):
        unet.edit(SRC, SWAP, rules=[KVInjection()], steps=2)
    assert dict(unet.model.unet.attn_processors) == dict(Editor(unet.pipe).model.unet.attn_processors)


@pytest.mark.parametrize("text_first", [True, False])
def test_joint_kernel_agrees_with_the_definition_for_several_edits(text_first):
    """The fused kernel against the explicit definition on one half with five edits (a word map with
    a self share, injected keys and values only, a self share alone, a word map with injected queries
    and keys, none) in Flux's [text; image] and SD3's [image; text] orders: outputs and post-edit maps;
    injected inputs alone without maps kept are one plain call."""
    from p2p_widgets.engine.joint import JointPlan, joint_explicit, joint_fast

    gen = torch.Generator().manual_seed(0)
    n_text, n_img, heads, dim = 7, 20, 2, 8
    q, k, v = (torch.randn(6, heads, n_text + n_img, dim, generator=gen, dtype=torch.float64) for _ in range(3))
    text = slice(0, n_text) if text_first else slice(n_img, n_img + n_text)
    image = slice(n_text, n_text + n_img) if text_first else slice(0, n_img)
    P = torch.softmax(torch.randn(n_text, n_text, generator=gen, dtype=torch.float64), dim=-1)
    keep = (torch.rand(n_text, generator=gen, dtype=torch.float64) > 0.5).double()
    plans = [
        JointPlan((P, keep), share=0.7),
        JointPlan(inject=(False, True, True)),
        JointPlan(None, share=0.6),
        JointPlan((P, keep), inject=(True, True, False)),
        None,
    ]

    def edit_cross(e, a_src, a_edit):  # as a rule answers: its word map where it has one, else its own
        return a_edit if plans[e - 1].cross is None else a_src @ P + a_edit * keep

    explicit, explicit_maps = joint_explicit(q, k, v, 0.3, text, image, plans, edit_cross)
    fast, fast_maps = joint_fast(q, k, v, 0.3, text, image, plans)
    plain = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert (fast - explicit).abs().max() <= 1e-13 and (fast_maps - explicit_maps).abs().max() <= 1e-13
    assert (fast[5] - plain[5]).abs().max() <= 1e-13  # the plan-less edit is plain attention
    for e in (1, 2, 3, 4):  # each planned edit moves far above the tolerance
        assert (fast[e] - plain[e]).abs().max() >= 1e-11
    injected_only = [None, plans[1], None, None, None]
    bare, no_maps = joint_fast(q, k, v, 0.3, text, image, injected_only, keep_maps=False)
    assert no_maps is None
    assert (bare - joint_explicit(q, k, v, 0.3, text, image, injected_only, edit_cross)[0]).abs().max() <= 1e-13
