"""Layer 3: the Studio panel bundle in real Chromium, bound to a real Studio (tiny model):
Run from the page, results drawn, errors in the banner, JSON export and import, the method menu
with a rule's parameters built from its declaration (mouse and keyboard), errors beside a
parameter, result zoom and pixel values, the changed words first, the section tabs."""

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
    # the seed field still shows the refused "-3": Run would run what the page does not show (refused
    # since the page sends its writes in order, c83c1c1); a valid seed answers it
    page.page.locator(".p2p-studio__seed").fill("3")
    page.page.locator(".p2p-studio__seed").dispatch_event("change")
    page.click('.p2p-studio__chip[data-word="dog"]')
    page.click(".p2p-studio__run")
    page.sync()
    assert studio.panel.status == "done" and studio.panel.blend_words == ["dog"] and studio.panel.seed == 3
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
    page.click(".p2p-studio__real-summary")  # the real-image box opens
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


# -- the method menu, from the rules' declared parameters --------------------------------------------


def _commit_field(page, selector, text):
    """Click into a field, replace its text by typing, and leave it with Tab (a real change)."""
    field = page.page.locator(selector)
    field.click()
    page.page.keyboard.press("Control+A")
    page.page.keyboard.type(text)
    page.page.keyboard.press("Tab")
    page.sync()
    return field


def test_masactrl_from_the_menu_with_a_changed_parameter_runs_and_shows_its_result(widget_page, studio):
    page = widget_page(studio.panel)
    p = page.page
    menu = p.locator(".p2p-studio__method")
    labels = menu.locator("option").all_text_contents()
    titles = menu.locator("option").evaluate_all("(os) => os.map((o) => o.title)")
    # every entry is the method's name as its paper gives it, the rule's class in the tooltip
    shown = dict(zip(titles, labels))
    assert labels[0] == "Prompt-to-Prompt" and shown["MutualSelfAttention"] == "MasaCtrl (mutual self-attention)"
    assert shown["MaskedMutualSelfAttention"] == "MasaCtrl with masks" and shown["PlugAndPlay"] == "Plug-and-Play"
    assert shown["StyleAligned"] == "StyleAligned"
    menu.focus()
    p.keyboard.type("MasaCtrl (")  # the select's type-ahead: the first method named so
    page.sync()
    assert studio.panel.method == "MutualSelfAttention" and studio.panel.method_values["start_step"] == 4
    assert menu.get_attribute("title") == "MutualSelfAttention"
    p.wait_for_function("() => document.querySelectorAll('.p2p-studio__param').length === 5")
    assert p.locator(".p2p-studio__p2p").is_hidden()  # P2P's own settings are not part of this run
    assert "MasaCtrl" in p.locator(".p2p-studio__method-help").text_content()
    start = p.locator('[data-param="start_step"] .p2p-studio__param-input')
    assert start.input_value() == "4" and start.get_attribute("min") == "0"
    help_id = start.get_attribute("aria-describedby")
    assert "first step under control" in p.locator(f"#{help_id}").text_content()
    _commit_field(page, '[data-param="start_step"] .p2p-studio__param-input', "1")
    p.locator('[data-param="union"] input[type="checkbox"]').click()  # the mouse, on a checkbox
    page.sync()
    assert (studio.panel.method_values["start_step"], studio.panel.method_values["union"]) == (1, True)

    p.locator(".p2p-studio__run").click()
    page.sync()
    assert studio.result is not None and studio.panel.status == "done"
    rule = studio.result.spec.rules[0]
    assert (rule["rule"], rule["start_step"], rule["union"]) == ("MutualSelfAttention", 1, True)
    p.wait_for_function(
        "() => [...document.querySelectorAll('.p2p-studio__image img')].map((i) => i.naturalWidth).join() === '64,64'"
    )
    edit = p.locator(".p2p-studio__image img").nth(1)
    assert edit.bounding_box()["width"] >= 4 * 64  # large: a whole factor that fits the column
    assert p.locator(".p2p-studio__results").get_attribute("data-state") == ""
    page.screenshot("studio_masactrl")


