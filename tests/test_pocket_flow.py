"""The pocket flow model: its tokenizer, architecture, training command (a few steps, resumed) and loader."""

from __future__ import annotations

import json

import torch

from p2p_widgets.pocket import flow
from p2p_widgets.pocket.train_flow import main as train_main


def test_word_level_t5_tokenizer_covers_every_scene_word():
    from p2p_widgets.pocket.scenes import make_dataset

    tok = flow.t5_tokenizer()
    _, captions, _ = make_dataset(200, seed=3)
    for caption in captions:
        ids = tok(caption).input_ids
        assert tok.unk_token_id not in ids and ids[-1] == tok.eos_token_id, caption
        assert len(ids) == len(caption.split()) + 1 <= flow.TEXT_LENGTH  # one piece per word, then </s>
    assert tok("a zebra").input_ids[-2] == tok.unk_token_id  # outside the vocabulary: <unk>


def test_flux_layout_at_pocket_size():
    with torch.device("meta"):
        t5, transformer = flow.build_components()
    assert (len(transformer.transformer_blocks), len(transformer.single_transformer_blocks)) == (2, 4)
    assert 2.2e6 < sum(p.numel() for p in transformer.parameters()) < 2.4e6
    assert transformer.config.in_channels == 16 and not transformer.config.guidance_embeds


def test_training_smoke_resume_and_load(tmp_path):
    """A few steps on the CPU write weights load_flow_pocket reads; --resume continues the count."""
    args = ["--out", str(tmp_path), "--pool", "64", "--workers", "1", "--steps", "2", "--batch", "4"]
    with torch.no_grad():  # a caller (a notebook, another test) may have switched gradients off
        train_main([*args, "--save-every", "0", "--threads", "1"])
    info = json.loads((tmp_path / "flow.json").read_text())
    assert info["meta"]["steps"] == 2 and info["vocabulary"] == list(flow.VOCABULARY)
    assert set(info["latents"]) == {"shift_factor", "scaling_factor"}
    train_main([*args, "--steps", "3", "--resume", "--save-every", "0", "--threads", "1"])
    assert "step 3/3" in (tmp_path / "train.log").read_text()
    pipe = flow.load_flow_pocket(device="cpu", weights_dir=tmp_path)
    from p2p_widgets.engine.sampler import Editor

    editor = Editor(pipe)
    assert editor.model.family == "flux" and editor.default_size == 32 and editor.model.text_length == 16
    out = editor.sample("a big red circle on a gray background", steps=2, guidance=4.0)
    assert out.images[0].size == (32, 32) and torch.isfinite(out.latents).all()
