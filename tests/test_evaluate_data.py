"""PIE-Bench-format datasets (reader, writer, RLE masks) and pocket-bench."""

import json
import time

import numpy as np
import pytest
from PIL import Image

from p2p_widgets.errors import P2PError
from p2p_widgets.evaluate.cases import EditCase
from p2p_widgets.evaluate.datasets import (
    MAPPING_FILE,
    bracket_changes,
    case_extras,
    decode_rle,
    encode_rle,
    read_pie,
    runs_to_mask,
    write_pie,
)
from p2p_widgets.evaluate.pocket_bench import FOLDERS, TYPES, main, make_pocket_bench, truth_of
from p2p_widgets.pocket.scenes import SIZE


def reference_decode(rle, h, w):
    """The benchmark's decoding, written out as its loop does it: fill each run pixel by pixel,
    clipped at the end, then set the one-pixel border."""
    flat = np.zeros(h * w)
    for i in range(0, len(rle), 2):
        for j in range(min(rle[i + 1], h * w - rle[i])):
            flat[rle[i] + j] = 1
    mask = flat.reshape(h, w)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 1
    return mask.astype(bool)


ODD_RUNS = [[], [0, 1], [5, 10, 3, 4], [100, 50, 120, 10], [7, 0, 9, 1], [60, 30, 10, 5], [3000, 100], [5000, 3]]


def _entry(path, mask, **over):
    entry = {
        "image_path": path,
        "original_prompt": "a [cat] sitting on a bench",
        "editing_prompt": "a [dog] sitting on a bench",
        "editing_instruction": "make the cat a dog",
        "editing_type_id": "1",
        "blended_word": "cat dog",
        "mask": mask,
    }
    entry.update(over)
    return entry


