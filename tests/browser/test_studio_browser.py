"""Layer 3: the Studio panel bundle in real Chromium, bound to a real Studio (tiny model):
Run from the page, results drawn, errors in the banner, JSON export and import."""

import json

import numpy as np
import pytest
import torch

from p2p_widgets.widgets.studio import Studio

pytestmark = pytest.mark.browser


@pytest.fixture
def studio(editor):
    # background=False: the bound harness page is driven from this thread only
    s = Studio(
        editor=editor,
        source="a red cat on a mat",
        target="a blue dog on a mat",
        steps=3,
        guidance=7.5,
        background=False,
    )
    s.player.send = lambda *a, **k: None
    return s


def test_run_from_the_page_shows_the_results(widget_page, studio):
    page = widget_page(studio.panel)
    page.page.locator(".p2p-studio__seed").fill("5")
    page.page.locator(".p2p-studio__seed").dispatch_event("change")
    page.click(".p2p-studio__run")
    page.sync()  # seed, then the run message: the Studio samples and pushes its traits to the page
    assert studio.panel.seed == 5 and studio.result is not None
    page.page.wait_for_function("() => document.querySelectorAll('.p2p-studio__image img').length === 2")
    page.page.wait_for_function(
        "() => [...document.querySelectorAll('.p2p-studio__image img')]"
        ".every((i) => i.complete && i.naturalWidth === 64)"
    )
    assert page.text(".p2p-studio__status") == "done"
    # the page shows exactly the edited image: draw it into a canvas and compare pixels
    pixels = page.page.evaluate(
        """() => { const img = document.querySelectorAll('.p2p-studio__image img')[1];
            const c = document.createElement('canvas'); c.width = 64; c.height = 64;
            const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
            return Array.from(ctx.getImageData(0, 0, 64, 64).data); }"""
    )
    rgba = np.array(pixels, np.uint8).reshape(64, 64, 4)
    assert np.array_equal(rgba[..., :3], np.asarray(studio.result.images[1]))
    page.screenshot("studio_panel")


def test_errors_show_in_the_banner_and_the_panel_stays_usable(widget_page, studio):
    page = widget_page(studio.panel)
    page.page.locator(".p2p-studio__seed").fill("-3")
    page.page.locator(".p2p-studio__seed").dispatch_event("change")
    page.sync()
    banner = page.page.locator(".p2p-error")
    by_field = page.page.locator(".p2p-studio__field-error")
    assert by_field.is_visible() and "seed must be from 0" in by_field.text_content() and banner.is_hidden()
    assert studio.panel.seed == 0
    studio.panel.report_error("something general went wrong")  # an error about no one field: the banner
    assert banner.is_visible() and by_field.is_hidden()
    page.click('.p2p-studio__chip[data-word="dog"]')
    page.click(".p2p-studio__run")
    page.sync()
    assert studio.panel.status == "done" and studio.panel.blend_words == ["dog"]
    assert banner.is_hidden()


def test_json_export_downloads_and_loading_it_reruns_the_same_edit(widget_page, studio, tmp_path):
    page = widget_page(studio.panel)
    page.click('.p2p-studio__weight[data-word="blue"] .p2p-studio__reset')  # no-op: blue is at 1
    slider = page.page.locator('.p2p-studio__weight[data-word="blue"] input')
    slider.fill("2.5")
    page.click(".p2p-studio__run")
    page.sync()
    first = studio.result
    with page.page.expect_download() as info:
        page.click(".p2p-studio__json")
    download = info.value
    assert download.suggested_filename == "p2p_edit.json"
    path = tmp_path / "edit.json"
    download.save_as(path)
    spec = json.loads(path.read_text())
    assert spec["rules"][0]["values"] == {"blue": 2.5}
    assert path.read_text() == studio.to_json()

    studio.panel.seed = 11  # change the settings, then load the file through the page
    studio.panel.reweight = {}
    page.page.locator(".p2p-studio__file").set_input_files(str(path))
    page.wait_for_sent("load_spec")
    page.sync()
    assert (studio.panel.seed, studio.panel.reweight, studio.panel.error) == (0, {"blue": 2.5}, "")
    page.click(".p2p-studio__run")
    page.sync()
    assert torch.equal(studio.result.latents, first.latents)


def test_schedule_controls_hide_when_the_timeline_is_shown(widget_page, editor):
    with_timeline = Studio(editor=editor, steps=3, background=False)
    page = widget_page(with_timeline.panel)
    assert with_timeline.panel.has_timeline
    assert page.page.locator(".p2p-studio__schedule").is_hidden()
    without = Studio(editor=editor, steps=3, background=False, timeline=False)
    page2 = widget_page(without.panel)
    assert page2.page.locator(".p2p-studio__schedule").is_visible()


