"""The Studio's settings as one rule, and a loaded edit's rule back into settings.

The Studio runs one rule on its one edited prompt: Prompt-to-Prompt's (Replace or Refine, maybe
wrapped in Reweight), a registered rule with declared parameters, or ``Combine(p2p, rule)``. A
loaded edit is taken apart into those two parts here, and refused, before anything changes, with
what the controls cannot hold.
"""

from __future__ import annotations

import torch

from ...engine.blend import LocalBlend
from ...engine.rules import Combine, EditRule, ParamRule, Refine, Replace, Reweight
from ...engine.spec import EditSpec
from ...errors import P2PError
from .methods import P2P
from .panel import MAX_SEED, MAX_WEIGHT


def p2p_rule(kind: str, mapper, schedule, reweight: dict) -> EditRule:
    """Replace (or Refine) on ``mapper`` and ``schedule``, in a Reweight when words are reweighted."""
    rule = (Refine if kind == "refine" else Replace)(mapper, schedule)
    return Reweight(rule, dict(reweight)) if reweight else rule


def method_rule(panel) -> EditRule:
    """The chosen registered rule, built from the panel's checked values."""
    return panel.method_class()(**panel.method_values)


def panel_blend_words(blend: LocalBlend | None, prompts) -> list[str] | None:
    """The panel's one list of LocalBlend words for a loaded ``blend`` on ``prompts`` ([] without
    one), or None where one list cannot hold it. A list per prompt (pocket-bench's and PIE-Bench's
    ``[[source word], [target word]]``) becomes its union when that marks the same tokens: the
    union also marks a listed word wherever another prompt has it."""
    if blend is None:
        return []
    words = [blend.words] if isinstance(blend.words, (str, int)) else list(blend.words)
    union = []
    for word in (w for item in words for w in (item if isinstance(item, (list, tuple)) else [item])):
        if word not in union:
            union.append(word)
    if any(not isinstance(w, str) for w in union):
        return None  # a word by position: its token index has no chip to show
    if union == words:
        return union
    same = torch.equal(blend.token_weights(prompts, union), blend.token_weights(prompts, words))
    return union if same else None


def blend_of(panel, schedule) -> LocalBlend | None:
    if not panel.blend_words:
        return None
    return LocalBlend(list(panel.blend_words), threshold=panel.blend_threshold, start=schedule.blend_start)


def split_rule(rule: EditRule) -> tuple[EditRule | None, ParamRule | None]:
    """``(p2p part, method part)`` of a loaded rule (either may be None), or a P2PError saying
    which rules the Studio shows."""
    if isinstance(rule, (Replace, Reweight)):
        return rule, None
    if isinstance(rule, ParamRule):
        return None, rule
    parts = rule.rules if isinstance(rule, Combine) else []
    if len(parts) == 2 and isinstance(parts[0], (Replace, Reweight)) and isinstance(parts[1], ParamRule):
        return parts[0], parts[1]
    raise P2PError(
        "the Studio shows Prompt-to-Prompt (Replace, Refine, Reweight), one registered rule with declared "
        f"parameters, or Combine(P2P rule, that rule); this edit's rule is {_describe(rule)}"
    )


def _describe(rule: EditRule) -> str:
    if isinstance(rule, Combine):
        return f"Combine({', '.join(type(r).__name__ for r in rule.rules)})"
    return type(rule).__name__


def p2p_base(rule: EditRule | None) -> Replace | None:
    """The Replace/Refine under a P2P part (a Reweight's base), or None."""
    base = rule.base if isinstance(rule, Reweight) else rule
    if base is not None and not isinstance(base, Replace):
        raise P2PError(f"the Studio shows Replace, Refine and Reweight rules; this spec has {type(base).__name__}")
    return base


def method_not_shown(panel, method: ParamRule | None) -> str:
    """What of a loaded method rule the menu cannot hold (a rule it does not list), or ''."""
    if method is None:
        return ""
    name = type(method).rule_name
    if name not in {m["name"] for m in panel.methods}:
        panel.refresh_methods()  # registered since the menu was read
    if name not in {m["name"] for m in panel.methods} or name == P2P:
        return f"the rule {name!r} (not in the method menu)"
    cls = panel.method_class(name)
    if type(method) is not cls:
        return f"the rule {name!r} of another class than the menu's"
    return ""


def not_shown(spec: EditSpec, rule: EditRule | None, base: Replace | None, blend_words: list | None) -> str:
    """What of ``spec`` the Studio's controls cannot hold (so a reload would not rerun it), or ''.
    ``blend_words``: :func:`panel_blend_words` of its LocalBlend."""
    blend = spec.blend or {}
    values = getattr(rule, "values", {}) if rule is not None else {}
    checks = [
        (bool(blend.get("subtract")), "LocalBlend 'subtract' words"),
        (blend.get("resolution") is not None, "a LocalBlend resolution"),
        (blend_words is None, "LocalBlend words per prompt (that one list cannot mark) or by position"),
        (spec.seed > MAX_SEED, f"a seed above {MAX_SEED}"),
        (spec.guidance > 50, "guidance above 50"),
    ]
    if base is not None:
        checks += [
            (base.self_max_resolution is not None, "a self-attention resolution limit"),
            (not base.mapper.aligned_by_links, "a mapper with aligned positions no link feeds"),
            (any(not isinstance(w, str) for w in base.schedule.words), "a window of a word given by position"),
            (any(not isinstance(w, str) for w in values), "a weight of a word given by position"),
            (any(abs(v) > MAX_WEIGHT for v in values.values()), f"weights beyond +-{MAX_WEIGHT:g}"),
        ]
    return ", ".join(what for failed, what in checks if failed)
