"""The pocket-bench table's flow-model rows (issue 27): ``report pocket --model pocket-flow`` runs
FlowEdit, RF-Inversion, RF-Solver-Edit, FireFlow-Edit and P2P on joint attention (map and query / key
forms) after FireFlow on the pocket flow model end to end (a few cases, few steps) and prints the model
and the settings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from p2p_widgets.evaluate.methods import Method
from p2p_widgets.evaluate.report import COLUMNS, flow_methods, main, pocket_methods, settings_of
from p2p_widgets.evaluate.sweep import load_sweep
from p2p_widgets.models import defaults_for

NAMES = [
    "FlowEdit",
    "RF-Inversion",
    "RF-Solver-Edit",
    "FireFlow-Edit",
    "P2P joint (fireflow)",
    "Q/K injection (fireflow)",
]


@pytest.fixture(scope="module")
def flow_editor():
    from p2p_widgets.engine.sampler import Editor
    from p2p_widgets.models import load_pipeline

    return Editor(load_pipeline("pocket-flow"))


def test_flow_methods_are_set_for_the_pocket_flow_model(flow_editor):
    methods = flow_methods()
    assert [m.name for m in methods] == NAMES
    assert all(Method.from_dict(m.to_dict()) == m for m in methods)  # valid as data (the sweep records them)
    by_name = {m.name: m for m in methods}
    assert by_name["FlowEdit"].direct == {
        "method": "flowedit",
        "steps": 20,
        "n_max": 17,  # 24 of Flux's 28 steps, in proportion
        "source_guidance": 1.5,
        "target_guidance": 5.5,
    }
    assert by_name["RF-Inversion"].direct == {"method": "rf-inversion", "steps": 20}
    assert {m.inversion for m in methods if m.direct is None} == {"rf-solver", "fireflow"}
    for m in methods[2:]:
        assert m.template["steps"] == 20 and m.template["guidance"] == 2.0
    # the K/V injection keeps the presets' Flux.1 blocks 20-37 of 38, which the run places on the
    # model's later single blocks (before, the report named 2-3 itself: the blocks alone injected nothing)
    from p2p_widgets.engine.joint_controls import KVInjection

    singles = len(flow_editor.pipe.transformer.single_transformer_blocks)
    for name in ("RF-Solver-Edit", "FireFlow-Edit"):
        rule = by_name[name].rule
        assert rule["single"] == [str(i) for i in range(20, 38)] and rule["single_of"] == 38
        placed = KVInjection(**{k: v for k, v in rule.items() if k != "rule"}).blocks_on("single", singles)
        assert placed == {singles - 2, singles - 1} == {2, 3}
        assert "single blocks 2, 3 (Flux.1's 20-37 of 38)" in by_name[name].description
    assert flow_methods(steps=6, guidance=3.0)[0].direct["n_max"] == 5
    # P2P's query / key form: the source's image queries and keys everywhere for P2P's self window
    qk = by_name["Q/K injection (fireflow)"].rule
    assert (qk["copy_queries"], qk["copy_keys"], qk["copy_values"], qk["end_step"]) == (True, True, False, 9)
    # the settings line resolves "model" to the model's own
    line = settings_of(pocket_methods()[0].with_params(steps=10, guidance="model"), defaults_for("pocket"))
    assert line == "ddim inversion, steps 10, guidance 5, P2P auto, cross 0.8, self 0.4"
    assert "single 20-37, single_of 38" in settings_of(by_name["RF-Solver-Edit"], defaults_for("pocket-flow"))


def test_the_injection_reaches_the_pocket_flow_model(flow_editor, tmp_path):
    """Values copied in the chosen single blocks change the edit (blocks the model lacks are refused
    by name); every block for every step keeps the source."""
    from p2p_widgets.errors import P2PError
    from p2p_widgets.evaluate.pocket_bench import make_pocket_bench

    case = make_pocket_bench(tmp_path, n=1, seed=0, types=(6,))[0]
    method = flow_methods(steps=6)[3]  # FireFlow-Edit
    inversion = flow_editor.invert(case.image_path, case.source_prompt, method="fireflow", steps=6, guidance=2.0)

    def edit(**rule):
        m = method.with_params(**rule)
        source, target, options = m.edit_arguments(case, flow_editor, 0, inversion)
        return np.asarray(flow_editor.edit(source, target, **options).images[1], dtype=np.float64)

    plain, injected = edit(single=[]), edit()
    assert np.abs(injected - plain).max() > 0
    with pytest.raises(P2PError, match=r"single block\(s\) 20, 37 do not exist on this model"):
        edit(single=["20", "37"], single_of=None)  # Flux's blocks as this model's own: refused, not a no-op
    assert np.array_equal(edit(single=["2", "3"], single_of=None), injected)  # where the preset placed them
    kept = edit(single=["all"], end_step=None)
    source = np.asarray(case.image(), dtype=np.float64)
    assert np.abs(kept - source).mean() < np.abs(plain - source).mean()


def test_report_runs_the_flow_rows_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["pocket", "--model", "pocket-flow", "--out", str(out), "--n", "2", "--steps", "4", "--workers", "1"]
    assert main([*argv, "--no-progress"]) == 0
    text = capsys.readouterr().out
    head, *lines = text.splitlines()
    assert head.startswith("pocket-bench: 2 cases, model pocket-flow, 4 steps, guidance 2 (inverting methods)")
    rows = load_sweep(out / "sweep-pocket-flow")
    assert len(rows) == 2 * len(NAMES) and {r["method"] for r in rows} == set(NAMES)
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows if r["status"] != "ok"]
    for r in rows:
        for key, *_ in COLUMNS:
            assert math.isfinite(float(r[key])), (r["method"], key, r[key])
        spec = json.loads(r["spec"])
        assert spec["steps"] == 4
        if r["method"] not in ("FlowEdit", "RF-Inversion"):  # the run record names the solver that sampled
            assert spec["scheduler"] == "FlowSolverScheduler" and spec["inversion"]["family"] == "flow"
    assert {json.loads(r["spec"])["model"] for r in rows} == {"pocket-flow"}
    # the methods differ: on each case no two methods give the same picture
    for case in {r["case_id"] for r in rows}:
        images = [Image.open(out / "sweep-pocket-flow" / r["image"]).tobytes() for r in rows if r["case_id"] == case]
        assert len(set(images)) == len(NAMES)
    # the table: a row per method with its 2 rows and numbers, then each method's settings
    table = [line for line in lines if line.startswith("| ")]
    for name in NAMES:
        (line,) = [t for t in table if t.startswith(f"| {name} |")]
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == "2" and all(c != "-" for c in cells[2:])
    assert "- FlowEdit: flowedit, steps 4, n_max 3, source_guidance 1.5, target_guidance 5.5" in lines
    assert "- P2P joint (fireflow): fireflow inversion, steps 4, guidance 2, P2P auto, cross 0.8, self 0.4" in lines
    # rerun: resumed, nothing computed again, the same table
    assert main([*argv, "--no-progress"]) == 0
    again = capsys.readouterr().out.splitlines()
    assert "this run: 0 rows" in again[0] and again[1:] == lines


def test_the_printed_settings_are_the_ones_the_sweep_ran(tmp_path, monkeypatch, capsys):
    """The report printed each method's settings through with_params while run_sweep applies its
    overrides through with_run_settings (a FlowEdit's guidance is its target guidance): one method of
    the list given a guidance override printed a refusal, or other settings than those run."""
    from types import SimpleNamespace

    from p2p_widgets.evaluate import pocket_bench, report, sweep
    from p2p_widgets.evaluate.methods import get_method

    ran = {}

    def run_sweep(data, methods, out, model, workers, metrics, progress, steps=None, guidance=None):
        ran["methods"] = [m.with_run_settings(steps, guidance) for m in methods]  # as run_sweep sets them
        return SimpleNamespace(rows_expected=len(methods), ran=0, seconds=0.0, rows=[])

    listed = [pocket_methods()[0], get_method("flowedit")]
    monkeypatch.setattr(sweep, "run_sweep", run_sweep)
    monkeypatch.setattr(pocket_bench, "make_pocket_bench", lambda folder, n, seed: None)
    monkeypatch.setattr(report, "pocket_methods", lambda: listed)
    assert main(["pocket", "--out", str(tmp_path), "--steps", "6", "--guidance", "3", "--no-progress"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("- ")]
    defaults = defaults_for("pocket")
    assert printed == [f"- {m.name}: {settings_of(m, defaults)}" for m in ran["methods"]]
    assert "target_guidance 3" in printed[1] and "steps 6" in printed[1]
