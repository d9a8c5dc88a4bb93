"""SweepExplorer (widgets/sweep_explorer.py): the grid Python computes from a sweep's rows, the
validation of every front-end write and message, thumbnails, and opening a row in the Studio.

The rows are synthetic (the sweep table's columns, real EditSpecs from a Studio on the tiny
pipeline, PNG files of known colours); the metric values are formulas of the row's parameters so
every mean and spread can be recomputed here from the rows alone."""

import io
import json
import math
import statistics
import time

import numpy as np
import pytest
from PIL import Image

from p2p_widgets.engine.spec import EditSpec
from p2p_widgets.errors import P2PError
from p2p_widgets.widgets.studio import Studio
from p2p_widgets.widgets.sweep_explorer import MAX_THUMBS_PER_REQUEST, SweepExplorer, SweepTable

CROSSES = (0.25, 0.5, 1.0)
GUIDANCES = (3.0, 5.0)
SEEDS = (0, 1, 2)
CASES = ("c0", "c1")
STEPS = 4


class Sink:
    """Collects what the widget sends to the front end."""

    def __init__(self, widget):
        self.messages = []
        widget.send = lambda content, buffers=None: self.messages.append((content, [bytes(b) for b in buffers or []]))


def metrics_of(case_index, cross, guidance, seed):
    return {
        "psnr": 20 + 10 * cross + guidance + 0.5 * seed + case_index,
        "structure_distance": 0.01 * (1 + seed) / guidance,
        # one missing value per (cross 1.0, seed 2): means skip it
        "clip_whole": math.nan if (cross == 1.0 and seed == 2) else 0.2 + 0.1 * cross - 0.01 * seed,
    }


def colour_of(index):
    return (index * 7 % 256, index * 13 % 256, index * 29 % 256)


@pytest.fixture(scope="module")
def studio_specs(tiny_pipe):
    """EditSpec JSON per (cross, guidance, seed), made by a Studio the way its Run makes them."""
    from p2p_widgets.engine.sampler import Editor

    studio = Studio(editor=Editor(tiny_pipe), steps=STEPS, aligner=False, timeline=False)
    specs = {}
    for cross in CROSSES:
        studio.panel.windows = {"cross": [0, round(cross * STEPS)], "self_attn": [0, 1], "words": [], "blend_start": 0}
        for guidance in GUIDANCES:
            studio.panel.guidance = guidance
            for seed in SEEDS:
                studio.panel.seed = seed
                specs[(cross, guidance, seed)] = studio.spec().to_json()
    return specs


