"""Layer 4: the Studio on the pocket model in a real JupyterLab.

Frames reach the player while the sampler runs, both with the sampler in a worker thread (the
Run button) and in the cell; the Studio fits a 1366x768 laptop screen down to its first result
(screenshots at 1366x768 and 1920x1080 for the README); Stop ends a run early and the Studio runs
again; the exported JSON re-runs to the same image, through Python and through the page's file
input; a reloaded page gets the frames replayed from the kernel's cache."""

import json

import pytest
from lab import ARTIFACTS

pytestmark = pytest.mark.e2e

N_STEPS = 40
OUT = ".jp-OutputArea"

# one snapshot of the page: are frames there while the Studio still says "running"?
LIVE = f"""() => {{
    const player = document.querySelector('{OUT} .p2p-player');
    const studio = document.querySelector('{OUT} .p2p-studio');
    return !!player && !!studio && studio.dataset.status === 'running'
        && Number(player.dataset.frames) >= 2 && Number(player.dataset.frames) < {N_STEPS};
}}"""


def status_is(value):
    return f"() => (document.querySelector('{OUT} .p2p-studio') || {{}}).dataset?.status === '{value}'"


def frames(page):
    return int(page.locator(f"{OUT} .p2p-player").get_attribute("data-frames"))


# with the Studio's frame scrolled to the top of the notebook: where its parts end on screen
FIT = f"""() => {{
    const box = document.querySelector('{OUT} .p2p-studio-box');
    const view = box.closest('.jp-WindowedPanel-outer') || box.closest('.jp-Notebook');
    const bottom = (sel) => document.querySelector(sel).getBoundingClientRect().bottom;
    return {{
        view: view.getBoundingClientRect().bottom,
        studio_top: box.getBoundingClientRect().top - view.getBoundingClientRect().top,
        first_result: bottom('{OUT} .p2p-studio__image img'),
        run: bottom('{OUT} .p2p-studio__run'),
        panel: bottom('{OUT} .p2p-studio'),
        scale: Number(document.querySelector('{OUT} .p2p-studio__results').dataset.scale),
    }};
}}"""


