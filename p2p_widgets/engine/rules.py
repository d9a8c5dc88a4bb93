# long: the rule protocol (EditRule, its hooks, the registry) with P2P's own rules and the two rule
# builders (ParamRule, Combine) beside it: every hook's default reads next to the rules that override it
"""Edit rules: how an edited prompt's attention is mixed with the source's at each evaluation.

Every built-in rule is *linear*: for one edited prompt, at one cross-attention layer and step,

    A_edit_new = A_src @ P + A_edit @ diag(q)

with ``P`` (L x L, over key tokens) and ``q`` (L,). That form runs on the fast path without ever
forming an attention matrix (attention is linear in V: ``A_src @ P @ V = attn(Q_src, K_src, P @ V)``).
Self-attention injection is ``A_new = s * A_src + (1 - s) * A_edit`` with a scalar ``s``.

Writing a custom rule
---------------------
Subclass :class:`EditRule` and override one of

- ``cross_weights(ctx) -> (P, q) | None``: the linear form (fast and explicit paths). ``None``
  means "no change at this layer" (the edit keeps its own attention);
- ``self_weight(ctx) -> float``: the share of the source's self-attention injected;
- ``edit_cross(ctx, a_src, a_edit) -> tensor``: any function of the explicit maps
  ``(heads, n_queries, L)``; set ``explicit_only = True``; runs on the explicit path only.

``ctx`` is a :class:`LayerContext` (step, number of evaluations, layer name, place, resolution).

Saving and reloading a rule
---------------------------
Rules are registered by name with :func:`register_rule`; a registered rule writes itself with
``to_dict()`` (``{"rule": name, ...parameters}``) and is rebuilt by the classmethod
``from_dict(data, source, target)`` (the run's source and target :class:`Prompt`), so it travels
in an edit's JSON like the built-ins. Example: inject only in the decoder::

    @register_rule
    class DecoderOnly(EditRule):
        def __init__(self, inner): self.inner = inner
        def cross_weights(self, ctx):
            return self.inner.cross_weights(ctx) if ctx.place == "up" else None
        def self_weight(self, ctx):
            return self.inner.self_weight(ctx) if ctx.place == "up" else 0.0
        def to_dict(self): return {"rule": "DecoderOnly", "inner": self.inner.to_dict()}
        @classmethod
        def from_dict(cls, data, source, target): return cls(rule_from_dict(data["inner"], source, target))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..errors import P2PError, check_nesting, is_int, is_number
from .mapper import Mapper, check_compat
from .params import check_values
from .prompts import Prompt
from .schedule import AlphaSchedule, json_keyed


@dataclass(frozen=True)
class LayerContext:
    step: int  # UNet evaluation index, 0 = noisiest
    n_evals: int
    layer: str  # processor name, e.g. "up_blocks.0.attentions.1.transformer_blocks.0.attn2.processor"
    place: str  # "down", "mid" or "up"
    resolution: tuple[int, int]  # query grid (h, w) of this layer
    latent_size: tuple[int, int]
    is_cross: bool
    coarsest: int  # side of the coarsest attention grid in the UNet
    index: int = 0  # execution order among the UNet's layers of this kind (self or cross), 0 = first
    n_layers: int = 0  # how many layers of this kind the UNet has (SD 1.x: 16; SDXL: 70)
    kind: str = "attention"  # "attention", or "feature" for a module output (``edit_feature``)
    block: str = "cond"  # the half of classifier-free guidance being edited: "cond" or "uncond"
    depth: int = 0  # the site's depth: a DiT block's index among its kind (double / single), a UNet level


_REGISTRY: dict[str, type] = {}
MAX_COMBINE_DEPTH = 16  # Combines inside Combines; deeper would only exhaust Python's stack
MAX_RULE_JSON_DEPTH = 2 * MAX_COMBINE_DEPTH + 8  # a rule's JSON: two levels per Combine, a Reweight's base inside
MAX_REWEIGHT = float(torch.finfo(torch.float32).max)  # scales live in float32 tensors


def register_rule(cls=None, *, name: str | None = None):
    """Class decorator: register an :class:`EditRule` subclass under ``name`` (default: the class
    name) so edits using it export to JSON and reload. Registering a name of your own again
    replaces the class (a notebook cell run twice defines its class twice); the built-in rules'
    names are refused (every saved edit naming them would load your class instead)."""

    def add(rule_cls):
        if not (isinstance(rule_cls, type) and issubclass(rule_cls, EditRule)):
            raise P2PError(f"register_rule takes an EditRule subclass, got {rule_cls!r}")
        key = rule_cls.__name__ if name is None else name
        if not isinstance(key, str) or not key.strip():
            raise P2PError(f"a rule name must be a non-empty string, got {key!r}")
        old = _REGISTRY.get(key)
        if old is not None and _is_builtin(old) and not _same_class(old, rule_cls):
            builtins = ", ".join(n for n in registered_rules() if _is_builtin(_REGISTRY[n]))
            raise P2PError(
                f"{key!r} is a built-in rule: register {rule_cls.__name__} under another name "
                f"(@register_rule(name=...)); the built-in names are {builtins}"
            )
        rule_cls.rule_name = key
        _REGISTRY[key] = rule_cls
        return rule_cls

    return add if cls is None else add(cls)


def _is_builtin(cls) -> bool:
    return cls.__module__.startswith("p2p_widgets.")


def _same_class(old, new) -> bool:
    """The same class defined again (a reloaded module), not another class taking its name."""
    return (old.__module__, old.__qualname__) == (new.__module__, new.__qualname__)


def rule_label(rule) -> str:
    """What a menu calls a rule (its class or an instance): its declared ``label`` (the method's
    name as its paper gives it), else its class name."""
    cls = rule if isinstance(rule, type) else type(rule)
    return cls.__dict__.get("label") or cls.__name__


def rules_for_compat(rules, compat: str):
    """``rules`` given to an edit beside ``compat``: reference mode builds P2P's rules its authors'
    way, so it cannot apply to rules you built; a P2PError says so instead of ignoring it."""
    if compat != "project":
        raise P2PError(
            f"compat=\"{compat}\" builds P2P's rules the authors' way, so it cannot apply to rules= you give: "
            'build them so (align(..., compat="reference"), Reweight(..., compat="reference")) and leave compat out'
        )
    return rules


def registered_rules() -> list[str]:
    """Names of the rules that export and reload."""
    return sorted(_REGISTRY)


def rule_class(name) -> type:
    """The registered rule class of ``name``, or a P2PError listing the registered names."""
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise P2PError(
            f"unknown rule {name!r}: registered rules are {', '.join(registered_rules())} "
            "(a rule of your own must be registered with @register_rule before loading)"
        )
    return cls


def rule_from_dict(data, source: Prompt, target: Prompt) -> EditRule:
    """Rebuild a rule from its ``to_dict()`` data for ``source`` -> ``target``."""
    if not isinstance(data, dict):
        raise P2PError(f"a rule is an object with a 'rule' name, got {type(data).__name__}")
    check_nesting("the rule", data, MAX_RULE_JSON_DEPTH)
    return rule_class(data.get("rule")).from_dict(data, source, target)


def check_rule_data(data) -> None:
    """What can be checked of a rule's data without prompts (a sweep plans before any case runs):
    its name, nesting, declared parameters, and the same of its parts; a P2PError names the bad one."""
    if not isinstance(data, dict):
        raise P2PError(f"a rule is an object with a 'rule' name, got {type(data).__name__}")
    check_nesting("the rule", data, MAX_RULE_JSON_DEPTH)
    rule_class(data.get("rule")).check_data(data)


class EditRule:
    """Base class: no change (the edit keeps its own attention everywhere).

    Hooks (override the ones the rule needs; the controller asks each hook at each layer and
    step, and a layer where no hook answers stays one plain fused attention call):

    - ``cross_weights`` / ``edit_cross``: cross-attention probabilities (linear or explicit form);
    - ``self_weight``: a scalar share of the source's self-attention probabilities;
    - ``self_qkv(ctx, src, edit)``: the edit's self-attention queries, keys and values, from the
      source's and its own (each ``(q, k, v)``, tensors ``(1, heads, tokens, dim)``); return new
      ``(q, k, v)`` (keys and values may be longer, e.g. concatenated) or ``None``;
    - ``self_output(ctx, src, edit, attend, maps)``: the edit's whole self-attention output, made
      from attention calls (e.g. masked ones) and this step's cross-attention maps;
    - ``feature_modules()`` + ``edit_feature(ctx, name, src, edit)``: outputs of UNet modules by
      name (e.g. a ResNet block's ``conv2``), ``(1, C, h, w)`` each;
    - ``input_modules()`` + ``edit_from_inputs(ctx, name, module, src, edit)``: a UNet module's
      output for the edit row computed from the module's inputs on the source row and the edit
      row (e.g. a GroupNorm whose statistics cover both); entries are module names or a module
      class (every module of that class); compute with the module's function, not by calling the
      module (its hook would run again);
    - ``edit_latents(step, n_evals, src, edit)``: the edit's latents after each scheduler step;
    - ``follows_inversion``: the source row walks the inversion's trajectory (needs an inverted image).

    ``branches``: ``"cond"`` edits the conditional half of classifier-free guidance only (P2P);
    ``"both"`` edits the unconditional half too, each from the source row of its own half.
    """

    explicit_only = False
    branches: ClassVar[str] = "cond"
    follows_inversion: ClassVar[bool] = False
    params: ClassVar[tuple] = ()  # the rule's declared parameters (see Param); [] for rules built from prompts
    rule_name: ClassVar[str | None] = None  # set by @register_rule
    label: ClassVar[str | None] = None  # what a menu calls the method (see rule_label); declared per class

    def for_run(self) -> EditRule:
        """This rule's copy for one run. The run binds and prepares the copy (words resolved, tensors
        on the device), so the rule you hold keeps no per-run state and can serve several runs at
        once (two pipelines in two threads). A rule holding other rules copies them too (override)."""
        return copy.copy(self)

    def to_dict(self) -> dict:
        """``{"rule": name, ...parameters}``: what :meth:`from_dict` rebuilds the rule from. Rules
        with parameters override both."""
        return {"rule": self.exported_name()}

    @classmethod
    def from_dict(cls, data: dict, source: Prompt, target: Prompt) -> EditRule:
        return cls()

    @classmethod
    def check_data(cls, data: dict) -> None:
        """Check ``to_dict()`` data as far as it can be without prompts (see :func:`check_rule_data`);
        rules with parameters or parts override it. The default checks nothing."""

    def exported_name(self) -> str:
        """The registered name of this rule's class, or a P2PError saying how to register it."""
        name = type(self).rule_name
        if name is None or _REGISTRY.get(name) is not type(self):
            raise P2PError(
                f"rule {type(self).__name__} is not registered: decorate its class with "
                "@p2p_widgets.register_rule (and give it to_dict / from_dict) to export edits using it"
            )
        return name

    def check_run(self, n_evals: int) -> None:
        """Raise a P2PError if this rule cannot drive a run of ``n_evals`` UNet evaluations."""

    def cross_weights(self, ctx: LayerContext):
        return None

    def self_weight(self, ctx: LayerContext) -> float:
        return 0.0

    def prepare(self, device, dtype) -> None:
        """Called once before a run: move tensors the rule reuses to the UNet's device."""

    def keeps_own(self, ctx: LayerContext, weights) -> bool:
        """Does the edit keep any of its own attention (``q != 0``) for these ``cross_weights``?
        Rules whose ``q`` lives on a GPU should answer from a host copy: asking the device
        tensor waits for the GPU at every layer."""
        return bool((weights[1] != 0).any())

    def edit_cross(self, ctx: LayerContext, a_src: torch.Tensor, a_edit: torch.Tensor) -> torch.Tensor:
        weights = self.cross_weights(ctx)
        if weights is None:
            return a_edit
        P, q = (w.to(a_src) for w in weights)
        return a_src @ P + a_edit * q

    def self_qkv(self, ctx: LayerContext, src: tuple, edit: tuple):
        return None

    def joint_kv(self, ctx: LayerContext):
        """Joint attention (SD3 / Flux) only: ``(queries, keys, values)``, which of the source's
        image-token queries, keys and values replace the edit's at this site and step, or None (the
        edit keeps its own)."""
        return None

    def self_output(self, ctx: LayerContext, src: tuple, edit: tuple, attend, maps):
        """The edit row's whole self-attention output ``(1, heads, tokens, dim)``, or None. ``attend(q,
        k, v, mask=None)`` is the run's attention (fused or materialised); ``maps`` is ``(source,
        edit)`` cross-attention of this step so far, ``(h, w, L)`` each, or None before any."""
        return None

    def children(self) -> tuple:
        """The rules this one is built on (Reweight: its base; Combine: its parts)."""
        return ()

    def walk(self):
        """This rule, then every rule inside it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    def mappers(self) -> list:
        """The token mappers this rule and the rules inside it carry."""
        return [r.mapper for r in self.walk() if isinstance(getattr(r, "mapper", None), Mapper)]

    def bind(self, source: Prompt, target: Prompt) -> None:
        """Called before a run with its source and this rule's target prompt (rules that read
        words resolve them here)."""

    def feature_modules(self) -> tuple[str, ...]:
        return ()

    def edit_feature(self, ctx: LayerContext, name: str, src: torch.Tensor, edit: torch.Tensor):
        return None

    def input_modules(self) -> tuple:
        return ()

    def edit_from_inputs(self, ctx: LayerContext, name: str, module, src: torch.Tensor, edit: torch.Tensor):
        return None

    def edit_latents(self, step: int, n_evals: int, src: torch.Tensor, edit: torch.Tensor):
        return None

    def windows(self, n_evals: int) -> list[tuple[str, int, int]]:
        """``(what, first step, end step)`` of each span of the run where the rule acts: the
        timeline and the player show them."""
        return []

    def on_sites(self, sites: list) -> None:
        """Called once per run (on the run's own copy) with the model's attention sites in execution
        order (:class:`~p2p_widgets.engine.sites.AttentionSite`: kind, place, block, depth, the
        attention module holding it): rules that choose layers by their place resolve them here."""


def default_self_max_resolution(latent_size) -> int:
    """The reference injects self-attention at <= 16x16 queries for 64x64 latents: latent/4."""
    return max(1, min(latent_size) // 4)


@register_rule
class Replace(EditRule):
    """Word swap: the target takes ``A_src @ M`` on its aligned tokens inside their alpha windows.

    ``self_max_resolution``: self-attention is injected at layers whose query grid side is at most
    this (default: latent side / 4 as in the reference, but never below the coarsest attention
    layer, so small models still get injection).
    """

    label = "Prompt-to-Prompt: word swap"

    def __init__(self, mapper: Mapper, schedule: AlphaSchedule, self_max_resolution: int | None = None):
        if not isinstance(mapper, Mapper):
            raise P2PError(f"{type(self).__name__} needs a Mapper, got {type(mapper).__name__}")
        if not isinstance(schedule, AlphaSchedule):
            raise P2PError(f"{type(self).__name__} needs an AlphaSchedule, got {type(schedule).__name__}")
        self.mapper, self.schedule = mapper, schedule
        self.self_max_resolution = self_max_resolution
        # g[t, j]: share of the mapped source map in target column j at step t
        self.gate = schedule.cross_alpha(mapper.target) * mapper.aligned
        self._matrix, self._gate = self.mapper.matrix, self.gate  # on the UNet's device after prepare()
        self._cache: dict = {}

    def for_run(self):
        run = super().for_run()
        run._cache = {}
        return run

    def prepare(self, device, dtype):
        self._matrix, self._gate = self.mapper.matrix.to(device, dtype), self.gate.to(device, dtype)
        self._cache = {}

    def check_run(self, n_evals):
        if self.schedule.n_evals != n_evals:
            raise P2PError(
                f"the {type(self).__name__} rule's schedule covers {self.schedule.n_evals} evaluations "
                f"but the run has {n_evals}: build the schedule for the run's steps"
            )

    def to_dict(self) -> dict:
        data = {"rule": self.exported_name(), "mapper": self.mapper.to_dict(), "schedule": self.schedule.to_dict()}
        if self.self_max_resolution is not None:
            data["self_max_resolution"] = self.self_max_resolution
        return data

    @classmethod
    def check_data(cls, data):
        for key, what in (("mapper", "the links of one source and target prompt"), ("schedule", "its windows")):
            if not isinstance(data.get(key), dict):
                raise P2PError(
                    f"{cls.__name__} needs its {key!r} ({what}), got {_brief(data.get(key))}: a sweep over cases "
                    "describes P2P with the template (kind, cross, self_attn), not with a rule"
                )

    @classmethod
    def from_dict(cls, data, source, target):
        limit = data.get("self_max_resolution")
        if limit is not None and not (isinstance(limit, int) and not isinstance(limit, bool) and limit > 0):
            raise P2PError(f"'self_max_resolution' must be a positive integer or null, got {limit!r}")
        return cls(
            Mapper.from_dict(data.get("mapper"), source, target),
            AlphaSchedule.from_dict(data.get("schedule"), target),
            limit,
        )

    @property
    def target(self) -> Prompt:
        return self.mapper.target

    def cross_weights(self, ctx):
        if ctx.step not in self._cache:
            # outside every window the edit keeps its own attention: None lets the fast path skip
            # work (the test reads the host copy of the gate, so it never waits for the GPU)
            g = self._gate[ctx.step]
            self._cache[ctx.step] = (self._matrix * g, 1.0 - g) if bool(self.gate[ctx.step].any()) else None
        return self._cache[ctx.step]

    def keeps_own(self, ctx, weights):
        return bool((self.gate[ctx.step] < 1).any())  # q = 1 - g, read from the host copy of g

    def windows(self, n_evals):
        spans = [("cross-attention", *self.schedule.cross), ("self-attention", *self.schedule.self_attn)]
        spans += [(f"cross-attention: {word}", *w) for word, w in self.schedule.words.items()]
        return [s for s in spans if s[1] < s[2]]

    def self_weight(self, ctx):
        limit = self.self_max_resolution
        if limit is None:
            limit = max(default_self_max_resolution(ctx.latent_size), ctx.coarsest)
        return 1.0 if self.schedule.self_active(ctx.step) and max(ctx.resolution) <= limit else 0.0


@register_rule
class Refine(Replace):
    """Phrase insertion: aligned tokens take the source's column, new tokens keep their own."""

    label = "Prompt-to-Prompt: adding a phrase"

    def __init__(self, mapper: Mapper, schedule: AlphaSchedule, self_max_resolution: int | None = None):
        super().__init__(mapper, schedule, self_max_resolution)


@register_rule
class Reweight(EditRule):
    """Scale the columns of chosen target words in the mapped source attention (negative allowed).

    Composes on a Replace/Refine rule: ``P = P_base @ diag(c)``, the edit's own part unchanged, as
    the reference does (no re-normalisation). ``values`` maps words of the target prompt to scales.
    """

    label = "Prompt-to-Prompt: attention re-weighting"

    def __init__(self, base: Replace, values: dict, compat: str = "project"):
        if not isinstance(base, Replace):
            raise P2PError(f"Reweight composes on a Replace or Refine rule, got {type(base).__name__}")
        if not isinstance(values, dict) or not values:
            raise P2PError(f"Reweight needs a non-empty dict of word -> scale, got {values!r}")
        self.base, self.values = base, {}
        scale = torch.ones(base.target.max_length)
        for word, value in values.items():
            if not is_number(value):
                raise P2PError(f"reweight value for {word!r} is not a finite number: {value!r}")
            if abs(value) > MAX_REWEIGHT:
                raise P2PError(
                    f"reweight value for {word!r} is {value!r}: scales are float32, "
                    f"at most {MAX_REWEIGHT:.3g} in magnitude"
                )
            scale[base.target.positions(word)] = float(value)
            self.values[int(word) if is_int(word) else word] = float(value)  # plain numbers: numpy ones too
        self.scale = self._scale = scale  # _scale: on the UNet's device after prepare()
        self.compat = check_compat(compat)
        # the authors' code also scales a new token's own attention inside its window:
        # q_j = 1 - g_j + (c_j - 1) * window_j * (1 - aligned_j); this project leaves it alone
        window = base.schedule.cross_alpha(base.target)
        self.own = (scale - 1) * window * (1 - base.mapper.aligned) if compat == "reference" else None
        self._own = self.own

    def children(self) -> tuple:
        return (self.base,)

    def for_run(self):
        run = super().for_run()
        run.base = self.base.for_run()
        return run

    def prepare(self, device, dtype):
        self.base.prepare(device, dtype)
        self._scale = self.scale.to(device, dtype)
        self._own = None if self.own is None else self.own.to(device, dtype)

    def check_run(self, n_evals):
        self.base.check_run(n_evals)

    def to_dict(self) -> dict:
        data = {
            "rule": self.exported_name(),
            "base": self.base.to_dict(),
            "values": json_keyed(self.values, lambda w, v: [w, v]),
        }
        if self.compat != "project":
            data["compat"] = self.compat
        return data

    @classmethod
    def check_data(cls, data):
        for word, value in _reweight_values(data.get("values")).items():
            if not is_number(value) or abs(value) > MAX_REWEIGHT:
                raise P2PError(
                    f"reweight value for {word!r} must be a finite number of magnitude <= {MAX_REWEIGHT:.3g}, "
                    f"got {value!r}"
                )
        base = data.get("base")
        check_rule_data(base)
        if not issubclass(rule_class(base["rule"]), Replace):
            raise P2PError(f"Reweight composes on a Replace or Refine rule, got {base['rule']!r}")

    @classmethod
    def from_dict(cls, data, source, target):
        values = _reweight_values(data.get("values"))
        return cls(rule_from_dict(data.get("base"), source, target), values, data.get("compat", "project"))

    def cross_weights(self, ctx):
        weights = self.base.cross_weights(ctx)
        if self.own is None or not bool(self.own[ctx.step].any()):
            return None if weights is None else (weights[0] * self._scale, weights[1])
        if weights is None:  # only new tokens inside their windows: P is zero, q is 1 + extra
            return torch.zeros_like(self.base._matrix), 1.0 + self._own[ctx.step]
        return weights[0] * self._scale, weights[1] + self._own[ctx.step]

    def keeps_own(self, ctx, weights):
        return self.base.keeps_own(ctx, weights)  # Reweight leaves the edit's own part as the base has it

    def windows(self, n_evals):
        return self.base.windows(n_evals)

    def self_weight(self, ctx):
        return self.base.self_weight(ctx)


def _reweight_values(values) -> dict:
    if isinstance(values, list) and all(isinstance(row, list) and len(row) == 2 for row in values):
        values = {word: value for word, value in values}  # words given by position (ints)
    if not isinstance(values, dict) or not all(isinstance(w, str) or is_int(w) for w in values):
        raise P2PError(f"Reweight 'values' must map words of the target to numbers, got {_brief(values)}")
    return values


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ParamRule(EditRule):
    """A rule built from its declared :class:`~p2p_widgets.engine.params.Param` values alone (no
    prompts): ``Rule(**values)`` checks them, ``to_dict`` / ``from_dict`` write and read them, and
    the Studio and sweeps offer them from ``params``. Values are attributes (``rule.start_step``);
    setting one checks it and updates ``values``, so the run and ``to_dict`` agree."""

    def __init__(self, **values):
        self.values = check_values(type(self).params, values, type(self).__name__)
        for name, value in self.values.items():
            setattr(self, name, value)

    def __setattr__(self, name, value):
        # a declared parameter set as an attribute is checked like a constructor argument and
        # written to ``values`` too: the run reads the attribute, to_dict the values, and both
        # must agree or the saved edit reruns differently
        param = next((p for p in type(self).params if p.name == name), None)
        if param is not None:
            value = param.check(value)
            self.values[name] = value
        super().__setattr__(name, value)

    def for_run(self):
        run = super().for_run()
        object.__setattr__(run, "values", dict(self.values))  # a copy's settings never write back
        return run

    def to_dict(self) -> dict:
        plain = {k: list(v) if isinstance(v, tuple) else v for k, v in self.values.items()}
        return {"rule": self.exported_name(), **plain}

    @classmethod
    def from_dict(cls, data, source, target):
        return cls(**{k: v for k, v in data.items() if k != "rule"})

    @classmethod
    def check_data(cls, data):
        check_values(cls.params, {k: v for k, v in data.items() if k != "rule"}, cls.__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.values.items())})"


