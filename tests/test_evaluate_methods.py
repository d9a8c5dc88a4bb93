"""Methods as data: presets, JSON, grids and what a method asks the engine for on a case."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from p2p_widgets.engine import rules as rules_module
from p2p_widgets.engine.blend import LocalBlend
from p2p_widgets.engine.defaults import POCKET_DEFAULTS, SD_DEFAULTS, register_defaults, registered_defaults
from p2p_widgets.engine.params import Param
from p2p_widgets.engine.prompts import Prompt
from p2p_widgets.engine.rules import ParamRule
from p2p_widgets.errors import P2PError
from p2p_widgets.evaluate.cases import EditCase
from p2p_widgets.evaluate.grid import apply_grid, check_grid, expand_grid
from p2p_widgets.evaluate.methods import INVERSIONS, Method, get_method, presets

SOURCE = "a big red circle on a gray background"
TARGET = "a big blue circle on a gray background"


def case(blended=("circle", "circle")):
    return EditCase("c0", Path("/nowhere/c0.png"), SOURCE, TARGET, 6, blended, np.zeros((32, 32), bool))


class _Pipe:  # a stand-in pipeline: only its registered sampling defaults are read
    pass


class _FakeEditor:
    def __init__(self, tokenizer=None, defaults=None):
        self.pipe = _Pipe()
        if defaults is not None:
            register_defaults(self.pipe, defaults)
        # what a backend reads: the registered defaults, else its family's (Stable Diffusion's here)
        self.model = SimpleNamespace(defaults=registered_defaults(self.pipe) or SD_DEFAULTS)
        self.tokenizer = tokenizer

    def prompt(self, text):
        return Prompt.from_text(text, self.tokenizer)


class _Probe(ParamRule):
    """A rule with declared parameters, registered for one test only."""

    params = (
        Param("start_step", "int", 4, "first step", low=0),
        Param("strength", "float", 1.0, "how much", low=0.0, high=2.0),
    )


@pytest.fixture
def probe_rule(monkeypatch):
    monkeypatch.setitem(rules_module._REGISTRY, "Probe", _Probe)
    monkeypatch.setattr(_Probe, "rule_name", "Probe")
    return "Probe"


def test_the_pie_presets_are_pnpinversions_p2p_runs():
    found = presets()
    expected = (("pie-p2p", "null-text"), ("pie-p2p-ddim", "ddim"), ("pie-p2p-negative", "negative-prompt"))
    for name, inversion in expected:
        method = found[name]
        assert method.inversion == inversion
        assert method.rule is None
        params = method.parameters()
        assert {k: params[k] for k in ("kind", "cross", "self_attn", "reweight", "blend", "blend_start")} == {
            "kind": "refine",
            "cross": 0.4,
            "self_attn": 0.6,
            "reweight": 2.0,
            "blend": True,
            "blend_start": 0.2,
        }
        assert (params["steps"], params["guidance"], params["blend_threshold"]) == (50, 7.5, 0.3)


def test_rule_presets_exist_exactly_when_their_rules_are_registered():
    registered = set(rules_module.registered_rules())
    found = presets()
    assert ("masactrl" in found) == ("MutualSelfAttention" in registered)
    assert ("pnp" in found) == ("PlugAndPlay" in registered)
    if "pnp" in found:
        assert found["pnp"].source_prompt == "" and found["pnp"].inversion == "ddim"
        assert found["pnp"].rule["feature_until"] == 0.8 and found["pnp"].rule["attention_until"] == 0.5


def test_a_method_round_trips_through_json(tmp_path, probe_rule):
    method = Method(
        "mine",
        "negative-prompt",
        {"kind": "replace", "cross": 0.3, "blend": True, "steps": "model"},
        inversion_options={"crop": "none"},
        description="a test",
    )
    again = Method.from_dict(json.loads(json.dumps(method.to_dict())))
    assert again == method
    ruled = Method("ruled", "ddim", {"guidance": 3.0}, {"rule": probe_rule, "strength": 1.5}, source_prompt="")
    assert Method.from_dict(ruled.to_dict()) == ruled
    path = tmp_path / "m.json"
    path.write_text(json.dumps(method.to_dict()))
    assert get_method(str(path)) == method
    assert get_method(json.dumps(ruled.to_dict())) == ruled
    assert get_method("pie-p2p") == presets()["pie-p2p"]


@pytest.mark.parametrize(
    "data, named",
    [
        ({"name": "x", "template": {"crosss": 0.2}}, "crosss"),
        ({"name": "x", "template": {"cross": 1.5}}, "cross"),
        ({"name": "x", "template": {"kind": "swap"}}, "kind"),
        ({"name": "x", "template": {"steps": 0}}, "steps"),
        ({"name": "x", "template": {"guidance": "high"}}, "guidance"),
        ({"name": "x", "template": {"compat": "exact"}}, "compat"),
        ({"name": "x", "inversion": "edict"}, "inversion"),
        ({"name": "x", "colour": 1}, "colour"),
        ({"template": {}}, "name"),
        ({"name": "x", "rule": {"rule": "NoSuchRule"}}, "NoSuchRule"),
        ({"name": "x", "rule": {"no": "name"}}, "rule"),
    ],
)
def test_malformed_methods_name_the_field(data, named):
    with pytest.raises(P2PError, match=named):
        Method.from_dict(data)


def test_rule_parameters_are_checked_against_the_rules_declaration(probe_rule):
    with pytest.raises(P2PError, match="strength"):
        Method("x", "ddim", rule={"rule": probe_rule, "strength": 5.0})
    with pytest.raises(P2PError, match="speed"):
        Method("x", "ddim", rule={"rule": probe_rule, "speed": 1})
    with pytest.raises(P2PError, match="cross"):  # a rule method has no P2P rule to configure
        Method("x", "ddim", {"cross": 0.2}, rule={"rule": probe_rule})
    method = Method("x", "ddim", rule={"rule": probe_rule})
    assert method.parameters()["start_step"] == 4  # declared defaults are grid parameters too
    assert method.with_params(start_step=2).rule == {"rule": probe_rule, "start_step": 2}


def test_unknown_presets_list_the_known_ones():
    with pytest.raises(P2PError, match="pie-p2p-ddim"):
        get_method("pie-p2p-fast")
    with pytest.raises(P2PError, match="does not exist"):
        get_method("missing-method.json")
    with pytest.raises(P2PError, match="not valid JSON"):
        get_method("{not json")


def test_a_grid_expands_to_every_combination_sorted_by_name():
    points = expand_grid({"self_attn": [0.4, 0.6], "cross": [0.2, 0.4, 0.8]})
    assert len(points) == 6
    assert points[0] == {"cross": 0.2, "self_attn": 0.4} and points[-1] == {"cross": 0.8, "self_attn": 0.6}
    assert [list(p) for p in points] == [["cross", "self_attn"]] * 6
    assert expand_grid(None) == [{}]
    assert check_grid('{"cross": [0.2]}') == {"cross": [0.2]}


@pytest.mark.parametrize(
    "grid, named",
    [
        ([0.2, 0.4], "object"),
        ({"cross": 0.2}, "cross"),
        ({"cross": []}, "cross"),
        ({"cross": [0.2, 0.2]}, "twice"),
        ({"cross": [float("nan")]}, "cross"),
        ('{"cross": [0.2', "not valid JSON"),
    ],
)
def test_malformed_grids_name_the_problem(grid, named):
    with pytest.raises(P2PError, match=named):
        expand_grid(grid)


def test_an_unknown_grid_parameter_is_named_with_the_known_ones():
    with pytest.raises(P2PError, match=r"'crosss'.*cross, self_attn"):
        apply_grid([presets()["pie-p2p"]], {"crosss": [0.2]})
    with pytest.raises(P2PError, match="cross"):  # a value the parameter refuses, before anything runs
        apply_grid([presets()["pie-p2p"]], {"cross": [0.2, 2.0]})
    configured = apply_grid([presets()["pie-p2p"]], {"cross": [0.2, 0.8], "seed": [0, 1]})
    assert [point for _, point, _ in configured] == [{"cross": 0.2}, {"cross": 0.8}]  # seeds are the sweep's
    assert [m.parameters()["cross"] for _, _, m in configured] == [0.2, 0.8]
    with_inversion = apply_grid([presets()["pie-p2p"]], {"inversion": ["ddim", None]})
    assert [m.inversion for _, _, m in with_inversion] == ["ddim", None]
    assert set(INVERSIONS) == {"ddim", "null-text", "negative-prompt", "euler", "rf-solver", "fireflow"}
    from p2p_widgets.engine.inversion import FAMILY_METHODS

    assert INVERSIONS == tuple(m for ms in FAMILY_METHODS.values() for m in ms)  # the engine's lists, not a copy


def test_the_pie_preset_fills_prompts_words_and_the_published_settings_from_the_case():
    editor = _FakeEditor()  # no registered defaults: Stable Diffusion's
    source, target, options = presets()["pie-p2p"].edit_arguments(case(), editor, seed=3)
    assert (source, target) == (SOURCE, TARGET)
    assert options["reweight"] == {"circle": 2.0}
    assert isinstance(options["blend"], LocalBlend)
    assert options["blend"].words == [["circle"], ["circle"]]
    assert (options["blend"].start, options["blend"].threshold) == (0.2, 0.3)
    assert {k: options[k] for k in ("kind", "cross", "self_attn", "steps", "guidance", "seed")} == {
        "kind": "refine",
        "cross": 0.4,
        "self_attn": 0.6,
        "steps": 50,
        "guidance": 7.5,
        "seed": 3,
    }
    assert "compat" not in options and "inversion" not in options  # compat only when the template sets it


def test_without_blended_words_there_is_no_blend_nor_reweight_as_in_the_benchmark():
    _, _, options = presets()["pie-p2p"].edit_arguments(case(blended=None), _FakeEditor(), seed=0)
    assert "blend" not in options and "reweight" not in options


def test_model_defaults_and_overrides():
    method = presets()["pie-p2p-ddim"].with_params(steps="model", guidance="model", compat="reference")
    _, _, options = method.edit_arguments(case(), _FakeEditor(defaults=POCKET_DEFAULTS), seed=0, inversion="INV")
    assert (options["steps"], options["guidance"]) == (POCKET_DEFAULTS.steps, POCKET_DEFAULTS.guidance)
    assert options["compat"] == "reference" and options["inversion"] == "INV" and options["seed"] == 0
    assert method.resolved(SD_DEFAULTS) == (50, 7.5)
    explicit = {"a": 2.5}
    _, _, options = method.with_params(reweight=explicit).edit_arguments(case(), _FakeEditor(), seed=0)
    assert options["reweight"] == explicit


def test_a_rule_method_rebuilds_its_rule_for_each_case(tokenizer, probe_rule):
    method = Method("probe", "ddim", {"blend": True}, {"rule": probe_rule, "strength": 0.5}, source_prompt="")
    source, target, options = method.edit_arguments(case(), _FakeEditor(tokenizer), seed=1)
    assert (source, target) == ("", TARGET)
    (rule,) = options["rules"]
    assert isinstance(rule, _Probe) and rule.strength == 0.5 and rule.start_step == 4
    assert "cross" not in options and "kind" not in options
    assert options["blend"].words == [["circle"], ["circle"]]
