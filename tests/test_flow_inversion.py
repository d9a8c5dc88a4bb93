"""Inverting pictures on flow models (issue 27): Euler, RF-Solver and FireFlow on a tiny Flux and a
tiny SD3, edits started from them, the file format (version 2, version 1 still loads) and the
refusals per model family."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from p2p_widgets.errors import P2PError

SIDE = 64


@pytest.fixture(scope="module")
def picture():
    from p2p_widgets.engine.images import load_image
    from p2p_widgets.pocket.scenes import make_dataset

    images, captions, _ = make_dataset(1, 0)
    return load_image(images[0], (SIDE, SIDE)), captions[0]


@pytest.fixture(scope="module")
def flux():
    from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline
    from p2p_widgets.engine.sampler import Editor

    return Editor(tiny_flux_pipeline(0, guidance_embeds=True))


@pytest.fixture(scope="module")
def sd3():
    from p2p_widgets.bench.mmdit_geometries import tiny_sd3_pipeline
    from p2p_widgets.engine.sampler import Editor

    return Editor(tiny_sd3_pipeline(0))


def _reconstruction_error(editor, picture, method, steps, guidance=1.0):
    image, caption = picture
    inv = editor.invert(image, caption, method=method, steps=steps, guidance=guidance, size=SIDE, cache=False)
    result = inv.reconstruct(editor)
    z0 = editor.encode_image(image).float().cpu()
    return float((result.latents[:1].float().cpu() - z0).abs().max()), inv, result


def test_solvers_count_model_calls_as_documented():
    from p2p_widgets.engine.inversion.flow import FlowIntegrator, calls_per_run, eval_sigmas

    sigmas = [1.0, 0.75, 0.5, 0.0]
    for method, calls in (("euler", 3), ("rf-solver", 6), ("fireflow", 4)):
        assert len(eval_sigmas(sigmas, method)) == calls == calls_per_run(method, 3)
        # a constant velocity field is integrated exactly by every solver
        integrator, x = FlowIntegrator(sigmas, method, torch.zeros(2)), torch.zeros(2)
        while not integrator.done:
            x = integrator.feed(torch.tensor([1.0, -2.0]))
        assert torch.allclose(x, torch.tensor([-1.0, 2.0]))


def test_second_order_solvers_reconstruct_closer_than_euler_at_equal_model_calls(flux, picture):
    """Invert, then regenerate from the inversion with its prompt at guidance 1 (each solver
    samples back with itself): 8 model calls each way."""
    errors = {
        "euler": _reconstruction_error(flux, picture, "euler", 8)[0],
        "rf-solver": _reconstruction_error(flux, picture, "rf-solver", 4)[0],
        "fireflow": _reconstruction_error(flux, picture, "fireflow", 7)[0],
    }
    print("max latent error after inversion and regeneration, 8 model calls each:", errors)
    assert errors["rf-solver"] < errors["euler"] / 3
    assert errors["fireflow"] < errors["euler"] / 3


def test_more_steps_reconstruct_closer(flux, picture):
    for method in ("euler", "rf-solver", "fireflow"):
        coarse, fine = (_reconstruction_error(flux, picture, method, n)[0] for n in (2, 8))
        assert fine < coarse, (method, coarse, fine)


def test_sd3_edit_from_an_inversion_runs_and_reruns_bitwise_from_its_json(sd3, picture):
    from p2p_widgets.engine.spec import EditSpec

    image, caption = picture
    inv = sd3.invert(image, caption, method="fireflow", steps=3, guidance=2.0, size=SIDE)
    assert inv.family == "flow" and len(inv.timesteps) == 4 and len(inv.sigmas) == 4
    target = caption.replace("big", "small", 1)
    result = inv.edit(sd3, [target])
    assert result.latents.shape[0] == 2 and len(result.images) == 2
    again = sd3.run(EditSpec.from_json(result.spec.to_json()), inversion=inv)
    assert torch.equal(again.latents, result.latents)
    with pytest.raises(P2PError, match="its own solver: pass no scheduler"):
        from diffusers import FlowMatchEulerDiscreteScheduler

        inv.edit(sd3, [target], scheduler=FlowMatchEulerDiscreteScheduler())


def test_save_load_round_trip_edits_bitwise_and_refuses_another_model(flux, sd3, picture, tmp_path):
    from p2p_widgets.engine.inversion import Inversion

    _, inv, result = _reconstruction_error(flux, picture, "rf-solver", 2, guidance=3.5)
    inv.save(tmp_path / "inv")
    loaded = Inversion.load(tmp_path / "inv")
    assert loaded.describe() == inv.describe()
    assert loaded.family == "flow" and loaded.method == "rf-solver" and loaded.sigmas == inv.sigmas
    assert torch.equal(loaded.latents, inv.latents) and np.array_equal(loaded.image, inv.image)
    assert json.loads((tmp_path / "inv.json").read_text())["format"] == 2
    assert torch.equal(loaded.reconstruct(flux).latents, result.latents)
    with pytest.raises(P2PError, match="was made with model"):
        from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline
        from p2p_widgets.engine.sampler import Editor

        loaded.reconstruct(Editor(tiny_flux_pipeline(1, guidance_embeds=True)))
    with pytest.raises(P2PError):  # SD3's latents have 16 channels, the tiny Flux's 4
        loaded.reconstruct(sd3)


def test_version_1_files_still_load(tmp_path):
    from p2p_widgets.engine.inversion import Inversion

    inv = Inversion("ddim", "a cat", 2, 1.0, torch.zeros(3, 4, 8, 8), None, [501, 1])
    inv.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old.json").read_text())
    meta["format"] = 1
    del meta["family"]
    (tmp_path / "old.json").write_text(json.dumps(meta))
    loaded = Inversion.load(tmp_path / "old")
    assert loaded.family == "ddim" and loaded.timesteps == [501, 1] and loaded.sigmas is None
    meta["method"] = "euler"  # a flow method in a DDIM file is no file an inversion writes
    (tmp_path / "old.json").write_text(json.dumps(meta))
    with pytest.raises(P2PError, match="family, method, steps or timesteps"):
        Inversion.load(tmp_path / "old")


def test_bad_method_names_are_refused_per_family(flux, editor, picture):
    image, caption = picture
    with pytest.raises(P2PError, match=r"'euler', 'rf-solver', 'fireflow' on a flux model, got 'null-text'"):
        flux.invert(image, caption, method="null-text", steps=2, size=SIDE)
    with pytest.raises(P2PError, match=r"got 'fireflow' \('fireflow' inverts flow \(SD3, Flux\) models\)"):
        editor.invert(image, caption, method="fireflow", steps=2)
    with pytest.raises(P2PError, match="got 'rk4'"):
        flux.invert(image, caption, method="rk4", steps=2, size=SIDE)
    with pytest.raises(P2PError, match="inner_steps: settings of null-text inversion"):
        flux.invert(image, caption, method="euler", steps=2, size=SIDE, inner_steps=3)


def test_the_reconstruction_bench_compares_solvers_at_equal_calls(flux):
    from p2p_widgets.bench.flow_invert import measure, steps_for, table

    assert [steps_for(m, 8) for m in ("euler", "rf-solver", "fireflow")] == [8, 4, 7]
    assert steps_for("rf-solver", 3) is None and steps_for("fireflow", 1) is None
    rows = measure(flux, scenes=2, calls=(8,))
    assert rows[("fireflow", 8)][2] < rows[("euler", 8)][2] and rows[("rf-solver", 8)][2] < rows[("euler", 8)][2]
    assert "| rf-solver | 8 | 4 |" in table(rows, 2)


def test_a_p2p_edit_with_local_blend_and_baseline_runs_from_a_fireflow_inversion_and_stop_ends_one(flux, picture):
    import threading

    image, caption = picture
    inv = flux.invert(image, caption, method="fireflow", steps=3, guidance=3.5, size=SIDE)
    words = caption.split()
    target = caption.replace(words[2], "blue" if words[2] != "blue" else "red", 1)
    result = inv.edit(flux, [target], blend=[words[3]], baseline=True)
    assert len(result.images) == 2 and len(result.baseline) == 2
    assert len(result.controlled) == 4  # FireFlow: one model call a step plus one
    steps = []
    stop = threading.Event()

    def callback(event):
        steps.append(event.step)
        stop.set()

    with pytest.raises(P2PError, match="stopped by the stop event during the rf-solver trajectory"):
        flux.invert(image, caption, method="rf-solver", steps=3, size=SIDE, callback=callback, stop_event=stop)
    assert steps == [0]


def test_invert_without_a_method_uses_the_model_familys_default(flux, editor, picture):
    """``method`` defaulted to "null-text", which no flow model takes: None now means the family's
    default (FAMILY_DEFAULTS), FireFlow on Flux and still null-text on a UNet."""
    from p2p_widgets.engine.inversion import FAMILY_DEFAULTS, invert

    image, caption = picture
    assert flux.invert(image, caption, steps=2, size=SIDE, cache=False).method == FAMILY_DEFAULTS["flow"] == "fireflow"
    assert invert(flux, image, caption, steps=2, size=SIDE, cache=False).method == "fireflow"
    assert editor.invert(image, caption, method=None, steps=1, inner_steps=1).method == "null-text"
