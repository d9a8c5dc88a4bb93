"""The Studio's method menu: Prompt-to-Prompt, and every registered rule with declared parameters.

A :class:`~p2p_widgets.engine.rules.ParamRule` subclass registered with ``@register_rule`` is
offered as it is: its parameters' controls are built in the browser from
:meth:`Param.describe() <p2p_widgets.engine.params.Param.describe>` (name, kind, range, default,
help), and the values the page writes are checked here by :meth:`Param.check` (errors name the
parameter in plain words). No rule needs code of its own in the widget.
"""

from __future__ import annotations

import inspect
import math
import re

from ...engine import controls  # noqa: F401  (registers the built-in methods beyond P2P)
from ...engine.params import Param
from ...engine.rules import EditRule, LayerContext, ParamRule, registered_rules, rule_class
from ...errors import P2PError

P2P = "p2p"  # the menu's value for Prompt-to-Prompt (its controls: alignment, windows, reweight, LocalBlend)
P2P_ENTRY = {
    "name": P2P,
    "label": "Prompt-to-Prompt",
    "class_name": "Replace / Refine, Reweight",  # the rules it builds from the prompts (engine/rules.py)
    "help": "The edit follows the source's cross-attention on aligned words (word swap or refine), "
    "its self-attention early in the run; reweight words and keep the rest with LocalBlend.",
    "params": [],
    "follows_inversion": False,
    "combinable": False,
}
_MAX_HELP = 600  # characters of a rule's docstring shown under the menu


