"""Methods beyond P2P (MasaCtrl, Plug-and-Play, StyleAligned, Combine) on the engine's hooks:
the fast path against materialised attention, the maths of each hook against a hand computation,
the layers they choose, restored processors and hooks, bad parameters, and JSON reruns."""

import json
import math

import pytest
import torch

from p2p_widgets.engine.controls import (
    PNP_FEATURE,
    MaskedMutualSelfAttention,
    MutualSelfAttention,
    PlugAndPlay,
    StyleAligned,
    adain,
)
from p2p_widgets.engine.params import Param
from p2p_widgets.engine.processors import AttentionController, P2PAttnProcessor
from p2p_widgets.engine.rules import Combine, EditRule, LayerContext, Replace, registered_rules
from p2p_widgets.engine.sites import AttentionSite, sites_of
from p2p_widgets.engine.spec import EditSpec
from p2p_widgets.errors import P2PError

SRC = "a red circle on a gray background"
TGT = "a blue circle on a gray background"
STEPS = 6
TOL = 1e-4  # fast vs explicit: float32 summation order (observed up to 4.8e-5)


@pytest.fixture(scope="module")
def inversion(editor):
    image = editor.edit(SRC, [], steps=STEPS).images[0]
    return editor.invert(image, "", method="ddim", steps=STEPS)


def _rules():
    # settings where each rule's effect on the edit is large on the tiny model (>= 100 TOL): the
    # union variant from step 0 and every layer (from step 2 and layer 2 it moved the edit by 7e-3)
    return {
        "masactrl": (MutualSelfAttention(start_step=1), {}),
        "masactrl_union": (MutualSelfAttention(start_step=0, start_layer=0, union=True), {}),
        "masactrl_masked": (MaskedMutualSelfAttention(start_step=1, source_words=["circle"]), {}),
        "style_aligned": (StyleAligned(), {}),
        "style_aligned_values": (StyleAligned(adain_values=True, share_attention=False), {}),
        "pnp": (PlugAndPlay(), {"inversion": True}),
    }


def check_oracle(name, fast, explicit, without, tol=TOL):
    """Fast equals explicit within ``tol``, and the rule moves the edit (row 1) by at least 100 tol
    from ``without`` (the same run without the rule), so a fast path that scaled the rule's term by
    0.95 would fail. Returns the ratio effect / tol."""
    difference = float((fast.latents - explicit.latents).abs().max())
    assert difference <= tol, f"{name}: fast vs explicit {difference:.3g} > {tol:g}"
    effect = float((fast.latents[1] - without.latents[1]).abs().max())
    assert effect >= 100 * tol, f"{name}: effect {effect:.3g} is {effect / tol:.0f} x the tolerance {tol:g} (< 100)"
    return effect / tol


@pytest.mark.parametrize("name", sorted(_rules()))
def test_fast_path_matches_materialised_attention(editor, inversion, name):
    rule, opts = _rules()[name]
    source = "" if opts.get("inversion") else SRC
    extra = {"inversion": inversion} if opts.get("inversion") else {}
    fast = editor.edit(source, TGT, rules=[rule], steps=STEPS, mode="fast", **extra)
    explicit = editor.edit(source, TGT, rules=[rule], steps=STEPS, mode="explicit", **extra)
    plain = editor.edit(source, TGT, rules=[EditRule()], steps=STEPS, **extra)
    print(f"{name}: effect / tolerance {check_oracle(name, fast, explicit, plain):.0f}")
    assert (fast.latents[0] - plain.latents[0]).abs().max() <= 1e-5 or opts.get("inversion")  # not the source
    if name == "masactrl_masked":  # the masks matter too: not plain MasaCtrl on the same steps
        unmasked = editor.edit(source, TGT, rules=[MutualSelfAttention(start_step=1)], steps=STEPS, **extra)
        print(f"{name} vs unmasked: effect / tolerance {check_oracle(name, fast, explicit, unmasked):.0f}")


def test_masactrl_with_a_p2p_word_swap(editor):
    """Composition: P2P's cross-attention edit and MasaCtrl's mutual self-attention together."""
    swap = editor.build_rules(editor.prompt(SRC), [editor.prompt(TGT)], STEPS, self_attn=0.0)[0]
    both = Combine(swap, MutualSelfAttention(start_step=1))
    fast = editor.edit(SRC, TGT, rules=[both], steps=STEPS, mode="fast")
    explicit = editor.edit(SRC, TGT, rules=[both], steps=STEPS, mode="explicit")
    for part in both.rules:  # each part alone is >= 100 TOL away: the other part's effect shows
        alone = editor.edit(SRC, TGT, rules=[part], steps=STEPS)
        print(
            f"without {type(part).__name__}: effect / tolerance {check_oracle('combined', fast, explicit, alone):.0f}"
        )
    kinds = {kind for step in fast.controlled for _, kind in step}
    assert kinds == {"cross", "self"}