def make_rows(folder, specs, failed=()):
    """The rows of a synthetic sweep; images under folder/images; ``failed``: row ids that errored."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for c, case in enumerate(CASES):
        for cross in CROSSES:
            for guidance in GUIDANCES:
                for seed in SEEDS:
                    index = len(rows)
                    row_id = f"{case}-{cross}-{guidance}-{seed}"
                    ok = row_id not in failed
                    if ok:
                        Image.new("RGB", (16, 16), colour_of(index)).save(folder / "images" / f"{row_id}.png")
                    setting = {"cross": cross, "guidance": guidance}
                    values = metrics_of(c, cross, guidance, seed)
                    rows.append(
                        {
                            "row_id": row_id,
                            "case_id": case,
                            "edit_type": 6,
                            "edit_type_name": "change color",
                            "method": "p2p",
                            "inversion": "none",
                            "setting": json.dumps(setting, sort_keys=True),
                            "p.cross": cross,
                            "p.guidance": guidance,
                            "seed": seed,
                            "image": f"images/{row_id}.png" if ok else "",
                            "source_image": "",
                            "spec": specs[(cross, guidance, seed)],
                            "inversion_file": "",
                            **(values if ok else {k: math.nan for k in values}),
                            "seconds": 1.5,
                            "status": "ok" if ok else "error",
                            "error": "" if ok else "CUDA out of memory",
                        }
                    )
    return rows


@pytest.fixture
def rows(tmp_path, studio_specs):
    return make_rows(tmp_path, studio_specs)


@pytest.fixture
def explorer(rows, tmp_path):
    return SweepExplorer(rows, root=tmp_path)


def expected_cell(rows, members):
    """Means and sample spreads of each metric over the ok rows of ``members``, from the rows alone."""
    ok = [rows[r] for r in members if rows[r]["status"] == "ok"]
    out = {}
    for metric in ("psnr", "structure_distance", "clip_whole"):
        vals = [r[metric] for r in ok if not math.isnan(r[metric])]
        out[metric] = (
            statistics.fmean(vals) if vals else None,
            statistics.stdev(vals) if len(vals) > 1 else None,
        )
    return out


# -- the table and the default view ------------------------------------------------------------------


def test_columns_metrics_and_the_default_view(explorer):
    names = [a["name"] for a in explorer.axes]
    assert names == ["p.cross", "p.guidance", "method", "seed", "edit_type_name", "case_id", "inversion"]
    cross = explorer.axes[0]
    assert (cross["label"], cross["values"], cross["labels"]) == ("cross", [0.25, 0.5, 1.0], ["0.25", "0.5", "1"])
    assert [m["name"] for m in explorer.metrics][-1] == "seconds"  # timing after the quality metrics
    assert {m["name"]: m["better"] for m in explorer.metrics} == {
        "clip_whole": "higher",
        "psnr": "higher",
        "structure_distance": "lower",
        "seconds": "lower",
    }
    # the two grid parameters that vary; seeds averaged, every other column at its first value
    assert (explorer.x, explorer.y) == ("p.cross", "p.guidance")
    assert explorer.filters == {
        "method": "p2p",
        "seed": "mean",
        "edit_type_name": "change color",
        "case_id": "c0",
        "inversion": "none",
    }
    assert explorer.metric == explorer.metrics[0]["name"]
    assert explorer.n_rows == len(explorer.rows) == 36


def test_grid_cells_are_the_means_of_their_rows(explorer, rows):
    grid = explorer.grid
    assert (grid["xs"], grid["ys"], grid["averaged"], grid["fixed"]) == (
        ["0.25", "0.5", "1"],
        ["3", "5"],
        ["seed"],
        [["case", "c0"]],
    )
    assert [(c["i"], c["j"]) for c in grid["cells"]] == [(i, j) for j in range(2) for i in range(3)]
    metrics = [m["name"] for m in explorer.metrics]
    for cell in grid["cells"]:
        cross, guidance = CROSSES[cell["i"]], GUIDANCES[cell["j"]]
        members = [
            k
            for k, r in enumerate(rows)
            if r["case_id"] == "c0" and r["p.cross"] == cross and r["p.guidance"] == guidance
        ]
        assert len(members) == len(SEEDS) == cell["n"]
        assert rows[cell["row"]]["seed"] == 0 and cell["row"] in members  # the image is the lowest seed's
        assert explorer.cell_rows(cell["i"], cell["j"]) == [rows[k] for k in members]
        for metric, (mean, spread) in expected_cell(rows, members).items():
            k = metrics.index(metric)
            assert cell["values"][k] == pytest.approx(mean, rel=1e-12)
            assert (cell["spreads"][k] is None) == (spread is None)
            if spread is not None:
                assert cell["spreads"][k] == pytest.approx(spread, rel=1e-12)
        assert cell["setting"] == f"cross={cross:g}, guidance={guidance:g}"
        assert (cell["case"], cell["seed"], cell["method"], cell["errors"], cell["error"]) == ("c0", "0", "p2p", 0, "")
    json.dumps(grid, allow_nan=False)  # what travels to the page is strict JSON (NaN became null)


def test_filters_fix_a_seed_or_average_the_cases(explorer, rows):
    explorer.show(seed=2)
    cell = explorer.grid["cells"][-1]  # cross 1.0, guidance 5: its clip_whole is missing at seed 2
    row = rows[cell["row"]]
    assert (row["seed"], row["p.cross"], row["p.guidance"], cell["n"]) == (2, 1.0, 5.0, 1)
    metrics = [m["name"] for m in explorer.metrics]
    assert cell["values"][metrics.index("clip_whole")] is None
    assert cell["values"][metrics.index("psnr")] == row["psnr"]
    assert cell["spreads"] == [None] * len(metrics)

    explorer.show(x="seed", y="case_id", cross="mean", guidance=5.0)
    grid = explorer.grid
    assert (grid["xs"], grid["ys"], grid["averaged"]) == (["0", "1", "2"], ["c0", "c1"], ["cross"])
    assert grid["fixed"] == [["guidance", "5"]]
    cell = next(c for c in grid["cells"] if (c["i"], c["j"]) == (1, 1))
    members = [k for k, r in enumerate(rows) if r["seed"] == 1 and r["case_id"] == "c1" and r["p.guidance"] == 5.0]
    expected = expected_cell(rows, members)
    assert cell["values"][metrics.index("psnr")] == pytest.approx(expected["psnr"][0])
    assert rows[cell["row"]]["p.cross"] == 0.25  # the first of the averaged values
    assert "seed" not in explorer.filters and "case_id" not in explorer.filters  # x and y are not filtered


def test_failed_rows_are_left_out_of_the_means_and_a_cell_of_failures_says_why(tmp_path, studio_specs):
    failed = {"c0-0.25-3.0-0", "c0-0.25-3.0-1", "c0-0.25-3.0-2", "c0-0.5-3.0-1"}
    rows = make_rows(tmp_path, studio_specs, failed=failed)
    w = SweepExplorer(rows, root=tmp_path)
    cells = {(c["i"], c["j"]): c for c in w.grid["cells"]}
    dead, partial = cells[(0, 0)], cells[(1, 0)]
    assert (dead["errors"], dead["error"], dead["values"]) == (3, "CUDA out of memory", [None] * len(w.metrics))
    assert (partial["n"], partial["errors"], partial["error"]) == (3, 1, "")
    assert rows[partial["row"]]["seed"] == 0  # an ok row's image, not the failed one's
    psnr = [m["name"] for m in w.metrics].index("psnr")
    assert partial["values"][psnr] == pytest.approx(statistics.fmean([rows[k]["psnr"] for k in (6, 8)]))


def test_rows_read_from_csv_text_and_numpy_values():
    """A CSV table's cells are text and a parquet table's numpy scalars: both read as numbers."""
    rows = []
    for k in range(4):
        rows.append(
            {
                "row_id": str(k),
                "case_id": "c",
                "method": "m",
                "seed": np.int64(k % 2),
                "setting": "{}",
                "p.cross": np.float64(0.5 * (k // 2)),
                "image": "",
                "spec": "",
                "status": "ok",
                "psnr": str(20.0 + k) if k != 3 else "",
                "note": "text, not a metric",
            }
        )
    table = SweepTable(rows)
    assert table.metrics == ["psnr"]
    assert table.axes["seed"] == [0, 1] and type(table.axes["seed"][0]) is int
    w = SweepExplorer(rows)
    assert (w.x, w.y) == ("p.cross", "seed")
    assert [c["values"] for c in w.grid["cells"]] == [[20.0], [22.0], [21.0], [None]]


# -- front-end writes: validated, all or nothing ---------------------------------------------------


def test_pickers_must_name_columns_and_errors_show_in_the_widget(explorer):
    before = (explorer.x, explorer.y, explorer.metric, dict(explorer.filters), explorer.grid)
    for update, words in [
        ({"x": "p.nope"}, "x must be one of the columns"),
        ({"y": "p.cross"}, "x and y must be different"),
        ({"metric": "seed"}, "metric must be one of the metric columns"),
        ({"filters": {"case_id": "c9"}}, "case has no value 'c9'"),
        ({"filters": {"colour": 1}}, "'colour' is not a column to filter by"),
        ({"cell_size": 4}, "cell size must be from 24 to 256"),
        ({"x": "seed", "metric": "nope"}, "metric must be one of"),  # the good half is not applied either
        ({"grid": {}}, "grid cannot be set from the page"),
    ]:
        explorer.set_state(update)
        assert words in explorer.error, (update, explorer.error)
        assert (explorer.x, explorer.y, explorer.metric, explorer.filters, explorer.grid) == before
    explorer.set_state({"x": "p.guidance", "y": "p.cross"})  # a swap in one write is fine
    assert (explorer.x, explorer.y, explorer.error) == ("p.guidance", "p.cross", "")
    assert explorer.grid["xs"] == ["3", "5"] and explorer.grid["ys"] == ["0.25", "0.5", "1"]
    explorer.set_state({"filters": {**explorer.filters, "case_id": "c1", "seed": 1}, "metric": "psnr"})
    assert explorer.grid["fixed"] == [["seed", "1"], ["case", "c1"]]
    with pytest.raises(P2PError, match="x and y must be different"):
        explorer.show(x="p.cross")
    with pytest.raises(P2PError, match="'colour' is not a column"):
        explorer.show(colour=2)


def test_open_message_checks_the_row_and_selects_it_without_a_studio(explorer, rows):
    shown = {c["row"] for c in explorer.grid["cells"]}
    hidden = next(k for k in range(len(rows)) if k not in shown)
    for content, words in [
        ({"type": "open", "row": len(rows)}, "'row' must be a row number from 0 to 35"),
        ({"type": "open", "row": "3"}, "'row' must be a row number"),
        ({"type": "open", "row": True}, "'row' must be a row number"),
        ({"type": "open", "row": hidden}, f"row {hidden} is not a cell of the grid shown"),
    ]:
        explorer._handle_custom_msg(content, [])
        assert words in explorer.error and explorer.selected == -1
    row = explorer.grid["cells"][4]["row"]
    explorer._handle_custom_msg({"type": "open", "row": row}, [])
    assert (explorer.selected, explorer.error) == (row, "")
    assert explorer.selected_row is rows[row] or explorer.selected_row == rows[row]
    assert "no Studio attached" in explorer.status


# -- thumbnails --------------------------------------------------------------------------------------


def test_thumbnails_travel_as_png_buffers_for_the_rows_asked(explorer, tmp_path, rows):
    sink = Sink(explorer)
    explorer._handle_custom_msg({"type": "thumbs", "version": 0, "rows": [3, 0, 3]}, [])
    ((content, buffers),) = sink.messages
    assert content == {"type": "thumbs", "version": 0, "rows": [3, 0], "missing": []}
    for index, png in zip(content["rows"], buffers, strict=True):
        assert png == (tmp_path / rows[index]["image"]).read_bytes()  # small PNGs go as they are
        pixels = np.asarray(Image.open(io.BytesIO(png)))
        assert pixels.shape == (16, 16, 3) and tuple(pixels[5, 5]) == colour_of(index)


def test_thumbnail_requests_are_checked(explorer, tmp_path, studio_specs):
    sink = Sink(explorer)
    for content, words in [
        ({"type": "thumbs", "version": "0", "rows": [0]}, "'version' must be an integer"),
        ({"type": "thumbs", "version": 0, "rows": [0.5]}, "'rows' must be a list of row numbers"),
        ({"type": "thumbs", "version": 0, "rows": [0, 36]}, "rows [36] are outside 0 to 35"),
        (
            {"type": "thumbs", "version": 0, "rows": [0] * (MAX_THUMBS_PER_REQUEST + 1)},
            f"at most {MAX_THUMBS_PER_REQUEST} thumbnails",
        ),
    ]:
        explorer._handle_custom_msg(content, [])
        assert words in explorer.error
    explorer._handle_custom_msg({"type": "thumbs", "version": 7, "rows": [0]}, [])  # asked before a reload
    assert sink.messages == []
    rows = make_rows(tmp_path / "failing", studio_specs, failed={"c0-0.25-3.0-0"})
    w = SweepExplorer(rows, root=tmp_path / "failing")
    sink = Sink(w)
    w._handle_custom_msg({"type": "thumbs", "version": 0, "rows": [0, 1]}, [])
    assert sink.messages[0][0]["rows"] == [1] and sink.messages[0][0]["missing"] == [0]


def test_large_images_are_downscaled_to_the_thumbnail_side(tmp_path, rows):
    big = np.zeros((300, 200, 3), np.uint8)
    big[:, 100:] = (250, 10, 10)
    Image.fromarray(big).save(tmp_path / rows[0]["image"])
    w = SweepExplorer(rows, root=tmp_path, thumb_side=60)
    png = w.thumbnail(0)
    small = np.asarray(Image.open(io.BytesIO(png)))
    assert small.shape == (60, 40, 3)
    assert tuple(small[30, 5]) == (0, 0, 0) and tuple(small[30, 35]) == (250, 10, 10)
    with pytest.raises(P2PError, match="thumb_side"):
        SweepExplorer(rows, thumb_side=4)


# -- opening a row in the Studio ----------------------------------------------------------------------


def same_edit(a: EditSpec, b: EditSpec) -> bool:
    """The same edit: every field and rule equal; the mapper's links equal whichever way they were
    written (a loaded Studio writes its alignment as links, an automatic one names its kind)."""
    da, db = json.loads(a.to_json()), json.loads(b.to_json())
    for d in (da, db):
        for rule in d["rules"]:
            rule["mapper"].pop("kind")
    return da == db


@pytest.fixture
def studio(editor):
    return Studio(editor=editor, steps=STEPS, aligner=False, timeline=False)


def test_clicking_a_cell_loads_its_edit_into_the_studio(rows, tmp_path, studio):
    w = SweepExplorer(rows, studio=studio, root=tmp_path)
    w.show(seed=1)
    cell = next(c for c in w.grid["cells"] if (c["i"], c["j"]) == (1, 1))
    w._handle_custom_msg({"type": "open", "row": cell["row"]}, [])
    assert w.error == ""
    row = rows[cell["row"]]
    assert (row["p.cross"], row["p.guidance"], row["seed"]) == (0.5, 5.0, 1)
    assert same_edit(studio.spec(), EditSpec.from_json(row["spec"]))
    assert (studio.panel.seed, studio.panel.guidance, studio.panel.windows["cross"]) == (1, 5.0, [0, 2])
    assert (w.selected, "loaded row" in w.status) == (cell["row"], True)


def test_a_studio_error_shows_in_the_explorer_which_keeps_working(rows, tmp_path, studio):
    bad = [dict(r) for r in rows]
    spec = json.loads(bad[0]["spec"])
    spec["mode"] = "explicit"  # a valid spec the Studio's controls cannot hold
    bad[0]["spec"] = json.dumps(spec)
    bad[6]["spec"] = "{not json"
    w = SweepExplorer(bad, studio=studio, root=tmp_path)
    w.show(seed=0)
    w._handle_custom_msg({"type": "open", "row": 0}, [])
    assert "open: " in w.error and "the Studio runs the fast path" in w.error and w.selected == -1
    w._handle_custom_msg({"type": "open", "row": 6}, [])
    assert "row 6 (c0-0.5-3.0-0): its spec does not load" in w.error
    w._handle_custom_msg({"type": "open", "row": 12}, [])
    assert (w.error, w.selected, studio.panel.windows["cross"]) == ("", 12, [0, 4])


def test_an_edit_of_a_real_image_loads_its_image_first(editor, tmp_path, studio, rows):
    """A row whose spec edits an inversion: the explorer hands the Studio the dataset image (the
    Studio checks its hash against the spec's) and then the edit."""
    size = editor.default_size
    yy, xx = np.mgrid[0:size, 0:size]
    photo = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 90)], -1).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    inv = editor.invert(photo, "a photo of a cat riding a bicycle", method="ddim", steps=STEPS, guidance=1.0)
    spec = inv.edit(editor, "a photo of a dog riding a bicycle").spec
    real = dict(rows[0], spec=spec.to_json(), source_image=str(path), inversion="ddim")
    other = tmp_path / "other.png"
    Image.fromarray(255 - photo).save(other)
    wrong = dict(rows[1], spec=spec.to_json(), source_image=str(other), inversion="ddim")
    gone = dict(rows[2], spec=spec.to_json(), source_image=str(tmp_path / "moved.png"), inversion="ddim")
    w = SweepExplorer([real, wrong, gone, *rows[3:]], studio=studio, root=tmp_path)
    w.show(x="seed", y="p.cross")

    w.open_row(0)
    assert np.array_equal(studio.image, photo) and studio.panel.invert_method == "ddim"
    assert studio.panel.source == spec.prompts[0] and studio.panel.target == spec.prompts[1]

    studio.clear_image()
    with pytest.raises(P2PError, match="load that image into the Studio first"):
        w.open_row(1)  # another picture than the one inverted: refused, and the Studio's image is put back
    assert studio.image is None
    with pytest.raises(P2PError, match="source_image .*moved.png' is not a file"):
        w.open_row(2)