def screenshots_at_screen_sizes(nb) -> dict:
    """The Studio at the top of the notebook at 1366x768 and 1920x1080 (file browser closed):
    what shows without scrolling, and a screenshot of each (tests/artifacts/e2e/)."""
    page, fits = nb.page, {}
    nb._evaluate("app.shell.collapseLeft();")
    for width, height in ((1366, 768), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate(f"() => document.querySelector('{OUT} .p2p-studio-box').scrollIntoView({{block: 'start'}})")
        page.wait_for_timeout(300)  # the results refit to the column a frame after a resize
        fits[f"{width}x{height}"] = fit = page.evaluate(FIT)
        page.screenshot(path=str(ARTIFACTS / "e2e" / f"studio_{width}x{height}.png"))
        assert fit["first_result"] <= fit["view"] and fit["run"] <= fit["view"], (width, fit)
    page.set_viewport_size({"width": 1280, "height": 900})
    (ARTIFACTS / "e2e" / "studio_fit.json").write_text(json.dumps(fits, indent=1))
    return fits


def test_studio_streams_stops_exports_and_replays(lab_notebook, tmp_path):
    nb = lab_notebook("tests/e2e/notebooks/studio.ipynb")
    nb.run_cell(0)
    page = nb.page
    page.locator(f"{OUT} .p2p-studio__run").wait_for(state="visible", timeout=60_000)
    assert page.locator(f"{OUT} .p2p-aligner, {OUT} .p2p-timeline").count() >= 1  # the parts are composed

    # 1. thread mode: Run in the page; the kernel stays idle and frames arrive while it runs
    page.locator(f"{OUT} .p2p-studio__run").click()
    page.wait_for_function(LIVE, timeout=60_000, polling=50)
    assert nb.kernel_eval("studio.panel.status") == "running"  # the kernel answers mid-run
    page.wait_for_function(status_is("done"), timeout=120_000)
    page.wait_for_function(f"() => document.querySelector('{OUT} .p2p-player').dataset.frames === '{N_STEPS}'")
    assert nb.kernel_eval("(studio.panel.status, studio.player.cached_steps == list(range(40)))") == ("done", True)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{OUT} .p2p-player__canvas')]"
        f".every((c) => c.dataset.drawnStep === '{N_STEPS - 1}')"
    )
    # one frame: the aligner's prompts and menu are the panel's; the tabs show one section below it
    assert page.locator(f"{OUT} .p2p-aligner__field").first.is_hidden()
    assert page.locator(f"{OUT} .p2p-player").is_visible() and page.locator(f"{OUT} .p2p-aligner").is_hidden()
    fits = screenshots_at_screen_sizes(nb)
    assert fits["1366x768"]["scale"] >= 6  # the pocket model's 32 px, enlarged crisp to 192 px or more

    # 2. sampler in the cell: the kernel is busy, and frames still arrive before the cell ends
    run_before = page.locator(f"{OUT} .p2p-player").get_attribute("data-run")
    nb.run_cell(1, wait=False)
    page.wait_for_function(
        f"""([before]) => {{ const p = document.querySelector('{OUT} .p2p-player');
            return p.dataset.run !== before && Number(p.dataset.frames) >= 2 && p.dataset.status === 'running'; }}""",
        arg=[run_before],
        timeout=60_000,
        polling=50,
    )
    assert nb.kernel_busy()  # the cell is still running
    outputs = nb.wait_cell(1)
    assert any("cell run finished: False 40" in o.get("text", "") for o in outputs), outputs

    # 3. Stop ends a run early; the Studio can run again
    page.locator(f"{OUT} .p2p-studio__run").click()
    page.wait_for_function(LIVE, timeout=60_000, polling=50)
    page.locator(f"{OUT} .p2p-studio__stop").click()
    page.wait_for_function(status_is("stopped"), timeout=60_000)
    stopped, n_cached = nb.kernel_eval("(studio.result.stopped, len(studio.player.cached_steps))")
    assert stopped and n_cached < N_STEPS
    assert page.locator(f"{OUT} .p2p-player").get_attribute("data-status") == "stopped"
    page.locator(f"{OUT} .p2p-studio__run").click()
    page.wait_for_function(status_is("done"), timeout=120_000)
    assert nb.kernel_eval("studio.result.stopped") is False

    # 4. the exported JSON re-runs to the same image
    with page.expect_download() as info:
        page.locator(f"{OUT} .p2p-studio__json").click()
    path = tmp_path / "edit.json"
    info.value.save_as(path)
    text = path.read_text()
    assert json.loads(text)["steps"] == N_STEPS
    nb.kernel_exec(
        "import numpy as np, torch\n"
        "from p2p_widgets.engine.export import edit_from_spec\n"
        "exported = studio.result\n"
        f"again = edit_from_spec(studio.editor, {text!r})\n"
        "same_python = bool(np.array_equal(np.asarray(again.images[1]), np.asarray(exported.images[1])))"
    )
    assert nb.kernel_eval("same_python") is True
    # ... and through the page: change the seed, load the file, run
    seed = page.locator(f"{OUT} .p2p-studio__seed")
    seed.fill("7")
    seed.dispatch_event("change")
    assert nb.wait_kernel_eval("studio.panel.seed", 7) == 7
    page.locator(f"{OUT} .p2p-studio__file").set_input_files(str(path))
    assert nb.wait_kernel_eval("studio.panel.seed", 0) == 0
    page.locator(f"{OUT} .p2p-studio__run").click()
    page.wait_for_function(status_is("running"), timeout=30_000)
    page.wait_for_function(status_is("done"), timeout=120_000)
    assert nb.kernel_eval("bool(torch.equal(studio.result.latents, exported.latents))") is True
    assert nb.kernel_eval("studio.panel.error") == ""

    # 5. a reloaded page asks the kernel for the frames again
    nb._evaluate("await app.commands.execute('docmanager:save');")
    page.reload()
    page.wait_for_function(
        f"""() => {{ const p = document.querySelector('{OUT} .p2p-player');
            return !!p && p.dataset.frames === '{N_STEPS}'; }}""",
        timeout=60_000,
    )
    assert not nb.errors, nb.errors
