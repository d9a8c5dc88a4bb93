"""Issue 23: raw exceptions and silent acceptance on the rule platform, the edit spec, the registry
and the evaluation's inputs. One table per family; each row failed before its fix (a raw
RecursionError / RuntimeError / NotImplementedError, or the bad input accepted)."""

import json

import pytest

from p2p_widgets.engine import controls
from p2p_widgets.engine.mapper import align
from p2p_widgets.engine.rules import Combine, Replace, Reweight, rule_from_dict
from p2p_widgets.engine.schedule import AlphaSchedule
from p2p_widgets.engine.spec import EditSpec
from p2p_widgets.errors import P2PError

SRC, TGT = "a red cat on a mat", "a blue cat on a mat"


def _deep_combine_objects():
    rule = controls.MutualSelfAttention()
    for _ in range(1000):
        rule = Combine(rule, controls.MutualSelfAttention())
    return rule


def _deep_combine_data(depth=1000):
    data = {"rule": "MutualSelfAttention"}
    for _ in range(depth):
        data = {"rule": "Combine", "rules": [data, {"rule": "MutualSelfAttention"}]}
    return data


def _spec(**changes):
    base = dict(format="p2p_widgets.edit", version=2, prompts=[SRC, TGT], seed=0, steps=4, guidance=5.0)
    base["rules"] = [{"rule": "MutualSelfAttention", "start_step": 0, "end_step": None}]
    base.update(changes)
    return base


def _reweight(tokenizer, value):
    source, target = (p for p in (_prompt(tokenizer, SRC), _prompt(tokenizer, TGT)))
    base = Replace(align(source, target, tokenizer), AlphaSchedule.build(4))
    return Reweight(base, {"blue": value})


def _prompt(tokenizer, text):
    from p2p_widgets.engine.prompts import Prompt

    return Prompt.from_text(text, tokenizer)


RULE_AND_SPEC_CASES = {
    "Combine objects 1000 deep": (lambda tok: _deep_combine_objects(), "nest"),
    "rule_from_dict 1000 deep": (
        lambda tok: rule_from_dict(_deep_combine_data(), _prompt(tok, SRC), _prompt(tok, TGT)),
        "nest",
    ),
    "EditSpec.from_dict 1000 deep": (lambda tok: EditSpec.from_dict(_spec(rules=[_deep_combine_data()])), "nest"),
    "EditSpec with a deep scheduler_config": (
        lambda tok: EditSpec(prompts=(SRC,), scheduler_config={"x": _deep_list(1000)}),
        "nest",
    ),
    "num_train_timesteps -5": (
        lambda tok: EditSpec.from_dict(_spec(scheduler="DDIMScheduler", scheduler_config={"num_train_timesteps": -5})),
        "num_train_timesteps",
    ),
    "beta_schedule bogus": (
        lambda tok: EditSpec.from_dict(_spec(scheduler="DDIMScheduler", scheduler_config={"beta_schedule": "bogus"})),
        "beta_schedule",
    ),
    "reweight 1e39": (lambda tok: _reweight(tok, 1e39), "reweight value for 'blue'"),
    "reweight -1e39": (lambda tok: _reweight(tok, -1e39), "reweight value for 'blue'"),
    "reweight 1e308": (lambda tok: _reweight(tok, 1e308), "reweight value for 'blue'"),
}


def _deep_list(depth):
    data = []
    for _ in range(depth):
        data = [data]
    return data


@pytest.mark.parametrize("case", list(RULE_AND_SPEC_CASES), ids=list(RULE_AND_SPEC_CASES))
def test_rules_and_specs_name_bad_input(tokenizer, case):
    make, match = RULE_AND_SPEC_CASES[case]
    with pytest.raises(P2PError, match=match):
        make(tokenizer)