# -- a sweep folder (read with the runner's load_sweep) ------------------------------------------------


def write_folder(folder, rows, complete=False):
    """A sweep folder as the runner leaves it: the manifest, rows/<row_id>.json, images/, and with
    ``complete`` the table (the runner's own writer: CSV without pyarrow)."""
    from p2p_widgets.evaluate import sweep

    (folder / "rows").mkdir(parents=True, exist_ok=True)
    manifest = {"format": sweep.FORMAT, "version": sweep.VERSION, "dataset": "bench", "methods": [], "grid": {},
                "seeds": list(SEEDS), "complete": complete, "rows_expected": len(rows)}  # fmt: skip
    (folder / "sweep.json").write_text(json.dumps(manifest))
    for row in rows:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        (folder / "rows" / f"{row['row_id']}.json").write_text(json.dumps(clean))
    if complete:
        sweep.write_table(folder, rows)


def test_a_sweep_folder_in_progress_and_complete(tmp_path, studio_specs):
    folder = tmp_path / "sweep"
    rows = make_rows(folder, studio_specs)
    write_folder(folder, rows[:30])  # a sweep still running: rows/ holds what is finished
    w = SweepExplorer(folder, x="seed", y="p.cross")
    assert w.n_rows == 30 and (w.x, w.y) == ("seed", "p.cross")
    sink = Sink(w)
    w._handle_custom_msg({"type": "thumbs", "version": 0, "rows": [0]}, [])
    png = sink.messages[0][1][0]
    by_id = {r["row_id"]: k for k, r in enumerate(rows)}
    assert tuple(np.asarray(Image.open(io.BytesIO(png)))[0, 0]) == colour_of(by_id[w.rows[0]["row_id"]])
    write_folder(folder, rows)  # the rest finished
    w.refresh()
    assert (w.n_rows, w.version, w.x, w.y) == (36, 1, "seed", "p.cross")
    w._handle_custom_msg({"type": "thumbs", "version": 0, "rows": [0]}, [])  # asked before the refresh
    assert len(sink.messages) == 1

    done = tmp_path / "done"
    make_rows(done, studio_specs)
    write_folder(done, rows, complete=True)
    assert (done / "table.csv").is_file() or (done / "table.parquet").is_file()
    from_table = SweepExplorer(done, x="seed", y="p.cross")
    assert from_table.axes == w.axes and from_table.metrics == w.metrics
    assert from_table.grid == w.grid  # the same cells from the table as from the row files


