"""``python -m p2p_widgets.bench stream`` (p2p_widgets/bench_stream.py) on the tiny model."""

from p2p_widgets.bench.stream import main, measure


def test_measure_reports_overhead_and_bytes():
    r = measure("tiny", steps=4, repeats=1)
    assert r["frames"] == 4 and 2 <= r["live_frames"] <= 4
    assert r["plain_seconds"] > 0 and r["player_seconds"] > 0
    assert r["overhead_pct"] == 100 * (r["player_seconds"] / r["plain_seconds"] - 1)
    # two 64x64 PNG previews plus uint8 maps per step: kilobytes, not megabytes
    assert 2_000 < r["bytes_per_step"] < 200_000


def test_main_prints_name_value_lines(capsys):
    main(["--model", "tiny", "--steps", "3", "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    names = [line.split(":")[0] for line in lines[2:]]
    assert names == [
        "plain_seconds",
        "player_seconds",
        "overhead_pct",
        "backfill_seconds",
        "unthrottled_seconds",
        "unthrottled_overhead_pct",
        "bytes_per_step",
        "live_frames",
        "frames",
    ]
    assert lines[-1] == "frames: 3"
