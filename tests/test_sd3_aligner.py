"""The token aligner on SD3 (issue 26): an SD3 prompt runs over CLIP's 77 positions then T5's, and
the widgets now make their prompts with the model's ``prompt`` (they made them with its CLIP
tokenizer alone, so the aligner showed CLIP's tokens only and the Studio's P2P left T5's
unaligned). Each segment is a labelled pair of rows, links stay within a segment, the mapper from
links feeds each segment's BOS / EOS / padding by itself and equals the model's own alignment, and
the Studio's SD3 edit reruns from its JSON with both segments' links. Flux and SD stay one segment."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import traitlets

SOURCE = "a big red circle left of a small blue square on a gray background"
TARGET = "a big green circle left of a small blue square on a gray background"
CLIP = 77


def _sd3(t5: bool = True):
    from p2p_widgets import Editor
    from p2p_widgets.bench.mmdit_geometries import tiny_sd3_pipeline
    from p2p_widgets.engine.defaults import SD3_DEFAULTS, register_defaults

    defaults = dataclasses.replace(SD3_DEFAULTS, steps=2, size=64, text_length=16, source=SOURCE, target=TARGET)
    return Editor(register_defaults(tiny_sd3_pipeline(0, t5=t5), defaults))


@pytest.fixture(scope="module")
def sd3():
    return _sd3()


@pytest.fixture
def studio(sd3):
    from p2p_widgets.widgets import Studio

    return Studio(editor=sd3, background=False)


def _segments(rows):
    return [r["segment"] for r in rows]


def test_an_sd3_prompt_names_its_parts_and_their_token_positions(sd3):
    prompt = sd3.prompt(SOURCE)
    assert prompt.segment_names == ("CLIP", "T5")
    (c_off, c_name, clip), (t_off, t_name, t5) = prompt.parts
    assert (c_off, c_name, t_off, t_name) == (0, "CLIP", CLIP, "T5")
    assert clip.has_bos and not t5.has_bos and (clip.n_tokens, t5.n_tokens) == (16, 15)
    assert prompt.token_positions == (*range(16), *range(CLIP, CLIP + 15))
    assert prompt.part_of(CLIP + 14)[1] == "T5" and prompt.part_of(20) is None  # CLIP's padding
    plain = _sd3(t5=False).prompt(SOURCE)  # no T5: a segment of zeros, no tokens to show
    assert [name for _, name, _ in plain.parts] == ["CLIP"] and plain.token_positions == tuple(range(16))


def test_the_mapper_from_links_feeds_each_segments_specials_and_align_works_per_segment(sd3):
    from p2p_widgets.engine.mapper import Mapper, align, align_joined

    src, tgt = sd3.prompt(SOURCE), sd3.prompt(TARGET)
    joined = align_joined(src, tgt)
    # the plain align sees the segments: each segment aligned alone (CLIP's with CLIP's, T5's with
    # T5's), placed on the diagonal by hand (align calls align_joined, so comparing the two proved nothing)
    other = TARGET.replace("big green", "big bright green").replace(" on a gray background", "")  # a refine
    for target in (tgt, sd3.prompt(other)):
        for kind in ("auto", "replace", "refine") if target is tgt else ("auto", "refine"):
            matrix, aligned = torch.zeros(src.max_length, target.max_length), torch.zeros(target.max_length)
            for (i0, name, part), (j0, other, target_part) in zip(src.parts, target.parts):
                assert name == other and i0 == j0
                alone = align(part, target_part, kind=kind)
                matrix[i0 : i0 + part.max_length, j0 : j0 + target_part.max_length] = alone.matrix
                aligned[j0 : j0 + target_part.max_length] = alone.aligned
            mapper = align(src, target, kind=kind)
            assert torch.equal(mapper.matrix, matrix) and torch.equal(mapper.aligned, aligned), (target.text, kind)
    real_src, real_tgt = set(src.token_positions), set(tgt.token_positions)
    specials = {(0, 0), (15, 15), (CLIP + 14, CLIP + 14)}  # CLIP's BOS and EOS, T5's EOS
    words = [(i, j, w) for i, j, w in joined.links if i in real_src and j in real_tgt and (i, j) not in specials]
    rebuilt = Mapper.from_links(src, tgt, words, include_special=True)
    # BOS, both EOS and both segments' padding come back by themselves, each in its own segment
    assert torch.equal(rebuilt.matrix, joined.matrix) and torch.equal(rebuilt.aligned, joined.aligned)
    assert rebuilt.matrix[:CLIP, CLIP:].abs().sum() == 0 and rebuilt.matrix[CLIP:, :CLIP].abs().sum() == 0


def test_the_studio_aligner_shows_a_pair_of_rows_per_segment_and_aligns_both(studio, sd3):
    a = studio.aligner
    assert _segments(a.source_tokens) == ["CLIP"] * 16 + ["T5"] * 15 == _segments(a.target_tokens)
    assert [r["pos"] for r in a.source_tokens] == list(studio.panel.prompt(SOURCE).token_positions)
    specials = [(r["pos"], r["special"]) for r in a.source_tokens if r["special"]]
    assert specials == [(0, "bos"), (15, "eos"), (CLIP + 14, "eos")]  # T5 has no BOS
    red = [r["pos"] for r in a.source_tokens if r["text"] == "red"]
    assert red == [3, CLIP + 2]
    assert [3, 3, 1.0] in a.links and [CLIP + 2, CLIP + 2, 1.0] in a.links  # red -> green in both segments
    reference = sd3.model.align(SOURCE, TARGET)
    mapper = studio.mapper()
    assert torch.equal(mapper.matrix, reference.matrix) and torch.equal(mapper.aligned, reference.aligned)
    assert mapper.matrix[CLIP:, CLIP:].abs().sum() > 0  # T5's block is aligned too (it was left empty)
    assert repr(a).startswith("TokenAligner(")


def test_a_link_across_segments_or_onto_padding_is_refused_and_leaves_the_links(studio):
    a = studio.aligner
    before = [list(x) for x in a.links]
    with pytest.raises(traitlets.TraitError, match="source 3 is a CLIP token but target 79 a T5 one"):
        a.links = [*before, [3, CLIP + 2, 1.0]]
    with pytest.raises(traitlets.TraitError, match=r"target position 30 is out of range: .* CLIP 0..15, T5 77..91"):
        a.links = [*before, [3, 30, 1.0]]
    a.set_state({"links": [*before, [CLIP + 2, 3, 1.0]]})  # from the page: said, nothing changed
    assert a.links == before and "a link stays within one segment" in a.error
    a.set_state({"links": [*before, [CLIP + 2, CLIP + 3, 0.5]]})  # within T5: taken
    assert a.error == "" and [CLIP + 2, CLIP + 3, 0.5] in a.links


def test_a_t5_link_edited_by_hand_runs_survives_a_prompt_edit_and_reruns_from_json(studio, sd3):
    a, p = studio.aligner, studio.panel
    links = [x for x in a.links if x[:2] != [CLIP + 2, CLIP + 2]]  # "red" no longer feeds "green" in T5
    a.links = links
    mapper = studio.mapper()
    assert mapper.matrix[CLIP + 2, CLIP + 2] == 0 and mapper.aligned[CLIP + 2] == 0  # a new token in T5 only
    assert mapper.matrix[3, 3] == 1 and mapper.aligned[3] == 1
    p.target = TARGET.replace("gray", "white")  # the edit keeps the user's links, segment by segment
    assert [CLIP + 2, CLIP + 2, 1.0] not in a.links and [3, 3, 1.0] in a.links
    assert all(studio.panel.prompt(p.target).part_of(j) is not None for _, j, _ in a.links)
    result = studio.run()
    assert p.status == "done" and p.error == "", p.error
    spec = json.loads(studio.to_json())
    saved = spec["rules"][0]["mapper"]["links"]
    assert [3, 3, 1.0] in saved and not any(i == CLIP + 2 and j == CLIP + 2 for i, j, _ in saved)
    assert any(i >= CLIP for i, _, _ in saved)  # T5's links travel in the file
    shown = [list(x) for x in a.links]
    a.auto_align()
    studio.load_json(json.dumps(spec))
    assert a.links == shown and p.error == ""
    assert torch.equal(studio.run().latents, result.latents)


def test_flux_and_sd_prompts_stay_one_unnamed_segment(editor):
    from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline
    from p2p_widgets.engine.sampler import Editor
    from p2p_widgets.widgets.aligner import TokenAligner

    for model in (Editor(tiny_flux_pipeline(0)), editor):
        aligner = TokenAligner("a red cat", "a blue cat", tokenizer=model)
        assert set(_segments(aligner.source_tokens)) == {""}
        assert [r["pos"] for r in aligner.source_tokens] == list(range(len(aligner.source_tokens)))
    plain = TokenAligner("a red cat", "a blue cat")  # the bundled CLIP tokenizer, as before
    assert _segments(plain.source_tokens) == [""] * 5 and plain.links[1] == [1, 1, 1.0]
    with pytest.raises(traitlets.TraitError, match=r"out of range: 'a blue cat' has tokens 0..4$"):
        plain.links = [[0, 9, 1.0]]


def test_the_engine_refuses_a_link_across_segments_and_unmatched_segment_names(sd3):
    """The aligner refuses a CLIP -> T5 link; an edit file or API call made without it is refused by
    the engine too (M is block-diagonal over the segments); joined prompts name every segment or none."""
    from p2p_widgets.engine.mapper import Mapper
    from p2p_widgets.engine.segments import joined
    from p2p_widgets.errors import P2PError

    src, tgt = sd3.prompt(SOURCE), sd3.prompt(TARGET)
    with pytest.raises(P2PError, match=r"link 3 -> 80 crosses token segments \(CLIP -> T5\)"):
        Mapper.from_links(src, tgt, [(3, 80, 1.0)])
    assert Mapper.from_links(src, tgt, [(CLIP + 2, CLIP + 2, 1.0)]).matrix[CLIP + 2, CLIP + 2] == 1
    clip, t5 = (part for _, _, part in src.parts)
    with pytest.raises(P2PError, match="1 segment names for 2 segments"):
        joined([clip, t5], [CLIP, 16], names=("CLIP",))
    unnamed = joined([clip, t5], [CLIP, 16])
    assert [name for _, name, _ in unnamed.parts] == ["segment 1", "segment 2"]  # distinct, so rows never merge
