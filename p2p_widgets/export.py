"""Export and re-run edits: an edit as JSON that reruns to the same image.

>>> from p2p_widgets.export import spec_to_json, spec_from_json, edit_from_spec
>>> text = spec_to_json(result)              # result.spec of an EditResult, as JSON text
>>> again = edit_from_spec(editor, spec_from_json(text))
>>> torch.equal(again.latents, result.latents)   # True on the same device and dtype

The JSON holds everything :meth:`Editor.edit` needs to repeat the run: prompts (source first),
seed, steps, guidance, image size, attention path (``mode``), and per edited prompt its rule
with the mapper matrix M as (source position, target position, weight) links, the alpha schedule
as integer windows over the UNet evaluations, reweighting values, plus LocalBlend settings.
An edit of a real image records its inversion (``"inversion"``: method, prompt, steps, image
hash, ...) and reruns only with that inversion: ``save_edit(result, "edit.json", inversion)``
writes the JSON and the inversion beside it (``edit.inversion.json`` + ``.safetensors``), and
``load_edit(editor, "edit.json")`` reruns it. Other runs from custom latents cannot be exported.

Everything read from JSON is validated; a malformed document raises
:class:`~p2p_widgets.errors.P2PError` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from .errors import P2PError

FORMAT = "p2p_widgets.edit"
VERSION = 1
RULES = ("Replace", "Refine", "Reweight")
MODES = ("fast", "explicit")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _plain(obj):
    """Tuples -> lists, recursively (so the JSON is stable and comparable)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def spec_to_dict(spec_or_result) -> dict:
    """The exportable dict of an :class:`EditResult` (or of its ``spec``), validated."""
    spec = getattr(spec_or_result, "spec", spec_or_result)
    if not isinstance(spec, dict):
        raise P2PError(f"expected an EditResult or its spec dict, got {type(spec_or_result).__name__}")
    rest = {k: v for k, v in _plain(spec).items() if k not in ("format", "version")}
    out = {"format": FORMAT, "version": VERSION, **rest}
    return validate_spec(out)


def spec_to_json(spec_or_result, indent: int | None = 1) -> str:
    """The edit as JSON text (see the module docstring)."""
    return json.dumps(spec_to_dict(spec_or_result), indent=indent)


def spec_from_json(text: str | bytes) -> dict:
    """Parse and validate exported JSON."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    if not isinstance(text, str):
        raise P2PError(f"expected JSON text, got {type(text).__name__}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise P2PError(f"not valid JSON: {exc}") from None
    return validate_spec(data)


def validate_spec(spec: Any) -> dict:
    """Check an edit spec's structure and types; returns it (lists, not tuples)."""
    if not isinstance(spec, dict):
        raise P2PError(f"an edit spec is a JSON object, got {type(spec).__name__}")
    spec = _plain(spec)
    if spec.get("format", FORMAT) != FORMAT:
        raise P2PError(f"'format' must be {FORMAT!r}, got {spec.get('format')!r}")
    if spec.get("version", VERSION) != VERSION:
        raise P2PError(f"unsupported spec version {spec.get('version')!r} (this is version {VERSION})")
    prompts = spec.get("prompts")
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise P2PError("'prompts' must be a non-empty list of strings (source first)")
    if not prompts[0].strip():
        raise P2PError("the source prompt is empty")
    start = spec.get("start", "seed")
    if start != "seed" and not (start == "latents" and isinstance(spec.get("inversion"), dict)):
        raise P2PError("this edit started from given latents, not from its seed or an inversion: "
                       "a rerun from the JSON would give a different image")
    if not _is_int(spec.get("seed")) or not 0 <= spec["seed"] < 2**63:
        raise P2PError(f"'seed' must be an integer in [0, 2**63), got {spec.get('seed')!r}")
    if not _is_int(spec.get("steps")) or not 1 <= spec["steps"] <= 1000:
        raise P2PError(f"'steps' must be an integer in [1, 1000], got {spec.get('steps')!r}")
    if not _is_number(spec.get("guidance")) or spec["guidance"] < 0:
        raise P2PError(f"'guidance' must be a finite number >= 0, got {spec.get('guidance')!r}")
    size = spec.get("size")
    if size is not None and (
        not isinstance(size, list) or len(size) != 2 or not all(_is_int(v) and v > 0 for v in size)
    ):
        raise P2PError(f"'size' must be [height, width], got {size!r}")
    mode = spec.get("mode", "fast")
    if mode not in MODES:
        raise P2PError(f"'mode' must be one of {', '.join(MODES)}, got {mode!r}")
    rules = spec.get("rules", [])
    if not isinstance(rules, list) or len(rules) != len(prompts) - 1:
        raise P2PError(f"'rules' must be a list with one rule per edited prompt ({len(prompts) - 1})")
    for k, rule in enumerate(rules):
        _check_rule(rule, k, prompts[0], prompts[k + 1])
    blend = spec.get("blend")
    if blend is not None:
        if not isinstance(blend, dict) or "words" not in blend:
            raise P2PError("'blend' must be null or an object with 'words'")
        threshold = blend.get("threshold", 0.3)
        if not _is_number(threshold) or not 0 < threshold < 1:
            raise P2PError(f"blend threshold must be in (0, 1), got {threshold!r}")
        start = blend.get("start", 0.2)
        if not _is_number(start) or start < 0:
            raise P2PError(f"blend start must be a step or a fraction, got {start!r}")
    return spec