# -- the maths of each hook, on one layer, against a hand computation ------------------------------
def _layer(controller, name, n_layers_index=(0, 1)):
    controller.layer_index[name] = n_layers_index
    cross = ".attn2." in name
    place = "down" if name.startswith("down") else "mid" if name.startswith("mid") else "up"
    keys = ("text",) if cross else ("image",)
    site = AttentionSite(name, "cross" if cross else "self", 0, place, place, 0, ("image",), keys)
    return P2PAttnProcessor(controller, site)


def _qkv(batch, tokens=16, heads=2, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, tokens, dim, generator=g) for _ in range(3)]


def _attn(q, k, v, scale):
    return torch.softmax(q @ k.transpose(-1, -2) * scale, -1) @ v


@pytest.mark.parametrize("mode", ["fast", "explicit"])
def test_masactrl_edit_rows_attend_to_the_source_in_both_halves(mode):
    rule = MutualSelfAttention(start_step=0, start_layer=0)
    c = AttentionController(2, [rule], mode=mode, latent_size=(4, 4))
    proc = _layer(c, "up_blocks.0.attentions.0.transformer_blocks.0.attn1.processor")
    q, k, v = _qkv(4)  # [uncond src, uncond edit, cond src, cond edit]
    out = c.attend(proc, q, k, v, 0.5)
    for src, edit in ((0, 1), (2, 3)):
        assert torch.allclose(out[src], _attn(q[src], k[src], v[src], 0.5), atol=1e-5)
        assert torch.allclose(out[edit], _attn(q[edit], k[src], v[src], 0.5), atol=1e-5)
    union = AttentionController(2, [MutualSelfAttention(start_step=0, start_layer=0, union=True)], mode=mode)
    out = union.attend(_layer(union, proc.name), q, k, v, 0.5)
    keys, values = torch.cat([k[2], k[3]], 1), torch.cat([v[2], v[3]], 1)
    assert torch.allclose(out[3], _attn(q[3], keys, values, 0.5), atol=1e-5)


@pytest.mark.parametrize("mode", ["fast", "explicit"])
def test_masked_masactrl_splits_the_source_keys_by_the_objects_masks(mode, tokenizer):
    from p2p_widgets.engine.prompts import as_prompt
    from p2p_widgets.engine.store import AttentionStore

    rule = MaskedMutualSelfAttention(start_step=0, start_layer=0, source_words=["circle"], threshold=0.5)
    rule.bind(as_prompt(SRC, tokenizer), as_prompt(TGT, tokenizer))
    store = AttentionStore()
    c = AttentionController(2, [rule], store=store, mode=mode, latent_size=(4, 4))
    g = torch.Generator().manual_seed(3)
    maps = torch.rand(2, 16, 77, generator=g)  # this step's cross maps so far (source, edit) at 4x4
    store.add((4, 4), maps)
    q, k, v = _qkv(4, seed=4)
    out = c.attend(_layer(c, "up_blocks.0.attentions.0.transformer_blocks.0.attn1.processor"), q, k, v, 0.5)
    circle = rule._tokens[0]
    masks = []
    for row in range(2):  # by hand: word-summed, min-max normalised, >= threshold
        m = maps[row][:, circle].sum(-1)
        masks.append((m - m.min()) / (m.max() - m.min()) >= 0.5)
    assert 0 < masks[0].sum() < 16 and 0 < masks[1].sum() < 16
    for s, e in ((0, 1), (2, 3)):
        fg = _attn(q[e], k[s][:, masks[0]], v[s][:, masks[0]], 0.5)
        bg = _attn(q[e], k[s][:, ~masks[0]], v[s][:, ~masks[0]], 0.5)
        inside = masks[1][:, None].float()
        assert torch.allclose(out[e], fg * inside + bg * (1 - inside), atol=1e-5)


