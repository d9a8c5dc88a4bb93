"""The joint-attention store holds the right maps: the image-query x text-key block of each joint
softmax (rows normalised over every key, image and text), of the conditional half, head-averaged and
averaged over the joint sites of one token grid, per step.

Checked three ways: ``block_maps`` against an explicit softmax on random queries and keys (also
past one key chunk); each site of a run (SD3 joint, SD3.5 joint and its image-only attn2, Flux double
and single stream) against an explicit softmax of the queries and keys that site attended with; and
the maps attention-map-diffusers (MIT, 1.0.0) records while the diffusers pipeline runs.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from unittest.mock import patch

import pytest
import torch

from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline, tiny_sd3_pipeline
from p2p_widgets.engine.joint import KEY_CHUNK, block_maps
from p2p_widgets.engine.processors import AttentionController
from p2p_widgets.engine.sampler import Editor
from p2p_widgets.engine.sites import sites_of
from p2p_widgets.engine.store import AttentionStore

PROMPT = "a big red circle left of a small blue square on a gray background"
STEPS, SIZE, SEED = 2, 64, 5
TOL = 1e-6  # float32 maps against a float64 softmax


def _explicit(q, k, image: slice, text: slice) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d))`` over every key, in float64, sliced to image queries x text keys."""
    q, k = q.double(), k.double()
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return probs[:, :, image, text]


# -- 1. the chunked normaliser ---------------------------------------------------------------------


@pytest.mark.parametrize("n_keys", [77, KEY_CHUNK, KEY_CHUNK + 1, 2 * KEY_CHUNK + 500])
@pytest.mark.parametrize("text_first", [False, True], ids=["sd3-order", "flux-order"])
def test_block_maps_is_the_joint_softmax_block(n_keys, text_first):
    gen = torch.Generator().manual_seed(n_keys)
    b, h, d, n_text = 2, 3, 16, 29
    n_img = n_keys - n_text
    q = torch.randn(b, h, n_keys, d, generator=gen) * 2.0  # logits spread over ~+-10: the normaliser matters
    k = torch.randn(b, h, n_keys, d, generator=gen) * 2.0
    text = slice(0, n_text) if text_first else slice(n_img, n_keys)
    image = slice(n_text, n_keys) if text_first else slice(0, n_img)
    q_img = q[:, :, image][:, :, :48]  # a few image queries are enough; every key stays
    scale = d**-0.5

    ours = block_maps(q_img, k, text, scale)
    want = _explicit(q_img, k, slice(None), text)
    diff = (ours.double() - want).abs().max().item()
    print(f"block_maps, {n_keys} keys ({'text first' if text_first else 'text last'}): max |diff| {diff:.2e}")
    assert ours.dtype == torch.float32 and ours.shape == (b, h, 48, n_text)
    assert diff <= TOL

    # normalised over all keys: the text block's rows fall short of 1, the image block takes the rest
    rows = ours.double().sum(-1)
    assert (1 - rows).mean() > 0.1, rows.mean()
    rest = block_maps(q_img, k, image, scale).double().sum(-1)
    assert (rows + rest - 1).abs().max() <= 1e-5  # float32 terms summed over up to 2.5k keys
    # and a text-only softmax (what a per-block normaliser would give) is far from it
    text_only = torch.softmax((q_img.double() @ k[:, :, text].double().transpose(-1, -2)) * scale, -1)
    assert (text_only - want).abs().max() > 1e-2


# -- 2. every site of a run against its explicit softmax -------------------------------------------


class _SpyStore(AttentionStore):
    """Records each addition with the call it came from (``_Spy.current``)."""

    spy = None

    def add(self, grid, maps, place=None, heads=None):
        self.spy.current["added"].append((grid, maps.detach().clone(), place, heads.detach().clone()))
        return super().add(grid, maps, place=place, heads=heads)


