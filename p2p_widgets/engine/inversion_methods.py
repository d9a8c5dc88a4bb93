"""The inversion methods of each model family, by name: which a model takes, which it takes unless
told otherwise, and why one does not run on it. Plain data, imported without torch (the command
line's ``--invert`` menu reads it before any model loads); :mod:`.inversion.record` re-exports it."""

from __future__ import annotations

METHODS = ("null-text", "ddim", "negative-prompt")  # a UNet's (DDIM trajectories)
FLOW_METHODS = ("euler", "rf-solver", "fireflow")  # a flow model's (ODE solvers, engine.inversion.flow)
FAMILY_METHODS = {"ddim": METHODS, "flow": FLOW_METHODS}  # the inversions of each model family
# what a model family inverts with unless told otherwise: null-text reconstructs a UNet's image at the
# editing guidance; FireFlow reconstructs closest per model call on flow models (README, flow inversion)
FAMILY_DEFAULTS = {"ddim": "null-text", "flow": "fireflow"}
# the methods that may read an image under the empty prompt (the optimised ones need the caption edits change)
EMPTY_PROMPT_METHODS = ("ddim", *FLOW_METHODS)
LABELS = {  # each method in a few words, for menus (the Studio's), in the menus' order: best first
    "null-text": "null-text (best, slow)",
    "negative-prompt": "negative prompt (fast)",
    "ddim": "DDIM (plain)",
    "fireflow": "FireFlow (best, one call a step)",
    "rf-solver": "RF-Solver (second order, two calls a step)",
    "euler": "Euler (plain)",
}
FAMILY_WORDS = {"ddim": "UNet", "flow": "flow (SD3, Flux)"}  # the models of each family, for messages


def methods_of(inversion_family) -> tuple[str, ...]:
    """The inversion methods of a model family (``model.inversion_family``), best first; () where
    the model cannot invert images."""
    methods = FAMILY_METHODS.get(inversion_family, ())
    return tuple(sorted(methods, key=lambda m: list(LABELS).index(m) if m in LABELS else len(LABELS)))


def method_problem(method, family: str, inversion_family) -> str:
    """Why ``method`` cannot invert an image on a ``family`` model whose inversions are
    ``inversion_family``'s, or '' where it can (:func:`invert` and the Studio say the same)."""
    if inversion_family not in FAMILY_METHODS:
        return f"{family} models cannot be inverted (a UNet, SD3 or Flux model can)"
    methods = FAMILY_METHODS[inversion_family]
    if method in methods:
        return ""
    other = next((f for f, ms in FAMILY_METHODS.items() if method in ms and f != inversion_family), None)
    why = f" ({method!r} inverts {FAMILY_WORDS[other]} models)" if other else ""
    return f"method must be one of {', '.join(repr(m) for m in methods)} on a {family} model, got {method!r}{why}"
