"""Layer 3: the SweepExplorer bundle in real Chromium, bound to a real Python SweepExplorer.

Real mouse events: hovering a cell shows that cell's numbers, clicking it sends its row to Python;
thumbnails travel as PNG buffers and are drawn; a large grid builds and asks for the viewport's
cells only, and scrolling builds the next ones."""

import json
import math
import time

import pytest
from PIL import Image

from p2p_widgets.widgets.sweep_explorer import SweepExplorer

pytestmark = pytest.mark.browser

CELL = ".p2p-sweep__cell"


def colour_of(index):
    return (index * 37 % 256, index * 91 % 256, 255 - index * 53 % 256)


def make_rows(folder, crosses, selfs, seeds=(0, 1), cases=("c0",), image_every=1):
    """Synthetic sweep rows (studio-free: the spec is never loaded here) with PNG images of known colours."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for case in cases:
        for cross in crosses:
            for self_attn in selfs:
                for seed in seeds:
                    index = len(rows)
                    row_id = f"{case}-{cross}-{self_attn}-{seed}"
                    image = f"images/{row_id}.png"
                    if index % image_every == 0:
                        Image.new("RGB", (16, 16), colour_of(index)).save(folder / image)
                    rows.append(
                        {
                            "row_id": row_id,
                            "case_id": case,
                            "edit_type": 6,
                            "edit_type_name": "change color",
                            "method": "p2p",
                            "inversion": "none",
                            "setting": json.dumps({"cross": cross, "self_attn": self_attn}, sort_keys=True),
                            "p.cross": cross,
                            "p.self_attn": self_attn,
                            "seed": seed,
                            "image": image,
                            "source_image": "",
                            "spec": "{}",
                            "inversion_file": "",
                            "psnr": 20.0 + 7.0 * cross + 3.0 * self_attn + 0.25 * seed,
                            "structure_distance": 0.01 + 0.002 * seed + 0.001 * cross,
                            "seconds": 1.0,
                            "status": "ok",
                            "error": "",
                        }
                    )
    return rows


def js_number(value):
    """A metric as the widget writes it (4 significant digits; these values need no exponent)."""
    return str(float(f"{value:.4g}")).removesuffix(".0")


def pump(page, rounds=6):
    """Hand the page's messages to Python and Python's answers back, until nothing is left."""
    for _ in range(rounds):
        if page.sync() == 0:
            page.page.wait_for_timeout(30)
            if page.sync() == 0:
                return


def center(page, selector):
    box = page.page.locator(selector).first.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_hover_shows_the_cells_numbers_and_a_click_opens_its_row(widget_page, tmp_path):
    rows = make_rows(tmp_path, crosses=(0.2, 0.4, 0.8), selfs=(0.2, 0.4, 0.6), seeds=(0, 1, 2, 3))
    w = SweepExplorer(rows, root=tmp_path, metric="psnr")
    page = widget_page(w)
    pump(page)
    assert page.page.locator(CELL).count() == 9
    metrics = [m["name"] for m in w.metrics]
    tip = page.page.locator(".p2p-sweep__tip")
    for cell in (w.grid["cells"][0], w.grid["cells"][5], w.grid["cells"][8]):
        selector = f"{CELL}[data-i='{cell['i']}'][data-j='{cell['j']}']"
        page.page.mouse.move(*center(page, selector))
        tip.wait_for(state="visible")
        assert tip.get_attribute("data-row") == str(cell["row"])
        lines = tip.locator(".p2p-sweep__tip-line").all_text_contents()
        psnr = cell["values"][metrics.index("psnr")]
        spread = cell["spreads"][metrics.index("psnr")]
        assert f"psnr{js_number(psnr)} ± {js_number(spread)}" in lines
        assert f"cross{w.grid['xs'][cell['i']]}" in lines and f"self_attn{w.grid['ys'][cell['j']]}" in lines
        assert "mean of4 rows (over seed)" in lines
        assert f"settingcross={w.grid['xs'][cell['i']]}, self_attn={w.grid['ys'][cell['j']]}" in lines
        # the expected mean, from the rows themselves
        members = [r for r in rows if r["setting"] == rows[cell["row"]]["setting"]]
        assert psnr == pytest.approx(sum(r["psnr"] for r in members) / 4)
    page.page.mouse.move(1, 1)
    tip.wait_for(state="hidden")

    target = w.grid["cells"][7]
    page.page.mouse.click(*center(page, f"{CELL}[data-row='{target['row']}']"))
    (sent,) = page.wait_for_sent("open")
    assert sent["content"] == {"type": "open", "row": target["row"]}
    pump(page)
    assert w.selected == target["row"] and w.error == ""
    assert w.selected_row["p.cross"] == 0.4 and w.selected_row["p.self_attn"] == 0.6 and w.selected_row["seed"] == 0
    selected = page.page.locator(f"{CELL}.is-selected")
    assert selected.count() == 1 and selected.get_attribute("data-row") == str(target["row"])
    assert "no Studio attached" in page.text(".p2p-sweep__status")
    page.screenshot("sweep_explorer_hover")


def test_thumbnails_arrive_as_png_buffers_and_are_drawn(widget_page, tmp_path):
    rows = make_rows(tmp_path, crosses=(0.2, 0.4), selfs=(0.2, 0.6), seeds=(0,), image_every=2)
    w = SweepExplorer(rows, root=tmp_path, metric="psnr")
    page = widget_page(w)
    (ask,) = page.wait_for_sent("thumbs")
    assert sorted(ask["content"]["rows"]) == [0, 1, 2, 3] and ask["content"]["version"] == 0
    pump(page)
    page.page.wait_for_function(f"() => document.querySelectorAll('{CELL} img').length === 2")
    drawn = page.page.evaluate(
        """async (sel) => {
            const out = {};
            for (const img of document.querySelectorAll(sel + ' img')) {
                await img.decode();
                const c = document.createElement('canvas');
                c.width = img.naturalWidth; c.height = img.naturalHeight;
                const ctx = c.getContext('2d');
                ctx.drawImage(img, 0, 0);
                out[img.closest(sel).dataset.row] = [c.width, Array.from(ctx.getImageData(8, 8, 1, 1).data)];
            }
            return out;
        }""",
        CELL,
    )
    assert drawn == {"0": [16, [*colour_of(0), 255]], "2": [16, [*colour_of(2), 255]]}
    notes = page.page.locator(f"{CELL} .p2p-sweep__note").all_text_contents()
    assert notes == ["no image", "no image"]  # rows 1 and 3 have no file
    # the cell frames are coloured by the metric (viridis: dark for the lowest, bright for the highest)
    colours = page.page.eval_on_selector_all(
        CELL, "(cells) => cells.map((c) => [c.dataset.row, getComputedStyle(c).borderTopColor])"
    )
    psnr = {int(r): rows[int(r)]["psnr"] for r, _ in colours}
    lowest, highest = min(psnr, key=psnr.get), max(psnr, key=psnr.get)
    assert dict(colours)[str(lowest)] == "rgb(68, 1, 84)" and dict(colours)[str(highest)] == "rgb(253, 231, 37)"


def test_pickers_and_filters_round_trip_through_python(widget_page, tmp_path):
    rows = make_rows(tmp_path, crosses=(0.2, 0.4, 0.8), selfs=(0.2, 0.6), seeds=(0, 1), cases=("c0", "c1"))
    w = SweepExplorer(rows, root=tmp_path)
    page = widget_page(w)
    pump(page)
    page.page.select_option(".p2p-sweep__x", "seed")
    pump(page)
    assert (w.x, w.y) == ("seed", "p.self_attn")
    assert page.page.locator(".p2p-sweep__cols .p2p-sweep__label").all_text_contents() == ["0", "1"]
    page.page.select_option(".p2p-sweep__y", "seed")  # the x column: the two swap
    pump(page)
    assert (w.x, w.y) == ("p.self_attn", "seed") and w.error == ""
    page.page.select_option(".p2p-sweep__filter[data-column='case_id']", label="c1")
    pump(page)
    assert w.filters["case_id"] == "c1" and ["case", "c1"] in w.grid["fixed"]
    assert "case = c1" in page.text(".p2p-sweep__summary")
    page.page.select_option(".p2p-sweep__metric", "structure_distance")
    pump(page)
    assert w.metric == "structure_distance"
    assert page.text(".p2p-sweep__legend-note") == "(lower is better; bright = better)"

    # a write Python refuses (as a stale page could send): the error shows, nothing changes, and
    # the next good write works
    page.page.evaluate("() => { const m = window.harness.model; m.set('filters', {seed: 9}); m.save_changes(); }")
    pump(page)
    assert "seed has no value 9" in w.error and w.filters["case_id"] == "c1"
    banner = page.page.locator(".p2p-error")
    banner.wait_for(state="visible")
    assert "seed has no value 9" in banner.text_content()
    page.page.evaluate("() => { const m = window.harness.model; m.set('x', 'p.cross'); m.save_changes(); }")
    pump(page)
    assert w.x == "p.cross" and w.error == ""
    page.page.wait_for_function(f"() => document.querySelectorAll('{CELL}').length === 6")


def test_a_large_grid_builds_only_the_viewport_and_scrolls(widget_page, tmp_path):
    crosses = [round(0.01 * k, 2) for k in range(60)]
    selfs = [round(0.01 * k, 2) for k in range(60)]
    rows = make_rows(tmp_path, crosses=crosses, selfs=selfs, seeds=(0,), image_every=97)
    w = SweepExplorer(rows, root=tmp_path, cell_size=32)
    assert len(w.grid["cells"]) == 3600
    page = widget_page(w)
    page.page.wait_for_function(f"() => document.querySelectorAll('{CELL}').length > 0")
    built = page.page.locator(CELL).count()
    asked = [r for m in page.wait_for_sent("thumbs") for r in m["content"]["rows"]]
    scroll = page.page.locator(".p2p-sweep__scroll")
    width, height = scroll.evaluate("(s) => [s.clientWidth, s.clientHeight]")
    pitch = 32 + 2  # the cell and its gap (a 24th of the cell, at least 2 px)
    on_screen = (math.ceil(width / pitch) + 2) * (math.ceil(height / pitch) + 2)  # + 2 built past each edge
    assert built == on_screen < 3600 / 4 and len(asked) == built  # thumbnails only for the cells built
    pump(page)
    # a new grid from Python (same cells): the page lays all 3600 out again and builds the viewport's
    relayout_ms = page.page.evaluate(
        """() => { const m = window.harness.model; const t = performance.now();
            m.setFromKernel('grid', { ...m.get('grid') }); return performance.now() - t; }"""
    )
    t0 = time.perf_counter()
    scroll.evaluate("(s) => { s.scrollTop = s.scrollHeight; s.scrollLeft = s.scrollWidth; }")
    page.page.wait_for_function(f'() => !!document.querySelector(\'{CELL}[data-i="59"][data-j="59"]\')')
    scrolled = time.perf_counter() - t0
    rows_shown = page.page.eval_on_selector_all(CELL, "(cells) => cells.map((c) => Number(c.dataset.j))")
    assert min(rows_shown) >= 59 - math.ceil(height / pitch) - 3  # the top rows were dropped
    assert page.page.locator(CELL).count() <= (math.ceil(width / pitch) + 4) * (math.ceil(height / pitch) + 4)
    more = [r for m in page.wait_for_sent("thumbs") for r in m["content"]["rows"]]
    assert len(more) > len(asked) and len(set(more)) == len(more)  # new cells asked once each
    # the row labels follow the scrolled cells
    labels = page.page.locator(".p2p-sweep__rows .p2p-sweep__label").all_text_contents()
    assert "0.59" in labels and "0" not in labels
    print(f"3600 cells: relayout {relayout_ms:.0f} ms ({built} built), scroll to the corner {scrolled * 1000:.0f} ms")
    assert relayout_ms < 1000 and scrolled < 2
    pump(page)
    assert w.error == ""
