"""Methods as data: an inversion method plus an edit template, filled in per edit case.

A :class:`Method` is plain data (``to_dict`` / ``from_dict``, so sweeps record it and the CLI reads
it from JSON):

- ``inversion``: how the case's image is inverted (``"ddim"``, ``"null-text"``,
  ``"negative-prompt"``), or ``None`` to generate the source from the seed (the dataset image is
  then only the reference the metrics compare with);
- ``template``: keyword arguments of :meth:`Editor.edit <p2p_widgets.engine.sampler.Editor.edit>`,
  flat: ``kind``, ``cross``, ``self_attn``, ``reweight`` (a scale for the case's target blended
  word, or ``{word: scale}``), ``blend`` (LocalBlend on the case's blended words) with
  ``blend_start`` / ``blend_threshold``, ``steps``, ``guidance`` (a number, or ``"model"``: the
  model's own defaults, see :mod:`p2p_widgets.engine.defaults`), ``mode`` and ``compat``
  (passed to the engine only when set);
- ``rule``: a registered rule's data (``{"rule": name, ...params}``), rebuilt per case with
  :func:`~p2p_widgets.engine.rules.rule_from_dict`, instead of the P2P rule the template's
  ``kind`` / ``cross`` / ``self_attn`` / ``reweight`` describe;
- ``source_prompt``: ``None`` for the case's caption, or a fixed one (Plug-and-Play inverts and
  runs its source branch under the empty prompt);
- ``inversion_options``: extra :func:`~p2p_widgets.engine.inversion.invert` settings (null-text's
  ``inner_steps``, ``lr``, ...);
- ``direct``: a method that edits the picture itself rather than through ``Editor.edit``
  (``{"method": "flowedit", ...settings}``: :func:`~p2p_widgets.engine.flowedit.flow_edit`, its
  settings :data:`~p2p_widgets.engine.flowedit.FLOWEDIT_PARAMS`, unset ones the authors' defaults
  for the model family; ``{"method": "rf-inversion", ...}``:
  :func:`~p2p_widgets.engine.rf_inversion.rf_inversion`, settings
  :data:`~p2p_widgets.engine.rf_inversion.RF_INVERSION_PARAMS`); it takes no inversion, template
  or rule.

Flow models (SD3, Flux) invert with ``"euler"``, ``"rf-solver"`` or ``"fireflow"``; UNets with the
DDIM ones (a method run on the other family fails its rows, naming the inversions it has).

The case fills in the prompts, the blended words and the image. Every parameter a grid may vary
is listed by :meth:`Method.parameters`; :meth:`Method.with_params` sets them, validated.

>>> method = get_method("pie-p2p").with_params(cross=0.2)
>>> points = expand_grid({"cross": [0.2, 0.4, 0.8], "self_attn": [0.4, 0.6]})   # 6 settings
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.inversion_methods import FAMILY_METHODS
from ..errors import P2PError, check_nesting, is_int, is_number
from .grid import MAX_DEPTH, SEED, is_json_value, parse_json

INVERSIONS = tuple(m for methods in FAMILY_METHODS.values() for m in methods)  # every family's (the engine's lists)
DIRECT_METHODS = ("flowedit", "rf-inversion")
MODEL_DEFAULT = "model"  # steps / guidance: what the model samples well with
KINDS = ("auto", "replace", "refine")
MODES = ("fast", "explicit")
COMPATS = ("project", "reference")
P2P_KEYS = ("kind", "cross", "self_attn", "reweight")  # describe the P2P rule; a rule method has its own
TEMPLATE_DEFAULTS = {  # Editor.edit's defaults, and LocalBlend's
    "kind": "auto",
    "cross": 0.8,
    "self_attn": 0.4,
    "reweight": None,
    "blend": False,
    "blend_start": 0.2,
    "blend_threshold": 0.3,
    "steps": MODEL_DEFAULT,
    "guidance": MODEL_DEFAULT,
    "mode": "fast",
    "compat": None,  # None: not passed to the engine
}
OPTIONAL_KEYS = ("compat",)
METHOD_FIELDS = (
    "name",
    "inversion",
    "template",
    "rule",
    "source_prompt",
    "inversion_options",
    "description",
    "direct",
)
MAX_GUIDANCE = 100.0  # classifier-free guidance past this only saturates (SD: 7.5; P2P's largest: 15)


# -- parameter checks ------------------------------------------------------------------------------
def _fraction(name, value):
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise P2PError(f"{name} must be a fraction of the run in [0, 1], got {value!r}")
    return float(value)


def _choice(options):
    def check(name, value):
        if value not in options:
            raise P2PError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
        return value

    return check


def _steps(name, value):
    if value == MODEL_DEFAULT:
        return value
    if not is_int(value) or not 1 <= value <= 1000:
        raise P2PError(f"{name} must be an integer in [1, 1000] or {MODEL_DEFAULT!r}, got {value!r}")
    return int(value)


def _guidance(name, value):
    if value == MODEL_DEFAULT:
        return value
    if not is_number(value) or not 0 <= value <= MAX_GUIDANCE:
        raise P2PError(f"{name} must be a number in [0, {MAX_GUIDANCE:g}] or {MODEL_DEFAULT!r}, got {value!r}")
    return float(value)


def _scale(value) -> bool:
    from ..engine.rules import MAX_REWEIGHT

    return is_number(value) and abs(value) <= MAX_REWEIGHT


def _reweight(name, value):
    if value is None or _scale(value):
        return None if value is None else float(value)
    if isinstance(value, dict) and value and all(isinstance(w, str) and _scale(v) for w, v in value.items()):
        return {w: float(v) for w, v in value.items()}
    raise P2PError(
        f"{name} must be null, a scale for the target blended word, or {{word: scale}} (finite float32 "
        f"numbers), got {value!r}"
    )


def _flag(name, value):
    if not isinstance(value, bool):
        raise P2PError(f"{name} must be true or false, got {value!r}")
    return value


def _blend_start(name, value):
    # as the engine reads it (schedule.to_step): a float is a fraction of the run, an int a step
    if not is_number(value) or value < 0 or (not is_int(value) and value > 1):
        raise P2PError(f"{name} must be a fraction of the run in [0, 1] or a step (an integer >= 0), got {value!r}")
    return value


def _threshold(name, value):
    if not is_number(value) or not 0.0 < value < 1.0:
        raise P2PError(f"{name} must be in (0, 1), got {value!r}")
    return float(value)


def _optional_choice(options):
    check = _choice(options)
    return lambda name, value: None if value is None else check(name, value)


CHECKS = {
    "kind": _choice(KINDS),
    "cross": _fraction,
    "self_attn": _fraction,
    "reweight": _reweight,
    "blend": _flag,
    "blend_start": _blend_start,
    "blend_threshold": _threshold,
    "steps": _steps,
    "guidance": _guidance,
    "mode": _choice(MODES),
    "compat": _optional_choice(COMPATS),
}


def _check_inversion(value):
    if value in (None, "none"):
        return None
    if value not in INVERSIONS:
        raise P2PError(f"inversion must be one of {', '.join(map(repr, INVERSIONS))} or null, got {value!r}")
    return value


def _declared_params(name: str):
    """The registered rule's declared parameters (a tuple of Param), None for a rule that declares
    none; a P2PError listing the registered rules for an unknown name."""
    from ..engine.rules import rule_class

    _register_builtins()
    return getattr(rule_class(name), "params", None) or None


def _register_builtins() -> None:
    try:
        from ..engine import controls  # noqa: F401  (registers MasaCtrl, Plug-and-Play, ...)
    except ImportError:  # an engine without them: only the rules registered so far exist
        pass


def _direct(name: str):
    """(parameter names, settings check, run function) of the direct method ``name``."""
    if name == "flowedit":
        from ..engine.flowedit import FLOWEDIT_PARAMS, check_flowedit_settings, flow_edit

        return FLOWEDIT_PARAMS, check_flowedit_settings, flow_edit
    from ..engine.rf_inversion import RF_INVERSION_PARAMS, check_rf_inversion_settings, rf_inversion

    return RF_INVERSION_PARAMS, check_rf_inversion_settings, rf_inversion


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


# -- the method ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """An inversion method plus an edit template (see the module docstring)."""

    name: str
    inversion: str | None = None
    template: dict = field(default_factory=dict)
    rule: dict | None = None
    source_prompt: str | None = None
    inversion_options: dict = field(default_factory=dict)
    description: str = ""
    direct: dict | None = None  # {"method": "flowedit", ...}: edits the picture without Editor.edit

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise P2PError(f"a method needs a non-empty 'name', got {self.name!r}")
        object.__setattr__(self, "inversion", _check_inversion(self.inversion))
        if not isinstance(self.template, dict):
            raise P2PError(f"method {self.name!r}: 'template' must be an object, got {type(self.template).__name__}")
        unknown = sorted(set(self.template) - set(TEMPLATE_DEFAULTS))
        if unknown:
            raise P2PError(
                f"method {self.name!r}: unknown template key(s) {', '.join(unknown)}; "
                f"known: {', '.join(TEMPLATE_DEFAULTS)}"
            )
        for what, value in (
            ("template", self.template),
            ("rule", self.rule),
            ("inversion_options", self.inversion_options),
        ):
            check_nesting(f"method {self.name!r}: {what!r}", value, MAX_DEPTH)
        template = {key: CHECKS[key](key, value) for key, value in self.template.items()}
        start, steps = template.get("blend_start"), template.get("steps")
        if is_int(start) and is_int(steps) and start > steps:
            raise P2PError(f"method {self.name!r}: blend_start step {start} is past the run's {steps} steps")
        object.__setattr__(self, "template", template)
        self._check_rule()
        if self.source_prompt is not None and not isinstance(self.source_prompt, str):
            raise P2PError(f"method {self.name!r}: 'source_prompt' must be null or a string")
        if not isinstance(self.inversion_options, dict) or not is_json_value(self.inversion_options):
            raise P2PError(f"method {self.name!r}: 'inversion_options' must be an object of plain values")
        if not isinstance(self.description, str):
            raise P2PError(f"method {self.name!r}: 'description' must be a string")
        self._check_direct()

    def _check_direct(self):
        direct = self.direct
        if direct is None:
            return
        if not isinstance(direct, dict) or direct.get("method") not in DIRECT_METHODS:
            raise P2PError(
                f"method {self.name!r}: 'direct' must be null or an object with 'method' one of "
                f"{', '.join(map(repr, DIRECT_METHODS))}, got {direct!r}"
            )
        if self.inversion is not None or self.rule is not None or self.template:
            raise P2PError(
                f"method {self.name!r}: a {direct['method']} method edits the picture itself: "
                "it takes no inversion, template or rule"
            )
        try:
            _direct(direct["method"])[1]({k: v for k, v in direct.items() if k != "method"})
        except P2PError as exc:
            raise P2PError(f"method {self.name!r}: {exc}") from None

    def _check_rule(self):
        rule = self.rule
        if rule is None:
            return
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str) or not rule["rule"]:
            raise P2PError(f"method {self.name!r}: 'rule' must be null or an object with a 'rule' name, got {rule!r}")
        if not is_json_value(rule):
            raise P2PError(f"method {self.name!r}: the rule's parameters must be plain JSON values")
        both = sorted(set(self.template) & set(P2P_KEYS))
        if both:
            raise P2PError(
                f"method {self.name!r} runs rule {rule['rule']!r}: its template cannot also set the P2P "
                f"parameter(s) {', '.join(both)} (put the rule's parameters in the rule)"
            )
        clash = sorted((set(rule) - {"rule"}) & (set(TEMPLATE_DEFAULTS) | {"inversion", SEED}))
        if clash:
            raise P2PError(f"method {self.name!r}: rule parameter(s) {', '.join(clash)} clash with template keys")
        from ..engine.rules import check_rule_data

        _register_builtins()
        try:
            check_rule_data(rule)  # its declared parameters, and a Combine's or Reweight's parts
        except P2PError as exc:
            raise P2PError(f"method {self.name!r}: {exc}") from None

    # -- parameters ----------------------------------------------------------------------------------
    def parameters(self) -> dict:
        """Every parameter a grid may set, with its value in this method (defaults filled in)."""
        if self.direct is not None:  # unset: the method's (or the model family's) default
            return {k: self.direct.get(k, MODEL_DEFAULT) for k in _direct(self.direct["method"])[0]}
        keys = [k for k in TEMPLATE_DEFAULTS if self.rule is None or k not in P2P_KEYS]
        params = {k: self.template.get(k, TEMPLATE_DEFAULTS[k]) for k in keys}
        params["inversion"] = self.inversion
        if self.rule is not None:
            declared = _declared_params(self.rule["rule"]) or ()
            params.update({p.name: _plain(p.default) for p in declared})
            params.update({k: v for k, v in self.rule.items() if k != "rule"})
        return params

    def with_run_settings(self, steps=None, guidance=None) -> Method:
        """A copy with a sweep's ``steps`` / ``guidance`` overrides (None: not overridden; ``"model"``:
        the default). Both mean the edit's: a FlowEdit method takes ``guidance`` as its target
        guidance (its source guidance stays as set, by default the authors'), RF-Inversion as its
        edit's guidance; a FlowEdit run of other steps keeps the authors' share of skipped steps
        unless the method sets ``n_max`` (:func:`~p2p_widgets.engine.flowedit.default_n_max`)."""
        values = {k: v for k, v in (("steps", steps), ("guidance", guidance)) if v is not None}
        if self.direct is not None and self.direct["method"] == "flowedit" and "guidance" in values:
            values["target_guidance"] = values.pop("guidance")
        return self.with_params(**values)

    def with_params(self, **values) -> Method:
        """A copy with parameters set (see :meth:`parameters`); an unknown one is a P2PError naming
        it and listing the known ones."""
        known = self.parameters()
        unknown = [k for k in values if k not in known]
        if unknown:
            raise P2PError(
                f"unknown parameter {unknown[0]!r} for method {self.name!r}; its parameters are: {', '.join(known)}"
            )
        if self.direct is not None:
            direct = dict(self.direct)
            direct.update({k: v for k, v in values.items() if v != MODEL_DEFAULT})
            for k, v in values.items():
                if v == MODEL_DEFAULT:
                    direct.pop(k, None)
            return Method(self.name, source_prompt=self.source_prompt, description=self.description, direct=direct)
        template, rule, inversion = dict(self.template), None if self.rule is None else dict(self.rule), self.inversion
        for key, value in values.items():
            if key == "inversion":
                inversion = value
            elif key in TEMPLATE_DEFAULTS:
                template[key] = value
            else:
                if not is_json_value(value):
                    raise P2PError(f"rule parameter {key!r} must be a plain JSON value, got {value!r}")
                rule[key] = value
        return Method(
            self.name, inversion, template, rule, self.source_prompt, self.inversion_options, self.description
        )

    def resolved(self, defaults) -> tuple[int, float]:
        """``(steps, guidance)``, ``"model"`` replaced by ``defaults`` (a SamplingDefaults)."""
        steps = self.template.get("steps", MODEL_DEFAULT)
        guidance = self.template.get("guidance", MODEL_DEFAULT)
        return (
            defaults.steps if steps == MODEL_DEFAULT else steps,
            float(defaults.guidance if guidance == MODEL_DEFAULT else guidance),
        )

    # -- JSON ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "inversion": self.inversion,
            "template": dict(self.template),
            "rule": None if self.rule is None else dict(self.rule),
            "source_prompt": self.source_prompt,
            "inversion_options": dict(self.inversion_options),
            "description": self.description,
            **({"direct": dict(self.direct)} if self.direct is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Method:
        """A method from its JSON object; a malformed one is a P2PError naming the field."""
        if not isinstance(data, dict):
            raise P2PError(f"a method is a JSON object, got {type(data).__name__}")
        unknown = sorted(set(map(str, data)) - set(METHOD_FIELDS))
        if unknown:
            raise P2PError(f"unknown method field(s) {', '.join(unknown)}; known: {', '.join(METHOD_FIELDS)}")
        if "name" not in data:
            raise P2PError("a method needs a 'name'")
        return cls(
            name=data["name"],
            inversion=data.get("inversion"),
            template=data.get("template", {}),
            rule=data.get("rule"),
            source_prompt=data.get("source_prompt"),
            inversion_options=data.get("inversion_options", {}),
            description=data.get("description", ""),
            direct=data.get("direct"),
        )

    # -- one case --------------------------------------------------------------------------------------
    def prompts(self, case) -> tuple[str, str]:
        """``(source, target)`` prompts of ``case`` for this method."""
        source = case.source_prompt if self.source_prompt is None else self.source_prompt
        return source, case.target_prompt

    def edit_arguments(self, case, editor, seed: int, inversion=None) -> tuple[str, str, dict]:
        """``(source, target, options)`` for ``editor.edit(source, target, **options)`` on ``case``
        (``inversion``: the case image's, for a method that inverts)."""
        from ..engine.blend import LocalBlend

        source, target = self.prompts(case)
        steps, guidance = self.resolved(editor.model.defaults)
        params = self.parameters()
        options = dict(steps=steps, guidance=guidance, mode=params["mode"], seed=seed)  # recorded with an inversion
        if inversion is not None:
            options["inversion"] = inversion
        if params["compat"] is not None:
            options["compat"] = params["compat"]
        words = case.blended_words
        if params["blend"] and words:  # PIE-Bench: no blended words, no LocalBlend (nor reweight)
            options["blend"] = LocalBlend(
                [[words[0]], [words[1]]], threshold=params["blend_threshold"], start=params["blend_start"]
            )
        if self.rule is not None:
            options["rules"] = [self._rule_for(editor, source, target)]
            return source, target, options
        options.update(kind=params["kind"], cross=params["cross"], self_attn=params["self_attn"])
        reweight = params["reweight"]
        if isinstance(reweight, dict):
            options["reweight"] = reweight
        elif reweight is not None and words:
            options["reweight"] = {words[1]: reweight}
        return source, target, options

    def run_direct(self, case, editor, seed: int):
        """``(image, record)`` of a ``direct`` method on ``case``: the edited picture and a JSON-able
        record of what ran (the prompts and every setting, defaults filled in)."""
        source, target = self.prompts(case)
        settings = {k: v for k, v in self.direct.items() if k != "method"}
        result = _direct(self.direct["method"])[2](editor, case.image_path, source, target, seed=seed, **settings)
        record = {"method": self.direct["method"], "prompts": [source, target], **result.params}
        return result.image, record

    def _rule_for(self, editor, source: str, target: str):
        from ..engine.rules import rule_from_dict

        try:
            return rule_from_dict(dict(self.rule), editor.prompt(source), editor.prompt(target))
        except P2PError as exc:
            raise P2PError(f"method {self.name!r}: rule {self.rule['rule']!r}: {exc}") from None


# -- presets ---------------------------------------------------------------------------------------
# PnPInversion's P2P runs (run_editing_p2p.py): SD 1.4, 50 DDIM steps, guidance 7.5, cross 0.4,
# self 0.6, AttentionRefine for every edit type, reweight x2 on the target blended word, LocalBlend
# on the blended-word pair from 0.2 of the run (threshold 0.3); none of it without blended words.
PIE_P2P_TEMPLATE = {
    "kind": "refine",
    "cross": 0.4,
    "self_attn": 0.6,
    "reweight": 2.0,
    "blend": True,
    "blend_start": 0.2,
    "blend_threshold": 0.3,
    "steps": 50,
    "guidance": 7.5,
}


def _pie(name, inversion, words):
    return Method(
        name,
        inversion,
        dict(PIE_P2P_TEMPLATE),
        description=f"{words} + P2P as PnPInversion ran it on PIE-Bench (refine, cross 0.4, self 0.6, "
        "reweight x2 on the target word, LocalBlend from 0.2; 50 steps, guidance 7.5)",
    )


def _rule_presets() -> list[Method]:
    """Rule-platform methods, offered once their rules are registered."""
    from ..engine.rules import registered_rules

    _register_builtins()
    have = set(registered_rules())
    found = []
    if "MutualSelfAttention" in have:
        found.append(
            Method(
                "masactrl",
                "ddim",
                {"steps": 50, "guidance": 7.5},
                {"rule": "MutualSelfAttention", "start_step": 4, "start_layer": None},
                description="DDIM + MasaCtrl (mutual self-attention from step 4 and from the 10th of SD's 16 "
                "self-attention layers; the same share of the layers on other UNets)",
            )
        )
    if "PlugAndPlay" in have:
        found.append(
            Method(
                "pnp",
                "ddim",
                {"steps": 50, "guidance": 7.5},
                {"rule": "PlugAndPlay", "feature_until": 0.8, "attention_until": 0.5},
                source_prompt="",
                description="DDIM + Plug-and-Play (features for 80 % of the run, self-attention Q/K for 50 %), "
                "source branch under the empty prompt",
            )
        )
    if "KVInjection" in have:
        # RF-Solver-Edit's and FireFlow's edits: the source's image values in single-stream blocks
        # 20 to 37 of Flux.1's 38 (single_of: at the same depth on a model with other blocks, e.g.
        # 2-3 of the pocket flow model's 4) for the first steps (2 of 28: 4 model calls with
        # RF-Solver's two a step, 3 with FireFlow's one a step plus one); their source values come
        # from the regenerated source branch here, theirs from the inversion
        for name, solver, calls in (("rf-solver-edit", "rf-solver", 4), ("fireflow-edit", "fireflow", 3)):
            found.append(
                Method(
                    name,
                    solver,
                    {"steps": 28, "guidance": "model"},
                    {
                        "rule": "KVInjection",
                        "double": [],
                        "single": [str(i) for i in range(20, 38)],
                        "single_of": 38,
                        "copy_keys": False,
                        "end_step": calls,
                    },
                    description=f"{solver} inversion + the source's image values in Flux.1's single blocks "
                    "20-37 of 38 (the same depth on other Flux-layout models) for the first 2 of 28 steps "
                    "(RF-Solver-Edit's rule)",
                )
            )
    return found


def _flow_presets() -> list[Method]:
    return [
        Method(
            "flowedit",
            direct={"method": "flowedit"},
            description="FlowEdit (no inversion): the authors' settings per family (SD3: 50 steps, n_max 33, "
            "guidance 3.5 / 13.5; Flux: 28 steps, n_max 24, guidance 1.5 / 5.5; other steps: n_max in "
            "proportion)",
        ),
        Method(
            "rf-inversion",
            direct={"method": "rf-inversion"},
            source_prompt="",  # the community pipeline inverts under the empty prompt
            description="RF-Inversion as diffusers' community pipeline runs it (Flux): controlled inversion "
            "(gamma 0.5, empty source prompt), controlled edit (eta 1.0 for the first 25 % of 28 steps, "
            "guidance 3.5: Flux dev's embedded guidance, true CFG on a model without a guidance embedding)",
        ),
        Method(
            "p2p-joint",
            "fireflow",
            {"kind": "auto", "cross": 0.8, "self_attn": 0.4, "steps": "model", "guidance": "model"},
            description="FireFlow inversion + Prompt-to-Prompt on joint attention (cross 0.8, self 0.4)",
        ),
    ]


def presets() -> dict[str, Method]:
    """The named methods: PIE-Bench's published P2P configurations and the registered rule methods."""
    found = [
        _pie("pie-p2p", "null-text", "Null-text inversion"),
        _pie("pie-p2p-ddim", "ddim", "DDIM inversion"),
        _pie("pie-p2p-negative", "negative-prompt", "Negative-prompt inversion"),
        *_rule_presets(),
        *_flow_presets(),
    ]
    return {m.name: m for m in found}


def get_method(spec) -> Method:
    """A :class:`Method` from a preset name, a method object (dict), JSON text, a JSON file path,
    or a Method (returned as is)."""
    if isinstance(spec, Method):
        return spec
    if isinstance(spec, dict):
        return Method.from_dict(spec)
    if not isinstance(spec, str):
        raise P2PError(f"a method is a preset name, a JSON object or a Method, got {type(spec).__name__}")
    known = presets()
    if spec in known:
        return known[spec]
    text = spec.strip()
    if text.startswith("{"):
        return Method.from_dict(parse_json(text, "the method"))
    if text.endswith(".json"):
        path = Path(text)
        if not path.is_file():
            raise P2PError(f"method file {path} does not exist")
        return Method.from_dict(parse_json(path.read_text(), str(path)))
    raise P2PError(f"unknown method {spec!r}: presets are {', '.join(known)} (or give a method JSON object or file)")