# -- construction ----------------------------------------------------------------------------------


def test_bad_input_is_named(tmp_path, rows):
    with pytest.raises(P2PError, match="does not exist"):
        SweepExplorer(tmp_path / "nowhere")
    with pytest.raises(P2PError, match="no rows"):
        SweepExplorer([])
    with pytest.raises(P2PError, match="rows must be a list of dicts"):
        SweepExplorer({"row_id": "x"})
    with pytest.raises(P2PError, match=r"row 1 \(c0-0.25-3.0-1\) has no column 'spec'"):
        SweepExplorer([rows[0], {k: v for k, v in rows[1].items() if k != "spec"}])
    with pytest.raises(P2PError, match="status must be 'ok' or 'error'"):
        SweepExplorer([dict(rows[0], status="running")])
    with pytest.raises(P2PError, match="studio must be a Studio"):
        SweepExplorer(rows, studio="studio")
    with pytest.raises(TypeError, match="unknown keyword"):
        SweepExplorer(rows, colour="psnr")
    with pytest.raises(P2PError, match="made from rows, not a folder"):
        SweepExplorer(rows).refresh()


def test_a_starting_view_is_validated_too(rows):
    w = SweepExplorer(rows, x="seed", metric="psnr", filters={"case_id": "c1"})
    assert (w.x, w.y, w.metric, w.filters["case_id"]) == ("seed", "p.cross", "psnr", "c1")
    with pytest.raises(Exception, match="metric must be one of"):
        SweepExplorer(rows, metric="accuracy")


