"""Benchmarks: ``python -m p2p_widgets.bench engine|stream|invert|threads|reference|sweep|pocket_flow``.

``engine [--model tiny|tinyxl|sdgeom|sd15|sdxl|pocket|tinysd3|tinyflux|sd3geom|fluxgeom|pocketflow|flux|sd3|sd35]
[--steps N] [--dtype fp16|bf16|fp32]``: see below; ``stream``: the playback widget's overhead
(bench/stream.py); ``invert``: image inversion methods (bench/invert.py); ``threads``: CPU threads
under contention (bench/threads.py); ``reference``: the authors' implementations beside ours
(bench/reference/); ``sweep``: sweep rows per minute with 1 and 2 workers (bench/sweep.py);
``pocket_flow``: the pocket flow model's load and sampling times (bench/pocket_flow.py).

``engine`` times, on one model and the same batch (a source and one edit, guidance in the batch):
the plain diffusers pipeline, the P2P fast path and the explicit (reference-style) path, and the
methods beyond P2P on the fast path: MasaCtrl, Plug-and-Play (its inversion untimed), StyleAligned.
On SD3 / Flux geometries the paths are the pipeline and the engine's own sampling of the same
batch through its model seam (``seam``). All paths run interleaved in one process, the order
rotating each round (single runs in separate processes on a shared CPU move by 20 %); it prints
each path's median seconds and the median, lowest and highest of its per-round ratios to plain.
``--memory`` instead runs each path in its own subprocess for its peak memory (on CUDA the peak
allocated by torch above the loaded model, on CPU the peak resident set above it). ``--dtype``: by
default fp32 on the CPU, and on CUDA fp16 for UNets, bf16 for SD3 / Flux (they overflow in fp16).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from .catalog import SIZES, build_model

SOURCE = "a big red circle left of a small blue square on a gray background"
TARGET = "a big red star left of a small blue square on a gray background"


def _memory_now(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated()
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


def _memory_peak(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


def _timed_paths(model: str, paths, steps: int, device: str, dtype, size: int | None = None):
    """``{path: fn(n_steps)}`` on one loaded model, plain first."""
    import torch

    from ..engine.models.flux import pack_latents
    from ..engine.rules import EditRule
    from ..engine.sampler import Editor
    from ..engine.store import AttentionStore

    pipe = build_model(model, device, dtype)
    size = size or SIZES[model]
    editor = Editor(pipe)
    shape = editor.model.latent_shape((size, size))
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(0))
    guidance = 7.5 if editor.model.family in ("sd", "sdxl") else editor.model.defaults.guidance

    def plain(n_steps):
        latents = noise.expand(2, *shape[1:]).to(device, dtype)
        extra = {}
        if editor.model.family == "flux":  # FluxPipeline takes its latents packed, and its text length
            latents = pack_latents(latents)
            extra["max_sequence_length"] = editor.model.text_length
        elif editor.model.family == "sd3":
            extra["max_sequence_length"] = editor.model.t5_length
        pipe(
            [SOURCE, TARGET],
            height=size,
            width=size,
            num_inference_steps=n_steps,
            guidance_scale=guidance,
            latents=latents,
            output_type="np",
            **extra,
        )

    def edit(mode, rules=None, **options):
        return lambda n: editor.edit(
            SOURCE,
            TARGET,
            steps=n,
            guidance=guidance,
            seed=0,
            mode=mode,
            rules=rules,
            height=size,
            width=size,
            **options,
        )

    fns = {"plain": plain}
    for path in paths:
        if path == "seam":  # the engine's sampling: no attention rule, no map stored
            fns[path] = lambda n: edit("fast", [EditRule()], store=AttentionStore(resolutions=()))(n)
        elif path in ("fast", "explicit"):
            fns[path] = edit(path)
        elif path == "kv-injection":
            from ..engine.joint_controls import KVInjection

            fns[path] = edit("fast", [KVInjection()])
        else:
            fns[path] = _method(editor, path, steps, size)
    return fns


def run_one(model: str, path: str, steps: int, device: str, dtype: str, repeats: int) -> dict:
    """Time one path in this process (called in a subprocess by ``engine --memory``)."""
    import torch

    fn = _timed_paths(model, [path] if path != "plain" else [], steps, device, _dtype(dtype))[path]
    fn(2)  # warm-up: kernels, allocator, lazy imports
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = _memory_now(device)
    times = [_time(fn, steps, device) for _ in range(repeats)]
    return {"seconds": min(times), "peak_mb": (_memory_peak(device) - base) / 2**20}


def _time(fn, steps, device) -> float:
    return _clocked(fn, steps, device)[0]


def _clocked(fn, steps, device) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one run. On a shared CPU the wall clock also
    counts the time other processes held the core; the CPU clock counts only this run's work."""
    import torch

    t0, c0 = time.perf_counter(), time.process_time()
    fn(steps)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