def _check_rule(rule, k, source, target):
    where = f"rule {k}"
    if not isinstance(rule, dict):
        raise P2PError(f"{where} must be an object")
    name = rule.get("rule")
    if name not in RULES:
        raise P2PError(f"{where}: only {', '.join(RULES)} rules can be rebuilt from JSON, got {name!r}")
    mapper = rule.get("mapper")
    if not isinstance(mapper, dict) or not isinstance(mapper.get("links"), list):
        raise P2PError(f"{where} needs a 'mapper' with 'links'")
    if mapper.get("source", source) != source or mapper.get("target", target) != target:
        raise P2PError(f"{where}: its mapper is for {mapper.get('source')!r} -> {mapper.get('target')!r}, "
                       f"not {source!r} -> {target!r}")
    for link in mapper["links"]:
        if (not isinstance(link, list) or len(link) != 3 or not _is_int(link[0]) or not _is_int(link[1])
                or not _is_number(link[2])):
            raise P2PError(f"{where}: a link is [source position, target position, weight], got {link!r}")
    schedule = rule.get("schedule")
    if not isinstance(schedule, dict) or not _is_int(schedule.get("n_evals")):
        raise P2PError(f"{where} needs a 'schedule' with 'n_evals'")
    if name == "Reweight":
        values = rule.get("values")
        if not isinstance(values, dict) or not values or not all(_is_number(v) for v in values.values()):
            raise P2PError(f"{where}: 'values' must map words to numbers")


def rules_from_spec(editor, spec: dict):
    """``(prompts, rules, blend)`` rebuilt from a validated spec for ``editor``."""
    from .mapper import Mapper
    from .rules import LocalBlend, Refine, Replace, Reweight
    from .schedule import AlphaSchedule

    spec = validate_spec(spec)
    prompts = [editor.prompt(text) for text in spec["prompts"]]
    rules = []
    for data, target in zip(spec["rules"], prompts[1:], strict=True):
        links = [(int(i), int(j), float(w)) for i, j, w in data["mapper"]["links"]]
        mapper = Mapper.from_links(prompts[0], target, links, include_special=False)
        kind = data["mapper"].get("kind")
        if kind in ("replace", "refine", "links"):  # keep the exported kind, so a re-export is identical
            mapper = dataclasses.replace(mapper, kind=kind)
        schedule = AlphaSchedule.from_dict(data["schedule"])
        rule = (Refine if data["rule"] == "Refine" else Replace)(mapper, schedule)
        if data["rule"] == "Reweight":
            rule = Reweight(rule, data["values"])
        rules.append(rule)
    blend = None
    if spec.get("blend") is not None:
        b = spec["blend"]
        blend = LocalBlend(b["words"], threshold=b.get("threshold", 0.3), start=b.get("start", 0.2),
                           subtract=b.get("subtract"))
    return prompts, rules, blend