def test_style_aligned_is_adain_then_shared_keys():
    c = AttentionController(2, [StyleAligned()], latent_size=(4, 4))
    proc = _layer(c, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor")
    q, k, v = _qkv(4, seed=1)
    out = c.attend(proc, q, k, v, 0.5)
    for s, e in ((0, 1), (2, 3)):
        # AdaIN by hand: per head and channel over tokens, unbiased variance + 1e-5 as the authors
        qn = (q[e] - q[e].mean(1, keepdim=True)) / (q[e].var(1, keepdim=True) + 1e-5).sqrt()
        qn = qn * (q[s].var(1, keepdim=True) + 1e-5).sqrt() + q[s].mean(1, keepdim=True)
        assert torch.allclose(qn, adain(q[e], q[s]), atol=1e-6)
        keys = torch.cat([adain(k[e], k[s]), k[s]], 1)
        assert torch.allclose(out[e], _attn(qn, keys, torch.cat([v[e], v[s]], 1), 0.5), atol=1e-5)
        assert torch.allclose(out[s], _attn(q[s], k[s], v[s], 0.5), atol=1e-5)


# StyleAligned's settings beyond AdaIN + shared keys (its authors' StyleAlignedArgs): each moves the
# edit from the default rule by >= 100 x the tolerance, and the fast path equals the explicit one
STYLE_SETTINGS = {
    "share_group_norm": {"share_group_norm": True},
    "shared_score_shift": {"shared_score_shift": math.log(2)},
    "shared_score_scale": {"shared_score_scale": 0.5},
    "only_self_level": {"only_self_level": 0.5},
}


@pytest.mark.parametrize("name", sorted(STYLE_SETTINGS))
def test_style_aligned_setting_fast_matches_explicit(editor, name):
    rule = StyleAligned(**STYLE_SETTINGS[name])
    fast = editor.edit(SRC, TGT, rules=[rule], steps=STEPS, mode="fast")
    explicit = editor.edit(SRC, TGT, rules=[rule], steps=STEPS, mode="explicit")
    default = editor.edit(SRC, TGT, rules=[StyleAligned()], steps=STEPS)
    print(f"StyleAligned {name}: effect / tolerance {check_oracle(name, fast, explicit, default):.0f}")
    assert (fast.latents[0] - default.latents[0]).abs().max() <= 1e-5  # the source row is the source's


def test_style_aligned_shift_and_scale_act_on_the_source_keys():
    rule = StyleAligned(shared_score_shift=0.7, shared_score_scale=0.5)
    c = AttentionController(2, [rule], latent_size=(4, 4))
    q, k, v = _qkv(4, seed=3)
    out = c.attend(_layer(c, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor"), q, k, v, 0.5)
    for s, e in ((0, 1), (2, 3)):
        logits = adain(q[e], q[s]) @ torch.cat([adain(k[e], k[s]), 0.5 * k[s]], 1).transpose(-1, -2) * 0.5
        logits[..., 16:] += 0.7  # the source's 16 keys
        expected = torch.softmax(logits, -1) @ torch.cat([v[e], v[s]], 1)
        assert torch.allclose(out[e], expected, atol=1e-5)
        assert torch.allclose(out[s], _attn(q[s], k[s], v[s], 0.5), atol=1e-5)


def test_style_aligned_group_norm_statistics_cover_the_source():
    c = AttentionController(3, [StyleAligned(share_group_norm=True), EditRule()], latent_size=(4, 4))
    norm = torch.nn.GroupNorm(2, 4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0), norm.bias.uniform_(-1.0, 1.0)
    x = (
        torch.randn(6, 4, 4, 4, generator=torch.Generator().manual_seed(4))
        * torch.arange(1.0, 7.0)[:, None, None, None]
    )
    with torch.no_grad():
        out = c.edit_from_inputs("down_blocks.0.resnets.0.norm1", norm, x, norm(x))
    for s, e in ((0, 1), (3, 4)):
        both = torch.cat([x[e], x[s]], dim=1).reshape(2, -1)  # each group: the edit's and the source's
        mean, var = both.mean(-1), both.var(-1, unbiased=False)
        by_hand = (x[e].reshape(2, -1) - mean[:, None]) / (var[:, None] + norm.eps).sqrt()
        by_hand = by_hand.reshape(4, 4, 4) * norm.weight[:, None, None] + norm.bias[:, None, None]
        assert torch.allclose(out[e], by_hand, atol=1e-5)
    for row in (0, 2, 3, 5):  # the sources and the edit under another rule keep their own statistics
        assert torch.allclose(out[row], norm(x[row : row + 1])[0], atol=1e-6)


def test_style_aligned_only_self_level_counts_layers_as_its_authors():
    # the authors number self-attention in unet.attn_processors order (down, up, mid), not in the
    # order the UNet runs them, and leave every n // int(level n)-th layer alone
    def site(name, place):
        return AttentionSite(name, "self", 0, place, place, 0, ("image",), ("image",))

    sites = [site(f"down{i}", "down") for i in range(6)] + [site("mid", "mid")]
    sites += [site(f"up{i}", "up") for i in range(9)]  # 16 in execution order
    rule = StyleAligned(only_self_level=0.3)  # int(4.8) = 4 layers alone: every 4th of 16
    rule.on_sites(sites)
    registered = [f"down{i}" for i in range(6)] + [f"up{i}" for i in range(9)] + ["mid"]
    assert set(registered) - rule._shared == {registered[i] for i in (0, 4, 8, 12)}
    rule.on_sites(sites)
    rule.only_self_level = 0.75  # over one half: all but every 4th alone
    rule.on_sites(sites)
    assert rule._shared == {registered[i] for i in (0, 4, 8, 12)}
    rule.only_self_level = 1.0
    rule.on_sites(sites)
    assert rule._shared == frozenset()
    rule.only_self_level = 0.0
    rule.on_sites(sites)
    assert rule._shared is None  # every layer


def test_pnp_takes_the_source_queries_and_keys_but_keeps_its_values():
    rule = PlugAndPlay()
    name = "up_blocks.2.attentions.1.transformer_blocks.0.attn1.processor"
    rule._layers = frozenset([name])  # as on_sites sets it for a UNet where this layer is chosen
    c = AttentionController(2, [rule], latent_size=(4, 4))
    c.n_evals, c.step = 10, 4  # attention_until 0.5: steps 0-4
    q, k, v = _qkv(4, seed=2)
    out = c.attend(_layer(c, name), q, k, v, 0.5)
    assert torch.allclose(out[3], _attn(q[2], k[2], v[3], 0.5), atol=1e-5)
    assert torch.allclose(out[1], _attn(q[0], k[0], v[1], 0.5), atol=1e-5)
    c.step = 5
    out = c.attend(_layer(c, name), q, k, v, 0.5)
    assert torch.allclose(out[3], _attn(q[3], k[3], v[3], 0.5), atol=1e-5)
    # features: the edit rows take the source row's of their half until feature_until
    c.step = 7
    feats = torch.randn(4, 3, 2, 2)
    edited = c.edit_features(PNP_FEATURE, feats.clone())
    assert torch.equal(edited[1], feats[0]) and torch.equal(edited[3], feats[2]) and torch.equal(edited[2], feats[2])
    c.step = 8
    assert torch.equal(c.edit_features(PNP_FEATURE, feats.clone()), feats)


# -- which layers: execution order as the authors count ---------------------------------------------
def _sd15_sites():
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):  # SD 1.5's layer structure without allocating its weights
        unet = UNet2DConditionModel(
            cross_attention_dim=768,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        )
    return sites_of(unet)


def test_masactrl_layers_on_sd15_are_the_decoder_at_32_and_64():
    sites = _sd15_sites()
    names = [s.name for s in sites]
    c = AttentionController(2, [MutualSelfAttention()])
    c.index_layers(sites)
    rule = MutualSelfAttention()
    picked = []
    for name in names:
        index, n_layers = c.layer_index[name]
        ctx = LayerContext(5, 50, name, "up", (8, 8), (64, 64), ".attn2." in name, 8, index, n_layers)
        if rule.active(ctx):
            picked.append(name.split(".attentions")[0])
    assert len(picked) == 6 and n_layers == 16  # 10..15 of 16, as MasaCtrl counts
    assert set(picked) == {"up_blocks.2", "up_blocks.3"}
    assert names[0].startswith("down_blocks.0")  # the sites are in execution order
    assert [s.name for s in sites if s.kind == "self"][6].startswith("mid_block")


def test_pnp_layers_on_sd15_skip_the_first_decoder_attention():
    rule = PlugAndPlay()
    rule.on_sites(_sd15_sites())
    modules = sorted({n.split(".transformer_blocks")[0] for n in rule._layers})
    assert modules == [
        "up_blocks.1.attentions.1",
        "up_blocks.1.attentions.2",
        *(f"up_blocks.{b}.attentions.{a}" for b in (2, 3) for a in range(3)),
    ]


# -- errors, restoring, JSON ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, word",
    [
        (lambda: MutualSelfAttention(start_step=-1), "start_step"),
        (lambda: MutualSelfAttention(start_step=1.5), "start_step"),
        (lambda: MutualSelfAttention(union="yes"), "union"),
        (lambda: MutualSelfAttention(start_layr=3), "start_layr"),
        (lambda: PlugAndPlay(feature_until=1.5), "feature_until"),
        (lambda: PlugAndPlay(attention_until=None), "attention_until"),
        (lambda: StyleAligned(adain_keys=1), "adain_keys"),
        (lambda: MaskedMutualSelfAttention(), "source_words"),
        (lambda: MaskedMutualSelfAttention(source_words=["cat"], threshold=2.0), "threshold"),
        # an empty mask would make the rule plain MutualSelfAttention without a word of warning
        (lambda: MaskedMutualSelfAttention(source_words=[]), "source_words"),
    ],
)
def test_bad_parameters_name_the_parameter(make, word):
    with pytest.raises(P2PError, match=word):
        make()


def test_a_required_word_list_says_so_in_its_description():
    params = {p.name: p for p in MaskedMutualSelfAttention.params}
    assert params["source_words"].describe()["non_empty"] is True
    assert params["target_words"].describe()["non_empty"] is False  # empty: the source words
    assert MaskedMutualSelfAttention(source_words=["circle"], target_words=[]).target_words == ()
    with pytest.raises(P2PError, match="'words' must name at least one word"):
        Param("words", "words", (), non_empty=True)  # a default out of its own declaration
    with pytest.raises(P2PError, match="'n'.*non_empty"):
        Param("n", "int", 1, non_empty=True)  # only word lists can be empty


def test_a_parameter_set_as_an_attribute_runs_exports_and_reruns_alike(editor):
    """``rule.start_step = 0`` (values are attributes): the run, the spec and its rerun agree."""
    rule = MutualSelfAttention(start_layer=0)
    rule.start_step = 0
    assert rule.to_dict()["start_step"] == 0 and rule.values["start_step"] == 0
    first = editor.edit(SRC, TGT, rules=[rule], steps=STEPS)
    assert first.spec.rules[0]["start_step"] == 0
    again = editor.run(EditSpec.from_json(first.spec.to_json()))
    assert torch.equal(first.latents, again.latents)
    masked = MaskedMutualSelfAttention(source_words=["circle"])
    masked.source_words = "red circle"  # normalised as the constructor does
    assert masked.source_words == ("red circle",) and masked.to_dict()["source_words"] == ["red circle"]


@pytest.mark.parametrize(
    "name, value",
    [("start_step", -3), ("start_step", 1.5), ("end_step", "end"), ("union", "yes"), ("start_layer", True)],
)
def test_a_bad_value_set_as_an_attribute_names_the_parameter_and_changes_nothing(name, value):
    rule = MutualSelfAttention()
    before = rule.to_dict()
    with pytest.raises(P2PError, match=name):
        setattr(rule, name, value)
    assert rule.to_dict() == before and getattr(rule, name) == before[name]
    rule._scratch = "any"  # attributes that are not parameters stay free
    assert rule.to_dict() == before


def test_a_step_window_that_ends_before_it_starts_is_named_before_any_step(editor):
    values = dict(start_step=3, end_step=2)
    with pytest.raises(P2PError, match="start_step 3 is after end_step 2"):
        editor.edit(SRC, TGT, rules=[MutualSelfAttention(**values)], steps=STEPS)
    swap = editor.build_rules(editor.prompt(SRC), [editor.prompt(TGT)], STEPS)[0]
    with pytest.raises(P2PError, match="start_step"):  # inside a Combine too
        editor.edit(SRC, TGT, rules=[Combine(swap, MutualSelfAttention(**values))], steps=STEPS)


def test_a_step_window_past_the_run_is_empty(editor):
    """As the authors' range(start_step, total_steps): the default start (4) on a 2-step run (the
    benchmark's warm-up, a short Studio run) controls nothing and runs."""
    for values in (dict(), dict(start_step=STEPS + 1), dict(end_step=STEPS + 3)):
        MutualSelfAttention(**values).check_run(2)
    plain = editor.edit(SRC, TGT, rules=[EditRule()], steps=2, seed=1)
    masa = editor.edit(SRC, TGT, rules=[MutualSelfAttention()], steps=2, seed=1)
    assert torch.equal(masa.latents, plain.latents)


def test_a_mask_word_missing_from_the_prompt_is_named(editor):
    with pytest.raises(P2PError, match="dog"):
        editor.edit(SRC, TGT, rules=[MaskedMutualSelfAttention(source_words=["dog"])], steps=STEPS)


def test_pnp_without_an_inversion_is_refused_before_any_step(editor):
    with pytest.raises(P2PError, match="inverted image"):
        editor.edit(SRC, TGT, rules=[PlugAndPlay()], steps=STEPS)


class _Boom(MutualSelfAttention):
    def self_qkv(self, ctx, src, edit):
        if ctx.step == 2:
            raise RuntimeError("boom")
        return super().self_qkv(ctx, src, edit)


class _BoomFeature(PlugAndPlay):
    def edit_feature(self, ctx, name, src, edit):
        raise RuntimeError("boom")


@pytest.mark.parametrize("rule_cls", [_Boom, _BoomFeature])
def test_processors_and_module_hooks_are_restored_after_an_exception(editor, inversion, rule_cls):
    unet = editor.model.unet
    before = dict(unet.attn_processors)
    extra = {"inversion": inversion} if rule_cls.follows_inversion else {}
    with pytest.raises(RuntimeError, match="boom"):
        editor.edit(
            "" if extra else SRC,
            TGT,
            rules=[rule_cls(start_step=0) if rule_cls is _Boom else rule_cls()],
            steps=STEPS,
            **extra,
        )
    assert dict(unet.attn_processors) == before
    assert all(not m._forward_hooks for m in unet.modules())
    plain = editor.edit(SRC, TGT, steps=STEPS)  # and the editor still works
    assert torch.isfinite(plain.latents).all()


def test_a_missing_feature_module_is_named(editor, inversion):
    class Elsewhere(PlugAndPlay):
        def feature_modules(self):
            return ("up_blocks.9.resnets.0.conv2",)

    with pytest.raises(P2PError, match=r"up_blocks\.9\.resnets\.0\.conv2"):
        editor.edit("", TGT, rules=[Elsewhere()], steps=STEPS, inversion=inversion)
    assert all(not m._forward_hooks for m in editor.model.unet.modules())


@pytest.mark.parametrize("name", ["masactrl", "masactrl_masked", "style_aligned", "pnp", "combined"])
def test_json_round_trip_reruns_bitwise(editor, inversion, name):
    if name == "combined":
        swap = editor.build_rules(editor.prompt(SRC), [editor.prompt(TGT)], STEPS)[0]
        rule, extra, source = Combine(swap, MutualSelfAttention(start_step=2, union=True)), {}, SRC
    else:
        rule, opts = _rules()[name]
        extra = {"inversion": inversion} if opts.get("inversion") else {}
        source = "" if extra else SRC
    first = editor.edit(source, TGT, rules=[rule], steps=STEPS, **extra)
    text = first.spec.to_json()
    assert json.loads(text)["rules"][0]["rule"] in registered_rules()
    again = editor.run(EditSpec.from_json(text), **extra)
    assert torch.equal(first.latents, again.latents)


def test_rule_windows_follow_the_parameters():
    assert MutualSelfAttention(start_step=4).windows(50) == [("mutual self-attention", 4, 50)]
    assert PlugAndPlay().windows(50) == [("ResNet features", 0, 40), ("self-attention Q, K", 0, 25)]
    assert isinstance(Replace, type) and StyleAligned().windows(10) == [("shared self-attention", 0, 10)]


@pytest.fixture(scope="module")
def xl():
    from p2p_widgets.bench.geometries import tiny_xl_pipeline
    from p2p_widgets.engine.sampler import Editor

    return Editor(tiny_xl_pipeline(seed=1))


@pytest.mark.parametrize("name", ["masactrl", "style_aligned", "pnp"])
def test_methods_run_on_sdxl(xl, name):
    """SDXL's UNet (pooled text, size ids, 10-block transformers) through the same hooks."""
    rule, opts = _rules()[name]
    extra = {}
    if opts.get("inversion"):
        extra["inversion"] = xl.invert(xl.edit(SRC, [], steps=STEPS).images[0], "", method="ddim", steps=STEPS)
    source = "" if extra else SRC
    fast = xl.edit(source, TGT, rules=[rule], steps=STEPS, mode="fast", **extra)
    explicit = xl.edit(source, TGT, rules=[rule], steps=STEPS, mode="explicit", **extra)
    plain = xl.edit(source, TGT, rules=[EditRule()], steps=STEPS, **extra)
    print(f"{name} on SDXL: effect / tolerance {check_oracle(name, fast, explicit, plain):.0f}")
    assert any(step for step in fast.controlled)  # the hooks found layers to act on
