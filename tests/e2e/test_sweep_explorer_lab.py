"""Layer 4: a real sweep in the SweepExplorer in JupyterLab, and a clicked cell in the Studio.

The notebook (tests/e2e/notebooks/sweep_explorer.ipynb) runs the sweep runner on a one-case
pocket-bench: a 3 x 3 grid (cross x self_attn) x 4 seeds of DDIM inversion + P2P, 4 steps, with
the README table's model-free scores; then shows a SweepExplorer over the folder beside a Studio. Here the
grid shows with its thumbnails, hovering a cell shows that cell's numbers as Python computed them,
and clicking a cell loads that row's edit into the Studio: the dataset image, and prompts,
seed, steps, guidance and rule equal to the row's EditSpec (the Studio's own spec differs only in
starting from the inversion it makes again when run)."""

import json

import pytest

pytestmark = pytest.mark.e2e

OUT = ".jp-OutputArea"
CELL = f"{OUT} .p2p-sweep__cell"
SWEEP_TIMEOUT_MS = 600_000  # 36 edits and their metrics; a busy 2-core machine is several times slower

# the row's spec and the Studio's, each as JSON, the inversion reference and the mapper's kind left out
SAME_EDIT = """
import json
from p2p_widgets.engine.spec import EditSpec
def _plain(spec):
    d = json.loads(spec.to_json())
    for key in ("inversion", "start", "model"):
        d.pop(key, None)
    for rule in d["rules"]:
        for part in (rule, rule.get("base") or {}):
            (part.get("mapper") or {}).pop("kind", None)
    return d
row_spec = EditSpec.from_json(explorer.selected_row["spec"])
same_edit = _plain(studio.spec()) == _plain(row_spec)
"""


def js_number(value):
    """A metric as the widget writes it: 4 significant digits (these values need no exponent)."""
    return str(float(f"{value:.4g}")).removesuffix(".0")


def test_a_sweep_shows_in_the_explorer_and_a_click_loads_the_edit_into_the_studio(lab_notebook):
    nb = lab_notebook("tests/e2e/notebooks/sweep_explorer.ipynb")
    page = nb.page
    nb.run_cell(0, wait=False)  # the sweep: longer than the driver's own 90 s wait on a busy machine
    page.wait_for_function("() => window.__p2pCellDone[0] === true", timeout=SWEEP_TIMEOUT_MS, polling=500)
    outputs = nb.wait_cell(0)
    text = "".join(o.get("text", "") for o in outputs)
    assert "36/36 rows, complete" in text and "errors 0" in text, text[-2000:]

    nb.run_cell(1)
    page.wait_for_function(f"() => document.querySelectorAll('{CELL}').length === 9", timeout=60_000)
    summary = page.locator(f"{OUT} .p2p-sweep__summary").text_content()
    assert summary.startswith("36 rows · 3 × 3 cells · mean over seed"), summary
    assert page.locator(f"{OUT} .p2p-sweep__cols .p2p-sweep__label").all_text_contents() == ["0.2", "0.4", "0.8"]
    assert page.locator(f"{OUT} .p2p-sweep__rows .p2p-sweep__label").all_text_contents() == ["0.2", "0.4", "0.6"]
    # every thumbnail arrived (PNG buffers from the kernel) and decoded at the pocket model's 32 px
    page.wait_for_function(
        f"""() => {{ const imgs = [...document.querySelectorAll('{CELL} img')];
            return imgs.length === 9 && imgs.every((i) => i.complete && i.naturalWidth === 32); }}""",
        timeout=60_000,
    )

    grid = nb.kernel_eval("explorer.grid")
    metrics = [m["name"] for m in nb.kernel_eval("explorer.metrics")]
    psnr = metrics.index("psnr_unedit_part")
    cell = next(c for c in grid["cells"] if (c["i"], c["j"]) == (1, 2))  # cross 0.4, self_attn 0.6
    node = page.locator(f"{CELL}[data-i='1'][data-j='2']")
    node.scroll_into_view_if_needed()
    box = node.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tip = page.locator(f"{OUT} .p2p-sweep__tip")
    tip.wait_for(state="visible", timeout=10_000)
    lines = tip.locator(".p2p-sweep__tip-line").all_text_contents()
    expected = js_number(cell["values"][psnr]) + (
        f" ± {js_number(cell['spreads'][psnr])}" if cell["spreads"][psnr] is not None else ""
    )
    assert f"psnr_unedit_part{expected}" in lines, lines
    assert "cross0.4" in lines and "self_attn0.6" in lines and "mean of4 rows (over seed)" in lines
    nb.screenshot("sweep_explorer_lab_hover")

    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert nb.wait_kernel_eval("explorer.selected", cell["row"]) == cell["row"]
    assert nb.kernel_eval("explorer.error") == ""
    row = nb.kernel_eval("{k: explorer.selected_row[k] for k in ('p.cross', 'p.self_attn', 'seed', 'inversion')}")
    assert row == {"p.cross": 0.4, "p.self_attn": 0.6, "seed": 0, "inversion": "ddim"}
    nb.kernel_exec(SAME_EDIT)
    assert nb.kernel_eval("same_edit") is True
    assert nb.kernel_eval("studio.image is not None and studio.panel.invert_method == 'ddim'") is True
    source, target = nb.kernel_eval("row_spec.prompts")
    # the Studio in the page shows the loaded edit
    page.wait_for_function(
        f"""(want) => {{ const t = document.querySelector('{OUT} .p2p-studio__target');
            return !!t && t.value === want; }}""",
        arg=target,
        timeout=20_000,
    )
    assert page.locator(f"{OUT} .p2p-studio__source").input_value() == source
    assert page.locator(f"{OUT} .p2p-studio__seed").input_value() == "0"
    selected = page.locator(f"{CELL}.is-selected")
    assert selected.count() == 1 and selected.get_attribute("data-row") == str(cell["row"])
    assert "loaded row" in page.locator(f"{OUT} .p2p-sweep__status").text_content()
    nb.screenshot("sweep_explorer_lab")
    print(json.dumps({"row": cell["row"], "psnr_unedit_part": cell["values"][psnr]}))
    assert not nb.errors, nb.errors