def test_a_large_sweep_stays_quick_to_regrid(studio_specs, tmp_path):
    """20 000 rows (50 cases x 25 settings x 4 seeds x 4 methods): reading them and laying out a
    case-by-setting grid are interactive."""
    base = make_rows(tmp_path, studio_specs)[0]
    rows = []
    for case in range(50):
        for a in range(5):
            for b in range(5):
                for seed in range(4):
                    for method in ("p2p", "p2p-blend", "masactrl", "pnp"):
                        rows.append(
                            dict(
                                base,
                                row_id=f"{case}-{a}-{b}-{seed}-{method}",
                                case_id=f"case{case:03d}",
                                method=method,
                                seed=seed,
                                **{"p.a": a, "p.b": b},
                                psnr=float(case + a + b + seed),
                            )
                        )
    t0 = time.perf_counter()
    w = SweepExplorer(rows)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    w.show(x="p.a", y="case_id", b="mean")
    regrid = time.perf_counter() - t0
    print(f"20000 rows: explorer built in {built:.2f} s, a 5 x 50 grid over 20 rows a cell in {regrid:.2f} s")
    assert len(w.grid["cells"]) == 250 and w.grid["cells"][0]["n"] == 20  # b x seed averaged, method fixed
    assert built < 10 and regrid < 5