class _Spy:
    """Wraps ``AttentionController.attend_joint`` during one run: the site, the queries and keys it
    attended with (B, heads, tokens, dim), the step and what it added to the store."""

    def __init__(self):
        self.calls, self.current = [], None

    def run(self, editor, **kwargs):
        original = AttentionController.attend_joint

        def attend_joint(ctrl, proc, q, k, v, scale, text, image):
            self.current = dict(site=proc.site, q=q.detach().clone(), k=k.detach().clone(), step=ctrl.step, added=[])
            self.calls.append(self.current)
            try:
                return original(ctrl, proc, q, k, v, scale, text, image)
            finally:
                self.current = None

        store = _SpyStore(detail=True, step_dtype=torch.float32)
        store.spy = self
        AttentionController.attend_joint = attend_joint
        try:
            return editor.sample(PROMPT, seed=SEED, steps=STEPS, height=SIZE, width=SIZE, store=store, **kwargs)
        finally:
            AttentionController.attend_joint = original


CASES = {  # name -> (pipeline builder, engine guidance, pipeline kwargs)
    "sd3": (lambda: tiny_sd3_pipeline(seed=3), 7.0, dict(guidance_scale=7.0)),
    "sd3.5": (lambda: tiny_sd3_pipeline(seed=3, sd35=True), 7.0, dict(guidance_scale=7.0)),
    "flux-dev": (lambda: tiny_flux_pipeline(seed=4), 3.5, dict(guidance_scale=3.5)),
}


@functools.cache
def _case(name):
    build, guidance, _ = CASES[name]
    pipe = build()
    spy = _Spy()
    result = spy.run(Editor(pipe), guidance=guidance)
    return pipe, spy, result


def _unpack(packed, h, w):
    """FluxPipeline's packed latents (B, h/2 * w/2, 4C) back to (B, C, h, w)."""
    b, _, c4 = packed.shape
    return packed.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c4 // 4, h, w)


def _pipeline_latents(pipe, **kwargs):
    gen = torch.Generator("cpu").manual_seed(SEED)
    out = pipe(
        PROMPT, height=SIZE, width=SIZE, num_inference_steps=STEPS, generator=gen, output_type="latent", **kwargs
    ).images
    side = SIZE // pipe.vae_scale_factor
    return out if out.ndim == 4 else _unpack(out, side, side)


