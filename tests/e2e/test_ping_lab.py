"""Layer 4: PingWidget in a real JupyterLab, driven through window.jupyterapp."""

import pytest

pytestmark = pytest.mark.e2e


def test_ping_widget_in_jupyterlab(lab_notebook):
    nb = lab_notebook("tests/e2e/notebooks/ping.ipynb")
    outputs = nb.run_all()
    assert any("sent frame 0" in o.get("text", "") for o in outputs[1]), outputs[1]

    page = nb.page
    label = page.locator(".jp-OutputArea .p2p-ping__label")
    label.wait_for(state="visible", timeout=30_000)
    assert label.text_content() == "e2e <b>ping</b> & text"  # text, not markup
    assert page.locator(".jp-OutputArea .p2p-ping__label b").count() == 0

    # the frame sent while cell 2 ran was drawn (16x16) and acknowledged to the kernel
    canvas = page.locator(".jp-OutputArea canvas.p2p-ping__canvas")
    assert canvas.get_attribute("width") == "16" and canvas.get_attribute("height") == "16"
    expected = nb.kernel_eval("expected_sum")
    assert canvas.get_attribute("data-sum") == str(expected)
    assert nb.wait_kernel_eval("w.last_ack", expected) == expected
    assert nb.kernel_eval("w.error") == ""

    # browser -> kernel: two clicks reach w.count
    button = page.locator(".jp-OutputArea button.p2p-ping__button")
    button.click()
    button.click()
    assert nb.wait_kernel_eval("w.count", 2) == 2
    assert page.locator(".jp-OutputArea .p2p-ping__count").text_content() == "count: 2"

    # kernel -> browser: a trait set in Python re-renders the label
    nb.kernel_exec("w.label = 'set from the kernel'")
    page.wait_for_function(
        "() => document.querySelector('.jp-OutputArea .p2p-ping__label').textContent === 'set from the kernel'",
        timeout=10_000,
    )
    nb.screenshot("ping_lab")
    assert not nb.errors, nb.errors