# -- figures (p2p_widgets/evaluate/figures.py) ---------------------------------------------------------


def figure_rows():
    """2 methods x 3 settings x 3 seeds x 4 cases over 2 edit types; a few NaN values and one failed row."""
    rows = []
    for method_index, method in enumerate(("p2p", "p2p-blend")):
        for cross in (0.2, 0.4, 0.8):
            for seed in (0, 1, 2):
                for case in range(4):
                    edit_type, name = (6, "change color") if case < 2 else (1, "change object")
                    structure = 0.01 * (1 + method_index) + 0.02 * cross + 0.001 * seed * (case + 1)
                    clip = 20 + 5 * cross - 2 * method_index + 0.3 * seed + 0.1 * case
                    if (method, cross, seed, case) == ("p2p", 0.4, 1, 3):
                        clip = math.nan
                    rows.append(
                        {
                            "row_id": f"{method}-{cross}-{seed}-{case}",
                            "case_id": f"case{case}",
                            "edit_type": edit_type,
                            "edit_type_name": name,
                            "method": method,
                            "setting": json.dumps({"cross": cross}),
                            "p.cross": cross,
                            "seed": seed,
                            "structure_distance": structure,
                            "clip_similarity_target_image": clip,
                            "psnr_unedit_part": 25 + case - seed,
                            "status": "ok",
                        }
                    )
    rows.append(dict(rows[0], row_id="failed", clip_similarity_target_image=1e9, status="error"))
    return rows


