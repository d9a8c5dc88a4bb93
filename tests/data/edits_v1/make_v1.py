"""Write edit JSON files with the code as it was before the EditSpec change (format version 1),
plus the latents each reruns to, for tests/data/edits_v1.

Run at commit 9ce0206 (its module names: p2p_widgets.testing, p2p_widgets.editor, p2p_widgets.export):
    git worktree add /tmp/old 9ce0206 && cd /tmp/old && PYTHONPATH=. python THIS_FILE OUT_DIR
"""

import sys
from pathlib import Path

import numpy as np
from p2p_widgets.editor import Editor
from p2p_widgets.export import save_edit
from p2p_widgets.testing import tiny_pipeline
from safetensors.torch import save_file

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
editor = Editor(tiny_pipeline(seed=0))
runs = {
    "reweight_blend": editor.edit(
        "a red cat on a mat",
        "a blue dog on a mat",
        steps=4,
        seed=3,
        cross=0.6,
        self_attn=(1, 3),
        words={"dog": (0, 2)},
        reweight={"blue": 2.5},
        blend=["cat", "dog"],
    ),
    "refine": editor.edit("a red cat on a mat", "a red cat sitting on a mat", steps=3, seed=5, kind="refine"),
    "replace_explicit": editor.edit("a big red cat", "a big red dog", steps=3, seed=7, mode="explicit", guidance=3.0),
    "two_targets": editor.edit(
        "a big red cat",
        ["a big blue cat", "a small red cat"],
        steps=3,
        seed=2,
        reweight=[{"blue": 0.5}, None],
        blend=[["cat"], ["cat"], ["cat"]],
    ),
}
lat = {}
for name, r in runs.items():
    save_edit(r, out / f"{name}.json")
    lat[name] = r.latents.contiguous()
img = (np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3)
inv = editor.invert(img, "a red cat on a mat", method="negative-prompt", steps=3, guidance=3.0)
r = editor.edit("a red cat on a mat", "a red dog on a mat", inversion=inv, steps=3, guidance=3.0)
save_edit(r, out / "inverted.json", inv)
lat["inverted"] = r.latents.contiguous()
save_file(lat, str(out / "latents.safetensors"))
print(sorted(p.name for p in out.iterdir()))
