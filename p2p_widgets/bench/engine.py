"""Benchmarks: ``python -m p2p_widgets.bench engine|stream|invert|threads|reference|sweep``.

``engine [--model tiny|tinyxl|sdgeom|sd15|sdxl|pocket] [--steps N]``: see below; ``stream``: the playback
widget's overhead (bench/stream.py); ``invert``: image inversion methods (bench/invert.py); ``threads``:
CPU threads under contention (bench/threads.py); ``reference``: the authors' implementations beside
ours (bench/reference.py); ``sweep``: sweep rows per minute with 1 and 2 workers (bench/sweep.py).

``engine`` times, on one model and the same batch (a source and one edit, guidance in the batch):
the plain diffusers pipeline, the P2P fast path and the explicit (reference-style) path, and the
methods beyond P2P on the fast path: MasaCtrl, Plug-and-Play (its inversion untimed), StyleAligned. Each path
runs in its own subprocess so peak memory is its own: on CUDA the peak allocated by torch above the
loaded model, on CPU the peak resident set above the loaded model. Prints ``name: value`` lines
and the ratios to plain.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from .geometries import SIZES, build_model

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


def run_one(model: str, path: str, steps: int, device: str, fp16: bool, repeats: int) -> dict:
    """Time one path in this process (called in a subprocess by ``engine``)."""
    import torch

    from ..engine.sampler import Editor

    dtype = torch.float16 if fp16 else torch.float32
    pipe = build_model(model, device, dtype)
    size = SIZES[model]
    editor = Editor(pipe)
    shape = (1, 4, size // editor.vae_factor, size // editor.vae_factor)
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(0))

    def plain(n_steps):
        latents = noise.expand(2, *shape[1:]).to(device, dtype)
        pipe(
            [SOURCE, TARGET],
            height=size,
            width=size,
            num_inference_steps=n_steps,
            guidance_scale=7.5,
            latents=latents,
            output_type="np",
        )

    def p2p(n_steps):
        editor.edit(SOURCE, TARGET, steps=n_steps, guidance=7.5, seed=0, mode=path, height=size, width=size)

    fn = plain if path == "plain" else p2p if path in ("fast", "explicit") else _method(editor, path, steps, size)
    fn(2)  # warm-up: kernels, allocator, lazy imports
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = _memory_now(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(steps)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"seconds": min(times), "peak_mb": (_memory_peak(device) - base) / 2**20}


METHODS = ("masactrl", "pnp", "style-aligned")  # rules beyond P2P, timed on the fast path


def _method(editor, path: str, steps: int, size: int):
    """A timed edit with one of :data:`METHODS` (Plug-and-Play's inversions are made here, untimed)."""
    from ..engine.controls import MutualSelfAttention, PlugAndPlay, StyleAligned

    if path != "pnp":
        rule = MutualSelfAttention() if path == "masactrl" else StyleAligned()
        return lambda n: editor.edit(SOURCE, TARGET, rules=[rule], steps=n, seed=0, height=size, width=size)
    image = editor.edit(SOURCE, [], steps=steps, seed=0, height=size, width=size).images[0]
    inversions = {n: editor.invert(image, "", method="ddim", steps=n) for n in (2, steps)}
    return lambda n: editor.edit("", TARGET, rules=[PlugAndPlay()], steps=n, inversion=inversions[n])


EDIT_PATHS = ("fast", "explicit", *METHODS)


def _paths(text: str) -> tuple:
    paths = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in paths if p not in EDIT_PATHS]
    if unknown or not paths:
        raise argparse.ArgumentTypeError(f"unknown paths {unknown or [text]}: choose from {', '.join(EDIT_PATHS)}")
    return paths


def engine(args):
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    fp16 = device.startswith("cuda") and not args.fp32
    print(
        f"model: {args.model} ({SIZES[args.model]} px), steps: {args.steps}, device: {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "")
        + f", dtype: {'fp16' if fp16 else 'fp32'}"
    )
    print("batch: source + 1 edit, guidance 7.5 in one batch (4 UNet rows)")
    results = {}
    for path in ("plain", *args.paths):
        cmd = [
            sys.executable,
            "-m",
            "p2p_widgets.bench",
            "_one",
            args.model,
            path,
            str(args.steps),
            device,
            "1" if fp16 else "0",
            str(args.repeats),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{path}: failed\n{out.stderr[-2000:]}")
            continue
        results[path] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{path}_seconds: {results[path]['seconds']:.3f}")
        print(f"{path}_peak_mb: {results[path]['peak_mb']:.1f}")
    if "plain" in results:
        for path in args.paths:
            if path in results:
                print(f"{path}_time_ratio: {results[path]['seconds'] / results['plain']['seconds']:.3f}")
                peak = results["plain"]["peak_mb"]
                if peak > 0:
                    print(f"{path}_memory_ratio: {results[path]['peak_mb'] / peak:.3f}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_one":
        model, path, steps, device, fp16, repeats = argv[1:7]
        print(json.dumps(run_one(model, path, int(steps), device, fp16 == "1", int(repeats))))
        return
    if argv and argv[0] in ("stream", "invert", "threads", "reference", "sweep"):  # their own argument parsers
        from importlib import import_module

        return import_module(f"p2p_widgets.bench.{argv[0]}").main(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("stream", help="sampling time with and without the AttentionPlayer, bytes per step")
    sub.add_parser("invert", help="reconstruction PSNR and seconds of DDIM, null-text and fast inversion")
    sub.add_parser(
        "threads", help="an edit with torch's default threads vs the chosen count, idle and with a busy core"
    )
    sub.add_parser("reference", help="the authors' MasaCtrl, Plug-and-Play and P2P vs ours (checkouts as options)")
    sub.add_parser("sweep", help="sweep rows per minute with 1 and 2 Ray workers on pocket-bench (local cluster)")
    e = sub.add_parser("engine", help="plain pipeline vs P2P fast and explicit paths, MasaCtrl, PnP, StyleAligned")
    e.add_argument("--model", choices=sorted(SIZES), default="tiny")
    e.add_argument("--steps", type=int, default=20)
    e.add_argument("--device", default=None)
    e.add_argument("--fp32", action="store_true", help="fp32 on CUDA (default fp16 there)")
    e.add_argument("--repeats", type=int, default=2)
    e.add_argument(
        "--paths",
        type=_paths,
        default=EDIT_PATHS,
        help=f"comma-separated, timed beside plain (default: all of {','.join(EDIT_PATHS)})",
    )
    args = p.parse_args(argv)
    engine(args)


if __name__ == "__main__":
    main()
