"""Edit export (engine/spec.py, engine/export.py): JSON that re-runs to the same latents, bit for bit on CPU."""

import json

import pytest
import torch

from p2p_widgets.engine.export import edit_from_spec, spec_from_json, spec_to_json
from p2p_widgets.engine.spec import EditSpec
from p2p_widgets.errors import P2PError


def spec_to_dict(result):
    return json.loads(spec_to_json(result))


def validate_spec(data):
    return EditSpec.from_dict(data)


STEPS = 4


@pytest.fixture(scope="module")
def reweighted(editor):
    return editor.edit(
        "a red cat on a mat",
        "a blue dog on a mat",
        steps=STEPS,
        seed=3,
        cross=0.6,
        self_attn=(1, 3),
        words={"dog": (0, 2)},
        reweight={"blue": 2.5},
        blend=["cat", "dog"],
    )


def test_json_holds_prompts_seed_mapper_schedule_and_rules(reweighted):
    data = json.loads(spec_to_json(reweighted))
    assert data["format"] == "p2p_widgets.edit" and data["version"] == 2
    assert data["prompts"] == ["a red cat on a mat", "a blue dog on a mat"]
    assert (data["seed"], data["steps"], data["guidance"]) == (3, STEPS, 7.5)
    assert (data["size"], data["mode"]) == ([64, 64], "fast")
    (rule,) = data["rules"]
    assert rule["rule"] == "Reweight" and rule["values"] == {"blue": 2.5}
    rule = rule["base"]
    assert rule["schedule"] == {
        "n_evals": STEPS,
        "cross": [0, 2],
        "self_attn": [1, 3],
        "words": {"dog": [0, 2]},
        "blend_start": 0,
    }
    links = rule["mapper"]["links"]
    assert [0, 0, 1.0] in links and all(len(link) == 3 for link in links)
    assert data["blend"]["words"] == ["cat", "dog"]


def test_exported_edit_reruns_to_the_same_latents(editor, reweighted):
    text = spec_to_json(reweighted)
    again = edit_from_spec(editor, text)
    assert torch.equal(again.latents, reweighted.latents)  # bitwise, not approximately
    assert spec_to_json(again) == text  # and it exports to the same JSON


def test_refine_and_replace_rerun_exactly(editor):
    for source, target, kind in [
        ("a red cat on a mat", "a red cat sitting on a mat", "refine"),
        ("a big red cat", "a big red dog", "replace"),
    ]:
        result = editor.edit(source, target, steps=3, seed=5, kind=kind)
        spec = spec_from_json(spec_to_json(result))
        assert spec.rules[0]["rule"] == ("Refine" if kind == "refine" else "Replace")
        assert torch.equal(edit_from_spec(editor, spec).latents, result.latents)


def test_edited_spec_changes_the_image(editor, reweighted):
    spec = spec_to_dict(reweighted)
    spec["seed"] = 4
    assert not torch.equal(edit_from_spec(editor, spec).latents, reweighted.latents)


def _spec(reweighted, **changes):
    spec = spec_to_dict(reweighted)
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"format": "other"}, "format"),
        ({"version": 3}, "version"),
        ({"prompts": []}, "prompts"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"steps": 0}, "steps"),
        ({"guidance": float("nan")}, "guidance"),
        ({"mode": "magic"}, "mode"),
        ({"rules": []}, "one rule per edited prompt"),
        ({"rules": [{"rule": "MyRule"}]}, "unknown rule 'MyRule'"),
        ({"blend": {"words": ["cat"], "threshold": 2}}, "threshold"),
        ({"size": [64]}, "size"),
        ({"start": "latents"}, "not from its seed or an inversion"),
    ],
)
def test_malformed_specs_are_rejected_with_the_field_named(reweighted, changes, message):
    with pytest.raises(P2PError, match=message):
        validate_spec(_spec(reweighted, **changes))


def test_bad_links_and_foreign_mappers_are_rejected(editor, reweighted):
    spec = spec_to_dict(reweighted)
    spec["rules"][0]["base"]["mapper"]["links"].append([1, "x", 1.0])
    with pytest.raises(P2PError, match="rule 0: .*target position 'x'"):
        validate_spec(spec).build_rules(editor)
    spec = spec_to_dict(reweighted)
    spec["rules"][0]["base"]["mapper"]["target"] = "something else"
    with pytest.raises(P2PError, match="mapper is for"):
        validate_spec(spec).build_rules(editor)


def test_not_json():
    with pytest.raises(P2PError, match="not valid JSON"):
        spec_from_json("{nope")
    with pytest.raises(P2PError, match="JSON object"):
        spec_from_json("[1, 2]")


def test_out_of_range_link_positions_fail_when_rebuilt(editor, reweighted):
    spec = spec_to_dict(reweighted)
    spec["rules"][0]["base"]["mapper"]["links"].append([80, 1, 1.0])
    with pytest.raises(P2PError, match="source position 80"):
        edit_from_spec(editor, spec)
