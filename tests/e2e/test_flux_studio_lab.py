"""Layer 4: the Studio on a tiny Flux pipeline in a real JupyterLab (issue 26).

The aligner and timeline show the prompts' T5 tokens (no BOS; EOS hidden as CLIP's is), the method
menu offers K/V injection and none of the UNet-only methods, the inversion menu the flow solvers,
a P2P word swap and a K/V-injection edit run from the page, and the player's strip shows Flux's
double- and single-stream blocks as the playhead is scrubbed over the steps."""

import pytest

pytestmark = pytest.mark.e2e

OUT = ".jp-OutputArea"
N_STEPS = 4


def status_is(value):
    return f"() => (document.querySelector('{OUT} .p2p-studio') || {{}}).dataset?.status === '{value}'"


def texts(page, selector):
    return page.evaluate("(sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent)", f"{OUT} {selector}")


def strip_state(page):
    """What the player's strip shows: its layout, streams, block labels, which cells are on, the summary."""
    return page.evaluate(
        f"""() => {{
        const cells = document.querySelector('{OUT} .p2p-player__unetcells');
        return {{
            layout: cells.dataset.layout,
            streams: [...cells.querySelectorAll('.p2p-player__stream')].map((s) => s.dataset.stream),
            blocks: [...cells.querySelectorAll('.p2p-player__block')].map((b) => b.dataset.block),
            kinds: [...cells.querySelectorAll('.p2p-player__cell')].map((c) => c.dataset.kind),
            on: [...cells.querySelectorAll('.p2p-player__cell')].map((c) => c.dataset.on === 'true'),
            summary: document.querySelector('{OUT} .p2p-player__unetsummary').textContent,
            step: Number(document.querySelector('{OUT} .p2p-player__unet').dataset.step),
        }};
    }}"""
    )


def scrub(page, step):
    """Move the player's slider to ``step`` as a person drags it."""
    page.evaluate(
        f"""() => {{ const s = document.querySelector('{OUT} .p2p-player__slider');
            s.value = '{step}'; s.dispatchEvent(new Event('input', {{bubbles: true}}));
            s.dispatchEvent(new Event('change', {{bubbles: true}})); }}"""
    )
    page.wait_for_function(
        f"() => document.querySelector('{OUT} .p2p-player__unet').dataset.step === '{step}'", timeout=10_000
    )


def run_and_wait(page):
    """Press Run and wait for the new run's last frame (a 4-step tiny run ends before a poll sees it running)."""
    before = page.locator(f"{OUT} .p2p-player").get_attribute("data-run")
    page.locator(f"{OUT} .p2p-studio__run").click()
    page.wait_for_function(
        f"""([before]) => {{ const p = document.querySelector('{OUT} .p2p-player');
            return p.dataset.run !== before && p.dataset.status === 'done' && p.dataset.frames === '{N_STEPS}'; }}""",
        arg=[before],
        timeout=60_000,
    )
    page.wait_for_function(status_is("done"), timeout=60_000)


