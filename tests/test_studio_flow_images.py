"""The Studio's inversion menu follows the model (issue 27): a UNet offers DDIM, null-text and
negative-prompt inversion, a flow model (tiny Flux, tiny SD3, the pocket flow model) FireFlow,
RF-Solver and Euler, each list and its default from ``engine.inversion`` (one place); a method of
the other family is refused by name and the widget keeps working; on a flow model a real image is
inverted, edited back with its solver (the timeline's axis counts that solver's calls) and its
JSON reloads and reruns bitwise."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import traitlets

from p2p_widgets.errors import P2PError

SOURCE = "a big red circle left of a small blue square on a gray background"
TARGET = "a big green circle left of a small blue square on a gray background"
STEPS = 3


def _picture(side: int = 64) -> np.ndarray:
    img = np.full((side, side, 3), 120, np.uint8)
    img[side // 4 : side // 2, side // 8 : side // 2] = (220, 40, 40)
    img[side // 2 : 3 * side // 4, side // 2 : 7 * side // 8] = (40, 40, 220)
    return img


def _registered(pipe, base, name):
    from p2p_widgets.engine.defaults import register_defaults

    defaults = dataclasses.replace(base, steps=STEPS, size=64, text_length=16, source=SOURCE, target=TARGET, name=name)
    return register_defaults(pipe, defaults)


@pytest.fixture(scope="module")
def flux():
    from p2p_widgets import Editor
    from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline
    from p2p_widgets.engine.defaults import FLUX_DEV_DEFAULTS

    return Editor(_registered(tiny_flux_pipeline(0), FLUX_DEV_DEFAULTS, "tiny Flux"))


@pytest.fixture(scope="module")
def sd3():
    from p2p_widgets import Editor
    from p2p_widgets.bench.mmdit_geometries import tiny_sd3_pipeline
    from p2p_widgets.engine.defaults import SD3_DEFAULTS

    return Editor(_registered(tiny_sd3_pipeline(0), SD3_DEFAULTS, "tiny SD3"))


def _studio(editor, **kwargs):
    from p2p_widgets.widgets import Studio

    return Studio(editor=editor, background=False, **kwargs)


def test_the_menu_and_its_default_come_from_the_engine_per_family(editor, flux, sd3):
    from p2p_widgets.engine.inversion import FAMILY_DEFAULTS, FAMILY_METHODS, LABELS, methods_of
    from p2p_widgets.evaluate.methods import INVERSIONS

    assert methods_of("ddim") == ("null-text", "negative-prompt", "ddim")
    assert methods_of("flow") == ("fireflow", "rf-solver", "euler") and methods_of(None) == ()
    assert set(INVERSIONS) == {m for ms in FAMILY_METHODS.values() for m in ms}  # the sweeps' list is the same
    for ed, family in ((editor, "ddim"), (flux, "flow"), (sd3, "flow")):
        p = _studio(ed, aligner=False, timeline=False).panel
        assert ed.model.inversion_methods == methods_of(family)
        assert p.invert_choices == [[m, LABELS[m]] for m in methods_of(family)]
        assert p.invert_method == FAMILY_DEFAULTS[family] == p.invert_choices[0][0]
        assert p.image_note == ""  # every family here inverts images


@pytest.mark.parametrize(
    "fixture,bad,why",
    [
        (
            "editor",
            "fireflow",
            r"'null-text', 'ddim', 'negative-prompt' on a sd model, got 'fireflow' \("
            r"'fireflow' inverts flow \(SD3, Flux\) models\)",
        ),
        (
            "flux",
            "null-text",
            r"'euler', 'rf-solver', 'fireflow' on a flux model, got 'null-text' \("
            r"'null-text' inverts UNet models\)",
        ),
        ("sd3", "ddim", r"on a sd3 model, got 'ddim' \('ddim' inverts UNet models\)"),
        ("flux", "rk4", r"on a flux model, got 'rk4'$"),
    ],
)
def test_a_method_the_model_does_not_take_is_refused_by_name_and_the_panel_keeps_working(request, fixture, bad, why):
    studio = _studio(request.getfixturevalue(fixture), aligner=False, timeline=False)
    p = studio.panel
    before = p.invert_method
    with pytest.raises(traitlets.TraitError, match="inversion method must be one of .*" + why):
        p.invert_method = bad
    p.set_state({"invert_method": bad})  # from the page: said beside the menu, the value kept
    assert p.invert_method == before and p.error_field == "invert_method"
    assert p.error.startswith("not applied: inversion method must be one of")
    other = p.invert_choices[-1][0]
    p.set_state({"invert_method": other})  # a method it takes: accepted, the error answered
    assert p.invert_method == other and p.error == ""


def test_flux_inverts_a_real_image_with_the_chosen_solver_and_reruns_its_json(flux):
    from p2p_widgets.engine.inversion import clear_cache

    clear_cache(flux)
    studio = _studio(flux)
    p = studio.panel
    assert (p.n_evals, studio.timeline.n_evals) == (STEPS, STEPS)
    studio.set_image(_picture(), name="photo.png")
    # FireFlow samples back with one call a step plus one: the panel's and the timeline's axis
    assert p.invert_method == "fireflow" and (p.n_evals, studio.timeline.n_evals) == (STEPS + 1, STEPS + 1)
    p.invert_method = "rf-solver"  # two calls a step
    assert (p.n_evals, studio.timeline.n_evals) == (2 * STEPS, 2 * STEPS)
    expected = flux._scheduler(STEPS, studio.run_scheduler()).timesteps
    assert studio.timeline.timesteps == [int(t) for t in expected]
    phases = []
    p.observe(lambda c: phases.append(c["new"]), names=["phase"])
    p.baseline = True
    result = studio.run()
    assert p.status == "done" and p.error == "", p.error
    assert phases == ["inverting (rf-solver)", "sampling", ""]
    assert [im["label"] for im in p.images] == ["input image", "reconstruction", "edit", "without P2P (same noise)"]
    assert len(result.controlled) == 2 * STEPS  # every model call of the solver
    spec = json.loads(p.spec_json)
    assert spec["start"] == "latents" and spec["inversion"]["method"] == "rf-solver"
    assert spec["inversion"]["family"] == "flow" and spec["scheduler"] == "FlowSolverScheduler"  # what sampled
    text = studio.to_json()

    p.invert_method = "euler"
    assert p.n_evals == STEPS
    studio.load_json(text)  # the method and the solver's axis come back with it
    assert p.invert_method == "rf-solver" and p.n_evals == 2 * STEPS and p.error == ""
    again = studio.run()
    assert torch.equal(again.latents, result.latents)

    studio.clear_image()
    assert (p.n_evals, studio.timeline.n_evals) == (STEPS, STEPS)
    with pytest.raises(P2PError, match="load that image"):
        studio.load_json(text)


def test_sd3_offers_and_runs_the_flow_solvers_and_refuses_a_ddim_edit_of_its_image(sd3, editor):
    studio = _studio(sd3, aligner=False)
    p = studio.panel
    assert [m for m, _ in p.invert_choices] == ["fireflow", "rf-solver", "euler"]
    studio.set_image(_picture(), name="photo.png")
    p.invert_method = "euler"
    result = studio.run()
    assert p.status == "done" and p.error == "" and len(result.controlled) == STEPS
    assert json.loads(p.spec_json)["inversion"]["method"] == "euler"

    # an edit of a UNet's DDIM inversion of the same image names what does not fit, changing nothing
    unet = _studio(editor, source="a red cat on a mat", target="a blue cat on a mat", steps=2, timeline=False)
    unet.set_image(_picture(), name="photo.png")
    unet.panel.invert_method = "ddim"
    unet.run()
    with pytest.raises(P2PError, match=r"this edit's inversion cannot run here: method must be one of"):
        studio.load_json(unet.to_json())
    assert p.invert_method == "euler" and p.source == SOURCE


def test_an_empty_caption_is_read_by_every_flow_solver_but_only_ddim_on_a_unet(flux, editor):
    studio = _studio(flux, timeline=False)
    studio.set_image(_picture(), name="photo.png")
    studio.panel.set_state({"method": "KVInjection", "source": ""})
    assert studio.panel.error == "" and studio.panel.source == ""
    studio._refuse_unrunnable()  # FireFlow reads the image under the empty prompt: nothing refused

    unet = _studio(editor, source="a red cat on a mat", target="a blue cat on a mat", steps=2, timeline=False)
    unet.set_image(_picture(), name="photo.png")
    unet.panel.set_state({"source": "", "invert_method": "negative-prompt"})
    with pytest.raises(P2PError, match="inverted with DDIM only"):
        unet._refuse_unrunnable()
    assert unet.panel.error_field == "invert_method"


@pytest.fixture(scope="module")
def pocket_flow():
    from p2p_widgets import Editor
    from p2p_widgets.models import load_pipeline

    return Editor(load_pipeline("pocket-flow", device="cpu"))


def test_the_pocket_flow_model_reconstructs_and_edits_a_scene_from_its_fireflow_inversion(pocket_flow):
    """A trained flow model: the Studio's default inversion brings a pocket scene back (PSNR as
    the README's reconstruction bench finds at these calls) and P2P edits its colour."""
    from p2p_widgets.pocket.scenes import make_dataset

    images, captions, _ = make_dataset(1, 0)
    studio = _studio(pocket_flow, steps=8)
    p = studio.panel
    assert p.invert_method == "fireflow"
    studio.set_image(images[0], name="scene.png")
    words = captions[0].split()
    colour = words[2]
    new = "blue" if colour != "blue" else "red"
    p.source, p.target = captions[0], captions[0].replace(colour, new, 1)
    assert p.n_evals == 9
    result = studio.run()
    assert p.status == "done" and p.error == ""
    recon, edit, inp = (np.asarray(x, float) for x in (result.images[0], result.images[1], studio.image))
    psnr = 10 * np.log10(255**2 / ((recon - inp) ** 2).mean())
    assert psnr > 20, psnr
    assert np.abs(edit - recon).mean() > 1.0  # the edit changed the picture
