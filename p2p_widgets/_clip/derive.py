"""Derive the CLIP BPE tokenizer files shipped in p2p_widgets/_clip from the open-clip-torch wheel.

Stable Diffusion's tokenizer is OpenAI CLIP's byte-level BPE. Its merge list ships (MIT licence)
inside the open-clip-torch wheel as ``open_clip/bpe_simple_vocab_16e6.txt.gz``. transformers'
CLIPTokenizer wants ``vocab.json`` + ``merges.txt`` instead; this script rebuilds both.

Usage:
    pip download --no-deps -d /tmp/oc open-clip-torch
    python -m p2p_widgets._clip.derive /tmp/oc/open_clip_torch-*.whl
"""

import gzip
import json
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent
N_MERGES = 49408 - 2 * 256 - 2  # vocab = bytes, bytes + "</w>", merges, two specials


def byte_symbols():
    """The 256 stand-in characters byte-level BPE uses for raw bytes, in CLIP's id order:
    printable bytes as themselves, then the others remapped to chr(256 + k)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    return [chr(b) for b in printable] + [chr(256 + k) for k in range(256 - len(printable))]


def derive(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        bpe = gzip.decompress(zf.read("open_clip/bpe_simple_vocab_16e6.txt.gz")).decode("utf-8")
        licence = next(n for n in zf.namelist() if n.endswith("licenses/LICENSE"))
        licence_text = zf.read(licence).decode("utf-8")
    merges = [tuple(line.split()) for line in bpe.split("\n")[1 : N_MERGES + 1]]
    assert len(merges) == N_MERGES, len(merges)
    base = byte_symbols()
    tokens = base + [s + "</w>" for s in base] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    assert len(vocab) == 49408
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (OUT / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    (OUT / "LICENSE").write_text(
        "vocab.json and merges.txt are derived from bpe_simple_vocab_16e6.txt.gz as shipped in the\n"
        "open-clip-torch wheel (the BPE of OpenAI CLIP). Its licence notice follows.\n\n" + licence_text,
        encoding="utf-8",
    )
    print(f"wrote {OUT}: {len(vocab)} tokens, {len(merges)} merges")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    derive(Path(sys.argv[1]))
