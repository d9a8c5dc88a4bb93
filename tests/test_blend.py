"""LocalBlend's mask against the authors' ``get_mask``, on synthetic attention maps (no model)."""

import torch

from p2p_widgets.engine.blend import LocalBlend
from p2p_widgets.engine.prompts import Prompt
from p2p_widgets.engine.store import AttentionStore

TEXTS = ("a cat on a sofa", "a dog on a bed", "a fox on a bed")


def test_subtract_removes_the_sources_subtract_region_from_every_edit(tokenizer):
    """The authors' get_mask ends ``mask = mask[:1] + mask`` for the blend and the subtract words
    alike, then ``mask * ~sub``: an edit loses its own subtract region and the source's."""
    prompts = [Prompt.from_text(t, tokenizer) for t in TEXTS]
    blend = LocalBlend([["cat"], ["dog"], ["fox"]], subtract=[["sofa"], ["bed"], ["bed"]], start=0)
    maps = torch.zeros(3, 4, 4, 77)
    for b, word in enumerate(("cat", "dog", "fox")):
        maps[b, ..., prompts[b].positions(word)] = 1.0  # each object covers the whole image
    sub = torch.zeros(3, 4, 4, dtype=torch.bool)
    sub[0, :2, :] = True  # the source's sofa: the top half
    sub[1, 2:, 2:] = True  # the first edit's bed: the bottom-right quarter
    sub[2, :, 0] = True  # the second edit's bed: the left column
    for b, word in enumerate(("sofa", "bed", "bed")):
        maps[b, ..., prompts[b].positions(word)[0]] = sub[b].float()
    store = AttentionStore()
    store.sums[(4, 4)], store.n_steps = maps, 1
    state = blend.prepare(prompts, (4, 4), [4], store, 4)
    latents = torch.cat([torch.zeros(1, 4, 4, 4), torch.ones(2, 4, 4, 4)])
    out = blend.apply(state, latents, store)  # 1 where the edit is kept, 0 where the source shows
    for b in (1, 2):
        assert torch.equal(out[b, 0].bool(), ~(sub[0] | sub[b])), b
    assert not out[0].any()  # the source row is its own