DTYPES = ("fp16", "bf16", "fp32")


def _dtype(name: str):
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def _default_dtype(model: str, device: str) -> str:
    """fp32 on the CPU; on CUDA fp16 for UNets, bf16 for SD3 / Flux (as their model cards load them)."""
    if not device.startswith("cuda"):
        return "fp32"
    return "bf16" if model in FLOW_MODELS else "fp16"


def interleaved(model: str, paths, steps: int, device: str, dtype: str, rounds: int, size=None) -> dict:
    """Every path (plain first) once per round, the order rotating each round; per path its seconds per
    round and its ratio to plain in the same round."""
    fns = _timed_paths(model, paths, steps, device, _dtype(dtype), size)
    names = list(fns)
    for fn in fns.values():
        fn(2)  # warm-up: kernels, allocator, lazy imports
    seconds, cpu = {name: [] for name in names}, {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            wall, used = _clocked(fns[name], steps, device)
            seconds[name].append(wall)
            cpu[name].append(used)

    def to_plain(times):
        return {name: [t / p for t, p in zip(times[name], times["plain"])] for name in names[1:]}

    return {"seconds": seconds, "ratios": to_plain(seconds), "cpu_ratios": to_plain(cpu)}


METHODS = ("masactrl", "pnp", "style-aligned")  # rules beyond P2P, timed on the fast path


def _method(editor, path: str, steps: int, size: int):
    """A timed edit with one of :data:`METHODS` (Plug-and-Play's inversions are made here, untimed)."""
    from ..engine.controls import MutualSelfAttention, PlugAndPlay, StyleAligned

    if path != "pnp":
        rule = MutualSelfAttention() if path == "masactrl" else StyleAligned()
        return lambda n: editor.edit(SOURCE, TARGET, rules=[rule], steps=n, seed=0, height=size, width=size)
    image = editor.edit(SOURCE, [], steps=steps, seed=0, height=size, width=size).images[0]
    inversions = {n: editor.invert(image, "", method="ddim", steps=n, size=(size, size)) for n in (2, steps)}
    return lambda n: editor.edit("", TARGET, rules=[PlugAndPlay()], steps=n, inversion=inversions[n])


EDIT_PATHS = ("fast", "explicit", *METHODS)
# SD3 / Flux: the engine's plain sampling, P2P on joint attention (fused, explicit), K/V injection
FLOW_PATHS = ("seam", "fast", "explicit", "kv-injection")
FLOW_MODELS = ("tinysd3", "tinyflux", "sd3geom", "fluxgeom", "pocketflow", "flux", "sd3", "sd35")


def _paths(text: str) -> tuple:
    paths = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in paths if p not in {*EDIT_PATHS, *FLOW_PATHS}]
    if unknown or not paths:
        known = ", ".join(dict.fromkeys((*EDIT_PATHS, *FLOW_PATHS)))
        raise argparse.ArgumentTypeError(f"unknown paths {unknown or [text]}: choose from {known}")
    return paths


