"""Layer 4: the Studio's prompt field after the kernel refuses what was typed, in a real JupyterLab
with real keyboard events (issue 23).

The page writes a prompt on change (Tab, Enter); the kernel refuses an empty or over-long one and
puts its own value back. The field must then keep the text as typed (marked invalid, the message
under it, Run disabled), keys typed after Enter must not be lost to the kernel's answer, and any
valid text clears the error, the kernel's own prompt included (the page's model already holds it,
so an ordinary write would send nothing)."""

import pytest

pytestmark = pytest.mark.e2e

OUT = ".jp-OutputArea"
TARGET = f"{OUT} .p2p-studio__target"
LONG = " ".join(["a big red circle left of a small blue square"] * 22)  # ~200 words, far over 77 tokens


def answered(nb, expr, expected):
    value = nb.wait_kernel_eval(expr, expected)
    assert value == expected, (expr, value)


def field_state(page):
    return page.evaluate(
        f"""() => {{
            const t = document.querySelector('{TARGET}');
            const e = document.querySelector('{OUT} .p2p-studio__field-error');
            return {{ value: t.value, invalid: t.getAttribute('aria-invalid'),
                      error: e && !e.hidden ? e.textContent : '',
                      run_disabled: document.querySelector('{OUT} .p2p-studio__run').disabled }};
        }}"""
    )


def settle(page, nb):
    """Let the kernel's answer (error, then the rolled-back value) reach the page."""
    nb.kernel_eval("1")  # a round trip after the comm messages the write caused
    page.wait_for_timeout(300)


def replace_text(page, text, commit="Tab", paste=False):
    page.locator(TARGET).click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    if paste:
        page.keyboard.insert_text(text)  # as a paste: one input event
    else:
        page.keyboard.type(text)
    if commit:
        page.keyboard.press(commit)


def test_a_refused_prompt_stays_as_typed_and_any_valid_text_clears_it(lab_notebook):
    nb = lab_notebook("tests/e2e/notebooks/studio.ipynb")
    nb.run_cell(0)
    page = nb.page
    page.locator(TARGET).wait_for(state="visible", timeout=60_000)
    held = nb.kernel_eval("studio.panel.target")

    # 1. an emptied target: refused; the field stays empty, marked, with the message; Run disabled
    replace_text(page, "")
    answered(nb, "studio.panel.error_field", "target")
    settle(page, nb)
    state = field_state(page)
    assert state["value"] == "" and state["invalid"] == "true", state
    assert "the target prompt is empty" in state["error"] and state["run_disabled"], state
    assert nb.kernel_eval("studio.panel.target") == held

    # 2. typing back the prompt the kernel holds clears the error (nothing changed in the page's model)
    replace_text(page, held)
    answered(nb, "studio.panel.error", "")
    settle(page, nb)
    state = field_state(page)
    assert state == {"value": held, "invalid": None, "error": "", "run_disabled": False}, state

    # Ctrl+Enter right after pasting a 200-word prompt: its write and the run leave together, before
    # any error shows; the refused prompt must not start a run of the previous one
    replace_text(page, LONG, commit="Control+Enter", paste=True)
    answered(nb, "studio.panel.error_field", "target")
    settle(page, nb)
    assert nb.kernel_eval("(studio.result, studio.panel.status)") == (None, "idle")
    assert field_state(page)["value"] == LONG

    # 3. a pasted 200-word prompt, committed with Enter, then more typing before the kernel answers:
    # the field keeps every character, the refused text is not replaced by the previous prompt
    replace_text(page, LONG, commit="Enter", paste=True)
    # typed while the kernel refuses the pasted text (a key every 60 ms: its answer comes mid-word)
    page.keyboard.type(" and more words", delay=60)
    answered(nb, "studio.panel.error_field", "target")
    settle(page, nb)
    assert field_state(page)["value"] == LONG + " and more words"
    page.keyboard.press("Tab")  # commits the longer text: refused as well
    settle(page, nb)
    state = field_state(page)
    assert state["value"] == LONG + " and more words" and state["invalid"] == "true", state
    assert "77" in state["error"] and state["run_disabled"], state
    assert nb.kernel_eval("studio.panel.target") == held

    # 4. a different valid prompt clears it too, and Run works again
    fixed = "a big red square left of a small blue square on a gray background"
    replace_text(page, fixed)
    answered(nb, "studio.panel.target", fixed)
    settle(page, nb)
    state = field_state(page)
    assert state == {"value": fixed, "invalid": None, "error": "", "run_disabled": False}, state
    assert nb.kernel_eval("studio.panel.error") == ""
    assert not nb.errors, nb.errors
