"""``bench reference --style-aligned DIR``: our StyleAligned against its authors' handler.

The checkout (google/style-aligned) is never part of this repository: the plumbing is tested here
without it, and the comparison runs when ``P2P_STYLE_ALIGNED`` names a checkout.
"""

import io
import os
import subprocess
import sys

import pytest

from p2p_widgets.bench import reference_style

VARIABLE = "P2P_STYLE_ALIGNED"


def test_the_bench_command_reaches_the_style_comparison():
    out = subprocess.run(
        [sys.executable, "-m", "p2p_widgets.bench", "reference", "--style-aligned", "DIR", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--style-aligned DIR" in out.stdout and "google/style-aligned" in out.stdout


def test_a_folder_without_the_handler_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        reference_style.main(["--style-aligned", str(tmp_path)])
    assert stop.value.code == 2
    assert "sa_handler.py" in capsys.readouterr().err


def test_unknown_cases_are_named(tmp_path, capsys):
    (tmp_path / "sa_handler.py").write_text("")
    with pytest.raises(SystemExit) as stop:
        reference_style.main(["--style-aligned", str(tmp_path), "--cases", "defaults,full_attention_share"])
    assert stop.value.code == 2
    assert "full_attention_share" in capsys.readouterr().err


def test_every_case_sets_the_same_thing_on_both_sides():
    for name, (ours, theirs) in reference_style.CASES.items():
        # theirs also names share_group_norm: their dataclass defaults it to True, ours to False
        drop = "share_group_norm"
        assert {k: v for k, v in theirs.items() if k != drop} == {k: v for k, v in ours.items() if k != drop}, name
        assert theirs["share_group_norm"] == ours.get("share_group_norm", False), name


@pytest.mark.needs_checkout(
    VARIABLE, "google/style-aligned", "python -m p2p_widgets.bench reference --style-aligned DIR"
)
def test_equal_to_the_authors_handler():
    checkout = reference_style.check_checkout(os.environ[VARIABLE])
    steps = reference_style.DEFAULT_STEPS
    rows = reference_style.compare(checkout, steps)
    text = reference_style.report(rows, steps, out=io.StringIO())
    print(text)
    assert len(rows) == len(reference_style.CASES) and all(reference_style.passed(r) for r in rows), text
    effects = [float(r.note.split()[3]) for r in rows]  # "moves our latents X from ..."
    assert all(e >= 100 * reference_style.TOLERANCE for e in effects), text
