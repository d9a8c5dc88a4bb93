"""``python -m p2p_widgets.bench pocket_flow [--repeats 5]``: the pocket flow model's load and
sampling times on one CPU thread, after the imports (a load and a sample in turn, ``--repeats``
times; the medians and every run are printed)."""

from __future__ import annotations

import argparse
import statistics
import time

PROMPT = "a big red circle on a gray background"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m p2p_widgets.bench pocket_flow", description=__doc__)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from ..engine.sampler import Editor
    from ..pocket.flow import load_flow_pocket

    editor = Editor(load_flow_pocket(device="cpu"))  # the first load also runs diffusers' lazy imports
    editor.sample(PROMPT, steps=args.steps, guidance=4.0)  # warm-up
    loads, samples = [], []
    for seed in range(args.repeats):
        t = time.perf_counter()
        load_flow_pocket(device="cpu")
        loads.append(time.perf_counter() - t)
        t = time.perf_counter()
        editor.sample(PROMPT, seed=seed, steps=args.steps, guidance=4.0)
        samples.append(time.perf_counter() - t)
    print(f"torch threads: {torch.get_num_threads()}, image: {editor.default_size} px, steps: {args.steps}")
    for name, times in (("load_seconds", loads), (f"sample_{args.steps}_steps_seconds", samples)):
        print(f"{name}: {statistics.median(times):.3f} (runs {', '.join(f'{x:.2f}' for x in times)})")


if __name__ == "__main__":
    main()
