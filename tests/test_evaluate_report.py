"""The README's pocket-bench table: its methods, its scores (checked on the ideal and the
untouched edit) and its Markdown, without running a sweep."""

import math

import numpy as np
from PIL import Image

from p2p_widgets.engine.rules import registered_rules
from p2p_widgets.evaluate.methods import Method
from p2p_widgets.evaluate.pocket_bench import make_pocket_bench, truth_of
from p2p_widgets.evaluate.report import COLUMNS, model_free_scores, pocket_methods, table


def test_eight_methods_four_rules_two_inversions():
    methods = pocket_methods()
    assert len({m.name for m in methods}) == 8
    assert {m.inversion for m in methods} == {"ddim", "null-text"}
    assert all(isinstance(Method.from_dict(m.to_dict()), Method) for m in methods)  # valid as data
    rules = {m.rule["rule"] for m in methods if m.rule}
    assert rules == {"MutualSelfAttention", "PlugAndPlay"} and rules <= set(registered_rules())
    assert [m.template.get("blend") for m in methods].count(True) == 2


def test_scores_of_the_ideal_and_of_the_untouched_edit(tmp_path):
    case = make_pocket_bench(tmp_path, n=1, seed=0, types=(6,))[0]  # a colour change
    ideal = Image.fromarray(truth_of(case).render_target())
    best = model_free_scores(case, ideal)
    assert best["mask_iou"] == 1.0 and best["target_fidelity"] > 0.9
    # the ideal edit changes nothing outside the mask: the unedited region is identical
    assert best["mse_unedit_part"] == 0.0 and math.isinf(best["psnr_unedit_part"])
    untouched = model_free_scores(case, case.image())
    assert untouched["mask_iou"] == 0.0 and untouched["target_fidelity"] < best["target_fidelity"]
    noisy = np.clip(np.asarray(case.image(), dtype=np.int16) + 20, 0, 255).astype(np.uint8)
    worse = model_free_scores(case, Image.fromarray(noisy))
    keep = ~np.asarray(case.mask)
    a = np.asarray(case.image(), dtype=np.float64) / 255 * keep[..., None]
    b = noisy.astype(np.float64) / 255 * keep[..., None]
    assert math.isclose(worse["mse_unedit_part"], float(((a - b) ** 2).mean()), rel_tol=1e-5)
    assert math.isclose(worse["psnr_unedit_part"], -10 * math.log10(((a - b) ** 2).mean()), rel_tol=1e-5)
    assert 0 < worse["ssim_unedit_part"] < 1


def test_table_means_each_column_over_finished_rows():
    rows = [
        {"method": "A", "status": "ok", "psnr_unedit_part": 20.0, "mask_iou": 0.5},
        {"method": "A", "status": "ok", "psnr_unedit_part": 30.0, "mask_iou": float("nan")},
        {"method": "A", "status": "error", "psnr_unedit_part": 99.0},
        {"method": "B", "status": "ok", "psnr_unedit_part": 10.0, "mask_iou": 0.25},
    ]
    lines = table(rows, ["A", "B"]).splitlines()
    assert lines[0].count("|") == len(COLUMNS) + 3
    assert lines[2].startswith("| A | 2 | 25.00 |") and lines[2].endswith("| 0.500 |")
    assert lines[3].startswith("| B | 1 | 10.00 |") and "| - |" in lines[3]  # no MSE values: a dash
