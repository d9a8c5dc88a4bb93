"""Loading an exported edit into the Studio's controls (``Studio.load_json``): what the Studio can
show of a spec, the settings loading changes, and putting them back when a control refuses a value
half-way."""

from __future__ import annotations

import traitlets

from ...engine import schedulers
from ...engine.images import pixels_hash
from ...engine.inversion.record import method_problem, solver_scheduler
from ...engine.rules import Refine
from ...engine.schedule import AlphaSchedule, to_step
from ...engine.spec import EditSpec
from ...errors import P2PError
from .methods import P2P
from .rules import method_not_shown, not_shown, p2p_base, panel_blend_words, split_rule

# the panel's settings an edit loads, in an order each is valid in (combine_p2p after the method)
_LOADED = (
    "invert_method",
    "source",
    "target",
    "scheduler",
    "steps",
    "seed",
    "guidance",
    "method",
    "method_values",
    "combine_p2p",
    "kind",
    "reweight",
    "blend_words",
    "blend_threshold",
    "windows",
)


def load_json(studio, spec) -> None:
    """Load an exported edit (JSON text, dict or EditSpec) into the controls; Run reruns it exactly.
    Its rule may be P2P's, a registered rule with declared parameters, or Combine(P2P's, that rule)."""
    if studio.running:
        raise P2PError("cannot load while a run is in progress")
    spec = as_spec(spec)
    p2p, method, blend_words = check_loadable(studio, spec)
    source, target = spec.prompts
    base = p2p_base(p2p)
    full = [] if base is None else [[int(i), int(j), float(w)] for i, j, w in base.mapper.links]
    src, tgt = studio.panel.prompt(source), studio.panel.prompt(target)  # raise on bad prompts
    real_src, real_tgt = set(src.token_positions), set(tgt.token_positions)  # not padding (SD3: in each segment)
    real = sorted([i, j, w] for i, j, w in full if i in real_src and j in real_tgt)
    saved = settings(studio)
    try:
        apply(studio, spec, p2p, method, blend_words)
    except traitlets.TraitError as exc:  # a control refused a value half-way: put every setting back
        restore(studio, saved)
        raise P2PError(f"the Studio cannot show this edit: {exc}; rerun it with p2p_widgets.edit_from_spec") from None
    if spec.inversion is None and studio._image is not None:
        studio.clear_image()  # the edit starts from its seed
    if studio.aligner is not None and base is not None:
        studio.aligner.links = real
    if studio.timeline is not None:
        studio.timeline.schedule = AlphaSchedule.from_windows(studio.panel.n_evals, studio.panel.windows)
    studio._pinned = None
    if base is not None:
        studio._pinned = {
            "source": source,
            "target": target,
            "links": [list(x) for x in studio.aligner.links] if studio.aligner is not None else None,
            "full_links": [tuple(x) for x in full],
        }


def check_loadable(studio, spec: EditSpec):
    """The spec's (P2P part, method part, the panel's LocalBlend words), or a P2PError saying
    what the Studio cannot show."""
    if len(spec.prompts) != 2:
        raise P2PError(
            f"the Studio edits one target; this spec has {len(spec.prompts) - 1} (use p2p_widgets.edit_from_spec)"
        )
    if spec.size and list(spec.size) != [studio.editor.default_size] * 2:
        raise P2PError(
            f"this spec is for {spec.size[0]}x{spec.size[1]} images; the Studio's model makes "
            f"{studio.editor.default_size}x{studio.editor.default_size}"
        )
    if spec.mode != "fast":
        raise P2PError("the Studio runs the fast path; use edit_from_spec for mode 'explicit'")
    if spec.inversion is not None and (
        studio._image is None or pixels_hash(studio._image) != spec.inversion.get("image_sha256")
    ):
        raise P2PError(
            "this edit is of a real image: load that image into the Studio first "
            "(its file button or set_image), then the JSON"
        )
    model = studio.editor.model
    problem = spec.inversion and method_problem(spec.inversion.get("method"), model.family, model.inversion_family)
    if problem:  # e.g. a UNet's DDIM inversion on a flow model
        raise P2PError(f"this edit's inversion cannot run here: {problem}")
    scheduler = schedulers.of_spec(spec, studio.editor.pipe.scheduler.config)
    if spec.inversion is not None and scheduler is None:  # a flow inversion samples back with its own solver
        scheduler = solver_scheduler(studio.editor.model, spec.inversion["method"])
    studio.editor.check_recorded_scheduler(spec, scheduler)  # e.g. a flow model's record on a UNet
    (rule,) = spec.build_rules(studio.editor)
    p2p, method = split_rule(rule)
    base = p2p_base(p2p)
    n_evals = studio.editor.count_evals(spec.steps, scheduler)
    if base is not None and base.schedule.n_evals != n_evals:
        raise P2PError(f"the schedule has {base.schedule.n_evals} evaluations but the spec's run has {n_evals}")
    blend = spec.build_blend()
    prompts = [studio.panel.prompt(text) for text in spec.prompts] if blend is not None else []
    blend_words = panel_blend_words(blend, prompts)
    shown = ", ".join(x for x in (not_shown(spec, p2p, base, blend_words), method_not_shown(studio.panel, method)) if x)
    if shown:
        raise P2PError(f"the Studio cannot show {shown}; rerun it with p2p_widgets.edit_from_spec")
    return p2p, method, blend_words


