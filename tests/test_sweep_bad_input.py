"""Issue 23, sweeps: bad input named before any row is written (deep JSON, mixed grid keys, a grid
past the row limit, values that only failed as error rows), damaged sweep folders (rows validated
when read, a bad row named and recomputed, a garbage table), one writer per folder, and the Ray
backend's failures. One table per family; each row failed before its fix."""

import json
import math

import pytest

from p2p_widgets.errors import P2PError
from p2p_widgets.evaluate.pocket_bench import make_pocket_bench
from p2p_widgets.evaluate.sweep import plan_sweep, run_sweep

STEPS = 2


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    make_pocket_bench(folder, n=2, seed=0, types=(6, 1))
    return folder


def _deep_json(depth):
    return '{"cross": ' + "[" * depth + "0.2" + "]" * depth + "}"


def _deep_method(depth):
    return '{"name": "deep", "template": {}, "inversion_options": {"x": ' + "[" * depth + "]" * depth + "}}"


def _deep_list(depth):
    data = []
    for _ in range(depth):
        data = [data]
    return data


COMBINE_HIDING = {
    "name": "combined",
    "inversion": "ddim",
    "rule": {
        "rule": "Combine",
        "rules": [{"rule": "MutualSelfAttention", "start_step": -3}, {"rule": "StyleAligned"}],
    },
}
REPLACE_RULE = {"name": "replace", "inversion": "ddim", "rule": {"rule": "Replace"}}

# name -> (plan_sweep arguments beyond the dataset, what the message names)
PLANNING_CASES = {
    "a --grid nested 100000 deep": (dict(methods=["pie-p2p-ddim"], grid=_deep_json(100_000)), "nests deeper"),
    "a grid value nested 1000 deep": (
        dict(methods=["pie-p2p-ddim"], grid={"cross": [_deep_list(1000)]}),
        "nests deeper",
    ),
    "a --method nested 100000 deep": (dict(methods=[_deep_method(100_000)]), "nests deeper"),
    "a method object nested 1000 deep": (
        dict(methods=[{"name": "deep", "inversion_options": {"x": _deep_list(1000)}}]),
        "nests deeper",
    ),
    "mixed grid key types": (dict(methods=["pie-p2p-ddim"], grid={"cross": [0.2], 3: [1]}), "names must be"),
    "a 401x401 grid": (
        dict(
            methods=["pie-p2p-ddim"],
            grid={"cross": [k / 400 for k in range(401)], "self_attn": [k / 400 for k in range(401)]},
        ),
        "max_rows",
    ),
    "blend_start 1e308": (dict(methods=["pie-p2p-ddim"], grid={"blend_start": [1e308]}), "blend_start"),
    "blend_start past the run": (dict(methods=["pie-p2p-ddim"], grid={"blend_start": [7]}, steps=STEPS), "blend_start"),
    "guidance 1e308": (dict(methods=["pie-p2p-ddim"], grid={"guidance": [1e308]}), "guidance"),
    "reweight 1e300": (dict(methods=["pie-p2p-ddim"], grid={"reweight": [1e300]}), "reweight"),
    "a Combine hiding a bad parameter": (dict(methods=[COMBINE_HIDING]), "start_step"),
    "Replace without a mapper": (dict(methods=[REPLACE_RULE]), "mapper"),
}


@pytest.mark.parametrize("case", list(PLANNING_CASES), ids=list(PLANNING_CASES))
def test_sweep_planning_names_bad_input_before_any_row(bench, tmp_path, case):
    args, match = PLANNING_CASES[case]
    with pytest.raises(P2PError, match=match):
        plan_sweep(bench, **args)
    out = tmp_path / "sweep"
    with pytest.raises(P2PError, match=match):
        run_sweep(bench, out=out, progress=False, **args)
    assert not out.exists()  # nothing written


def test_the_row_limit_can_be_raised(bench, monkeypatch):
    grid = {"cross": [k / 100 for k in range(101)], "self_attn": [0.2, 0.4]}  # 2 cases x 202 settings
    with pytest.raises(P2PError, match="has 404 rows, past the limit of 100.*max_rows=404"):
        plan_sweep(bench, ["pie-p2p-ddim"], grid, max_rows=100)
    assert len(plan_sweep(bench, ["pie-p2p-ddim"], grid, max_rows=404).jobs) == 404
    monkeypatch.setenv("P2P_WIDGETS_SWEEP_MAX_ROWS", "500")
    assert len(plan_sweep(bench, ["pie-p2p-ddim"], grid).jobs) == 404
    assert math.isfinite(plan_sweep(bench, ["pie-p2p-ddim"], {"guidance": [30.0]}).methods[0].template["guidance"])