def expected_point(rows, metric, **where):
    """Mean over seeds of each seed's nan-mean over the ok rows matching ``where``, and the seeds' sample std."""
    per_seed = []
    for seed in sorted({r["seed"] for r in rows}):
        kept = [
            r for r in rows if r["status"] == "ok" and r["seed"] == seed and all(r[k] == v for k, v in where.items())
        ]
        per_seed.append(np.nanmean(np.array([r[metric] for r in kept], float)))
    return float(np.mean(per_seed)), float(np.std(per_seed, ddof=1))


def test_tradeoff_has_a_point_per_setting_with_error_bars_over_seeds():
    from p2p_widgets.evaluate import figures

    rows = figure_rows()
    fig = figures.tradeoff(rows)
    assert [t.name for t in fig.data] == ["p2p", "p2p-blend"]
    for trace in fig.data:
        assert list(trace.text) == ["cross=0.2", "cross=0.4", "cross=0.8"]
        for k, cross in enumerate((0.2, 0.4, 0.8)):
            mx, sx = expected_point(rows, "structure_distance", method=trace.name, **{"p.cross": cross})
            my, sy = expected_point(rows, "clip_similarity_target_image", method=trace.name, **{"p.cross": cross})
            assert trace.x[k] == pytest.approx(mx, rel=1e-12) and trace.error_x.array[k] == pytest.approx(sx, rel=1e-9)
            assert trace.y[k] == pytest.approx(my, rel=1e-12) and trace.error_y.array[k] == pytest.approx(sy, rel=1e-9)
            assert trace.customdata[k][1] == 3  # seeds
    assert fig.layout.xaxis.title.text.startswith("structure distance")
    only = figures.tradeoff(rows, edit_type="change object")
    mx, _ = expected_point(rows, "structure_distance", method="p2p", edit_type=1, **{"p.cross": 0.2})
    assert only.data[0].x[0] == pytest.approx(mx)


