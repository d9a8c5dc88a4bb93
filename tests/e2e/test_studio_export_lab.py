"""Layer 4: the Studio's JSON export loaded back through the page after other edits (issue 23).

The sequence a user hit: a run stopped early, a full rerun at 25 steps, the JSON exported, the seed
and the target changed, the JSON loaded through the file input, Run. The loaded edit must rerun to
the exported run's latents every time. It did not in one of two runs: ipywidgets sends one state
write at a time and holds the next until the kernel has answered the first, while a custom message
(``load_spec``, ``run``) goes at once, so the target typed just before the load reached the kernel
after it and replaced the loaded prompt. The Studio's page now sends its writes as messages too,
in one ordered stream with its actions."""

import json

import pytest

pytestmark = pytest.mark.e2e

OUT = ".jp-OutputArea"


def status_is(value):
    return f"() => (document.querySelector('{OUT} .p2p-studio') || {{}}).dataset?.status === '{value}'"


def write(page, field, text):
    node = page.locator(f"{OUT} .p2p-studio__{field}")
    node.fill(text)
    node.dispatch_event("change")


def run(page, until="done"):
    page.locator(f"{OUT} .p2p-studio__run").click()
    page.wait_for_function(status_is("running"), timeout=30_000, polling=20)
    page.wait_for_function(status_is(until), timeout=120_000)


def test_an_export_loaded_through_the_page_after_other_edits_reruns_bitwise(lab_notebook, tmp_path):
    nb = lab_notebook("tests/e2e/notebooks/studio.ipynb")
    nb.run_cell(0)
    page = nb.page
    page.locator(f"{OUT} .p2p-studio__run").wait_for(state="visible", timeout=60_000)

    # a run stopped early, then a full rerun at 25 steps
    page.locator(f"{OUT} .p2p-studio__run").click()
    page.wait_for_function(
        f"() => Number((document.querySelector('{OUT} .p2p-player') || {{dataset: {{}}}}).dataset.frames) >= 2",
        timeout=60_000,
        polling=50,
    )
    page.locator(f"{OUT} .p2p-studio__stop").click()
    page.wait_for_function(status_is("stopped"), timeout=60_000)
    write(page, "steps", "25")
    assert nb.wait_kernel_eval("studio.panel.steps", 25) == 25
    run(page)
    with page.expect_download() as info:
        page.locator(f"{OUT} .p2p-studio__json").click()
    path = tmp_path / "edit.json"
    info.value.save_as(path)
    saved = json.loads(path.read_text())
    assert saved["steps"] == 25 and saved["seed"] == 0
    nb.kernel_exec("import torch\nexported = studio.result")
    assert nb.kernel_eval("exported.stopped") is False

    targets = [
        "a big red square left of a small blue square on a gray background",
        "a big green star left of a small blue square on a gray background",
        "a big red star left of a small yellow square on a gray background",
    ]
    for attempt, target in enumerate(targets):
        # other settings typed, and the file loaded right after (as fast as a user can)
        write(page, "seed", str(7 + attempt))
        write(page, "target", target)
        page.locator(f"{OUT} .p2p-studio__file").set_input_files(str(path))
        nb.kernel_eval("1")  # the kernel has handled everything the page sent before this
        page.wait_for_timeout(500)  # and anything held back
        loaded = nb.kernel_eval("(studio.panel.seed, studio.panel.steps, studio.panel.target, studio.panel.error)")
        assert loaded == (0, 25, saved["prompts"][1], ""), (attempt, loaded)
        assert page.locator(f"{OUT} .p2p-studio__target").input_value() == saved["prompts"][1]
        run(page)
        same = nb.kernel_eval("bool(torch.equal(studio.result.latents, exported.latents))")
        assert same is True, (attempt, nb.kernel_eval("studio.result.spec.to_json() == exported.spec.to_json()"))

    # the same edits and the load within one task of the page: the second write is then always
    # held behind the first one's answer, while the load is sent at once
    page.evaluate(
        """([text, target]) => {
            const q = (s) => document.querySelector('.jp-OutputArea .p2p-studio__' + s);
            const change = (node) => node.dispatchEvent(new Event('change', { bubbles: true }));
            q('seed').value = '11'; change(q('seed'));
            q('target').value = target; change(q('target'));
            const files = new DataTransfer();
            files.items.add(new File([text], 'edit.json', { type: 'application/json' }));
            q('file').files = files.files; change(q('file'));
        }""",
        [path.read_text(), targets[0]],
    )
    nb.kernel_eval("1")
    page.wait_for_timeout(500)
    loaded = nb.kernel_eval("(studio.panel.seed, studio.panel.target, studio.panel.error)")
    assert loaded == (0, saved["prompts"][1], ""), loaded
    run(page)
    assert nb.kernel_eval("bool(torch.equal(studio.result.latents, exported.latents))") is True
    assert nb.kernel_eval("studio.panel.error") == ""
    assert not nb.errors, nb.errors
