"""Streaming benchmark: ``python -m p2p_widgets.bench.stream [--model pocket|tiny] [--steps N]``
(also ``python -m p2p_widgets.bench stream``).

Times the same edit (a source and one edit, guidance in the batch) with and without an
:class:`~p2p_widgets.widgets.player.AttentionPlayer` attached, interleaved over ``--repeats``
rounds (best of each), and prints ``name: value`` lines:

- ``plain_seconds``: ``Editor.edit`` alone;
- ``player_seconds``: the same call with the player's callback (throttled live frames);
- ``overhead_pct``: sampling-time overhead of the player (goal: <= 10);
- ``backfill_seconds``: encoding and sending the steps skipped live, after sampling ended;
- ``unthrottled_seconds`` / ``unthrottled_overhead_pct``: every step sent live, for comparison;
- ``bytes_per_step``, ``live_frames``, ``frames``: what the player sent.

No browser is attached: the player's comm is replaced by a sink that does the work the kernel
does per message (JSON of the content, a copy of every buffer), so the numbers cover encoding and
serialisation but not the network or the browser.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

SOURCES = {
    "pocket": (
        "a big red circle left of a small blue square on a gray background",
        "a big red star left of a small blue square on a gray background",
    ),
    "tiny": ("a red cat on a mat", "a blue dog on a mat"),
}


class _Sink:
    """Stands in for the comm: serialises like the kernel would and counts bytes."""

    def __init__(self):
        self.bytes = 0
        self.messages = 0

    def __call__(self, content, buffers=None):
        json.dumps(content).encode("utf-8")
        for b in buffers or []:
            self.bytes += len(bytes(b))
        self.messages += 1


def _editor(model: str, device: str | None):
    import torch

    from ..engine.sampler import Editor

    if model == "pocket":
        from ..pocket.model import load_pocket

        pipe = load_pocket(device=device)
    else:
        from .geometries import tiny_pipeline

        pipe = tiny_pipeline().to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return Editor(pipe)


def measure(
    model: str = "pocket", steps: int = 25, repeats: int = 3, device: str | None = None, guidance: float | None = None
) -> dict:
    """Run the benchmark; returns the figures printed by :func:`main`."""
    # long: the timed closures below share the editor, prompts and device sync; apart they would
    # pass all of them around, and timing code reads best in one place
    import torch

    from ..engine.defaults import POCKET_DEFAULTS
    from ..widgets.player import AttentionPlayer

    editor = _editor(model, device)
    source, target = SOURCES[model]
    guidance = guidance if guidance is not None else (POCKET_DEFAULTS.guidance if model == "pocket" else 7.5)
    kwargs = dict(steps=steps, guidance=guidance, seed=0)
    cuda = editor.device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def plain():
        sync()
        t0 = time.perf_counter()
        editor.edit(source, target, **kwargs)
        sync()
        return time.perf_counter() - t0, None

    def streamed(throttled: bool):
        player = AttentionPlayer() if throttled else AttentionPlayer(min_interval=0.0, max_share=1.0)
        sink = _Sink()
        player.send = sink
        sync()
        t0 = time.perf_counter()
        callback = player.begin([editor.prompt(source), editor.prompt(target)])
        result = editor.edit(source, target, callback=callback, **kwargs)
        sync()
        sampled = time.perf_counter() - t0
        t1 = time.perf_counter()
        player.end(result)
        sync()
        backfill = time.perf_counter() - t1
        return sampled, {
            "backfill": backfill,
            "bytes": sink.bytes,
            "frames": player.stats["frames"],
            "live": player.stats["live_frames"],
        }

    plain()  # warm-up: kernels, allocator, lazy imports
    streamed(True)
    best = {"plain": None, "player": None, "unthrottled": None}
    info = {}
    for _ in range(repeats):
        runs = (("plain", plain), ("player", lambda: streamed(True)), ("unthrottled", lambda: streamed(False)))
        for name, fn in runs:
            seconds, extra = fn()
            if best[name] is None or seconds < best[name]:
                best[name] = seconds
                if extra is not None:
                    info[name] = extra
    out = {
        "model": model,
        "device": str(editor.device) + (f" ({torch.cuda.get_device_name()})" if cuda else ""),
        "threads": torch.get_num_threads(),
        "steps": steps,
        "plain_seconds": best["plain"],
        "player_seconds": best["player"],
        "overhead_pct": 100.0 * (best["player"] / best["plain"] - 1.0),
        "backfill_seconds": info["player"]["backfill"],
        "unthrottled_seconds": best["unthrottled"],
        "unthrottled_overhead_pct": 100.0 * (best["unthrottled"] / best["plain"] - 1.0),
        "bytes_per_step": info["player"]["bytes"] / max(info["player"]["frames"], 1),
        "live_frames": info["player"]["live"],
        "frames": info["player"]["frames"],
    }
    return out


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.bench stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", choices=sorted(SOURCES), default="pocket")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument("--guidance", type=float, default=None)
    args = p.parse_args(argv)
    r = measure(args.model, args.steps, args.repeats, args.device, args.guidance)
    print(f"model: {r['model']}, steps: {r['steps']}, device: {r['device']}, torch threads: {r['threads']}")
    print("batch: source + 1 edit, guidance in one batch; player attached without a browser (comm -> sink)")
    for key in (
        "plain_seconds",
        "player_seconds",
        "overhead_pct",
        "backfill_seconds",
        "unthrottled_seconds",
        "unthrottled_overhead_pct",
        "bytes_per_step",
    ):
        print(f"{key}: {r[key]:.3f}" if "seconds" in key else f"{key}: {r[key]:.1f}")
    print(f"live_frames: {r['live_frames']}")
    print(f"frames: {r['frames']}")


if __name__ == "__main__":
    main()
