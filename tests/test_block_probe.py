"""The "which blocks matter" probe (engine/probe.py) and its widget (widgets/block_probe.py).

A skipped block returns its inputs (checked against SD3's own ``skip_layers`` and against the block
taken out of the model), every block gets one record, skipping a working block changes the image
(score > 0) while a block that is the identity scores exactly 0, the model is bitwise the same
afterwards (also after an error), the run lock is held, UNets and bad input are named. The widget
turns clicked bars into a KVInjection and refuses bad writes."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline, tiny_sd3_pipeline
from p2p_widgets.engine.joint_controls import KVInjection
from p2p_widgets.engine.probe import BlockImportance, block_importance, skipped, transformer_blocks
from p2p_widgets.engine.sampler import Editor
from p2p_widgets.errors import P2PError

PROMPT = "a big red circle left of a small blue square on a gray background"
RUN = dict(seed=0, steps=2, height=64, width=64)
GUIDANCE = {"flux": 3.5, "sd3": 7.0, "sd35": 7.0}


@pytest.fixture(scope="module")
def flux():
    return Editor(tiny_flux_pipeline(seed=0))


@pytest.fixture(scope="module")
def sd3():
    return Editor(tiny_sd3_pipeline(seed=0))


@pytest.fixture(scope="module")
def sd35():
    return Editor(tiny_sd3_pipeline(seed=0, sd35=True))  # dual attention in block 0


@pytest.fixture(scope="module")
def flux_result(flux):
    return block_importance(flux, PROMPT, guidance=3.5, **RUN)


def _state(editor):
    """Everything that must not change: parameters and buffers (copies), hooks, processors."""
    model = editor.model.denoiser
    tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return tensors, hooks, dict(model.attn_processors)


def _same_state(editor, before) -> None:
    tensors, hooks, processors = _state(editor)
    assert hooks == before[1] == 0
    assert processors == before[2]
    assert tensors.keys() == before[0].keys()
    assert all(torch.equal(tensors[k], before[0][k]) for k in tensors)


def _sample(editor, family):
    return editor.sample(PROMPT, guidance=GUIDANCE[family], **RUN).latents


# -- the probe -----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["flux", "sd3", "sd35"])
def test_one_record_per_block_scores_above_zero_and_the_model_unchanged(request, family):
    editor = request.getfixturevalue(family)
    before, latents = _state(editor), _sample(editor, family)
    events = []
    result = block_importance(editor, PROMPT, guidance=GUIDANCE[family], callback=events.append, **RUN)
    blocks = list(dict.fromkeys(s.block for s in editor.model.sites()))  # the sites' block labels, in order
    assert [r.label for r in result.records] == blocks
    assert blocks == (
        ["double 0", "double 1", "single 0", "single 1"] if family == "flux" else ["double 0", "double 1"]
    )
    assert [(r.place, r.depth) for r in result.records] == [(b.split()[0], int(b.split()[1])) for b in blocks]
    scores = [r.score for r in result.records]
    print(family, {r.label: f"{r.score:.3e}" for r in result.records})
    assert all(math.isfinite(s) and s > 1e-6 for s in scores)  # every block of a random model matters
    assert not result.stopped and result.metric == "latent-cosine" and result.size == (64, 64)
    # after every step of every run (the reference and one per block), plus one event per block's score
    runs = 1 + len(blocks)
    assert len(events) == runs * 2 + len(blocks)
    assert [e.record for e in events if e.record is not None] == result.records
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    _same_state(editor, before)
    assert torch.equal(_sample(editor, family), latents)  # bitwise the same model


def _flux_inputs(transformer):
    g = torch.Generator().manual_seed(0)
    cfg = transformer.config
    return dict(
        hidden_states=torch.randn(1, 16, cfg.in_channels, generator=g),
        encoder_hidden_states=torch.randn(1, 5, cfg.joint_attention_dim, generator=g),
        pooled_projections=torch.randn(1, cfg.pooled_projection_dim, generator=g),
        timestep=torch.tensor([0.7]),
        guidance=torch.tensor([3.5]),
        img_ids=torch.stack(
            torch.meshgrid(torch.zeros(1), torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1
        ).reshape(-1, 3),
        txt_ids=torch.zeros(5, 3),
        return_dict=False,
    )


@pytest.mark.parametrize("kind", ["transformer_blocks", "single_transformer_blocks"])
@pytest.mark.parametrize("index", [0, 1])
def test_a_skipped_flux_block_is_the_block_taken_out(flux, kind, index):
    transformer = flux.model.denoiser
    inputs = _flux_inputs(transformer)
    with torch.no_grad():
        full = transformer(**inputs)[0]
        with skipped(getattr(transformer, kind)[index]):
            hooked = transformer(**inputs)[0]
        blocks = getattr(transformer, kind)
        try:
            setattr(transformer, kind, torch.nn.ModuleList([b for k, b in enumerate(blocks) if k != index]))
            removed = transformer(**inputs)[0]
        finally:
            setattr(transformer, kind, blocks)
        again = transformer(**inputs)[0]
    assert torch.equal(hooked, removed)
    assert (hooked - full).abs().max() > 1e-4  # the block did something
    assert torch.equal(again, full)


@pytest.mark.parametrize("index", [0, 1])  # 1: the last block (context_pre_only: returns no text)
def test_a_skipped_sd3_block_equals_diffusers_skip_layers(sd3, index):
    transformer = sd3.model.denoiser
    g = torch.Generator().manual_seed(1)
    inputs = dict(
        hidden_states=torch.randn(1, 4, 16, 16, generator=g),
        encoder_hidden_states=torch.randn(1, 7, transformer.config.joint_attention_dim, generator=g),
        pooled_projections=torch.randn(1, transformer.config.pooled_projection_dim, generator=g),
        timestep=torch.tensor([500.0]),
        return_dict=False,
    )
    with torch.no_grad():
        with skipped(transformer.transformer_blocks[index]):
            hooked = transformer(**inputs)[0]
        native = transformer(**inputs, skip_layers=[index])[0]
        full = transformer(**inputs)[0]
    assert torch.equal(hooked, native)
    assert (hooked - full).abs().max() > 1e-4


@pytest.mark.parametrize("metric", ["latent-cosine", "pixel-mse"])
def test_a_block_that_is_the_identity_scores_exactly_zero(metric):
    editor = Editor(tiny_flux_pipeline(seed=0))
    transformer = editor.model.denoiser
    with torch.no_grad():  # adaLN-Zero with zero modulation: every gate 0, the block adds exactly nothing
        for norm in (transformer.transformer_blocks[1].norm1, transformer.transformer_blocks[1].norm1_context):
            norm.linear.weight.zero_(), norm.linear.bias.zero_()
        transformer.single_transformer_blocks[0].norm.linear.weight.zero_()
        transformer.single_transformer_blocks[0].norm.linear.bias.zero_()
    scores = block_importance(editor, PROMPT, guidance=3.5, metric=metric, **RUN).scores()
    print(metric, scores)
    assert scores["double 1"] == 0.0 and scores["single 0"] == 0.0
    assert scores["double 0"] > 0 and scores["single 1"] > 0


def test_pixel_mse_and_a_metric_of_your_own(flux, flux_result):
    mse = block_importance(flux, PROMPT, guidance=3.5, metric="pixel-mse", **RUN)
    assert all(r.score > 0 for r in mse.records) and mse.metric == "pixel-mse"
    seen = []

    def changed_pixels(reference, image):
        seen.append((reference.size, image.size))
        return float(sum(a != b for a, b in zip(reference.tobytes(), image.tobytes())))

    own = block_importance(flux, PROMPT, guidance=3.5, metric=changed_pixels, **RUN)
    assert own.metric == "changed_pixels" and seen == [((64, 64), (64, 64))] * 4
    assert all(r.score > 0 for r in own.records)
    assert own.reference.size == (64, 64) and flux_result.reference.tobytes() == own.reference.tobytes()


def test_hooks_are_removed_after_an_error_and_the_model_is_unchanged(flux):
    before, latents = _state(flux), _sample(flux, "flux")

    def fail(event):
        if event.run == 2:
            raise RuntimeError("boom in the callback")

    with pytest.raises(RuntimeError, match="boom"):
        block_importance(flux, PROMPT, guidance=3.5, callback=fail, **RUN)
    _same_state(flux, before)
    assert torch.equal(_sample(flux, "flux"), latents)
    with pytest.raises(P2PError, match="must return a finite number >= 0"):
        block_importance(flux, PROMPT, guidance=3.5, metric=lambda a, b: float("nan"), **RUN)
    _same_state(flux, before)


def test_a_stop_event_ends_the_probe_with_the_blocks_measured(flux, flux_result):
    stop = threading.Event()

    def stop_in_third_run(event):
        if event.run == 2:
            stop.set()

    result = block_importance(flux, PROMPT, guidance=3.5, callback=stop_in_third_run, stop_event=stop, **RUN)
    assert result.stopped and result.records == flux_result.records[:1]
    stopped_at_once = block_importance(flux, PROMPT, guidance=3.5, stop_event=stop, **RUN)
    assert stopped_at_once.stopped and stopped_at_once.records == [] and stopped_at_once.reference is None


def test_the_probe_holds_the_models_run_lock(flux):
    held, release = threading.Event(), threading.Event()

    def hold():
        with flux.exclusive():
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        held.wait(30)
        with pytest.raises(P2PError, match="another run is using this model"):
            block_importance(flux, PROMPT, guidance=3.5, wait=False, **RUN)
    finally:
        release.set()
        thread.join()


def test_unets_are_refused(editor):
    with pytest.raises(P2PError, match=r"MM-DiT \(SD3 or Flux\).*UNet2DConditionModel"):
        block_importance(editor, PROMPT, seed=0, steps=2, guidance=5.0)
    with pytest.raises(P2PError, match="MM-DiT"):
        transformer_blocks(editor)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(prompt=""), "prompt must be a non-empty string"),
        (dict(prompt=3), "prompt must be a non-empty string"),
        (dict(seed=-1), "seed must be an integer >= 0"),
        (dict(seed=1.5), "seed must be an integer >= 0"),
        (dict(steps=0), "steps must be an integer"),
        (dict(guidance=float("nan")), "guidance must be a finite number"),
        (dict(metric="lpips"), "metric must be one of 'latent-cosine', 'pixel-mse' or a function"),
        (dict(metric=3), "metric must be one of"),
        (dict(callback=5), "callback must be a function"),
        (dict(stop_event=True), "stop_event must be a threading.Event"),
        (dict(height=65), "65"),
    ],
)
def test_bad_input_is_named(flux, change, message):
    args = dict(prompt=PROMPT, guidance=3.5, **RUN)
    args.update(change)
    with pytest.raises(P2PError, match=message):
        block_importance(flux, args.pop("prompt"), **args)


def test_result_helpers(flux_result):
    assert isinstance(flux_result, BlockImportance)
    top = flux_result.top(2)
    assert len(top) == 2 and flux_result.scores()[top[0]] == max(flux_result.scores().values())
    rule = flux_result.rule(["single 1", "double 0"], start_step=1)
    assert isinstance(rule, KVInjection)
    assert (list(rule.double), list(rule.single), rule.start_step) == (["0"], ["1"], 1)
    with pytest.raises(P2PError, match="no block 'double 9'"):
        flux_result.rule(["double 9"])


# -- the widget ----------------------------------------------------------------------------------
def test_widget_shows_records_and_turns_the_selection_into_a_rule(flux, flux_result):
    from p2p_widgets import BlockProbe

    w = BlockProbe(flux_result)
    assert [b["label"] for b in w.blocks] == ["double 0", "double 1", "single 0", "single 1"]
    assert w.metric == "1 - cosine of the final latents" and w.selected == []
    w.set_state({"selected": [3, 0]})
    assert w.error == "" and w.selected == [0, 3]
    assert w.selected_labels == ["double 0", "single 1"]
    assert w.rule_params == {"double": ["0"], "single": ["1"]}
    rule = w.rule(copy_keys=False)
    assert isinstance(rule, KVInjection) and (list(rule.double), list(rule.single), rule.copy_keys) == (
        ["0"],
        ["1"],
        False,
    )
    # the rule edits on the model the probe ran on
    out = flux.edit(PROMPT, PROMPT.replace("red", "green"), rules=[rule], guidance=3.5, **RUN)
    assert torch.isfinite(out.latents).all()
    w.select(["double 1"])
    assert w.selected == [1] and w.rule_params == {"double": ["1"], "single": []}
    with pytest.raises(P2PError, match="no block 'single 7'"):
        w.select(["single 7"])


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"selected": [4]}, "4 is not a block index"),
        ({"selected": [-1]}, "-1 is not a block index"),
        ({"selected": [0, 0]}, "appears twice"),
        ({"selected": ["0"]}, "selected"),
        ({"selected": [True]}, "selected"),
        ({"selected": 1}, "selected"),
        ({"blocks": []}, "blocks cannot be set from the page"),
        ({"metric": "x"}, "metric cannot be set from the page"),
    ],
)
def test_widget_refuses_bad_writes_and_keeps_working(flux_result, state, message):
    from p2p_widgets.widgets.block_probe import BlockProbe

    w = BlockProbe(flux_result)
    w.set_state({"selected": [1]})
    w.set_state(state)
    assert message in w.error
    assert w.selected == [1] and len(w.blocks) == 4
    w.set_state({"selected": [2]})
    assert w.error == "" and w.selected == [2]


def test_widget_checks_blocks_and_runs_the_probe(flux):
    from p2p_widgets.widgets.block_probe import BlockProbe

    w = BlockProbe()
    with pytest.raises(P2PError, match="no block is selected"):
        w.rule()
    for bad, message in [
        ([{"label": "double 0", "place": "double", "depth": 0}], "exactly label, place, depth and score"),
        ([{"label": "double 1", "place": "double", "depth": 0, "score": 0.1}], "label '<place> <depth>'"),
        ([{"label": "double 0", "place": "double", "depth": 0, "score": -1.0}], "score must be a finite number"),
        ([{"label": "triple 0", "place": "triple", "depth": 0, "score": 0.0}], "place must be double or single"),
        (
            [{"label": f"{p} 0", "place": p, "depth": 0, "score": 0.0} for p in ("single", "double")],
            "double-stream first",
        ),
    ]:
        with pytest.raises(Exception, match=message):
            w.blocks = bad
    statuses = []
    w.observe(lambda change: statuses.append(change["new"]), names="status")
    result = w.run(flux, PROMPT, guidance=3.5, **RUN)
    assert [b["label"] for b in w.blocks] == [r.label for r in result.records]
    assert any("double 1: run 3 of 5" in s for s in statuses) and w.status == ""
    with pytest.raises(P2PError, match="seed must be"):
        w.run(flux, PROMPT, guidance=3.5, seed=-2, steps=2)
    assert "seed must be" in w.error


def test_new_blocks_keep_the_selected_labels_that_remain(flux_result):
    from p2p_widgets.widgets.block_probe import BlockProbe

    w = BlockProbe(flux_result)
    w.select(["double 1", "single 1"])
    w.blocks = [b for b in w.blocks if b["label"] != "double 0"]  # indices move, labels stay
    assert w.selected_labels == ["double 1", "single 1"] and w.selected == [0, 2]
    w.blocks = [b for b in w.blocks if b["place"] == "double"]  # an SD3-like model: single 1 is gone
    assert w.selected_labels == ["double 1"]
    w.show(flux_result)  # a new result starts with nothing selected
    assert w.selected == [] and len(w.blocks) == 4
