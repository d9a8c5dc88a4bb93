"""Datasets in PIE-Bench's format: a folder with ``mapping_file.json`` and ``annotation_images/``.

Each entry of the mapping file is keyed by the case id and holds ``image_path`` (relative to
``annotation_images/``), ``original_prompt`` and ``editing_prompt`` (the changed words in square
brackets), ``editing_instruction``, ``editing_type_id`` ("0".."9"), ``blended_word`` ("source target"
or "") and ``mask``: run-length pairs ``[start, length, ...]`` over the row-major flattened image,
1 = the region the edit may change. Extra keys are kept (pocket-bench stores its scenes there).

Decoding follows the benchmark's evaluation code: runs are clipped at the end of the image, the
mask has the image's size, and its one-pixel border is then set to 1 (the authors' guard against
annotation errors at the border); prompts are used with the brackets removed; of ``blended_word``
the first two words count.
"""

from __future__ import annotations

import difflib
import json
import threading
from pathlib import Path

import numpy as np

from ..errors import P2PError, check_nesting, is_int
from .cases import EDIT_TYPES, EditCase, open_image

MAPPING_FILE = "mapping_file.json"
IMAGES_DIR = "annotation_images"
TEXT_FIELDS = ("image_path", "original_prompt", "editing_prompt", "blended_word")
MAX_ENTRY_DEPTH = 32  # an entry nests a few levels (PIE: the mask list; pocket-bench: its scene)
_cache: dict[Path, tuple[float, dict]] = {}
_cache_lock = threading.Lock()


def strip_brackets(text: str) -> str:
    """A prompt as the benchmark uses it: the square brackets removed, nothing else touched."""
    return text.replace("[", "").replace("]", "")


def bracket_changes(source: str, target: str) -> tuple[str, str]:
    """Both prompts with each run of words that differs between them in square brackets."""
    a, b = source.split(), target.split()
    out_a, out_b = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        for words, lo, hi, out in ((a, i1, i2, out_a), (b, j1, j2, out_b)):
            if hi > lo:
                run = " ".join(words[lo:hi])
                out.append(run if op == "equal" else f"[{run}]")
    return " ".join(out_a), " ".join(out_b)


def runs_to_mask(rle, shape: tuple[int, int], *, where: str = "mask") -> np.ndarray:
    """A (H, W) bool mask from ``[start, length, ...]`` runs; a run past the end stops there."""
    if not isinstance(rle, (list, tuple)) or len(rle) % 2:
        raise P2PError(
            f"{where} must be a list of [start, length] pairs (an even count of integers), got {_brief(rle)}"
        )
    if not all(is_int(v) and v >= 0 for v in rle):
        bad = next(v for v in rle if not (is_int(v) and v >= 0))
        raise P2PError(f"{where} must hold non-negative integers, found {bad!r}")
    h, w = shape
    n = h * w
    # clipped in Python's integers first: a start or length past int64 (2**63, 2**70) is still a
    # run past the end, which stops there
    pairs = [(min(start, n), min(start + length, n)) for start, length in zip(rle[0::2], rle[1::2])]
    runs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    starts, ends = runs[:, 0], runs[:, 1]
    edges = np.zeros(n + 1, dtype=np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, ends, -1)
    return (np.cumsum(edges[:n]) > 0).reshape(h, w)


def decode_rle(rle, shape: tuple[int, int], *, where: str = "mask") -> np.ndarray:
    """A mask as the benchmark decodes it: the runs, then the one-pixel border set to True.

    ``where`` names the field in errors (e.g. ``entry '000000000000' field 'mask'``).
    """
    mask = runs_to_mask(rle, shape, where=where)
    mask[0, :] = mask[-1, :] = True
    mask[:, 0] = mask[:, -1] = True
    return mask


