"""The benchmark commands run end to end on tiny models and print every figure they promise."""

import subprocess
import sys

import torch


def _lines(text):
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def test_engine_bench_prints_times_memory_and_ratios_for_sdxl():
    out = subprocess.run(
        [sys.executable, "-m", "p2p_widgets.bench", "engine", "--model", "tinyxl", "--steps", "2", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    figures = _lines(out.stdout)
    for key in ("plain_seconds", "fast_seconds", "explicit_seconds", "fast_time_ratio", "explicit_time_ratio"):
        assert float(figures[key]) > 0, key


def test_sdxl_bench_architecture_is_sdxl_base():
    """The GPU benchmark's random-weight SDXL has SDXL base's parameter counts (built on the meta device)."""
    from p2p_widgets.bench.geometries import SD15_TEXT, SDXL_TEXT2, SDXL_UNET, SDXL_VAE, xl_pipeline
    from p2p_widgets.engine.sampler import Editor

    with torch.device("meta"):
        pipe = xl_pipeline(SDXL_VAE, SD15_TEXT, SDXL_TEXT2, SDXL_UNET)
    count = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in ("unet", "text_encoder_2")}
    assert count == {"unet": 2_567_463_684, "text_encoder_2": 694_659_840}
    editor = Editor(pipe)
    assert editor.embedding_width == 2048 and editor.attention_sides(128) == [32, 64]


def test_inversion_timing_mode_on_an_architecture():
    from p2p_widgets.bench.invert import timing

    lines = []
    timing("tiny", steps=2, guidance=5.0, inner_steps=2, device="cpu", out=lines.append)
    figures = _lines("\n".join(lines))
    assert {"null-text_seconds", "ddim_seconds", "negative-prompt_seconds"} <= set(figures)
    assert figures["null-text_optimiser_iterations"] == "4"  # random weights: every inner iteration runs