def test_a_real_image_from_the_file_button_is_inverted_and_edited(widget_page, studio, tmp_path):
    from PIL import Image

    img = np.full((96, 80, 3), 120, np.uint8)
    img[30:60, 20:50] = (220, 40, 40)
    path = tmp_path / "photo.png"
    Image.fromarray(img).save(path)
    page = widget_page(studio.panel)
    page.page.locator(".p2p-studio__invert").select_option("negative-prompt")
    page.page.locator(".p2p-studio__image-file").set_input_files(str(path))
    page.wait_for_sent("image")
    page.sync()
    assert studio.image is not None and studio.panel.invert_method == "negative-prompt"
    page.page.wait_for_function(
        "() => { const i = document.querySelector('.p2p-studio__input-preview');"
        " return !i.hidden && i.complete && i.naturalWidth === 64; }"
    )
    assert page.text(".p2p-studio__input-name") == "photo.png"
    page.click(".p2p-studio__run")
    page.sync()
    page.page.wait_for_function("() => document.querySelectorAll('.p2p-studio__image img').length === 3")
    labels = page.page.eval_on_selector_all(".p2p-studio__image", "(fs) => fs.map((f) => f.dataset.label)")
    assert labels == ["input image", "reconstruction", "edit"]
    page.screenshot("studio_real_image")
    page.click(".p2p-studio__clear-image")
    page.sync()
    assert studio.image is None
    assert page.page.locator(".p2p-studio__input-preview").is_hidden()


def _below(upper, lower):
    """Pixels between the bottom of ``upper`` and the top of ``lower`` (negative: overlapping)."""
    a, b = upper.bounding_box(), lower.bounding_box()
    return b["y"] - (a["y"] + a["height"])


def test_a_rejected_field_shows_its_error_under_it_keeps_the_text_and_clears_once_fixed(widget_page, studio):
    page = widget_page(studio.panel)
    seed = page.page.locator(".p2p-studio__seed")
    seed.fill("-3")
    seed.dispatch_event("change")
    page.sync()
    error = page.page.locator(".p2p-studio__field-error")
    assert error.is_visible() and page.page.locator(".p2p-error").is_hidden()
    text = error.text_content()
    assert "seed must be from 0 to" in text and "front end" not in text and "rejected" not in text
    assert 0 <= _below(seed, error) < 30  # right under the seed field, not at the end of the panel
    assert seed.input_value() == "-3"  # the rejected text stays for the user to fix
    assert seed.get_attribute("aria-invalid") == "true"
    assert seed.get_attribute("aria-describedby") == error.get_attribute("id")
    assert page.page.locator(".p2p-studio__run").is_disabled()  # the field does not show what would run
    assert studio.panel.seed == 0 and studio.panel.error_field == "seed"

    seed.fill("4")
    seed.dispatch_event("change")
    page.sync()
    assert studio.panel.seed == 4 and studio.panel.error == ""
    assert error.is_hidden() and seed.get_attribute("aria-invalid") is None
    assert page.page.locator(".p2p-studio__run").is_enabled()


def test_an_empty_target_is_refused_in_plain_words(widget_page, studio):
    page = widget_page(studio.panel)
    target = page.page.locator(".p2p-studio__target")
    target.fill("   ")
    target.dispatch_event("change")
    page.sync()
    assert studio.panel.target == "a blue dog on a mat"  # nothing meaningless to run
    error = page.page.locator(".p2p-studio__field-error")
    assert error.is_visible() and "the target prompt is empty" in error.text_content()
    assert 0 <= _below(target, error) < 30
    assert target.input_value() == "   " and page.page.locator(".p2p-studio__run").is_disabled()
    page.page.keyboard.press("Control+Enter")  # the keyboard Run is refused too
    page.sync()
    assert studio.result is None
    target.fill("a blue dog on a rug")
    target.dispatch_event("change")
    page.sync()
    assert studio.panel.target == "a blue dog on a rug" and error.is_hidden()


def test_a_stopped_run_labels_its_unfinished_images_and_changed_settings_mark_results_outdated(widget_page, studio):
    page = widget_page(studio.panel)
    studio.run(callback=lambda event: studio.stop())  # stops after its first step
    assert studio.panel.status == "stopped"
    page.page.wait_for_function("() => document.querySelectorAll('.p2p-studio__image').length === 2")
    labels = page.page.eval_on_selector_all(".p2p-studio__image figcaption span", "(s) => s.map((x) => x.textContent)")
    assert labels[0].startswith("source (stopped at step 1/3: unfinished)"), labels
    note = page.page.locator(".p2p-studio__result-note")
    assert note.is_visible() and "Stopped at step 1 of 3" in note.text_content()
    assert page.page.locator(".p2p-studio__results").get_attribute("data-state") == "stopped"

    page.click(".p2p-studio__run")
    page.sync()
    assert studio.panel.status == "done"
    assert page.page.locator(".p2p-studio__results").get_attribute("data-state") == ""
    assert note.is_hidden()
    seed = page.page.locator(".p2p-studio__seed")
    seed.fill("9")
    seed.dispatch_event("change")
    page.sync()
    assert page.page.locator(".p2p-studio__results").get_attribute("data-state") == "outdated"
    assert "Outdated" in note.text_content()
