"""Render the README pictures from the pocket model (deterministic for the seeds below).

    python notebooks/render_figures.py       # writes notebooks/figures/{samples,p2p_strips}.png

- samples.png: prompts -> images (one seed each);
- p2p_strips.png: per edit, source | same seed without P2P | Prompt-to-Prompt | the source's
  attention map of the changed word | the edit's attention map of its replacement.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import p2p_widgets as p2p
from p2p_widgets.models import POCKET_DEFAULTS

OUT = Path(__file__).resolve().parent / "figures"
SCALE = 4  # 32 px images drawn at 128 px
CELL = 32 * SCALE

SAMPLES = [
    "a big red circle on a gray background",
    "a small yellow star on a black background",
    "a big green triangle on a striped beige background",
    "a big blue square on a checkered white background",
    "a small pink circle left of a big blue square on a gray background",
    "a big orange star above a small white circle on a black background",
    "a big purple triangle right of a small yellow circle on a beige background",
    "a small red square below a big green star on a white background",
]
EDITS = [  # (source, target, changed word in source, its replacement, seed)
    (
        "a big red circle left of a small blue square on a gray background",
        "a big green circle left of a small blue square on a gray background",
        "red",
        "green",
        1,
    ),
    (
        "a big yellow star above a small white circle on a black background",
        "a big yellow triangle above a small white circle on a black background",
        "star",
        "triangle",
        2,
    ),
    (
        "a small orange square right of a big purple circle on a beige background",
        "a small orange square right of a big purple star on a beige background",
        "circle",
        "star",
        3,
    ),
]


def heat(m: torch.Tensor) -> Image.Image:
    """A (h, w) map as an inferno-like RGB image, min-max scaled."""
    a = m.float().numpy()
    a = (a - a.min()) / max(a.max() - a.min(), 1e-8)
    rgb = np.stack(
        [np.clip(1.5 * a, 0, 1), np.clip(1.5 * a - 0.5, 0, 1), np.clip(3 * a - 2, 0, 1) * 0.8 + 0.2 * (1 - a)], -1
    )
    return Image.fromarray((rgb * 255).astype(np.uint8)).resize((CELL, CELL), Image.NEAREST)


def big(img) -> Image.Image:
    return img.resize((CELL, CELL), Image.NEAREST)


def label(canvas, xy, text):
    ImageDraw.Draw(canvas).text(xy, text, fill=(20, 20, 20))


def main():
    torch.set_grad_enabled(False)
    OUT.mkdir(parents=True, exist_ok=True)
    editor = p2p.Editor(p2p.load_pocket(device="cpu"))
    steps, guidance = POCKET_DEFAULTS.steps, POCKET_DEFAULTS.guidance

    grid = Image.new("RGB", (4 * CELL, 2 * CELL), "white")
    for k, prompt in enumerate(SAMPLES):
        image = editor.sample(prompt, seed=k, steps=steps, guidance=guidance).images[0]
        grid.paste(big(image), ((k % 4) * CELL, (k // 4) * CELL))
    grid.save(OUT / "samples.png")

    pad = 18
    strip = Image.new("RGB", (5 * CELL, len(EDITS) * (CELL + pad) + pad), "white")
    for c, title in enumerate(
        ["source", "same seed, no P2P", "Prompt-to-Prompt", "attn: source word", "attn: new word"]
    ):
        label(strip, (c * CELL + 4, 3), title)
    for r, (source, target, old, new, seed) in enumerate(EDITS):
        out = editor.edit(source, target, seed=seed, steps=steps, guidance=guidance, baseline=True)
        src_map = out.store.token_maps(0, out.prompts[0].positions(old), side=8).mean(0)
        tgt_map = out.store.token_maps(1, out.prompts[1].positions(new), side=8).mean(0)
        cells = [big(out.images[0]), big(out.baseline[1]), big(out.images[1]), heat(src_map), heat(tgt_map)]
        y = pad + r * (CELL + pad)
        for c, cell in enumerate(cells):
            strip.paste(cell, (c * CELL, y))
    strip.save(OUT / "p2p_strips.png")
    print("wrote", OUT / "samples.png", "and", OUT / "p2p_strips.png")


if __name__ == "__main__":
    main()