class ParamValueError(P2PError):
    """A method parameter's value was refused; ``param`` names the parameter."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


_UNET_HOOKS = ("self_qkv", "self_output", "edit_feature", "feature_modules")  # what joint attention has not
_JOINT_HOOKS = ("joint_kv",)  # what a UNet has not


def _overrides(cls: type, hooks) -> list[str]:
    return [h for h in hooks if getattr(cls, h, None) is not getattr(EditRule, h)]


def _unet_only(cls: type) -> bool:
    """The engine's own test (``processors._unet_only``, what it refuses on SD3 / Flux) on the rule
    with its default values; the hooks the class overrides where it needs values only a user gives."""
    from ...engine import processors

    try:
        return bool(processors._unet_only(cls()))
    except Exception:  # noqa: BLE001  (a required parameter, or the engine's check changed)
        return bool(_overrides(cls, _UNET_HOOKS))


def model_refusal(cls: type, joint: bool, family: str = "") -> str:
    """Why rules of ``cls`` cannot run on the model ('' where they can): a rule that edits UNet
    self-attention's queries, keys and values, its output or a module's features cannot run on a
    joint-attention model (SD3, Flux), and one that edits joint attention's keys and values
    (``joint_kv``) not on a UNet. The engine refuses both before a run; the menu hides them."""
    name = vars(cls).get("label") or getattr(cls, "rule_name", None) or cls.__name__
    if joint and _unet_only(cls):
        model = family.upper() if family == "sd3" else family.capitalize() or "a joint-attention model"
        return f"{name} edits a UNet's self-attention or features: it does not run on {model}"
    if not joint and _overrides(cls, _JOINT_HOOKS):
        return f"{name} edits joint attention (SD3, Flux): it does not run on a UNet"
    return ""


def method_classes(joint: bool | None = None) -> dict[str, type]:
    """Registered rules with declared parameters, by name (the registry is read on each call:
    a rule registered later is offered from then on). ``joint``: only those that run on a
    joint-attention model (True) or on a UNet (False); None: all."""
    found = {}
    for name in registered_rules():
        cls = rule_class(name)
        if issubclass(cls, ParamRule) and (joint is None or not model_refusal(cls, joint)):
            found[name] = cls
    return found


def combinable(cls: type) -> bool:
    """Can P2P's rule run beside ``cls`` (with its default values) in a Combine? Yes when ``cls``
    leaves cross-attention alone (Combine allows one part with cross weights per layer, and that
    part is P2P's) and keeps the source's number of self-attention keys (P2P's self-attention
    share mixes the source's probabilities, which needs them)."""
    if cls.cross_weights is not EditRule.cross_weights or cls.edit_cross is not EditRule.edit_cross:
        return False
    try:
        return not lengthens_keys(cls())
    except P2PError:  # a value only the user can give: the values are probed when P2P is ticked
        return True


def lengthens_keys(rule: EditRule) -> bool:
    """Does ``rule``'s ``self_qkv`` hook give the edit more keys than the source has (e.g. it
    attends to both images) at some layer and step of a probe run (16 self-attention layers, 10
    evaluations, small tensors)? A hook that needs real tensors counts as no: the run will say."""
    import torch

    qkv = tuple(torch.zeros(1, 1, 4, 2) for _ in range(3))
    for index in range(16):
        for step in range(10):
            ctx = LayerContext(
                step=step,
                n_evals=10,
                layer=f"up_blocks.{index // 4}.attentions.{index % 4}.transformer_blocks.0.attn1.processor",
                place="up",
                resolution=(2, 2),
                latent_size=(8, 8),
                is_cross=False,
                coarsest=2,
                index=index,
                n_layers=16,
            )
            try:
                out = rule.self_qkv(ctx, qkv, qkv)
            except Exception:  # noqa: BLE001  (a user's hook may need real shapes; not ours to judge)
                return False
            if out is not None and out[1].shape[2] != qkv[1].shape[2]:
                return True
    return False


def describe_method(name: str, cls: type) -> dict:
    """The menu entry of a rule class: its name, a label, its docstring, its declared parameters."""
    return {
        "name": name,
        "label": _label(name, cls),
        "class_name": cls.__name__,
        "help": _help(cls),
        "params": [p.describe() for p in cls.params],
        "follows_inversion": bool(cls.follows_inversion),
        "combinable": combinable(cls),
    }


def method_menu(joint: bool | None = None) -> list[dict]:
    """Prompt-to-Prompt first, then every registered rule with declared parameters (``joint``: those
    that run on that kind of model, see :func:`method_classes`)."""
    return [dict(P2P_ENTRY)] + [describe_method(name, cls) for name, cls in method_classes(joint).items()]


def default_values(cls: type | None) -> dict:
    """The declared defaults of ``cls``'s parameters as JSON values ({} for P2P)."""
    if cls is None:
        return {}
    return {p.name: _plain(p.default) for p in cls.params}


def check_values(cls: type | None, values) -> dict:
    """Every parameter of ``cls`` (defaults filled in) checked by its :meth:`Param.check`, as
    JSON values; a :class:`ParamValueError` names the first bad or unknown parameter. A parameter
    declared without a default (``None``, not optional) may stay empty here: the user fills it in
    before Run (see :func:`missing`)."""
    if not isinstance(values, dict):
        raise ParamValueError("", f"method values must be an object of parameter: value, got {values!r}")
    params = {} if cls is None else {p.name: p for p in cls.params}
    for name in values:
        if name not in params:
            owner = "Prompt-to-Prompt" if cls is None else cls.__name__
            known = ", ".join(params) or "none"
            raise ParamValueError(str(name), f"{owner} has no parameter {name!r} (its parameters: {known})")
    out = {}
    for name, param in params.items():
        value = values.get(name, param.default)
        if value is None and _required(param):
            out[name] = None  # to be filled in: Run says so beside the field
            continue
        try:
            out[name] = _plain(param.check(value))
        except P2PError as exc:
            raise ParamValueError(name, plain_error(param, value, exc)) from None
    return out


def _required(param: Param) -> bool:
    """Declared without a default: a value only the user can give (e.g. the words of an object)."""
    return param.default is None and not param.optional


def missing(cls: type | None, values: dict) -> list[Param]:
    """The parameters of ``cls`` still without a value (declared without a default, left empty)."""
    return [] if cls is None else [p for p in cls.params if _required(p) and values.get(p.name) is None]


def needs_value(param: Param) -> str:
    """The message beside an empty parameter that needs a value."""
    what = words_of(param.name)
    return f"{what} needs a value ({param.help})" if param.help else f"{what} needs a value"


def plain_error(param: Param, value, exc: Exception) -> str:
    """What is wrong with ``value`` for ``param``, in words a person reads beside the field."""
    what = words_of(param.name)
    if value is None or value == "" or (param.kind == "words" and param.non_empty and not value):
        return needs_value(param)
    if param.kind in ("int", "float"):
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number:
            return f"{what} must be a number; {value!r} is not"
        if param.kind == "int" and value != int(value):
            return f"{what} must be a whole number; {value:g} is not"
        return f"{what} must be {_range_words(param)}; {value:g} is not"
    if param.kind == "choice":
        return f"{what} must be one of {', '.join(map(str, param.choices))}; {value!r} is not"
    if param.kind == "words":
        return f"{what} must be a list of words (separated by spaces or commas)"
    if param.kind == "bool":
        return f"{what} must be on or off (true or false); {value!r} is not"
    return f"{what}: {exc}"


def words_of(name: str) -> str:
    """A parameter name as words: ``start_step`` -> ``start step``."""
    return name.replace("_", " ")


def _range_words(param: Param) -> str:
    low, high = param.low, param.high
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    if low is not None:
        return f"at least {low:g}"
    return f"at most {high:g}"


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _help(cls: type) -> str:
    doc = inspect.cleandoc(cls.__doc__ or "")
    text = " ".join(doc.split()).replace("``", "")
    return text if len(text) <= _MAX_HELP else text[: _MAX_HELP - 1].rstrip() + "…"


def _label(name: str, cls: type) -> str:
    """What the menu shows: the ``label`` the class declares itself (the method's name as its paper
    gives it, e.g. "MasaCtrl (mutual self-attention)"; a label inherited from a parent would name
    the parent's method), else the name with the method's common name when the docstring leads
    with one ("MasaCtrl: ...") that differs from the class name."""
    declared = vars(cls).get("label")
    if isinstance(declared, str) and declared.strip():
        return declared.strip()
    first = (inspect.cleandoc(cls.__doc__ or "").splitlines() or [""])[0]
    lead = first.split(":", 1)[0].strip() if ":" in first else ""
    same = re.sub(r"[^a-z0-9]", "", lead.lower()) == re.sub(r"[^a-z0-9]", "", name.lower())
    return f"{name} ({lead})" if lead and len(lead) <= 30 and not same else name
