"""Layer 3: the Studio's inversion menu on a flow model in real Chromium (issue 27). On a tiny
Flux the real-image box offers FireFlow, RF-Solver and Euler (labels from Python, FireFlow
chosen), a picture from the file button is inverted with the solver picked in the menu and
edited; an edit of a UNet's DDIM inversion loaded from the page is refused in the banner, naming
the methods this model takes, and the Studio keeps working."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from p2p_widgets.widgets.studio import Studio

pytestmark = pytest.mark.browser

SOURCE = "a big red circle left of a small blue square on a gray background"
STEPS = 3


@pytest.fixture(scope="module")
def flux():
    from p2p_widgets import Editor
    from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline
    from p2p_widgets.engine.defaults import FLUX_DEV_DEFAULTS, register_defaults

    defaults = dataclasses.replace(
        FLUX_DEV_DEFAULTS,
        steps=STEPS,
        size=64,
        text_length=16,
        source=SOURCE,
        target=SOURCE.replace("red", "green"),
        name="tiny Flux",
    )
    return Editor(register_defaults(tiny_flux_pipeline(0), defaults))


def _png(tmp_path):
    from PIL import Image

    img = np.full((80, 96, 3), 120, np.uint8)
    img[20:50, 20:60] = (220, 40, 40)
    path = tmp_path / "photo.png"
    Image.fromarray(img).save(path)
    return path


def test_flux_offers_the_flow_solvers_and_edits_a_picture_inverted_with_the_one_picked(widget_page, flux, tmp_path):
    studio = Studio(editor=flux, background=False)
    studio.player.send = lambda *a, **k: None
    page = widget_page(studio.panel)
    page.click(".p2p-studio__real-summary")  # the real-image box opens
    assert page.page.locator(".p2p-studio__image-note").is_hidden()
    assert page.page.locator(".p2p-studio__image-file").is_visible()
    menu = page.page.locator(".p2p-studio__invert")
    options = menu.locator("option")
    assert options.all_text_contents() == [
        "FireFlow (best, one call a step)",
        "RF-Solver (second order, two calls a step)",
        "Euler (plain)",
    ]
    assert [options.nth(k).get_attribute("value") for k in range(3)] == ["fireflow", "rf-solver", "euler"]
    assert menu.input_value() == "fireflow"

    menu.select_option("rf-solver")
    page.page.locator(".p2p-studio__image-file").set_input_files(str(_png(tmp_path)))
    page.wait_for_sent("image")
    page.sync()
    p = studio.panel
    assert studio.image is not None and p.invert_method == "rf-solver" and p.error == ""
    assert p.n_evals == 2 * STEPS  # RF-Solver samples back with two model calls a step
    page.click(".p2p-studio__run")
    page.sync()
    assert p.status == "done" and p.error == "", p.error
    assert studio.result.spec.inversion["method"] == "rf-solver"
    page.page.wait_for_function("() => document.querySelectorAll('.p2p-studio__image img').length === 3")
    labels = page.page.eval_on_selector_all(".p2p-studio__image", "(fs) => fs.map((f) => f.dataset.label)")
    assert labels == ["input image", "reconstruction", "edit"]
    assert menu.input_value() == "rf-solver"
    page.screenshot("studio_flux_real_image")


def test_an_edit_of_a_unet_inversion_loaded_on_flux_is_refused_by_name(widget_page, flux, editor, tmp_path):
    path = _png(tmp_path)
    unet = Studio(editor=editor, source="a red cat on a mat", target="a blue cat on a mat", steps=2, background=False)
    unet.player.send = lambda *a, **k: None
    unet.set_image(str(path), name="photo.png")
    unet.panel.invert_method = "ddim"
    unet.run()
    edit = tmp_path / "unet_edit.json"
    edit.write_text(unet.to_json())

    studio = Studio(editor=flux, background=False)
    studio.player.send = lambda *a, **k: None
    studio.set_image(str(path), name="photo.png")  # the same picture: only the method does not fit
    page = widget_page(studio.panel)
    page.page.locator(".p2p-studio__file").set_input_files(str(edit))
    page.wait_for_sent("load_spec")
    page.sync()
    banner = page.page.locator(".p2p-error")
    banner.wait_for(state="visible")
    text = banner.text_content()
    assert "this edit's inversion cannot run here" in text
    assert "'euler', 'rf-solver', 'fireflow' on a flux model, got 'ddim' ('ddim' inverts UNet models)" in text
    p = studio.panel
    assert p.invert_method == "fireflow" and p.source == SOURCE  # nothing changed
    page.page.locator(".p2p-studio__invert").select_option("euler")  # and the Studio works on
    page.click(".p2p-studio__run")
    page.sync()
    assert p.invert_method == "euler" and p.status == "done" and p.error == ""