@register_rule
class Combine(EditRule):
    """Several rules on one edited prompt, e.g. a P2P word swap with MasaCtrl's mutual self-attention.

    Cross-attention: at most one part may give cross weights at a layer (they do not add up).
    Self-attention: shares add up (at most 1); ``self_qkv`` hooks apply in order, each on the
    previous one's result; the first ``self_output`` given wins. Features and latents: in order.
    The parts' ``branches`` are kept: a part that edits only the conditional half is not asked in
    the unconditional one.
    """

    label = "Combined rules"

    def __init__(self, *rules):
        if len(rules) < 2 or not all(isinstance(r, EditRule) for r in rules):
            raise P2PError("Combine takes two or more EditRule objects")
        self.depth = 1 + max(r.depth if isinstance(r, Combine) else 0 for r in rules)
        if self.depth > MAX_COMBINE_DEPTH:
            raise P2PError(f"Combines nest {self.depth} deep: rules nest at most {MAX_COMBINE_DEPTH} Combines deep")
        self.rules = list(rules)
        self.explicit_only = any(r.explicit_only for r in rules)
        self.follows_inversion = any(r.follows_inversion for r in rules)
        self.branches = "both" if any(r.branches == "both" for r in rules) else "cond"

    def parts(self, ctx) -> list[EditRule]:
        """The parts that edit the half ``ctx.block`` ("cond" or "uncond")."""
        return [r for r in self.rules if ctx.block == "cond" or r.branches == "both"]

    def to_dict(self) -> dict:
        return {"rule": self.exported_name(), "rules": [r.to_dict() for r in self.rules]}

    @classmethod
    def check_data(cls, data):
        parts = data.get("rules")
        if not isinstance(parts, list) or len(parts) < 2:
            raise P2PError(f"Combine 'rules' must be a list of two or more rules, got {_brief(parts)}")
        for k, part in enumerate(parts):
            try:
                check_rule_data(part)
            except P2PError as exc:
                raise P2PError(f"Combine part {k}: {exc}") from None

    @classmethod
    def from_dict(cls, data, source, target):
        parts = data.get("rules")
        if not isinstance(parts, list):
            raise P2PError(f"Combine 'rules' must be a list of rules, got {_brief(parts)}")
        return cls(*(rule_from_dict(part, source, target) for part in parts))

    def children(self) -> tuple:
        return tuple(self.rules)

    def for_run(self):
        run = super().for_run()
        run.rules = [r.for_run() for r in self.rules]
        return run

    def check_run(self, n_evals):
        for r in self.rules:
            r.check_run(n_evals)

    def prepare(self, device, dtype):
        for r in self.rules:
            r.prepare(device, dtype)

    def on_sites(self, sites):
        for r in self.rules:
            r.on_sites(sites)

    def _cross_part(self, ctx):
        found = [(r, w) for r in self.parts(ctx) if (w := r.cross_weights(ctx)) is not None]
        if len(found) > 1:
            names = ", ".join(type(r).__name__ for r, _ in found)
            raise P2PError(f"Combine: {names} all give cross-attention weights at {ctx.layer}, step {ctx.step}")
        return found[0] if found else (None, None)

    def cross_weights(self, ctx):
        return self._cross_part(ctx)[1]

    def keeps_own(self, ctx, weights):
        rule, _ = self._cross_part(ctx)
        return rule.keeps_own(ctx, weights)

    def edit_cross(self, ctx, a_src, a_edit):
        for r in self.parts(ctx):
            a_edit = r.edit_cross(ctx, a_src, a_edit)
        return a_edit

    def self_weight(self, ctx):
        return min(1.0, sum(float(r.self_weight(ctx)) for r in self.parts(ctx)))

    def self_qkv(self, ctx, src, edit):
        changed = None
        for r in self.parts(ctx):
            out = r.self_qkv(ctx, src, changed or edit)
            changed = out if out is not None else changed
        return changed

    def joint_kv(self, ctx):
        asked = [kv for kv in (r.joint_kv(ctx) for r in self.parts(ctx)) if kv is not None]
        return tuple(any(flags) for flags in zip(*asked)) if asked else None

    def self_output(self, ctx, src, edit, attend, maps):
        for r in self.parts(ctx):
            out = r.self_output(ctx, src, edit, attend, maps)
            if out is not None:
                return out
        return None

    def bind(self, source, target):
        for r in self.rules:
            r.bind(source, target)

    def feature_modules(self):
        return tuple(dict.fromkeys(name for r in self.rules for name in r.feature_modules()))

    def edit_feature(self, ctx, name, src, edit):
        changed = None
        for r in self.parts(ctx):
            if name in r.feature_modules():
                out = r.edit_feature(ctx, name, src, edit if changed is None else changed)
                changed = out if out is not None else changed
        return changed

    def input_modules(self):
        return tuple(dict.fromkeys(entry for r in self.rules for entry in r.input_modules()))

    def edit_from_inputs(self, ctx, name, module, src, edit):
        # each part computes the output from the inputs: the first that answers gives it
        for r in self.parts(ctx):
            if lists_module(r.input_modules(), name, module):
                out = r.edit_from_inputs(ctx, name, module, src, edit)
                if out is not None:
                    return out
        return None

    def edit_latents(self, step, n_evals, src, edit):
        changed = None
        for r in self.rules:
            out = r.edit_latents(step, n_evals, src, edit if changed is None else changed)
            changed = out if out is not None else changed
        return changed

    def windows(self, n_evals):
        return [w for r in self.rules for w in r.windows(n_evals)]


def lists_module(entries, name: str, module) -> bool:
    """Whether ``input_modules()`` entries (module names or module classes) name this module."""
    return any(e == name if isinstance(e, str) else isinstance(module, e) for e in entries)