def encode_rle(mask) -> list[int]:
    """``[start, length, ...]`` runs of True over the row-major flattened (H, W) mask."""
    flat = np.asarray(mask, dtype=bool).reshape(-1)
    padded = np.concatenate([[False], flat, [False]]).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    starts, ends = change[0::2], change[1::2]
    return [int(v) for pair in zip(starts, ends - starts) for v in pair]


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_entries(folder) -> dict[str, dict]:
    """The mapping file of a PIE-format folder as a dict (cached until the file changes)."""
    path = Path(folder) / MAPPING_FILE
    if not path.is_file():
        raise P2PError(f"{path} does not exist: a PIE-format folder holds {MAPPING_FILE} and {IMAGES_DIR}/")
    path = path.resolve()
    stamp = path.stat().st_mtime_ns
    with _cache_lock:
        hit = _cache.get(path)
        if hit and hit[0] == stamp:
            return hit[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=lambda pairs: _unique(path, pairs))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise P2PError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise P2PError(f"{path} nests deeper than Python's JSON reader goes: not a mapping file") from None
    if not isinstance(data, dict):
        raise P2PError(f"{path} must hold a JSON object keyed by case id, got {type(data).__name__}")
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise P2PError(f"{path}: entry {key!r} must be an object, got {type(entry).__name__}")
        check_nesting(f"{path}: entry {key!r}", entry, MAX_ENTRY_DEPTH)
    with _cache_lock:
        _cache[path] = (stamp, data)
    return data


def _unique(path, pairs) -> dict:
    """A JSON object's pairs as a dict, or a P2PError naming a key given twice (json keeps the last
    silently: a duplicate case id would drop a case)."""
    data = dict(pairs)
    if len(data) < len(pairs):
        seen = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise P2PError(f"{path}: key {twice!r} appears twice (a case id or field must be unique)")
    return data


def _field(path, key, entry, name):
    if name not in entry:
        raise P2PError(f"{path}: entry {key!r} has no field {name!r}")
    value = entry[name]
    if name in TEXT_FIELDS and not isinstance(value, str):
        raise P2PError(f"{path}: entry {key!r} field {name!r} must be a string, got {_brief(value)}")
    return value


def _edit_type(path, key, entry) -> int:
    value = _field(path, key, entry, "editing_type_id")
    text = str(value) if is_int(value) else value
    if not isinstance(text, str) or not text.isdigit() or int(text) not in EDIT_TYPES:
        raise P2PError(f"{path}: entry {key!r} field 'editing_type_id' must be one of '0'..'9', got {_brief(value)}")
    return int(text)


def _blended(path, key, entry):
    words = _field(path, key, entry, "blended_word")
    if words == "":
        return None
    parts = words.split(" ")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise P2PError(f"{path}: entry {key!r} field 'blended_word' must be 'source target' or '', got {words!r}")
    return parts[0], parts[1]


def _image_path(path, key, entry, root: Path) -> Path:
    rel = _field(path, key, entry, "image_path")
    if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise P2PError(f"{path}: entry {key!r} field 'image_path' must be a path inside {IMAGES_DIR}/, got {rel!r}")
    image = root / IMAGES_DIR / rel
    if not image.is_file():
        raise P2PError(f"image of entry {key!r} not found: {image}")
    return image


def _image_shape(image: Path) -> tuple[int, int]:
    """(H, W) of a readable image: its whole data checked now (a truncated file failed only when a
    run opened it), a size past PIL's decompression-bomb limit refused."""
    with open_image(image) as img:
        try:
            img.verify()  # reads every chunk and checks their CRCs without decoding the pixels
        except Exception as exc:  # PIL raises SyntaxError, OSError, struct.error... for damaged files
            raise P2PError(f"image {image} cannot be read: {exc}") from None
        return img.size[1], img.size[0]


def _check_types(types):
    if types is None:
        return None
    single = is_int(types) or isinstance(types, str)
    chosen = [types] if single else list(types) if isinstance(types, (list, tuple, set, frozenset)) else None
    # "6" as in the mapping file, or 6
    ids = [int(t) if isinstance(t, str) and t.isdigit() else t for t in chosen or []]
    if chosen is None or not all(is_int(t) and t in EDIT_TYPES for t in ids):
        raise P2PError(f"types must be edit type ids in 0..9 (see EDIT_TYPES), got {_brief(types)}")
    return {int(t) for t in ids}


def case_from_entry(root, key: str, entry: dict) -> EditCase:
    """One validated :class:`EditCase` from a mapping-file entry of the folder ``root``."""
    root = Path(root).resolve()
    where = root / MAPPING_FILE
    edit_type = _edit_type(where, key, entry)
    blended = _blended(where, key, entry)
    source = strip_brackets(_field(where, key, entry, "original_prompt"))
    target = strip_brackets(_field(where, key, entry, "editing_prompt"))
    instruction = entry.get("editing_instruction", "")
    if not isinstance(instruction, str):
        raise P2PError(
            f"{where}: entry {key!r} field 'editing_instruction' must be a string, got {_brief(instruction)}"
        )
    rle = _field(where, key, entry, "mask")
    image = _image_path(where, key, entry, root)
    mask = decode_rle(rle, _image_shape(image), where=f"{where}: entry {key!r} field 'mask'")
    return EditCase(str(key), image, source, target, edit_type, blended, mask, instruction)