def test_studio_on_tiny_flux_aligns_t5_tokens_runs_p2p_and_kv_injection_and_scrubs_blocks(lab_notebook):
    nb = lab_notebook("tests/e2e/notebooks/flux_studio.ipynb")
    nb.run_cell(0)
    page = nb.page
    page.locator(f"{OUT} .p2p-studio__run").wait_for(state="visible", timeout=60_000)
    assert "tiny Flux" in page.locator(f"{OUT} .p2p-studio__model").text_content()
    assert page.locator(f"{OUT} .p2p-studio__steps").input_value() == str(N_STEPS)

    # the menu: P2P and K/V injection, no UNet-only method; the scheduler is the model's own
    labels = texts(page, ".p2p-studio__method option")
    assert labels == ["Prompt-to-Prompt", "K/V injection (Stable Flow, RF-Solver-Edit)"], labels
    assert texts(page, ".p2p-studio__scheduler option") == ["Flow-matching Euler (the model's own)"]
    # real images: the flow solvers invert them (FireFlow first), the note saying otherwise is hidden
    assert page.locator(f"{OUT} .p2p-studio__image-note").is_hidden()
    assert texts(page, ".p2p-studio__invert option") == [
        "FireFlow (best, one call a step)",
        "RF-Solver (second order, two calls a step)",
        "Euler (plain)",
    ]
    assert page.locator(f"{OUT} .p2p-studio__invert").input_value() == "fireflow"

    # the aligner shows the T5 tokens: the first word first (no BOS chip), EOS hidden until asked
    page.locator(f"{OUT} .p2p-studio__tab[data-section='alignment']").click()
    page.locator(f"{OUT} .p2p-aligner").wait_for(state="visible", timeout=10_000)
    chips = texts(page, ".p2p-aligner__chip[data-side='source']")
    assert chips[:4] == ["a", "big", "red", "circle"] and chips[-1] == "background" and len(chips) == 14, chips
    assert "green" in texts(page, ".p2p-aligner__chip[data-side='target']")
    assert page.locator(f"{OUT} .p2p-aligner__special span").text_content() == "show EOS"
    page.locator(f"{OUT} .p2p-studio__tab[data-section='schedule']").click()
    page.locator(f"{OUT} .p2p-timeline").wait_for(state="visible", timeout=10_000)
    assert nb.kernel_eval("(studio.timeline.timesteps[0], studio.timeline.n_evals)") == (1000, N_STEPS)

    # 1. a P2P word swap, run from the page
    page.locator(f"{OUT} .p2p-studio__tab[data-section='playback']").click()
    run_and_wait(page)
    assert nb.kernel_eval("(studio.panel.error, studio.result.spec.rules[0]['rule'])") == ("", "Replace")
    assert page.locator(f"{OUT} .p2p-studio__image img").count() == 2
    tokens = texts(page, ".p2p-player__row[data-prompt='0'] .p2p-player__chip")
    assert tokens[0] == "a" and tokens[-1] == "⟨end⟩", tokens
    state = strip_state(page)
    assert state["layout"] == "blocks" and state["streams"] == ["double", "single"]
    assert state["blocks"] == ["double 0", "double 1", "single 0", "single 1"]
    assert state["kinds"] == ["joint", "joint", "single", "single"]
    scrub(page, 0)
    state = strip_state(page)
    assert state["on"] == [True] * 4, state
    assert state["summary"].startswith("step 1: joint attention in 2 of 2 blocks"), state["summary"]
    assert "single-stream attention in 2 of 2 blocks" in state["summary"]
    scrub(page, N_STEPS - 1)
    assert strip_state(page)["on"] == [False] * 4  # past P2P's windows (cross 0.8, self 0.4 of 4 steps)
    p2p_image = nb.kernel_eval("studio.result.images[1].tobytes().hex()[:64]")

    # 2. K/V injection from the method menu: double block 1 only, from the second step
    page.locator(f"{OUT} .p2p-studio__method").select_option("KVInjection")
    assert nb.wait_kernel_eval("studio.panel.method", "KVInjection") == "KVInjection"
    nb.kernel_exec("studio.panel.method_values = {**studio.panel.method_values, 'double': ['1'], 'single': []}")
    nb.kernel_exec("studio.panel.method_values = {**studio.panel.method_values, 'start_step': 1}")
    run_and_wait(page)
    assert nb.kernel_eval("(studio.panel.error, studio.result.spec.rules[0]['rule'])") == ("", "KVInjection")
    assert nb.kernel_eval("studio.result.images[1].tobytes().hex()[:64]") != p2p_image
    scrub(page, 0)
    assert strip_state(page)["on"] == [False] * 4
    scrub(page, 2)
    state = strip_state(page)
    assert state["on"] == [False, True, False, False], state
    assert state["summary"] == "step 3: joint attention in 1 of 2 blocks (double 1)"
    nb.screenshot("flux_studio")
    assert not nb.errors, nb.errors
