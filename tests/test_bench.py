"""The benchmark commands run end to end on tiny models and print every figure they promise."""

import subprocess
import sys

import pytest
import torch


def _lines(text):
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def test_engine_bench_interleaves_every_path_and_prints_median_ratios_for_sdxl():
    out = subprocess.run(
        [sys.executable, "-m", "p2p_widgets.bench", "engine", "--model", "tinyxl", "--steps", "2", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    figures = _lines(out.stdout)
    paths = ("fast", "explicit", "masactrl", "pnp", "style-aligned")
    for key in ("plain_seconds", *(f"{p}_seconds" for p in paths)):
        assert float(figures[key]) > 0, key
    for p in paths:  # "median (rounds: low to high)", by the wall clock and by the process's CPU time
        for clock in ("time_ratio", "cpu_time_ratio"):
            median, spread = figures[f"{p}_{clock}"].split(" (rounds: ")
            low, high = (float(v) for v in spread.rstrip(")").split(" to "))
            assert 0 < low <= float(median) <= high, (p, clock)


def test_engine_bench_memory_mode_times_only_the_paths_asked_for_beside_plain():
    cmd = [sys.executable, "-m", "p2p_widgets.bench", "engine", "--model", "tiny", "--steps", "2", "--repeats", "1"]
    out = subprocess.run([*cmd, "--memory", "--paths", "masactrl"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = _lines(out.stdout)
    timed = {key[: -len("_seconds")] for key in figures if key.endswith("_seconds")}
    assert timed == {"plain", "masactrl"} and float(figures["masactrl_peak_mb"]) >= 0
    bad = subprocess.run([*cmd, "--paths", "fast,fastest"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown paths ['fastest']" in bad.stderr


def test_engine_bench_times_the_seam_against_the_pipeline_on_flux_and_sd3(capsys):
    """In process (the command's own entry): every SD3 / Flux path beside the pipeline; UNet-only
    paths refused by name."""
    from p2p_widgets.bench.engine import main

    for model, paths in (("tinyflux", "seam,fast,explicit,kv-injection"), ("tinysd3", "seam,fast")):
        main(["engine", "--model", model, "--steps", "2", "--rounds", "1", "--paths", paths])
        figures = _lines(capsys.readouterr().out)
        for path in paths.split(","):
            assert float(figures[f"{path}_time_ratio"].split()[0]) > 0, (model, path)
    with pytest.raises(SystemExit, match="do not run on tinyflux"):
        main(["engine", "--model", "tinyflux", "--steps", "2", "--paths", "masactrl"])
    main(["engine", "--model", "tinyflux", "--size", "96", "--steps", "1", "--rounds", "1", "--paths", "fast"])
    assert "model: tinyflux (96 px)" in capsys.readouterr().out


def test_engine_bench_dtype_choice(capsys):
    """``--dtype`` picks the weights' precision (bf16 for Flux); by default fp32 on the CPU, and on CUDA
    fp16 for UNets, bf16 for SD3 / Flux; ``--fp32`` still means fp32 and cannot be given with ``--dtype``."""
    from p2p_widgets.bench.engine import _default_dtype, main

    main(["engine", "--model", "tinyflux", "--dtype", "bf16", "--steps", "1", "--rounds", "1", "--paths", "seam"])
    out = capsys.readouterr().out
    assert "dtype: bf16" in out and float(_lines(out)["seam_time_ratio"].split()[0]) > 0
    main(["engine", "--model", "tiny", "--fp32", "--steps", "1", "--rounds", "1", "--paths", "fast"])
    assert "dtype: fp32" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["engine", "--model", "tiny", "--fp32", "--dtype", "fp16"])
    assert "not allowed with argument" in capsys.readouterr().err
    models = ("sd15", "sdxl", "flux", "sd35", "fluxgeom")
    assert {_default_dtype(m, "cpu") for m in models} == {"fp32"}
    assert [_default_dtype(m, "cuda") for m in models] == ["fp16", "fp16", "bf16", "bf16", "bf16"]


def test_sdxl_bench_architecture_is_sdxl_base():
    """The GPU benchmark's random-weight SDXL has SDXL base's parameter counts (built on the meta device)."""
    from p2p_widgets.bench.geometries import SD15_TEXT, SDXL_TEXT2, SDXL_UNET, SDXL_VAE, xl_pipeline
    from p2p_widgets.engine.sampler import Editor

    with torch.device("meta"):
        pipe = xl_pipeline(SDXL_VAE, SD15_TEXT, SDXL_TEXT2, SDXL_UNET)
    count = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in ("unet", "text_encoder_2")}
    assert count == {"unet": 2_567_463_684, "text_encoder_2": 694_659_840}
    editor = Editor(pipe)
    assert editor.model.embedding_width == 2048 and editor.model.attention_sides(128) == [32, 64]


def test_full_size_flow_bench_architectures_are_the_released_ones():
    """The GPU benchmark's random-weight ``flux`` / ``sd3`` / ``sd35`` have the transformers of Flux.1-dev
    (11.90 B parameters), SD3-medium (2.03 B) and SD3.5-large (8.06 B), built on the meta device in bf16,
    and text encoders giving the widths the transformers read."""
    from collections import Counter

    from p2p_widgets.bench.catalog import SIZES
    from p2p_widgets.bench.mmdit_geometries import flux_pipeline, sd3_pipeline, sd35_pipeline
    from p2p_widgets.engine.sampler import Editor
    from p2p_widgets.engine.sites import sites_of

    builders = {"flux": flux_pipeline, "sd3": sd3_pipeline, "sd35": sd35_pipeline}
    pipes = {name: build(device="meta", dtype=torch.bfloat16) for name, build in builders.items()}
    count = {name: sum(p.numel() for p in pipe.transformer.parameters()) for name, pipe in pipes.items()}
    assert count == {"flux": 11_901_408_320, "sd3": 2_028_328_000, "sd35": 8_056_627_520}
    assert all(
        p.is_meta and p.dtype == torch.bfloat16 for pipe in pipes.values() for p in pipe.transformer.parameters()
    )
    assert torch.get_default_dtype() == torch.float32  # the builders' dtype is theirs only
    assert {name: SIZES[name] for name in builders} == dict.fromkeys(builders, 1024)

    flux = pipes["flux"]
    t = flux.transformer.config
    assert Counter((s.place, s.kind) for s in sites_of(flux.transformer)) == {
        ("double", "joint"): 19,
        ("single", "single"): 38,
    }
    assert (t.num_attention_heads, t.attention_head_dim, t.in_channels, t.guidance_embeds) == (24, 128, 64, True)
    assert tuple(t.axes_dims_rope) == (16, 56, 56)
    assert flux.text_encoder_2.config.d_model == t.joint_attention_dim == 4096
    assert flux.text_encoder.config.hidden_size == t.pooled_projection_dim == 768  # CLIP-L's pooled vector
    vae = flux.vae.config
    assert (vae.latent_channels, vae.shift_factor, vae.scaling_factor) == (16, 0.1159, 0.3611)
    model = Editor(flux).model
    assert model.text_length == 512 and model.latent_shape((1024, 1024)) == (1, 16, 128, 128)

    for name, blocks in (("sd3", 24), ("sd35", 38)):
        pipe = pipes[name]
        t = pipe.transformer.config
        widths = pipe.text_encoder.config.projection_dim + pipe.text_encoder_2.config.projection_dim
        assert widths == t.pooled_projection_dim == 2048  # CLIP-L's and CLIP-G's pooled, joined
        assert pipe.text_encoder_3.config.d_model == t.joint_attention_dim == 4096
        assert Counter(s.kind for s in sites_of(pipe.transformer)) == {"joint": blocks}
        assert Editor(pipe).model.t5_length == 256


def test_full_size_builders_make_seeded_weights_on_the_device_in_the_dtype(monkeypatch):
    """The full-size Flux builder's path at fluxgeom's widths on the CPU: every weight made in bf16, the
    same for a seed, torch's default dtype restored after, and the pipeline edits."""
    import numpy as np

    from p2p_widgets.bench import mmdit_geometries as m
    from p2p_widgets.bench.geometries import TINY_TEXT
    from p2p_widgets.engine.sampler import Editor

    for name, value in (
        ("FLUX_DEV", m.FLUXGEOM),
        ("FULL_VAE", m.GEOM_VAE),
        ("T5_WIDTH", 128),
        ("FULL_CLIP_L", TINY_TEXT),
    ):
        monkeypatch.setattr(m, name, value)
    first, second = (m.flux_pipeline(device="cpu", dtype=torch.bfloat16) for _ in range(2))
    assert torch.get_default_dtype() == torch.float32
    for part in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(first, part).state_dict(), getattr(second, part).state_dict()
        assert {t.dtype for t in a.values() if t.is_floating_point()} == {torch.bfloat16}, part
        assert all(torch.equal(a[k], b[k]) for k in a), part
    images = Editor(first).edit("a red circle", "a red star", steps=1, seed=0, height=64, width=64).images
    assert np.isfinite(np.asarray(images[1], dtype=float)).all()


def test_inversion_timing_mode_on_an_architecture():
    from p2p_widgets.bench.invert import timing

    lines = []
    timing("tiny", steps=2, guidance=5.0, inner_steps=2, device="cpu", out=lines.append)
    figures = _lines("\n".join(lines))
    assert {"null-text_seconds", "ddim_seconds", "negative-prompt_seconds"} <= set(figures)
    assert figures["null-text_optimiser_iterations"] == "4"  # random weights: every inner iteration runs


def test_threads_bench_prints_each_case_and_the_ratios():
    out = subprocess.run(
        [sys.executable, "-m", "p2p_widgets.bench", "threads", "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    names = [line.split(":")[0] for line in out.stdout.splitlines()]
    for case in ("torch_default_idle", "torch_default_busy", "chosen_idle", "chosen_busy"):
        assert f"{case}_seconds" in names
    assert {"idle_default_over_chosen", "busy_default_over_chosen"} <= set(names)


@pytest.mark.parametrize(
    "env,expected", [({}, "half"), ({"P2P_WIDGETS_THREADS": "3"}, 3), ({"OMP_NUM_THREADS": "2"}, 2)]
)
def test_cpu_sampling_threads_are_chosen_once_unless_the_user_chose(env, expected):
    import os

    code = (
        "import os, torch, p2p_widgets as p2p\n"
        "from p2p_widgets.bench.geometries import tiny_pipeline\n"
        "p2p.Editor(tiny_pipeline()); first = torch.get_num_threads()\n"
        "torch.set_num_threads(1); p2p.Editor(tiny_pipeline())\n"
        "print(first, torch.get_num_threads(), len(os.sched_getaffinity(0)))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "P2P_WIDGETS_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    first, after, cpus = map(int, out.stdout.split())
    assert first == (max(1, cpus // 2) if expected == "half" else expected)
    assert after == 1  # the user's later choice is kept: chosen once per process


def test_pocket_flow_bench_prints_load_and_sample_times(capsys):
    from p2p_widgets.bench.engine import main

    main(["pocket_flow", "--repeats", "1", "--steps", "2"])
    figures = _lines(capsys.readouterr().out)
    assert float(figures["load_seconds"].split()[0]) > 0 and float(figures["sample_2_steps_seconds"].split()[0]) > 0


def test_engine_bench_times_every_method_at_the_size_asked_for():
    """--size reaches every timed path: Plug-and-Play's inversions were made at the model's own size,
    so its edits ran at 256 px while the others ran at 384 (0.29x plain)."""
    from p2p_widgets.bench.engine import _timed_paths

    fns = _timed_paths("tiny", ["fast", "masactrl", "pnp", "style-aligned"], 2, "cpu", torch.float32, size=96)
    for name in ("fast", "masactrl", "pnp", "style-aligned"):
        assert fns[name](2).images[0].size == (96, 96), name


def test_the_gpu_bench_hides_only_the_known_warning_lines():
    """scripts/gpu/bench_gpu.sh filtered its steps' output with grep -v -i "torchvision\\|float32", so an
    error naming float32 (a dtype mismatch) vanished from the log; only the two known warnings go."""
    from pathlib import Path

    script = (Path(__file__).parent.parent / "scripts" / "gpu" / "bench_gpu.sh").read_text().splitlines()
    (run,) = [line for line in script if 'timeout "$limit" "$@" 2>&1 |' in line]
    pipe = run.split("2>&1 |", 1)[1].rsplit("| tee", 1)[0]
    prelude = [line for line in script if line.startswith("KNOWN_WARNINGS=")]
    known = [
        "[transformers] `CLIPImageProcessor` requires torchvision (not installed); falling back to "
        "`CLIPImageProcessorPil` for backward compatibility. Install torchvision to use the default backend.",
        "There are modules in FluxTransformer2DModel that should be kept in float32: []. Casting directly with "
        "`to()` can lead to inconsistent results; set `torch_dtype` in `from_pretrained()` instead.",
    ]
    kept = [
        "RuntimeError: expected mat1 and mat2 to have the same dtype, but got: float32 != c10::BFloat16",
        "ModuleNotFoundError: No module named 'torchvision'",
        "fast  1.23 s  x1.05",
    ]
    lines = "\n".join(known + kept) + "\n"
    shown = subprocess.run(["bash", "-c", "\n".join([*prelude, pipe])], input=lines, capture_output=True, text=True)
    assert shown.stdout.splitlines() == kept