def engine(args):
    import statistics

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = "fp32" if args.fp32 else args.dtype or _default_dtype(args.model, device)
    flow = args.model in FLOW_MODELS
    paths = args.paths or (FLOW_PATHS if flow else EDIT_PATHS)
    wrong = [p for p in paths if p not in (FLOW_PATHS if flow else EDIT_PATHS)]
    if wrong:
        raise SystemExit(
            f"paths {wrong} do not run on {args.model}: use {', '.join(FLOW_PATHS if flow else EDIT_PATHS)}"
        )
    print(
        f"model: {args.model} ({args.size or SIZES[args.model]} px), steps: {args.steps}, device: {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "")
        + f", dtype: {dtype}, torch threads: {torch.get_num_threads()}"
    )
    print("batch: source + 1 edit, guidance in one batch where the model takes it")
    if args.memory:
        if args.size:
            raise SystemExit("--size is for the interleaved timing; --memory runs each model at its own size")
        return _memory(args, paths, device, dtype)
    print(f"interleaved: {args.rounds} rounds, the order rotating each round; medians")
    result = interleaved(args.model, paths, args.steps, device, dtype, args.rounds, args.size)
    for name, times in result["seconds"].items():
        print(f"{name}_seconds: {statistics.median(times):.3f}")
    for key, label in (("ratios", "time_ratio"), ("cpu_ratios", "cpu_time_ratio")):
        if key == "cpu_ratios" and device.startswith("cuda"):
            continue  # the host's CPU time says nothing of the GPU's work
        for name, ratios in result[key].items():
            print(f"{name}_{label}: {statistics.median(ratios):.3f} (rounds: {min(ratios):.3f} to {max(ratios):.3f})")


def _memory(args, paths, device, dtype):
    """Each path in its own subprocess: peak memory above the loaded model (and its best time)."""
    results = {}
    for path in ("plain", *paths):
        cmd = [sys.executable, "-m", "p2p_widgets.bench", "_one", args.model, path, str(args.steps), device]
        out = subprocess.run([*cmd, dtype, str(args.repeats)], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{path}: failed\n{out.stderr[-2000:]}")
            continue
        results[path] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{path}_seconds: {results[path]['seconds']:.3f}")
        print(f"{path}_peak_mb: {results[path]['peak_mb']:.1f}")
    peak = results.get("plain", {}).get("peak_mb", 0)
    for path in paths:
        if path in results and peak > 0:
            print(f"{path}_memory_ratio: {results[path]['peak_mb'] / peak:.3f}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_one":
        model, path, steps, device, dtype, repeats = argv[1:7]
        print(json.dumps(run_one(model, path, int(steps), device, dtype, int(repeats))))
        return
    own_parsers = ("stream", "invert", "threads", "reference", "sweep", "pocket_flow")
    if argv and argv[0] in own_parsers:
        from importlib import import_module

        style = argv[0] == "reference" and any(a.split("=")[0] == "--style-aligned" for a in argv[1:])
        return import_module(f"p2p_widgets.bench.{argv[0]}{'_style' if style else ''}").main(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("stream", help="sampling time with and without the AttentionPlayer, bytes per step")
    sub.add_parser("invert", help="reconstruction PSNR and seconds of DDIM, null-text and fast inversion")
    sub.add_parser(
        "threads", help="an edit with torch's default threads vs the chosen count, idle and with a busy core"
    )
    sub.add_parser(
        "reference",
        help="the authors' MasaCtrl, Plug-and-Play, P2P (and with --style-aligned DIR: StyleAligned) vs ours",
    )
    sub.add_parser("sweep", help="sweep rows per minute with 1 and 2 Ray workers on pocket-bench (local cluster)")
    sub.add_parser("pocket_flow", help="the pocket flow model's load and 10-step sampling times on one thread")
    e = sub.add_parser("engine", help="plain pipeline vs P2P fast and explicit paths, MasaCtrl, PnP, StyleAligned")
    e.add_argument("--model", choices=sorted(SIZES), default="tiny")
    e.add_argument("--steps", type=int, default=20)
    e.add_argument("--size", type=int, default=None, help="image side in pixels (default: the model's own)")
    e.add_argument("--device", default=None)
    precision = e.add_mutually_exclusive_group()
    precision.add_argument(
        "--dtype", choices=DTYPES, default=None, help="default: fp32 on CPU; on CUDA fp16 (UNets), bf16 (SD3 / Flux)"
    )
    precision.add_argument("--fp32", action="store_true", help="the same as --dtype fp32")
    e.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians over them)")
    e.add_argument("--memory", action="store_true", help="each path in a subprocess, for its peak memory")
    e.add_argument("--repeats", type=int, default=2, help="with --memory: runs per path (the best is kept)")
    e.add_argument(
        "--paths",
        type=_paths,
        default=None,
        help=f"comma-separated, beside plain (default {','.join(EDIT_PATHS)}; SD3 / Flux {','.join(FLOW_PATHS)})",
    )
    args = p.parse_args(argv)
    engine(args)


if __name__ == "__main__":
    main()