def check_inversion(spec: dict, inversion) -> None:
    """Raise a :class:`P2PError` unless ``inversion`` is the one the spec's edit started from."""
    want = spec.get("inversion")
    if want is None:
        raise P2PError("this edit started from a seed, not from an inversion")
    have = inversion.describe()
    for key in ("image_sha256", "method", "prompt", "steps", "guidance", "timesteps", "options"):
        if want.get(key) != have.get(key):
            raise P2PError(f"the inversion's {key} is {have.get(key)!r} but the edit was made from one with "
                           f"{want.get(key)!r}")


def edit_kwargs_from_spec(editor, spec: dict, inversion=None) -> dict:
    """Arguments for ``editor.edit(**kwargs)`` that repeat the exported run (``inversion``: the
    :class:`~p2p_widgets.inversion.Inversion` an edit of a real image started from)."""
    prompts, rules, blend = rules_from_spec(editor, spec)
    kwargs = dict(source=prompts[0], targets=prompts[1:], seed=spec["seed"], steps=spec["steps"],
                  guidance=float(spec["guidance"]), rules=rules, blend=blend, mode=spec.get("mode", "fast"))
    if spec.get("start", "seed") != "seed":
        if inversion is None:
            raise P2PError("this edit started from an inverted image: pass its inversion (see load_edit)")
        check_inversion(spec, inversion)
        kwargs["inversion"] = inversion
    elif inversion is not None:
        raise P2PError("this edit started from a seed, not from an inversion")
    if spec.get("size"):
        kwargs["height"], kwargs["width"] = spec["size"]
    return kwargs


def edit_from_spec(editor, spec: dict | str, inversion=None, **overrides):
    """Re-run an exported edit (a spec dict or its JSON text) on ``editor``; ``inversion`` for an
    edit of a real image; ``overrides`` go to :meth:`Editor.edit` (e.g. ``callback``, ``baseline``)."""
    if isinstance(spec, (str, bytes, bytearray)):
        spec = spec_from_json(spec)
    kwargs = edit_kwargs_from_spec(editor, spec, inversion)
    kwargs.update(overrides)
    source, targets = kwargs.pop("source"), kwargs.pop("targets")
    return editor.edit(source, targets, **kwargs)


def _inversion_prefix(path: Path) -> Path:
    return path.with_name(path.stem + ".inversion")


def save_edit(result, path, inversion=None) -> list[Path]:
    """Write an edit's JSON to ``path``; an edit of a real image needs its ``inversion``, written
    beside it (``<stem>.inversion.json`` and ``.safetensors``). Returns the files written."""
    path = Path(path)
    spec = spec_to_dict(result)
    if spec.get("start", "seed") != "seed":
        if inversion is None:
            raise P2PError("this edit started from an inverted image: pass its inversion to save it beside the JSON")
        check_inversion(spec, inversion)
    elif inversion is not None:
        raise P2PError("this edit started from a seed, not from an inversion")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = list(inversion.save(_inversion_prefix(path))) if inversion is not None else []
    path.write_text(spec_to_json(spec))
    return [path, *written]


def load_edit(editor, path, **overrides):
    """Re-run an edit written by :func:`save_edit` (with its inversion, when it has one)."""
    path = Path(path)
    if not path.exists():
        raise P2PError(f"no edit file at {path}")
    spec = spec_from_json(path.read_text())
    inversion = None
    if spec.get("start", "seed") != "seed":
        from .inversion import Inversion

        inversion = Inversion.load(_inversion_prefix(path))
    return edit_from_spec(editor, spec, inversion, **overrides)
