"""Layer 4: the Studio on the pocket model in a real JupyterLab.

Frames reach the player while the sampler runs, both with the sampler in a worker thread (the
Run button) and in the cell; Stop ends a run early and the Studio runs again; the exported JSON
re-runs to the same image, through Python and through the page's file input; a reloaded page
gets the frames replayed from the kernel's cache."""

import json

import pytest

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
    nb.screenshot("studio_lab")
    player_shot = nb.screenshot("studio_lab").parent / "studio_lab_player.png"
    page.locator(f"{OUT} .p2p-player").screenshot(path=str(player_shot))

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