def settings(studio) -> dict:
    """What loading an edit changes, to put back where a control refuses a value half-way."""
    return {
        "panel": {k: getattr(studio.panel, k) for k in _LOADED},
        "kept_values": studio.panel.kept_values(),  # each method's last values
        "scheduler": studio._loaded_scheduler,
        "links": None if studio.aligner is None else [list(x) for x in studio.aligner.links],
        "windows": None if studio.timeline is None else studio.timeline.windows,
    }


def restore(studio, saved: dict) -> None:
    panel = studio.panel
    with panel.hold_sync():
        panel.combine_p2p = False  # first, as in apply: the method's values are checked against it
        for key in _LOADED:
            setattr(panel, key, saved["panel"][key])
    panel.restore_kept_values(saved["kept_values"])
    studio._loaded_scheduler = saved["scheduler"]
    if saved["links"] is not None:
        studio.aligner.links = saved["links"]
    if saved["windows"] is not None:
        studio.timeline.windows = saved["windows"]


def apply(studio, spec: EditSpec, p2p, method, blend_words: list[str]) -> None:
    panel, base, blend = studio.panel, p2p_base(p2p), spec.build_blend()
    with panel.hold_sync():
        panel.clear_error()
        if spec.inversion is not None:  # first: an empty source prompt is allowed with an image only
            panel.invert_method = spec.inversion["method"]
        panel.source, panel.target = spec.prompts
        studio._loaded_scheduler = (spec.scheduler, spec.scheduler_config) if spec.scheduler_config else None
        panel.scheduler = spec.scheduler
        panel.steps = spec.steps
        panel.seed, panel.guidance = spec.seed, spec.guidance
        panel.combine_p2p = False  # first: the values are checked against it
        panel.method = P2P if method is None else type(method).rule_name
        panel.method_values = {} if method is None else {k: v for k, v in method.to_dict().items() if k != "rule"}
        panel.combine_p2p = method is not None and p2p is not None
        if base is not None:
            panel.kind = "refine" if isinstance(base, Refine) else "auto"
            panel.reweight = dict(getattr(p2p, "values", {}))
        panel.blend_words = blend_words
        if blend:
            panel.blend_threshold = blend.threshold
        panel.windows = loaded_windows(panel, base, blend)


def loaded_windows(panel, base, blend) -> dict:
    """The windows a loaded edit ran with (the panel's own where it has no P2P part)."""
    n_evals = panel.n_evals
    windows = base.schedule.to_windows() if base is not None else dict(panel.windows)
    if blend is not None:  # LocalBlend's own start is what the run used (the schedule's is not read)
        windows["blend_start"] = to_step(blend.start, n_evals, "LocalBlend start")
    return windows


def as_spec(spec) -> EditSpec:
    if isinstance(spec, EditSpec):
        return spec
    if isinstance(spec, dict):
        return EditSpec.from_dict(spec)
    return EditSpec.from_json(spec)