def test_a_bad_parameter_shows_its_error_beside_the_field_and_the_studio_keeps_working(widget_page, studio):
    studio.panel.set_state({"method": "MutualSelfAttention"})
    page = widget_page(studio.panel)
    p = page.page
    field = _commit_field(page, '[data-param="start_step"] .p2p-studio__param-input', "-2")
    error = p.locator(".p2p-studio__field-error")
    assert error.is_visible() and "start step must be at least 0; -2 is not" in error.text_content()
    assert p.locator(".p2p-error").is_hidden()  # beside the field, not in the banner
    assert 0 <= _below(field, error) < 30
    assert field.input_value() == "-2" and field.get_attribute("aria-invalid") == "true"
    assert error.get_attribute("id") in field.get_attribute("aria-describedby").split()
    assert p.locator(".p2p-studio__run").is_disabled()
    assert studio.panel.method_values["start_step"] == 4 and studio.panel.error_field == "method_values.start_step"

    _commit_field(page, '[data-param="start_step"] .p2p-studio__param-input', "2")
    assert studio.panel.error == "" and error.is_hidden() and field.get_attribute("aria-invalid") is None
    p.locator(".p2p-studio__run").click()
    page.sync()
    assert studio.panel.status == "done" and studio.result.spec.rules[0]["start_step"] == 2


def test_results_zoom_and_read_pixel_values_by_mouse_and_keyboard(widget_page, studio):
    studio.run()
    page = widget_page(studio.panel)
    p = page.page
    p.wait_for_function("() => [...document.querySelectorAll('.p2p-studio__image img')].every((i) => i.naturalWidth)")
    p.locator(".p2p-studio__zoom").select_option("2")
    edit = p.locator(".p2p-studio__image img").nth(1)
    assert edit.bounding_box()["width"] == 128
    box = edit.bounding_box()
    p.mouse.move(box["x"] + 2 * 10 + 1, box["y"] + 2 * 5 + 1)  # pixel (10, 5) at 2x
    source, target = (np.asarray(im) for im in studio.result.images)
    expected = f"pixel (10, 5): source rgb({', '.join(map(str, source[5, 10]))})"
    p.wait_for_function("(t) => document.querySelector('.p2p-studio__readout').textContent.startsWith(t)", arg=expected)
    assert f"edit rgb({', '.join(map(str, target[5, 10]))})" in p.locator(".p2p-studio__readout").text_content()
    p.locator(".p2p-studio__frame").nth(1).focus()
    p.keyboard.press("ArrowDown")  # the keyboard probe moves one pixel
    assert p.locator(".p2p-studio__readout").text_content().startswith("pixel (10, 6): ")
    rendering = "() => getComputedStyle(document.querySelectorAll('.p2p-studio__image img')[1]).imageRendering"
    assert p.evaluate(rendering) == "pixelated"  # crisp pixels when enlarged


def test_changed_words_come_first_and_the_section_tabs_switch_by_keyboard(widget_page, studio):
    page = widget_page(studio.panel)
    p = page.page
    shown = lambda: [r.get_attribute("data-word") for r in p.locator(".p2p-studio__weight").all() if r.is_visible()]  # noqa: E731
    assert shown() == ["blue", "dog"]
    assert p.locator(".p2p-studio__diff del").all_text_contents() == ["red", "cat"]
    more = p.locator(".p2p-studio__more-weights")
    more.click()
    assert more.get_attribute("aria-expanded") == "true" and shown() == ["blue", "dog", "a", "on", "mat"]
    tab = p.locator('.p2p-studio__tab[data-section="playback"]')
    tab.click()
    p.keyboard.press("ArrowRight")
    page.sync()
    assert studio.panel.section == "alignment"
    assert studio.aligner.layout.display is None and studio.player.layout.display == "none"
    assert p.evaluate("() => document.activeElement.dataset.section") == "alignment"