def test_type_bars_per_method_and_edit_type():
    from p2p_widgets.evaluate import figures

    rows = figure_rows()
    fig = figures.type_bars(rows, "psnr_unedit_part")
    assert fig.layout.barmode == "group" and [t.name for t in fig.data] == ["p2p", "p2p-blend"]
    for trace in fig.data:
        assert list(trace.x) == ["change object", "change color"]  # by edit type id: 1, then 6
        for k, edit_type in enumerate((1, 6)):
            mean, spread = expected_point(rows, "psnr_unedit_part", method=trace.name, edit_type=edit_type)
            assert trace.y[k] == pytest.approx(mean) and trace.error_y.array[k] == pytest.approx(spread)
    one = figures.type_bars(rows, setting={"cross": 0.8})
    mean, _ = expected_point(rows, "clip_similarity_target_image", method="p2p-blend", edit_type=6, **{"p.cross": 0.8})
    assert one.data[1].y[1] == pytest.approx(mean)


def test_one_seed_has_no_error_bars_and_bad_input_is_named():
    from p2p_widgets.evaluate import figures

    rows = [r for r in figure_rows() if r["seed"] == 0 and r["status"] == "ok"]
    fig = figures.tradeoff(rows)
    assert all(math.isnan(v) for t in fig.data for v in t.error_x.array)
    with pytest.raises(P2PError, match="no metric 'lpips_unedit_part'; their metrics: structure_distance"):
        figures.type_bars(rows, "lpips_unedit_part")
    with pytest.raises(P2PError, match="x: the rows have no metric"):
        figures.tradeoff(rows, x="psnr")
    with pytest.raises(P2PError, match="no finished rows"):
        figures.tradeoff([dict(rows[0], status="error")])
    with pytest.raises(P2PError, match="edit_type: no rows of edit type 'change style'"):
        figures.tradeoff(rows, edit_type="change style")
    with pytest.raises(P2PError, match="setting: no rows with setting"):
        figures.type_bars(rows, setting={"cross": 0.3})
    with pytest.raises(P2PError, match="rows must be a list of dicts"):
        figures.tradeoff("sweep")
