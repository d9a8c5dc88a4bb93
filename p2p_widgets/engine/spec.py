"""EditSpec: the one description of an edit that the sampler, the JSON files, the Studio and the CLI
exchange.

>>> spec = EditSpec.from_json(text)            # or result.spec of an EditResult
>>> result = editor.run(spec)                  # the same edit again (bitwise on the same device)
>>> spec.to_json() == text

A spec holds plain data only: prompts (source first), seed or an inversion reference, steps,
guidance, image size, attention path (``mode``), one rule per edited prompt as the rule writes
itself (``{"rule": name, ...}``, see :func:`~p2p_widgets.engine.rules.register_rule`) and the
LocalBlend settings. ``build(model)`` turns it into prompts, rule objects and a LocalBlend.

JSON versions: version 2 nests a Reweight's base rule (``{"rule": "Reweight", "base": {...},
"values": {...}}``) and records every LocalBlend setting; version 1 files (written before
EditSpec) load and rerun as they did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import P2PError, check_int, check_nesting, is_int, is_number
from . import controls  # noqa: F401  (registers the built-in methods beyond P2P, so JSON naming them loads)
from .blend import LocalBlend
from .rules import EditRule, rule_class, rule_from_dict
from .schedulers import DDIM, MODEL_OWN, SCHEDULERS
from .schedulers import build as build_scheduler

FORMAT = "p2p_widgets.edit"
VERSION = 2
MODES = ("fast", "explicit")
STARTS = ("seed", "latents")
FIELDS = (
    "format",
    "version",
    "prompts",
    "seed",
    "start",
    "steps",
    "guidance",
    "size",
    "mode",
    "rules",
    "blend",
    "inversion",
    "scheduler",
    "scheduler_config",
    "model",
)  # what a spec JSON may hold
MAX_JSON_CHARS = 20_000_000
MAX_JSON_DEPTH = 64  # deeper than any spec: refused before json.loads recurses
MAX_TRAIN_TIMESTEPS = 100_000  # a scheduler's training steps (SD: 1000); its tables are this long


@dataclass(frozen=True)
class EditSpec:
    """One edit (see the module docstring). Construction validates every field and names the bad one."""

    prompts: tuple[str, ...]
    rules: tuple[dict, ...] = ()
    seed: int = 0
    steps: int = 50
    guidance: float = 7.5
    size: tuple[int, int] | None = None
    mode: str = "fast"
    blend: dict | None = None
    start: str = "seed"  # "seed", or "latents" given to the run (an inversion's when ``inversion`` is set)
    inversion: dict | None = None  # the inversion's describe(), for edits of real images
    scheduler: str = DDIM  # the diffusers scheduler class the edit samples with
    scheduler_config: dict | None = None  # its config; None: built from the pipeline's scheduler config
    model: str | None = None  # which model the edit is for, as the user named it (the CLI's --model)
    # DDIMScheduler without a config is "the model's own": DDIM on a UNet, flow-matching Euler on SD3 /
    # Flux, a flow inversion's solver. A run records here the one that sampled where that is not DDIM
    # (a name of schedulers.MODEL_OWN), and the JSON's "scheduler" names it: the record says what ran.
    # None when the edit names a scheduler, or before it runs.
    sampled_with: str | None = None

    def __post_init__(self):
        self._check_prompts_and_rules()
        self._check_run_settings()
        self._check_scheduler()
        if self.model is not None and not isinstance(self.model, str):
            raise P2PError(f"model must be null or a model name, got {self.model!r}")
        if self.inversion is not None and not isinstance(self.inversion, dict):
            raise P2PError("'inversion' must be null or the inversion's description (an object)")
        normal = dict(
            prompts=tuple(self.prompts),
            rules=tuple(self.rules),
            seed=int(self.seed),
            steps=int(self.steps),
            guidance=float(self.guidance),
            size=None if self.size is None else tuple(map(int, self.size)),
        )
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    def _check_prompts_and_rules(self):
        prompts = self.prompts
        if (
            isinstance(prompts, str)
            or not isinstance(prompts, (list, tuple))
            or not prompts
            or not all(isinstance(p, str) for p in prompts)
        ):
            raise P2PError("prompts must be a non-empty list of strings (source first)")
        if not prompts[0].strip() and self.start == "seed":
            raise P2PError("the source prompt is empty")
        for name in ("rules", "blend", "inversion", "scheduler_config"):
            check_nesting(f"'{name}'", getattr(self, name), MAX_JSON_DEPTH)
        rules = self.rules
        if not isinstance(rules, (list, tuple)) or len(rules) != len(prompts) - 1:
            raise P2PError(f"rules must be a list with one rule per edited prompt ({len(prompts) - 1})")
        for k, rule in enumerate(rules):
            if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
                raise P2PError(f"rule {k} must be an object with a 'rule' name")

    def _check_run_settings(self):
        if not is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise P2PError(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        check_int("steps", self.steps, 1, 1000)
        if not is_number(self.guidance) or self.guidance < 0:
            raise P2PError(f"guidance must be a finite number >= 0, got {self.guidance!r}")
        if self.size is not None and (
            not isinstance(self.size, (list, tuple))
            or len(self.size) != 2
            or not all(is_int(v) and v > 0 for v in self.size)
        ):
            raise P2PError(f"size must be [height, width], got {self.size!r}")
        if self.mode not in MODES:
            raise P2PError(f"mode must be 'fast' or 'explicit', got {self.mode!r}")
        if self.start not in STARTS:
            raise P2PError(f"start must be one of {', '.join(STARTS)}, got {self.start!r}")
        if self.blend is not None:
            LocalBlend.from_dict(self.blend)  # validates; the spec keeps the plain data

    def _check_scheduler(self):
        if not isinstance(self.scheduler, str):
            raise P2PError(f"scheduler must be a scheduler class name, got {self.scheduler!r}")
        if self.scheduler_config is not None and not isinstance(self.scheduler_config, dict):
            raise P2PError(f"scheduler_config must be null or an object, got {self.scheduler_config!r}")
        if self.scheduler_config is not None:
            _check_scheduler_config(self.scheduler, self.scheduler_config)
        if self.scheduler != DDIM or self.scheduler_config is not None:
            object.__setattr__(self, "sampled_with", None)  # it describes the model's own scheduler only
        if self.sampled_with is not None and self.sampled_with not in MODEL_OWN:
            raise P2PError(
                f"sampled_with must be null or one of {', '.join(MODEL_OWN)} (a flow model's own scheduler), "
                f"got {self.sampled_with!r}"
            )

    # -- views ---------------------------------------------------------------------------------------
    @property
    def source(self) -> str:
        return self.prompts[0]

    @property
    def targets(self) -> tuple[str, ...]:
        return self.prompts[1:]

    @property
    def reruns(self) -> bool:
        """Does the spec alone (with its inversion, when it has one) repeat the run?"""
        return self.start == "seed" or self.inversion is not None

    def replace(self, **changes) -> EditSpec:
        """A copy with some fields changed (validated again)."""
        return EditSpec(**{**asdict(self), **changes})

    # -- engine objects ------------------------------------------------------------------------------
    def build(self, model):
        """``(prompts, rules, blend)`` for ``model`` (an Editor): Prompt objects, one rule object per
        edited prompt, and a LocalBlend or None. Raises a P2PError naming the rule at fault."""
        prompts = [model.prompt(text) for text in self.prompts]
        return prompts, self.build_rules(model, prompts), self.build_blend()

    def build_rules(self, model, prompts=None) -> list[EditRule]:
        prompts = prompts or [model.prompt(text) for text in self.prompts]
        rules = []
        for k, (data, target) in enumerate(zip(self.rules, prompts[1:])):
            try:
                rules.append(rule_from_dict(data, prompts[0], target))
            except P2PError as exc:
                raise P2PError(f"rule {k}: {exc}") from None
        return rules

    def build_blend(self) -> LocalBlend | None:
        return None if self.blend is None else LocalBlend.from_dict(self.blend)

    # -- JSON ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The exportable JSON object; a P2PError names what cannot be exported."""
        if not self.reruns:
            raise P2PError(
                "this edit started from given latents, not from its seed or an inversion: "
                "a rerun from the JSON would give a different image"
            )
        _check_scheduler_name(self.scheduler)
        for k, rule in enumerate(self.rules):
            if rule.get("unregistered"):
                raise P2PError(
                    f"rule {k} ({rule['rule']}) is not registered: decorate its class with "
                    "@p2p_widgets.register_rule and give it to_dict / from_dict to export edits using it"
                )
            try:
                rule_class(rule["rule"])
            except P2PError as exc:
                raise P2PError(f"rule {k} cannot be exported: {exc}") from None
        data = {
            "format": FORMAT,
            "version": VERSION,
            "prompts": list(self.prompts),
            "seed": self.seed,
            "start": self.start,
            "steps": self.steps,
            "guidance": self.guidance,
            "size": None if self.size is None else list(self.size),
            "mode": self.mode,
            "rules": [_plain(r) for r in self.rules],
            "blend": _plain(self.blend),
            "scheduler": self.sampled_with or self.scheduler,  # what ran, where the run recorded it
        }
        if self.inversion is not None:
            data["inversion"] = _plain(self.inversion)
        if self.scheduler_config is not None:
            data["scheduler_config"] = _plain(self.scheduler_config)
        if self.model is not None:
            data["model"] = self.model
        return data

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> EditSpec:
        """A spec from its JSON object (version 1 or 2), validated; unknown rule names are refused."""
        if not isinstance(data, dict):
            raise P2PError(f"an edit spec is a JSON object, got {type(data).__name__}")
        check_nesting("the edit spec", data, MAX_JSON_DEPTH)
        if data.get("format", FORMAT) != FORMAT:
            raise P2PError(f"'format' must be {FORMAT!r}, got {data.get('format')!r}")
        version = data.get("version", VERSION)
        if version not in (1, VERSION):
            raise P2PError(f"unsupported spec version {version!r} (this code reads versions 1 and {VERSION})")
        rules = data.get("rules", [])
        if version == 1 and isinstance(rules, list):
            rules = [_rule_from_v1(r) for r in rules]
        if isinstance(rules, list):
            for k, rule in enumerate(rules):
                if isinstance(rule, dict):
                    try:
                        rule_class(rule.get("rule"))
                    except P2PError as exc:
                        raise P2PError(f"rule {k}: {exc}") from None
        start = data.get("start", "seed")
        if start == "latents" and not isinstance(data.get("inversion"), dict):
            raise P2PError(
                "this edit started from given latents, not from its seed or an inversion: "
                "a rerun from the JSON would give a different image"
            )
        unknown = sorted(set(map(str, data)) - set(FIELDS))
        if unknown:
            raise P2PError(f"unknown field(s) in the edit spec: {', '.join(unknown)}")
        for name in ("prompts", "seed", "steps", "guidance"):
            if name not in data:
                raise P2PError(f"the edit spec has no {name!r}")
        scheduler, sampled_with = data.get("scheduler", DDIM), None
        if scheduler in MODEL_OWN:  # a flow model's own, as its run recorded it: the model's own again
            if data.get("scheduler_config") is not None:
                raise P2PError(
                    f"scheduler {scheduler} comes with a scheduler_config: a record names {scheduler} only as "
                    "the model's own scheduler, where the edit named none, and reruns with the model's own "
                    "config (drop scheduler_config); an edit that named it with a config of its own does not "
                    f"rerun from JSON (pass the scheduler to Editor.edit; a JSON's scheduler with a config is one "
                    f"of {', '.join(SCHEDULERS)})"
                )
            scheduler, sampled_with = DDIM, data["scheduler"]
        return cls(
            prompts=data["prompts"],
            rules=rules,
            seed=data["seed"],
            steps=data["steps"],
            guidance=data["guidance"],
            size=data.get("size"),
            mode=data.get("mode", "fast"),
            blend=data.get("blend"),
            start=start,
            inversion=data.get("inversion"),
            scheduler=_check_scheduler_name(scheduler),
            scheduler_config=data.get("scheduler_config"),
            model=data.get("model"),
            sampled_with=sampled_with,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> EditSpec:
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise P2PError(f"the edit file is not UTF-8 text: {exc}") from None
        if not isinstance(text, str):
            raise P2PError(f"expected JSON text, got {type(text).__name__}")
        if len(text) > MAX_JSON_CHARS:
            raise P2PError(f"the edit JSON has {len(text)} characters; an edit spec holds at most {MAX_JSON_CHARS}")
        if _nesting(text) > MAX_JSON_DEPTH:
            raise P2PError(f"the edit JSON nests deeper than {MAX_JSON_DEPTH} levels: not an edit spec")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise P2PError(f"not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _check_scheduler_name(name):
    """``name`` where a JSON builds it (one of SCHEDULERS), else a P2PError."""
    if name not in SCHEDULERS:
        raise P2PError(
            f"scheduler must be one of {', '.join(SCHEDULERS)} to be saved and rerun, got {name!r} "
            f"(a flow model's record may also name its own: {', '.join(MODEL_OWN)})"
        )
    return name


def _check_scheduler_config(name: str, config: dict) -> None:
    """A config the scheduler class ``name`` builds from, or a P2PError naming the setting at fault
    (diffusers itself raises RuntimeError / NotImplementedError / MemoryError on some)."""
    steps = config.get("num_train_timesteps", 1000)
    if not is_int(steps) or not 1 <= steps <= MAX_TRAIN_TIMESTEPS:
        raise P2PError(
            f"scheduler_config: num_train_timesteps must be an integer in [1, {MAX_TRAIN_TIMESTEPS}], got {steps!r}"
        )
    if name not in SCHEDULERS:
        return  # runs but does not export; its class is the caller's
    try:
        build_scheduler(name, config, None)
    except NotImplementedError as exc:
        what = f"beta_schedule {config['beta_schedule']!r}" if "beta_schedule" in config else "a setting"
        raise P2PError(f"scheduler_config: {what} is not one {name} implements ({exc})") from None
    except (RuntimeError, ArithmeticError, KeyError, IndexError) as exc:
        raise P2PError(f"scheduler_config does not build a {name}: {exc}") from None


def _rule_from_v1(rule):
    """Version 1 wrote a Reweight flat (its base's mapper and schedule beside the values)."""
    if isinstance(rule, dict) and rule.get("rule") == "Reweight" and "base" not in rule:
        base = {k: v for k, v in rule.items() if k in ("mapper", "schedule")}
        return {"rule": "Reweight", "base": {"rule": "Replace", **base}, "values": rule.get("values")}
    return rule


def _plain(obj):
    """Tuples -> lists, recursively (so the JSON is stable and comparable)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _nesting(text: str) -> int:
    """Deepest bracket nesting of JSON text, outside strings (cheap; no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