def _layout(pipe, site, n_tokens):
    """Where the image and text tokens lie at ``site``, from the model alone: the image tokens are the
    latent grid over the patch (Flux packs 2x2), SD3 puts them first, Flux puts the text first."""
    flux = hasattr(pipe.transformer, "single_transformer_blocks")
    patch = 2 if flux else pipe.transformer.config.patch_size
    n_img = (SIZE // pipe.vae_scale_factor // patch) ** 2
    n_text = n_tokens - n_img
    if flux:
        return slice(n_text, n_tokens), slice(0, n_text), n_img
    return slice(0, n_img), slice(n_img, n_tokens), n_img


def _explicit_call(pipe, call, row=-1):
    """(1, heads, n_img, n_text): the explicit image -> text block of one row of the batch (default
    the conditional one, the last: SD3's guidance batch is [uncond; cond], Flux-dev's is the prompt)."""
    image, text, _ = _layout(pipe, call["site"], call["q"].shape[2])
    rows = slice(row, row + 1 if row != -1 else None)
    return _explicit(call["q"][rows], call["k"][rows], image, text)


@pytest.mark.parametrize("name", list(CASES))
def test_stored_maps_are_each_sites_joint_softmax(name):
    pipe, spy, result = _case(name)
    store = result.store
    sites = sites_of(pipe.transformer)
    reading = {s.name for s in sites if s.kind in ("joint", "single")}
    assert reading and all(s.reads_text for s in sites if s.name in reading)

    # every site ran at every step; the text-reading ones added once each, SD3.5's image-only attn2 never
    per_step = defaultdict(list)
    for call in spy.calls:
        per_step[call["step"]].append(call)
        assert len(call["added"]) == (1 if call["site"].name in reading else 0), (call["site"], len(call["added"]))
    assert sorted(per_step) == list(range(STEPS))
    for calls in per_step.values():
        assert [c["site"].name for c in calls] == [s.name for s in sites]
    if name == "sd3.5":
        assert any(c["site"].kind == "image-self" for c in spy.calls)

    worst, margins = defaultdict(float), defaultdict(lambda: math.inf)
    detail_sum, detail_n = defaultdict(float), defaultdict(int)
    for step, calls in per_step.items():
        step_sum, n_sites = 0.0, 0
        for call in calls:
            if call["site"].name not in reading:
                continue
            want = _explicit_call(pipe, call)  # (1, H, n_img, n_text)
            _, _, n_img = _layout(pipe, call["site"], call["q"].shape[2])
            grid = (math.isqrt(n_img),) * 2
            got_grid, got_mean, place, got_heads = call["added"][0]
            assert got_grid == grid and place == call["site"].place
            kind = call["site"].kind
            worst[kind] = max(worst[kind], (got_heads.double() - want).abs().max().item())
            # what this comparison tells apart, each >= 100x the tolerance: normalising over the text keys
            # only, and (SD3's guidance batch) the unconditional row
            assert (want.sum(-1) - 1).abs().min() > 1e-3  # image keys take a share of every row
            text_only = want / want.sum(-1, keepdim=True)
            margins["text-only softmax"] = min(margins["text-only softmax"], (got_heads - text_only).abs().max().item())
            if call["q"].shape[0] == 2:
                uncond = _explicit_call(pipe, call, row=0)
                margins["uncond row"] = min(margins["uncond row"], (got_heads - uncond).abs().max().item())
            worst[kind] = max(worst[kind], (got_mean.double() - want.mean(1)).abs().max().item())
            step_sum, n_sites = step_sum + want.mean(1), n_sites + 1
            detail_sum[place] = detail_sum[place] + want
            detail_n[place] += 1
        # the step's map: the mean over the sites, (1, h, w, L)
        want_step = (step_sum / n_sites).reshape(1, *grid, -1)
        assert store.steps[step][grid].dtype == torch.float32
        worst["step mean"] = max(worst["step mean"], (store.step_maps(step).double() - want_step).abs().max().item())
    # detail: per place ("double" / "single"), per head, the mean over sites and steps
    for place, total in detail_sum.items():
        want = (total / detail_n[place]).reshape(1, total.shape[1], *grid, -1)
        for head in range(want.shape[1]):
            got = store.detail_maps(place=place, head=head).double()
            worst[f"detail {place}"] = max(worst[f"detail {place}"], (got - want[:, head]).abs().max().item())
    print(f"{name}: max |stored - explicit softmax| " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    print(f"{name}: smallest max |stored - wrong map| " + ", ".join(f"{k} {v:.2e}" for k, v in margins.items()))
    assert min(margins.values()) >= 100 * TOL, dict(margins)
    assert set(worst) >= ({"joint", "single"} if name.startswith("flux") else {"joint"})
    assert max(worst.values()) <= TOL, dict(worst)


@pytest.mark.parametrize("name", list(CASES))
def test_sampling_with_a_store_equals_the_pipeline(name):
    pipe, _, result = _case(name)
    theirs = _pipeline_latents(pipe, **CASES[name][2])
    diff = (result.latents - theirs).abs().max().item()
    print(f"{name}: max |engine (storing) - pipeline| latents {diff:.2e}")
    assert diff <= 1e-5


# -- 3. attention-map-diffusers on the diffusers pipeline ------------------------------------------


@pytest.mark.parametrize("mode", ["exact", "fast"])
@pytest.mark.parametrize("name", list(CASES))
def test_stored_maps_equal_attention_map_diffusers(name, mode):
    """attention-map-diffusers 1.0.0 wraps diffusers' own processors (JointAttnProcessor2_0,
    FluxAttnProcessor) while the pipeline samples, recomputing ``softmax(q k^T * scale)`` over the
    whole joint key sequence and slicing the image -> text block after the softmax (``capture_qk``:
    "slicing K first would incorrectly make every relation sum to one"): the same normalisation as
    ours, so the maps are compared as they are. ``heads="mean"`` is the mean over heads as ours;
    ``timesteps="all"`` keeps every step (by default only the last), numbered in order as ours. Its
    text keys are the encoder states in order (SD3: CLIP-L+G's 77 positions, then T5; Flux: T5), the
    layout the engine hands the store. It records the whole guidance batch ([uncond; cond] for SD3):
    its last row is compared. It records no image -> text relation for SD3.5's attn2 (image only, as
    ours stores nothing there) and nothing for Flux's single-stream blocks (its Flux processor
    captures only calls given encoder states): those are compared with the explicit softmax above."""
    from attention_map_diffusers import AttentionCapture

    pipe, spy, result = _case(name)
    with AttentionCapture(pipe, relations="image->text", timesteps="all", heads="mean", mode=mode) as capture:
        latents = _pipeline_latents(pipe, **CASES[name][2])
    maps = capture.compute()
    # the same trajectory: the maps of every step are comparable
    assert (result.latents - latents).abs().max() <= 1e-5

    theirs = {}
    for record in maps.records:
        assert record.relation == "image->text" and record.data.shape[1] == 1
        key = (record.layer_id.removeprefix("transformer."), record.step_index)
        assert key not in theirs
        theirs[key] = record.data
    sites = sites_of(pipe.transformer)
    double = {s.module for s in sites if s.kind == "joint"}
    assert {layer for layer, _ in theirs} == double  # SD3.5's attn2 and Flux's single blocks: none
    assert {step for _, step in theirs} == set(range(STEPS))

    worst = 0.0
    for call in spy.calls:
        module = call["site"].module
        if module not in double:
            continue
        ours = call["added"][0][1]  # (1, n_img, n_text): the site's head-averaged map of the cond row
        other = theirs.pop((module, call["step"]))
        assert other.shape == (call["q"].shape[0], 1, *ours.shape[1:])
        worst = max(worst, (ours - other[-1:, 0].float()).abs().max().item())
    assert not theirs  # each of their maps met one of ours
    print(f"{name} ({mode}): max |ours - attention-map-diffusers| per double-stream site {worst:.2e}")
    assert worst <= TOL


def test_fused_softmax_normaliser_equals_the_chunked_one():
    """On the CPU the store's normaliser comes from torch's fused attention kernel (with the output
    of plain attention, or keys as values); it equals the key-chunked log-sum-exp and the explicit one."""
    from p2p_widgets.engine.joint import KEY_CHUNK, attention_with_lse, chunked_lse, softmax_lse

    g = torch.Generator().manual_seed(0)
    for n_keys in (80, KEY_CHUNK + 7):
        q, k, v = (torch.randn(2, 3, n_keys, 16, generator=g) * 2 for _ in range(3))
        scale = 16**-0.5
        explicit = torch.logsumexp((q.double() @ k.double().transpose(-1, -2)) * scale, dim=-1)
        out, lse = attention_with_lse(q, k, v, scale)
        for name, value in (
            ("fused", softmax_lse(q, k, scale)),
            ("chunked", chunked_lse(q, k, scale)),
            ("with out", lse),
        ):
            assert (value.double() - explicit).abs().max() <= 1e-5, name
        assert torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale), atol=1e-6)
        assert (chunked_lse(q, k, 2 * scale).double() - explicit).abs().max() > 1e-1  # the scale matters
        # some query rows only (the P2P kernel reads its image rows'), fused and, as off the CPU, not
        rows = slice(5, 40)
        for fused in (True, False):
            with patch("p2p_widgets.engine.joint._fused_lse", lambda *a, fused=fused: fused):
                out_rows, lse_rows = attention_with_lse(q, k, v, scale, rows=rows)
            assert lse_rows.shape == (2, 3, 35) and (lse_rows.double() - explicit[:, :, rows]).abs().max() <= 1e-5
            assert torch.allclose(out_rows, out, atol=1e-6)


