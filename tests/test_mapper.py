import pytest
import torch

from p2p_widgets.engine.mapper import Mapper, align, needleman_wunsch
from p2p_widgets.engine.prompts import Prompt
from p2p_widgets.errors import P2PError, PromptTooLong, WordNotFound


def test_words_and_spans(tokenizer):
    p = Prompt.from_text("a jellybeans jar, a cat", tokenizer)
    assert [w.text for w in p.words] == ["a", "jellybeans", "jar,", "a", "cat"]
    assert p.find("jellybeans")[0].positions == (2, 3)  # multi-token word
    assert p.positions("jar,") == [4, 5]  # punctuation belongs to its word
    assert p.positions("jar") == [4, 5]  # found ignoring punctuation and case
    assert p.positions("a") == [1, 6]  # repeated words: every occurrence
    assert p.positions(4) == [7]  # by word position
    assert p.eos_position == 8


def test_missing_word_names_the_words(tokenizer):
    p = Prompt.from_text("a red circle", tokenizer)
    with pytest.raises(WordNotFound, match=r"'square'.*'a', 'red', 'circle'"):
        p.find("square")


def test_prompt_over_77_tokens(tokenizer):
    with pytest.raises(PromptTooLong, match="80 tokens"):
        Prompt.from_text(" ".join(["cat"] * 78), tokenizer)


def test_replace_equal_token_counts_pair_one_to_one(tokenizer):
    m = align("a photo of a cat", "a photo of a dog", tokenizer, kind="replace")
    assert torch.equal(m.matrix, torch.eye(77))
    assert m.aligned.eq(1).all()


def test_replace_spreads_mass_over_a_longer_phrase(tokenizer):
    # the lecture's example: "orange" -> "big tabby" gives 0.5 and 0.5
    m = align("a photo of an orange cat", "a photo of an big tabby cat", tokenizer, kind="replace")
    assert m.matrix[5, 5] == pytest.approx(0.5) and m.matrix[5, 6] == pytest.approx(0.5)
    assert m.matrix[5].sum() == pytest.approx(1.0)


def test_replace_keeps_offset_after_a_length_change(tokenizer):
    # The reference maps every token after the last changed span diagonally (mapper[j, j]), which
    # misaligns "cat", EOS and padding by the token-count difference. Here they keep their offset.
    src, tgt = "a photo of an orange cat", "a photo of an big tabby cat"
    m = align(src, tgt, tokenizer, kind="replace")
    assert m.matrix[6, 7] == 1 and m.matrix[7, 7] == 0  # "cat" feeds "cat"
    assert m.matrix[7, 8] == 1  # EOS feeds EOS
    for j in range(9, 77):  # padding feeds padding, every target column is fed
        assert m.matrix[j - 1, j] == 1
    assert (m.matrix.sum(0) > 0).all()


def test_replace_shorter_target_maps_padding_to_the_last_pad(tokenizer):
    m = align("a big tabby cat", "a orange cat", tokenizer, kind="replace")
    assert m.matrix[4, 3] == 1 and m.matrix[5, 4] == 1  # cat -> cat, EOS -> EOS
    assert m.matrix[76, 76] == 1 and (m.matrix.sum(0) > 0).all()


def test_replace_with_different_word_counts(tokenizer):
    m = align("a cat", "a fluffy white dog", tokenizer, kind="replace")
    assert m.kind == "replace"
    assert torch.allclose(m.matrix[2, 2:5], torch.full((3,), 1 / 3))


def test_auto_picks_refine_for_insertions(tokenizer):
    m = align("a cat", "a cat wearing a hat", tokenizer)
    assert m.kind == "refine"
    assert m.aligned[:7].tolist() == [1, 1, 1, 0, 0, 0, 1]  # BOS a cat | wearing a hat | EOS
    assert m.matrix[3, 6] == 1  # EOS -> EOS
    assert align("a cat", "a dog", tokenizer).kind == "replace"


def test_needleman_wunsch_reference_semantics():
    # a substitution becomes a deletion plus an insertion (mismatch -1, gap 0)
    assert needleman_wunsch([1, 2, 3], [1, 4, 3]) == [0, -1, 2]
    assert needleman_wunsch([1, 2], [1, 2, 5]) == [0, 1, -1]


def test_mapper_from_links(tokenizer):
    m = Mapper.from_links("a orange cat", "a big tabby cat", [(2, 2, 0.5), (2, 3, 0.5), (3, 4, 1.0)], tokenizer)
    assert m.matrix[2, 2] == 0.5 and m.matrix[0, 0] == 1 and m.matrix[4, 5] == 1  # BOS and EOS added
    assert m.aligned[1] == 0  # "a" is unlinked: a new token keeping its own attention
    with pytest.raises(P2PError, match="target position 80"):
        Mapper.from_links("a cat", "a dog", [(1, 80, 1.0)], tokenizer)
    with pytest.raises(P2PError, match="finite"):
        Mapper.from_links("a cat", "a dog", [(1, 1, float("nan"))], tokenizer)


def test_to_dict_keeps_aligned_columns_no_link_feeds(tokenizer):
    ref = align("a jellybeans circle", "a red circle", tokenizer, "replace", compat="reference")
    data = ref.to_dict()
    assert data["unaligned"] == []  # every column takes the source's attention, the last ones fed by nothing
    back = Mapper.from_dict(data, ref.source, ref.target)
    assert torch.equal(back.aligned, ref.aligned) and torch.equal(back.matrix, ref.matrix)
    # files written before the key existed: the columns some link feeds are the aligned ones
    old = Mapper.from_dict({k: v for k, v in data.items() if k != "unaligned"}, ref.source, ref.target)
    assert torch.equal(old.aligned, (ref.matrix.abs().sum(0) > 0).float())
    # mappers whose aligned columns are the fed ones export as before
    assert "unaligned" not in align("a red circle", "a big red circle", tokenizer).to_dict()
    with pytest.raises(P2PError, match="'unaligned' must be a list of target positions"):
        Mapper.from_dict({**data, "unaligned": [80]}, ref.source, ref.target)


def test_links_take_numpy_scalars_and_export_plain_numbers(tokenizer):
    import json

    import numpy as np

    m = Mapper.from_links("a cat", "a dog", [(np.int64(2), np.int32(2), np.float32(0.5))], tokenizer)
    assert m.matrix[2, 2] == 0.5
    assert Mapper.from_dict(json.loads(json.dumps(m.to_dict())), m.source, m.target).links == m.links


def test_a_link_past_the_models_text_positions_names_the_likely_cause(tokenizer):
    """An SD edit's links (77 positions) on a model that reads fewer (the pocket flow model: 16) said
    "not an integer in [0, 16)" of an integer."""
    with pytest.raises(P2PError, match=r"source position 80 is outside this model's 77 text positions \(0-76\)"):
        Mapper.from_links("a cat", "a dog", [(80, 2, 1.0)], tokenizer)
