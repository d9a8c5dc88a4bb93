"""The widgets on joint-attention models (issue 26): the player's cells from the model's sites (tiny
SD, SDXL, SD3.5, Flux), the player, the Studio, the aligner and timeline on a tiny Flux pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from p2p_widgets.errors import P2PError

SOURCE = "a big red circle left of a small blue square on a gray background"
TARGET = "a big green circle left of a small blue square on a gray background"


def tiny_flux(steps: int = 4):
    from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline
    from p2p_widgets.engine.defaults import FLUX_DEV_DEFAULTS, register_defaults

    pipe = tiny_flux_pipeline(0)
    defaults = dataclasses.replace(
        FLUX_DEV_DEFAULTS, steps=steps, size=64, text_length=16, source=SOURCE, target=TARGET, name="tiny Flux"
    )
    return register_defaults(pipe, defaults)


@pytest.fixture(scope="module")
def flux():
    from p2p_widgets import Editor

    return Editor(tiny_flux())


# -- cells from sites ----------------------------------------------------------------------------------


@pytest.mark.parametrize("xl", [False, True])
def test_unet_cells_from_sites_are_the_cells_from_module_names(xl):
    """On SD and SDXL the cells from ``model.sites()`` are what parsing the UNet's names gave, hooked
    modules (Plug-and-Play's conv2) placed between the layers of their block as before."""
    from p2p_widgets import Editor
    from p2p_widgets.bench.geometries import tiny_pipeline, tiny_xl_pipeline
    from p2p_widgets.stream.unet_layers import is_dit, model_cells, model_layout, site_cells, unet_cells, unet_layout

    pipe = tiny_xl_pipeline() if xl else tiny_pipeline()
    editor = Editor(pipe)
    modules = ["up_blocks.1.resnets.1.conv2", "down_blocks.0.resnets.0.conv1"]
    names, n_blocks = unet_layout(pipe)
    expected = unet_cells(names, modules, n_blocks)
    assert model_cells(editor, modules) == expected == model_cells(pipe, modules) == model_cells(pipe.unet, modules)
    sites = editor.model.sites()
    layout = model_layout(editor)
    assert [(n, k) for n, k, *_ in layout] == [(s.name, s.kind) for s in sites] and not is_dit(layout)
    cells = site_cells(layout, modules)
    attention = [c for c in cells if c["kind"] != "feature"]
    assert [(c["name"], c["kind"], c["block"], c["depth"]) for c in attention] == [
        (s.name, s.kind, s.block, s.depth) for s in sites
    ]
    conv2 = next(k for k, c in enumerate(cells) if c["name"] == modules[0])
    assert cells[conv2]["block"] == "up 1" and cells[conv2 - 1]["block"] in ("up 0", "up 1")  # in execution order


def test_flux_cells_are_its_double_then_single_blocks_and_take_both_parts_of_a_joint_site(flux):
    from p2p_widgets.stream.unet_layers import (
        cell_indices,
        check_known,
        control_shares,
        is_dit,
        model_cells,
    )

    cells = model_cells(flux)
    sites = flux.model.sites()
    assert is_dit(cells)
    assert [(c["name"], c["kind"], c["block"], c["depth"]) for c in cells] == [
        (s.name, s.kind, s.block, s.depth) for s in sites
    ]
    assert [c["block"] for c in cells] == ["double 0", "double 1", "single 0", "single 1"]
    assert [c["kind"] for c in cells] == ["joint", "joint", "single", "single"]
    assert model_cells(flux.pipe) == cells == model_cells(flux.pipe.transformer)
    # the engine names a joint site's image -> text part "cross", its image -> image part "self"
    step = frozenset({(cells[1]["name"], "cross"), (cells[1]["name"], "self"), (cells[3]["name"], "self")})
    assert cell_indices(cells, step) == [1, 3]
    assert control_shares(cells, [step, frozenset()]) == [0.0, 0.5, 0.0, 0.5]
    check_known(cells, [step])
    with pytest.raises(P2PError, match="this model does not have"):
        check_known(cells, [frozenset({("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor", "self")})])


def test_sd35_cells_hold_its_image_only_attention_in_the_same_block():
    from p2p_widgets.bench.mmdit_geometries import tiny_sd3_pipeline
    from p2p_widgets.stream.unet_layers import is_dit, model_cells

    pipe = tiny_sd3_pipeline(0, sd35=True)
    cells = model_cells(pipe)
    assert is_dit(cells)
    kinds = {c["kind"] for c in cells}
    assert kinds == {"joint", "image-self"}
    first = [c for c in cells if c["block"] == "double 0"]
    assert [c["kind"] for c in first] == ["joint", "image-self"]


# -- the player ------------------------------------------------------------------------------------------


def test_player_streams_a_flux_edit_with_t5_tokens_and_a_block_strip(flux):
    from p2p_widgets.widgets import AttentionPlayer

    player = AttentionPlayer()
    result = player.run(flux, SOURCE, TARGET, steps=4, seed=1)
    assert player.status == "done" and player.error == ""
    tokens = player.prompts[0]["tokens"]
    assert tokens[0] == "a" and tokens[-1] == "</s>" and len(tokens) == 15  # T5: no BOS, EOS last, no padding
    assert player.tokens == [[0, 2], [1, 2]]  # the edited word, by the T5 positions
    assert player.grids == [[8, 8]]
    assert [c["kind"] for c in player.unet_cells] == ["joint", "joint", "single", "single"]
    # P2P injects the source's maps (cross) and its image -> image attention (self) at every site early on
    assert len(player.controlled) == 4 and player.controlled[0] == [0, 1, 2, 3]
    assert [c["block"] for c in player.controlled_cells(0)] == ["double 0", "double 1", "single 0", "single 1"]
    assert sum(bool(s) for s in result.controlled) == sum(bool(s) for s in player.controlled)


def test_player_begin_tokenizes_strings_as_the_editor_does(flux):
    from p2p_widgets.widgets import AttentionPlayer

    player = AttentionPlayer()
    player.begin([SOURCE, TARGET], editor=flux, n_evals=4)
    assert player.prompts[1]["tokens"] == list(flux.prompt(TARGET).tokens)
    assert player.prompts[1]["tokens"][0] == "a"  # not CLIP's <|startoftext|>
    assert player.tokens == [[0, 2], [1, 2]]
    player.end(status="stopped")
    # the model given as the tokenizer, as the other widgets take it (engine.prompts.prompt_maker): its tokens
    again = AttentionPlayer()
    again.begin([SOURCE, TARGET], tokenizer=flux, n_evals=4)
    assert again.prompts == player.prompts
    again.end(status="stopped")


def test_unet_diagram_draws_flux_as_one_row_of_blocks(flux):
    from p2p_widgets import plots

    result = flux.edit(SOURCE, TARGET, steps=4, seed=1)
    fig = plots.unet_diagram(flux, result)
    texts = [a.text for a in fig.layout.annotations]
    assert texts == ["double-stream blocks", "0", "1", "single-stream blocks", "0", "1"]
    ys = {y for trace in fig.data for y in (trace.y or ()) if y is not None}
    assert ys == {0}  # flat, not a U
    assert {t.name for t in fig.data} == {"joint attention", "single-stream attention"}


# -- the Studio ------------------------------------------------------------------------------------------


@pytest.fixture()
def studio(flux):
    from p2p_widgets.widgets import Studio

    return Studio(editor=flux, background=False)


def test_studio_on_flux_starts_from_the_model_defaults_and_shows_t5_tokens(studio, flux):
    p = studio.panel
    assert (p.steps, p.guidance, p.source, p.target, p.model_name) == (4, 3.5, SOURCE, TARGET, "tiny Flux")
    assert p.scheduler_choices == [["DDIMScheduler", "Flow-matching Euler (the model's own)"]]
    assert [m["name"] for m in p.methods] == ["p2p", "KVInjection"]
    assert p.methods[1]["label"] == "K/V injection (Stable Flow, RF-Solver-Edit)"
    rows = studio.aligner.source_tokens
    assert [r["special"] for r in rows] == [""] * 14 + ["eos"]  # no BOS on T5's prompts
    assert rows[0] == {"pos": 0, "text": "a", "word": 0, "word_text": "a", "special": "", "segment": ""}
    assert studio.aligner.links == [[i, i, 1.0] for i in range(15)]  # a word swap: red -> green in place
    expected = [int(t) for t in flux._scheduler(4, None).timesteps]
    assert studio.timeline.timesteps == expected and expected[0] == 1000
    assert p.image_note == "" and p.invert_method == "fireflow"  # real images: the flow solvers invert them


def test_studio_flux_family_defaults_without_registered_ones():
    """An unregistered Flux dev pipeline gets the family's 28 steps at guidance 3.5."""
    from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline
    from p2p_widgets.engine.models import backend_for

    found = backend_for(tiny_flux_pipeline(0)).defaults
    assert (found.steps, found.guidance) == (28, 3.5)


def test_studio_on_flux_runs_a_word_swap_and_kv_injection_and_reruns_its_json(studio, flux):
    p = studio.panel
    result = studio.run()
    assert p.status == "done" and p.error == "" and [i["label"] for i in p.images] == ["source", "edit"]
    assert result.spec.rules[0]["rule"] == "Replace"
    assert studio.player.unet_cells[0]["kind"] == "joint" and studio.player.controlled[0] == [0, 1, 2, 3]
    p.method = "KVInjection"
    assert p.method_values["double"] == ["all"]
    p.method_values = {**p.method_values, "double": ["1"], "single": [], "start_step": 1}
    kv = studio.run()
    assert p.status == "done" and p.error == ""
    assert studio.player.controlled == [[], [1], [1], [1]]  # double block 1 from step 1
    assert not np.array_equal(kv.images[1], result.images[1])
    text = studio.to_json()
    studio.panel.method = "p2p"
    studio.load_json(text)
    assert p.method == "KVInjection" and p.method_values["double"] == ["1"]
    again = studio.run()
    assert np.array_equal(again.images[1], kv.images[1])


def test_studio_on_flux_refuses_unet_methods_and_unet_inversions_by_name(studio):
    import traitlets

    p = studio.panel
    for name, words in [("MutualSelfAttention", "MasaCtrl"), ("PlugAndPlay", "Plug-and-Play"), ("StyleAligned", "")]:
        with pytest.raises(traitlets.TraitError, match=rf"{words}.*does not run on Flux"):
            p.method = name
    p.set_state({"method": "MutualSelfAttention"})  # from the page: shown beside the menu
    assert "does not run on Flux" in p.error and p.method == "p2p"
    with pytest.raises(traitlets.TraitError, match="'null-text' inverts UNet models"):
        p.invert_method = "null-text"
    with pytest.raises(traitlets.TraitError, match="not offered for this model"):
        p.scheduler = "EulerDiscreteScheduler"


def test_unet_studio_hides_and_refuses_kv_injection():
    import traitlets

    from p2p_widgets.bench.geometries import tiny_pipeline
    from p2p_widgets.widgets import Studio

    studio = Studio(tiny_pipeline(), source="a red cat", target="a blue cat", steps=2, aligner=False, timeline=False)
    assert "KVInjection" not in [m["name"] for m in studio.panel.methods]
    assert studio.panel.image_note == ""
    with pytest.raises(traitlets.TraitError, match="edits joint attention.*not run on a UNet"):
        studio.panel.method = "KVInjection"


def test_t5_prompts_have_no_bos_and_the_mapper_feeds_only_eos_by_itself(flux):
    """Position 0 of a T5 prompt is its first word: a link the user removed there stays removed."""
    from p2p_widgets.engine.mapper import Mapper
    from p2p_widgets.engine.prompts import Prompt
    from p2p_widgets.engine.tokenizer import load_tokenizer

    src, tgt = flux.prompt(SOURCE), flux.prompt(TARGET)
    assert not src.has_bos and src.words[0].positions == (0,)
    assert Prompt.from_text("a cat", load_tokenizer()).has_bos and Prompt.from_text("", load_tokenizer()).has_bos
    mapper = Mapper.from_links(src, tgt, [(1, 1, 1.0)])
    assert mapper.matrix[0, 0] == 0 and mapper.matrix[14, 14] == 1 and mapper.matrix[15, 15] == 1  # EOS, padding


def test_studio_on_sd35_streams_kv_injection_over_both_token_segments():
    """SD3's prompts run over CLIP's 77 positions then T5's (93 here): the player takes them (its
    frames hold up to 77 + 512 tokens) and the strip holds the joint and image-only sites."""
    from p2p_widgets.bench.mmdit_geometries import tiny_sd3_pipeline
    from p2p_widgets.engine.defaults import SD3_DEFAULTS, register_defaults
    from p2p_widgets.widgets import Studio

    defaults = dataclasses.replace(SD3_DEFAULTS, steps=2, size=64, text_length=16, source=SOURCE, target=TARGET)
    studio = Studio(register_defaults(tiny_sd3_pipeline(0, sd35=True), defaults), background=False)
    assert [m["name"] for m in studio.panel.methods] == ["p2p", "KVInjection"]
    studio.panel.method = "KVInjection"
    studio.run()
    player = studio.player
    assert studio.panel.status == "done" and player.status == "done" and player.error == ""
    assert len(player.prompts[0]["tokens"]) == 77 + 16
    assert {c["kind"] for c in player.unet_cells} == {"joint", "image-self"}
    assert player.controlled[0]  # the joint sites, every step
    # the edited word in both segments: CLIP's position 3, T5's 77 + 2
    assert [p for b, p in player.tokens if b == 1] == [3, 79]