def test_shallow_combines_and_real_scheduler_configs_still_load(tokenizer):
    rule = rule_from_dict(_deep_combine_data(3), _prompt(tokenizer, SRC), _prompt(tokenizer, TGT))
    assert isinstance(rule, Combine)
    spec = EditSpec.from_dict(
        _spec(scheduler="DDIMScheduler", scheduler_config={"num_train_timesteps": 1000, "beta_schedule": "linear"})
    )
    assert EditSpec.from_json(spec.to_json()) == spec
    assert _reweight(tokenizer, -3.0e38).values == {"blue": -3.0e38}  # float32's range is usable


def test_reweight_past_float32_is_named_by_the_editor(editor):
    with pytest.raises(P2PError, match="reweight value for 'blue'.*1e\\+300"):
        editor.edit(SRC, TGT, steps=2, reweight={"blue": 1e300})
    assert editor.edit(SRC, TGT, steps=2).images  # the pipeline still works


# -- the rule registry --------------------------------------------------------------------------


def _register_empty_name():
    from p2p_widgets.engine.rules import EditRule, register_rule

    class Nameless(EditRule):
        pass

    return register_rule(Nameless, name="")


def _register_over_builtin():
    from p2p_widgets.engine.rules import EditRule, register_rule

    @register_rule(name="Replace")
    class NotReplace(EditRule):
        pass


def _param_empty_range():
    from p2p_widgets.engine.params import Param

    return Param("strength", "float", None, low=2, high=1)


def _param_text_bound():
    from p2p_widgets.engine.params import Param

    return Param("n", "int", 1, low="0")


REGISTRY_CASES = {
    "empty name": (_register_empty_name, "non-empty"),
    "a built-in's name": (_register_over_builtin, "'Replace' is a built-in rule"),
    "low above high": (_param_empty_range, "low 2 is above high 1"),
    "a non-number bound": (_param_text_bound, "low must be a finite number"),
}


@pytest.mark.parametrize("case", list(REGISTRY_CASES), ids=list(REGISTRY_CASES))
def test_the_registry_refuses_bad_declarations(case):
    from p2p_widgets.engine.rules import registered_rules, rule_class

    make, match = REGISTRY_CASES[case]
    with pytest.raises(P2PError, match=match):
        make()
    assert rule_class("Replace") is Replace and "Nameless" not in registered_rules()


def test_a_rule_of_your_own_registers_again_and_every_builtin_has_a_label():
    from p2p_widgets.engine.rules import EditRule, register_rule, rule_class, rule_label

    for _ in range(2):  # a notebook cell run twice defines its class twice

        @register_rule(name="Issue23Mine")
        class Mine(EditRule):
            pass

        assert rule_class("Issue23Mine") is Mine
    assert rule_label(Mine) == "Mine"  # no label declared: the class name
    labels = {
        name: rule_label(rule_class(name))
        for name in ("Replace", "Refine", "Reweight", "Combine", "MutualSelfAttention")
        + ("MaskedMutualSelfAttention", "PlugAndPlay", "StyleAligned")
    }
    assert labels["MutualSelfAttention"] == "MasaCtrl (mutual self-attention)"
    assert labels["MaskedMutualSelfAttention"] == "MasaCtrl with masks"
    assert labels["PlugAndPlay"] == "Plug-and-Play" and labels["StyleAligned"] == "StyleAligned"
    assert all(labels[n].startswith("Prompt-to-Prompt") for n in ("Replace", "Refine", "Reweight"))
    assert len(set(labels.values())) == len(labels)  # each names its own method
    from p2p_widgets.engine.rules import registered_rules

    builtins = [rule_class(n) for n in registered_rules() if rule_class(n).__module__.startswith("p2p_widgets.")]
    assert [c.__name__ for c in builtins if "label" not in vars(c)] == []  # every built-in declares its own


# -- reference mode -------------------------------------------------------------------------------


def test_reference_mode_refuses_rules_it_cannot_apply(editor):
    rule = controls.MutualSelfAttention()
    with pytest.raises(P2PError, match='compat="reference".*rules='):
        editor.edit(SRC, TGT, steps=2, rules=[rule], compat="reference")
    assert editor.edit(SRC, TGT, steps=2, rules=[rule]).images  # without compat the rules run


