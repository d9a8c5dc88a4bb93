"""Reconstruction after flow inversion (issue 27): Euler, RF-Solver and FireFlow at equal numbers of
model calls, against the VAE alone, on pocket scenes.

Each scene (32 px, resized to the model's 64 px) is inverted with its caption at guidance 1 and
regenerated from the inversion with the same prompt (each solver samples back with itself); the
PSNR of the regenerated picture to the prepared input, and of the VAE's own round trip (the best
any inversion can do), is averaged over the scenes. ``--model pocket`` runs on the pocket flow
model (``load_flow_pocket``, 32 px, trained weights); ``--model tiny`` on a tiny random-weight
Flux dev (64 px), whose numbers show the solvers' mechanics (how close the ODE is integrated
back), not picture quality.

``python -m p2p_widgets.bench.flow_invert --model pocket --scenes 32 --calls 4 8`` prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from ..engine.inversion.flow import FLOW_METHODS

SIDE = 64  # the tiny Flux's pictures


def steps_for(method: str, calls: int) -> int | None:
    """The steps whose inversion makes ``calls`` model calls with ``method`` (None: none does)."""
    steps = {"euler": calls, "rf-solver": calls // 2 if calls % 2 == 0 else None, "fireflow": calls - 1}[method]
    return steps if steps and steps >= 1 else None


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def measure(editor, scenes: int = 32, calls=(4, 8), seed: int = 0, side: int = SIDE) -> dict:
    """{(method, calls): (mean PSNR to the input, mean PSNR to the VAE's round trip, mean max latent
    error, seconds)}, and ("vae", 0): the VAE's round trip itself."""
    from ..engine.images import load_image
    from ..pocket.scenes import make_dataset

    images, captions, _ = make_dataset(scenes, seed)
    pictures = [load_image(image, (side, side)) for image in images]
    rows: dict = {}
    t0 = time.perf_counter()
    round_trips = [editor.decode(editor.encode_image(p))[0] for p in pictures]
    rows[("vae", 0)] = (float(np.mean([psnr(r, p) for r, p in zip(round_trips, pictures)])), math.inf, 0.0, 0.0)
    for n in calls:
        for method in FLOW_METHODS:
            steps = steps_for(method, n)
            if steps is None:
                continue
            t0, values, to_vae, errors = time.perf_counter(), [], [], []
            for picture, caption, round_trip in zip(pictures, captions, round_trips):
                inv = editor.invert(picture, caption, method=method, steps=steps, guidance=1.0, size=side, cache=False)
                result = inv.reconstruct(editor)
                values.append(psnr(np.asarray(result.images[0]), picture))
                to_vae.append(psnr(np.asarray(result.images[0]), round_trip))
                errors.append(float((result.latents[:1].float().cpu() - inv.x_0.float()).abs().max()))
            rows[(method, n)] = (
                float(np.mean(values)),
                float(np.mean(to_vae)),
                float(np.mean(errors)),
                time.perf_counter() - t0,
            )
    return rows


def table(rows: dict, scenes: int) -> str:
    lines = [
        f"| method | model calls each way | steps | PSNR to the input (dB, mean of {scenes}) | "
        "PSNR to the VAE's round trip (dB) | max latent error (mean) | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for (method, calls), (value, to_vae, error, seconds) in rows.items():
        if method == "vae":
            lines.append(f"| VAE alone (encode, decode) | 0 | - | {value:.2f} | - | - | - |")
        else:
            steps = steps_for(method, calls)
            lines.append(f"| {method} | {calls} | {steps} | {value:.2f} | {to_vae:.2f} | {error:.3g} | {seconds:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2p_widgets.bench.flow_invert", description=__doc__)
    parser.add_argument("--model", choices=("pocket", "tiny"), default="pocket")
    parser.add_argument("--scenes", type=int, default=32)
    parser.add_argument("--calls", type=int, nargs="+", default=[4, 8])
    args = parser.parse_args(argv)
    from ..engine.sampler import Editor
    from .mmdit_geometries import tiny_flux_pipeline

    if args.model == "pocket":
        from ..pocket.flow import load_flow_pocket

        editor = Editor(load_flow_pocket())
        side, what = editor.default_size, "pocket flow model"
    else:
        editor, side, what = Editor(tiny_flux_pipeline(0, guidance_embeds=True)), SIDE, "tiny random-weight Flux dev"
    print(f"{what} (guidance 1), {side} px, {args.scenes} pocket scenes")
    print(table(measure(editor, args.scenes, args.calls, side=side), args.scenes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