# -- 4. text -> image maps on request ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_text_to_image_maps_are_the_text_queries_softmax_on_the_image_keys(name):
    """``AttentionStore(text_to_image=True)``: each token's map is the mean over sites and steps of its
    query's joint-softmax probabilities on the image keys (normalised over every key)."""
    build, guidance, _ = CASES[name]
    pipe, spy = build(), _Spy()
    original = AttentionController.attend_joint
    store = AttentionStore(text_to_image=True, step_dtype=torch.float32)

    def attend_joint(ctrl, proc, q, k, v, scale, text, image):
        spy.calls.append(dict(site=proc.site, q=q.detach().clone(), k=k.detach().clone()))
        return original(ctrl, proc, q, k, v, scale, text, image)

    AttentionController.attend_joint = attend_joint
    try:
        result = Editor(pipe).sample(
            PROMPT, seed=SEED, steps=STEPS, height=SIZE, width=SIZE, guidance=guidance, store=store
        )
    finally:
        AttentionController.attend_joint = original
    want, wrong, n = 0.0, 0.0, 0
    for call in spy.calls:
        if not call["site"].reads_text:
            continue
        image, text, n_img = _layout(pipe, call["site"], call["q"].shape[2])
        q, k = call["q"][-1:].double(), call["k"][-1:].double()
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        want = want + probs[0, :, text, image].mean(0)  # (L, n_img)
        image_only = torch.softmax(q[:, :, text] @ k[:, :, image].transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
        wrong, n = wrong + image_only[0].mean(0), n + 1
    side = math.isqrt(n_img)
    length = want.shape[0]
    got = result.store.text_image_maps(0, range(length)).double()
    diff = (got - (want / n).reshape(length, side, side)).abs().max().item()
    margin = (got - (wrong / n).reshape(length, side, side)).abs().max().item()
    print(f"{name}: text -> image maps vs explicit {diff:.2e}; vs an image-keys-only softmax {margin:.2e}")
    assert diff <= TOL and margin >= 100 * TOL


def test_text_to_image_maps_follow_injected_keys_and_are_named_where_missing():
    """An edit whose image keys are the source's (K/V injection): its text rows read the injected
    keys on the fast and the explicit path alike; a UNet run or a plain store says why it has none."""
    from p2p_widgets.bench.geometries import tiny_pipeline
    from p2p_widgets.engine.joint_controls import KVInjection
    from p2p_widgets.engine.rules import EditRule
    from p2p_widgets.errors import P2PError

    editor = Editor(tiny_flux_pipeline(seed=4))
    other = "a small yellow star above a big white triangle on a checkered black background"
    run = dict(seed=SEED, steps=STEPS, height=SIZE, width=SIZE, guidance=3.5)
    maps = {}
    for mode in ("fast", "explicit"):
        store = AttentionStore(text_to_image=True)
        editor.edit(PROMPT, other, rules=[KVInjection()], mode=mode, store=store, **run)
        maps[mode] = store.text_image_maps(1, range(4))
    own = AttentionStore(text_to_image=True)
    editor.edit(PROMPT, other, rules=[EditRule()], store=own, **run)
    assert (maps["fast"] - maps["explicit"]).abs().max() <= TOL
    assert (maps["fast"] - own.text_image_maps(1, range(4))).abs().max() >= 100 * TOL
    plain = AttentionStore()
    editor.sample(PROMPT, store=plain, **run)
    with pytest.raises(P2PError, match="text_to_image=True"):
        plain.text_image_maps(0, [0])
    length = own.text_image_sums[own.grid()].shape[-1]
    for bad in ([length], [-1]):  # named, not an IndexError nor a silent wrap to the last position
        with pytest.raises(P2PError, match=f"token positions \\{bad}\\ are out of range"):
            own.text_image_maps(1, bad)
        with pytest.raises(P2PError, match="out of range"):
            own.token_maps(1, bad)
    with pytest.raises(P2PError, match="prompt index 2 is out of range"):
        own.text_image_maps(2, [0])
    unet = AttentionStore(text_to_image=True)
    Editor(tiny_pipeline(seed=0)).sample(PROMPT, steps=2, store=unet)
    with pytest.raises(P2PError, match="joint attention"):
        unet.text_image_maps(0, [1])