def read_pie(folder, types=None) -> list[EditCase]:
    """Every case of a PIE-format folder, in the mapping file's order; ``types``: edit type ids to keep.

    Raises :class:`P2PError` naming the entry and field of a malformed mapping file, or the path of
    a missing image.
    """
    keep = _check_types(types)
    entries = read_entries(folder)
    cases = []
    for key, entry in entries.items():
        if keep is not None and _edit_type(Path(folder) / MAPPING_FILE, key, entry) not in keep:
            continue
        cases.append(case_from_entry(folder, key, entry))
    return cases


def dataset_root(case: EditCase) -> Path | None:
    """The PIE-format folder a case was read from (None for a case built in memory)."""
    for parent in Path(case.image_path).parents:
        if parent.name == IMAGES_DIR and (parent.parent / MAPPING_FILE).is_file():
            return parent.parent
    return None


def case_extras(case: EditCase) -> dict:
    """The keys of the case's mapping-file entry beyond PIE-Bench's own ({} if there are none)."""
    root = dataset_root(case)
    if root is None:
        return {}
    entry = read_entries(root).get(case.id, {})
    known = {*TEXT_FIELDS, "editing_type_id", "editing_instruction", "mask"}
    return {k: v for k, v in entry.items() if k not in known}


def _entry_of(case: EditCase, rel: str, extras: dict | None) -> dict:
    source, target = bracket_changes(case.source_prompt, case.target_prompt)
    entry = {
        "image_path": rel,
        "original_prompt": source,
        "editing_prompt": target,
        "editing_instruction": case.instruction,
        "editing_type_id": str(case.edit_type),
        "blended_word": " ".join(case.blended_words) if case.blended_words else "",
        "mask": encode_rle(case.mask),
    }
    clash = set(extras or {}) & set(entry)
    if clash:
        raise P2PError(f"extras of case {case.id!r} may not replace the PIE fields {sorted(clash)}")
    return {**entry, **(extras or {})}


def _relative_image_path(case: EditCase) -> str:
    rel = Path(case.image_path)
    if rel.is_absolute() or not rel.parts or ".." in rel.parts:
        raise P2PError(f"case {case.id!r}: image_path must be relative (inside {IMAGES_DIR}/), got {str(rel)!r}")
    return rel.as_posix()


def write_pie(folder, items) -> list[EditCase]:
    """Write cases as a PIE-format folder; returns them as :func:`read_pie` reads them back.

    ``items``: ``(case, image)`` or ``(case, image, extras)`` with ``case.image_path`` relative to
    ``annotation_images/`` (where the image is saved, PNG unless the suffix says otherwise), the image
    a PIL image or a (H, W, 3) uint8 array of the mask's size, and ``extras`` a dict of extra keys.
    Brackets are added around the words that differ between the prompts. The mapping file is
    written last, through a temporary file, so a folder with one is complete.
    """
    from PIL import Image

    root = Path(folder)
    entries = {}
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise P2PError(f"write_pie items must be (case, image) or (case, image, extras), got {_brief(item)}")
        case, image, extras = (*item, None)[:3]
        if case.id in entries:
            raise P2PError(f"case id {case.id!r} appears twice")
        rel = _relative_image_path(case)
        pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
        if (pil.size[1], pil.size[0]) != tuple(np.shape(case.mask)):
            raise P2PError(f"case {case.id!r}: image is {pil.size[0]}x{pil.size[1]} but mask is {np.shape(case.mask)}")
        target = root / IMAGES_DIR / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        pil.convert("RGB").save(target)
        entries[case.id] = _entry_of(case, rel, extras)
    tmp = root / (MAPPING_FILE + ".tmp")
    tmp.write_text(json.dumps(entries, separators=(",", ":")), encoding="utf-8")
    tmp.replace(root / MAPPING_FILE)
    return [case_from_entry(root, key, entry) for key, entry in entries.items()]