def _folder(tmp_path, entries, size=(64, 48)):
    """A PIE-format folder with black images of ``size`` (w, h) for the given entries."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for entry in entries.values():
        if isinstance(entry, dict) and isinstance(entry.get("image_path"), str):
            target = tmp_path / "annotation_images" / entry["image_path"]
            if ".." not in entry["image_path"]:
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", size).save(target)
    (tmp_path / MAPPING_FILE).write_text(json.dumps(entries))
    return tmp_path


# ---------------------------------------------------------------- RLE


@pytest.mark.parametrize("rle", ODD_RUNS)
def test_masks_decode_as_the_benchmarks_loop_does(rle):
    h, w = 60, 80
    assert np.array_equal(decode_rle(rle, (h, w)), reference_decode(rle, h, w))


def test_the_border_is_set_and_the_mask_has_the_images_size():
    mask = decode_rle([], (7, 9))
    assert mask.shape == (7, 9)
    border = np.ones((7, 9), bool)
    border[1:-1, 1:-1] = False
    assert np.array_equal(mask, border)


def test_encoding_round_trips_any_mask():
    rng = np.random.default_rng(0)
    for density in (0.0, 0.05, 0.5, 1.0):
        mask = rng.random((33, 47)) < density
        rle = encode_rle(mask)
        assert all(isinstance(v, int) for v in rle) and len(rle) % 2 == 0
        assert np.array_equal(runs_to_mask(rle, mask.shape), mask)
        assert np.array_equal(decode_rle(rle, mask.shape), reference_decode(rle, *mask.shape))
    assert encode_rle(np.array([[0, 1, 1], [1, 0, 0]], bool)) == [1, 3]


@pytest.mark.parametrize(
    "rle, words",
    [([1, 2, 3], "even count"), ([1, -2], "non-negative"), ([1, 2.5], "non-negative"), ("1 2", "pairs")],
)
def test_malformed_runs_are_named(rle, words):
    with pytest.raises(P2PError, match=words):
        decode_rle(rle, (4, 4), where="entry 'x' field 'mask'")


# ---------------------------------------------------------------- reading


def test_read_pie_strips_brackets_parses_words_and_decodes_masks(tmp_path):
    entries = {
        "111000000000": _entry("1_change_object/111000000000.jpg", [100, 20]),
        "000000000001": _entry("0_random/000000000001.png", ODD_RUNS[3], editing_type_id="0", blended_word=""),
        "600000000002": _entry(
            "6_color/600000000002.png",
            [5, 3],
            editing_type_id="6",
            original_prompt="a [red] car",
            editing_prompt="a [blue] car",
        ),
    }
    root = _folder(tmp_path, entries)
    cases = read_pie(root)
    assert [c.id for c in cases] == list(entries)  # the mapping file's order
    first = cases[0]
    assert first.source_prompt == "a cat sitting on a bench" and first.target_prompt == "a dog sitting on a bench"
    assert first.blended_words == ("cat", "dog") and first.edit_type == 1 and first.edit_type_name == "change object"
    assert first.instruction == "make the cat a dog"
    assert first.image_path == (root / "annotation_images/1_change_object/111000000000.jpg").resolve()
    assert first.image().size == (64, 48)
    assert cases[1].blended_words is None
    for case in cases:
        assert case.mask.shape == (48, 64) and case.mask.dtype == bool
        assert np.array_equal(case.mask, reference_decode(entries[case.id]["mask"], 48, 64))
    assert [c.id for c in read_pie(root, types=[6, 0])] == ["000000000001", "600000000002"]
    assert [c.id for c in read_pie(root, types=1)] == ["111000000000"]
    assert [c.id for c in read_pie(root, types=["6"])] == ["600000000002"]
    with pytest.raises(P2PError, match="types"):
        read_pie(root, types=[12])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"mask": None}, r"entry '000000000000' field 'mask' must be a list"),
        ({"mask": [1, 2, 3]}, r"entry '000000000000' field 'mask' must be a list"),
        ({"editing_type_id": "12"}, r"entry '000000000000' field 'editing_type_id'"),
        ({"blended_word": "cat"}, r"entry '000000000000' field 'blended_word'"),
        ({"original_prompt": 3}, r"entry '000000000000' field 'original_prompt' must be a string"),
        ({"image_path": "../outside.png"}, r"entry '000000000000' field 'image_path'"),
        ({"editing_instruction": ["x"]}, r"entry '000000000000' field 'editing_instruction'"),
    ],
)
def test_a_malformed_entry_names_its_key_and_field(tmp_path, change, message):
    root = _folder(tmp_path, {"000000000000": _entry("a/0.png", **{"mask": [0, 3], **change})})
    with pytest.raises(P2PError, match=message):
        read_pie(root)


def test_missing_fields_files_and_images_are_named(tmp_path):
    entry = _entry("a/0.png", [0, 3])
    del entry["editing_prompt"]
    root = _folder(tmp_path / "one", {"000000000000": entry})
    with pytest.raises(P2PError, match="entry '000000000000' has no field 'editing_prompt'"):
        read_pie(root)
    root = _folder(tmp_path / "two", {"000000000000": _entry("a/0.png", [0, 3])})
    (root / "annotation_images/a/0.png").unlink()
    with pytest.raises(P2PError, match=r"not found: .*annotation_images/a/0\.png"):
        read_pie(root)
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / MAPPING_FILE).write_text("{not json")
    with pytest.raises(P2PError, match="mapping_file.json is not valid JSON"):
        read_pie(tmp_path / "three")
    with pytest.raises(P2PError, match="does not exist"):
        read_pie(tmp_path / "nowhere")
    root = _folder(tmp_path / "four", {"000000000000": ["not", "an", "object"]})
    with pytest.raises(P2PError, match="entry '000000000000' must be an object"):
        read_pie(root)


# ---------------------------------------------------------------- writing


def test_bracket_changes_marks_each_differing_run():
    assert bracket_changes("a red car on a road", "a blue car on a road") == (
        "a [red] car on a road",
        "a [blue] car on a road",
    )
    src, tgt = bracket_changes("a cat", "a cat with a hat")
    assert src == "a cat" and tgt == "a cat [with a hat]"


def test_write_pie_round_trips_cases_and_keeps_extras(tmp_path):
    rng = np.random.default_rng(1)
    mask = rng.random((20, 30)) < 0.3
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    case = EditCase("000000000007", "6_x/a.png", "a red car", "a blue car", 6, ("car", "car"), mask, "recolour")
    (back,) = write_pie(tmp_path, [(case, image, {"extra": {"k": 1}})])
    assert back.source_prompt == "a red car" and back.target_prompt == "a blue car"
    assert back.blended_words == ("car", "car") and back.edit_type == 6 and back.instruction == "recolour"
    border = decode_rle([], mask.shape)
    assert np.array_equal(back.mask, mask | border)
    assert np.array_equal(np.asarray(back.image()), image)
    entry = json.loads((tmp_path / MAPPING_FILE).read_text())["000000000007"]
    assert entry["editing_prompt"] == "a [blue] car" and entry["editing_type_id"] == "6"
    assert case_extras(back) == {"extra": {"k": 1}}
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(P2PError, match="relative"):
        write_pie(tmp_path, [(EditCase("1", tmp_path / "abs.png", "a", "b", 0, None, mask), image)])
    with pytest.raises(P2PError, match="mask is"):
        write_pie(tmp_path, [(EditCase("1", "x/1.png", "a", "b", 0, None, mask[:5]), image)])


# ---------------------------------------------------------------- pocket-bench


@pytest.fixture(scope="module")
def pocket(tmp_path_factory):
    root = tmp_path_factory.mktemp("pocket")
    return root, make_pocket_bench(root, n=28, seed=3)


def test_pocket_bench_covers_its_types_with_true_regions(pocket):
    root, cases = pocket
    assert len(cases) == 28 and {c.edit_type for c in cases} == set(TYPES)
    assert all(sum(c.edit_type == t for c in cases) == 4 for t in TYPES)
    for case in cases:
        truth = truth_of(case)
        source = np.asarray(case.image())
        assert source.shape == (SIZE, SIZE, 3)
        assert case.image_path.parent.name == FOLDERS[case.edit_type]
        assert case.source_prompt == truth.source.caption and case.target_prompt == truth.target.caption
        ideal = truth.render_target()
        changed = np.any(ideal != source, axis=-1)
        assert changed.any(), case.id  # the edit changes something
        assert not (changed & ~truth.region).any(), case.id  # ... only inside the region
        assert np.array_equal(case.mask, truth.region | decode_rle([], (SIZE, SIZE)))
    words = {c.edit_type: c.blended_words for c in cases}
    assert words[2] is None and words[3] is None and words[8] == ("background", "background")
    for case in cases:
        if case.edit_type == 1:
            assert case.blended_words[0] in case.source_prompt.split() and case.blended_words[1] in case.target_prompt
        if case.edit_type == 6:
            src, tgt = truth_of(case).source, truth_of(case).target
            assert [o.color for o in src.objects] != [o.color for o in tgt.objects]
        if case.edit_type == 3:
            assert len(truth_of(case).source.objects) == 2 and len(truth_of(case).target.objects) == 1


def test_pocket_bench_is_deterministic_and_case_k_does_not_depend_on_n(pocket, tmp_path):
    root, cases = pocket
    again = make_pocket_bench(tmp_path / "again", n=28, seed=3)
    assert (root / MAPPING_FILE).read_bytes() == (tmp_path / "again" / MAPPING_FILE).read_bytes()
    assert all(a.image_path.read_bytes() == b.image_path.read_bytes() for a, b in zip(cases, again))
    fewer = make_pocket_bench(tmp_path / "fewer", n=9, seed=3)
    assert [c.id for c in fewer] == [c.id for c in cases[:9]]
    assert all(a.image_path.read_bytes() == b.image_path.read_bytes() for a, b in zip(fewer, cases))
    other = make_pocket_bench(tmp_path / "other", n=7, seed=4)
    assert any(a.image_path.read_bytes() != b.image_path.read_bytes() for a, b in zip(other, cases))


def test_pocket_bench_default_is_200_plus_cases_in_seconds(tmp_path, capsys):
    t0 = time.perf_counter()
    assert main([str(tmp_path / "pb")]) == 0
    seconds = time.perf_counter() - t0
    cases = read_pie(tmp_path / "pb")
    assert len(cases) >= 200 and {c.edit_type for c in cases} == set(TYPES)
    assert seconds < 20, seconds  # ~2 s idle; a loose bound for a shared machine
    out = capsys.readouterr().out
    assert f"wrote {len(cases)} cases" in out and "6_change_color: 40" in out


def test_pocket_bench_refuses_bad_arguments(tmp_path):
    with pytest.raises(P2PError, match="n must be"):
        make_pocket_bench(tmp_path, n=0)
    with pytest.raises(P2PError, match="types"):
        make_pocket_bench(tmp_path, n=3, types=[5])
    with pytest.raises(P2PError, match="seed"):
        make_pocket_bench(tmp_path, n=3, seed=-1)