def test_reference_mode_blends_from_the_first_step_as_the_authors(editor):
    """The authors' stable notebook applies LocalBlend at every step; reference mode started at 0.2."""
    ref = editor.edit(SRC, TGT, steps=2, blend=["cat"], compat="reference").spec.blend
    assert ref["start"] == 0 and ref["resolution"] == 16
    assert editor.edit(SRC, TGT, steps=2, blend=["cat"]).spec.blend["start"] == 0.2  # the project's default


# -- PIE-format input -----------------------------------------------------------------------------


def _pie_entry(path="a.png", **over):
    entry = {
        "image_path": path,
        "original_prompt": "a [cat] on a mat",
        "editing_prompt": "a [dog] on a mat",
        "editing_instruction": "",
        "editing_type_id": "1",
        "blended_word": "cat dog",
        "mask": [10, 20],
    }
    entry.update(over)
    return entry


def _pie_folder(root, text=None, image=None):
    """A PIE folder with one 16x16 image ``a.png`` (or ``image``'s bytes) and a mapping file (or ``text``)."""
    import io

    from PIL import Image

    (root / "annotation_images").mkdir(parents=True)
    if image is None:
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), (90, 30, 200)).save(buffer, format="PNG")
        image = buffer.getvalue()
    (root / "annotation_images" / "a.png").write_bytes(image)
    text = json.dumps({"000000000001": _pie_entry()}) if text is None else text
    (root / "mapping_file.json").write_text(text, encoding="utf-8")
    return root


def _png(width, height, truncate=None):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(buffer, format="PNG")
    data = buffer.getvalue()
    return data if truncate is None else data[:truncate]


def _bomb_header():
    """A valid PNG whose header claims 100000 x 100000 pixels, with a few bytes of data."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _deep_mapping(depth=100_000):
    return '{"000000000001": ' + "[" * depth + "]" * depth + "}"


PIE_CASES = {
    "mapping nested 100000 deep": (dict(text=_deep_mapping()), "nests deeper"),
    # handled, as the benchmark clips runs at the image's end: a start past it marks only the border
    # (60 pixels of 16x16), a length past it every pixel from the start on
    "a mask run of 2**63": (dict(text=json.dumps({"1": _pie_entry(mask=[2**63, 5])})), 60),
    "a mask length of 2**70": (dict(text=json.dumps({"1": _pie_entry(mask=[3, 2**70])})), 256),
    "a truncated PNG": (dict(image=_png(64, 64, truncate=400)), "cannot be read"),
    "a header claiming 100000x100000": (dict(image=_bomb_header()), "100000x100000"),
    "a duplicate case id": (
        dict(text='{"7": ' + json.dumps(_pie_entry()) + ', "7": ' + json.dumps(_pie_entry()) + "}"),
        "'7' appears twice",
    ),
}


@pytest.mark.parametrize("case", list(PIE_CASES), ids=list(PIE_CASES))
def test_pie_input_is_named_or_handled(tmp_path, case):
    from p2p_widgets.evaluate.datasets import read_pie

    folder, match = PIE_CASES[case]
    root = _pie_folder(tmp_path / "pie", **folder)
    if isinstance(match, int):
        (got,) = read_pie(root)
        assert got.image().size == (16, 16) and int(got.mask.sum()) == match
        return
    with pytest.raises(P2PError, match=match):
        cases = read_pie(root)
        for c in cases:
            c.image()


def test_a_case_whose_image_breaks_after_reading_says_so(tmp_path):
    from p2p_widgets.evaluate.datasets import read_pie

    root = _pie_folder(tmp_path / "pie")
    (case,) = read_pie(root)
    (root / "annotation_images" / "a.png").write_bytes(b"not an image any more")
    with pytest.raises(P2PError, match="cannot be read"):
        case.image()
