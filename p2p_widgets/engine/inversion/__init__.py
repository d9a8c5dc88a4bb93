"""Real-image inversion for editing: ``invert(editor, image, prompt, method=...)``.

An :class:`Inversion` holds what :meth:`Editor.edit` needs to start from a real image instead of
a seed: the DDIM trajectory of the image's latents (``latents``: x_0 first, x_T last) and, per
sampling step, the unconditional embedding to use with classifier-free guidance
(``uncond_embeddings``; ``None`` means the usual empty-prompt embedding; SDXL adds the pooled
unconditional text embedding per step, ``uncond_pooled``). Edit with
``editor.edit(inv.prompt, targets, inversion=inv, steps=inv.steps, guidance=inv.guidance)``.

Methods (``method=``):

- ``"ddim"``: DDIM inversion. The image is encoded with the VAE (posterior mean times the
  scaling factor) and the deterministic DDIM update is run backwards (ascending timesteps) with
  the conditional prediction only (guidance 1). Exact enough at guidance 1; at the guidance used
  for editing the regenerated image drifts away from the input.
- ``"null-text"``: null-text inversion (Mokady et al. 2022). Starting from the DDIM trajectory,
  the unconditional embedding of every sampling step is optimised (fp32, Adam, warm-started from
  the previous step's result, early stop) so that the guided DDIM step from the current latent
  lands on the trajectory's next latent; the current latent then advances with the optimised
  guided step. Slow (up to ``inner_steps`` UNet forward and backward passes per step) but
  reconstructs the image closely at the editing guidance.
- ``"negative-prompt"``: negative-prompt inversion (Miyake et al. 2023), no optimisation. The
  DDIM trajectory plus the prompt's own conditional embedding as the unconditional one at every
  step, so guidance cancels on the source branch and it regenerates like the guidance-1 DDIM
  path. As fast as ``"ddim"``.

On flow models (SD3, Flux: ``model.inversion_family == "flow"``) the methods are ODE solvers run
from the picture to noise on the model's own sigmas (see :mod:`.flow`): ``"euler"``,
``"rf-solver"`` (second order, two model calls a step) and ``"fireflow"`` (midpoint reusing the
last velocity, one call a step). The guidance is the edit's (a model input on Flux dev, true CFG
above 1 otherwise); there are no per-step embeddings, and an edit from the inversion samples
back with the same solver (:func:`solver_scheduler`).

Which methods a model takes: :func:`methods_of` ``(model.inversion_family)``, best first (the
Studio's menu), :data:`FAMILY_DEFAULTS` and :data:`LABELS`; :func:`method_problem` says why one
does not run on a model.

Images (PIL, numpy or a file path) are converted to RGB, cropped and resized to the model's size
(see :func:`load_image`). Results are cached in memory per model (LRU of ``CACHE_SIZE`` entries)
under (hash of the prepared pixels, prompt, method, steps, guidance, options, the DDIM
scheduler config, model id).
``Inversion.save(prefix)`` writes ``prefix.json`` (metadata) and ``prefix.safetensors``
(latents, embeddings, prepared image); :meth:`Inversion.load` reads them back.
"""

from __future__ import annotations

import json
import time
import weakref
from collections import OrderedDict

import torch

from ...errors import P2PError, check_int, check_run_callbacks, is_int, is_number
from .. import schedulers
from ..images import load_image, pixels_hash
from .ddim import NULL_TEXT_DEFAULTS, InversionStep, _Stopped, ddim_scheduler, ddim_trajectory, null_text_optimisation
from .flow import FLOW_METHODS, flow_trajectory
from .record import (
    EMPTY_PROMPT_METHODS,
    FAMILY_DEFAULTS,
    FAMILY_METHODS,
    LABELS,
    METHODS,
    Inversion,
    check_inversion,
    method_problem,
    methods_of,
    solver_scheduler,
)

CACHE_SIZE = 8  # inversions kept per model

__all__ = [
    "CACHE_SIZE",
    "EMPTY_PROMPT_METHODS",
    "FAMILY_DEFAULTS",
    "FAMILY_METHODS",
    "FLOW_METHODS",
    "LABELS",
    "METHODS",
    "Inversion",
    "InversionStep",
    "check_inversion",
    "clear_cache",
    "invert",
    "method_problem",
    "methods_of",
    "solver_scheduler",
]


# -- the cache -------------------------------------------------------------------------------------
_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # unet -> OrderedDict(key -> Inversion)


def clear_cache(editor=None):
    """Forget cached inversions (of one editor's model, or all)."""
    if editor is None:
        _CACHES.clear()
    else:
        _CACHES.pop(editor.model.denoiser, None)


def cached_count(editor) -> int:
    return len(_CACHES.get(editor.model.denoiser, ()))


# -- the entry point -------------------------------------------------------------------------------
def invert(
    editor,
    image,
    prompt,
    method: str | None = None,
    *,
    steps: int = 50,
    guidance: float = 7.5,
    crop="center",
    size=None,
    inner_steps: int | None = None,
    lr: float | None = None,
    early_stop: float | None = None,
    early_stop_growth: float | None = None,
    callback=None,
    progress=False,
    stop_event=None,
    cache: bool = True,
    wait: bool = True,
    on_wait=None,
) -> Inversion:
    """Invert ``image`` (described by ``prompt``) for editing with ``editor``; see the module docstring.

    - ``method``: ``"null-text"``, ``"ddim"`` or ``"negative-prompt"`` on a UNet, ``"fireflow"``,
      ``"rf-solver"`` or ``"euler"`` on a flow model (:func:`methods_of`); None (the default): the
      model family's default, :data:`FAMILY_DEFAULTS` (null-text on a UNet, FireFlow on SD3 / Flux);
    - ``steps``, ``guidance``: the DDIM steps and the guidance the edits will use (edits must use
      the same steps; null-text embeddings are optimised for this guidance);
    - ``crop``/``size``: see :func:`load_image` (``size`` defaults to the model's size);
    - ``inner_steps``, ``lr``, ``early_stop``, ``early_stop_growth``: the null-text optimisation
      (defaults :data:`NULL_TEXT_DEFAULTS`, the reference's);
    - ``callback(InversionStep)`` after every step; ``progress``: ``True`` for a tqdm bar, or a
      tqdm-like class (called with ``total=``, ``desc=``; ``update``/``set_postfix``/``close``);
    - ``stop_event``: a ``threading.Event``; when set, null-text optimisation stops after the
      current step and the result has ``stopped=True`` (its later steps reuse the last embedding;
      it is not cached). Setting it during the DDIM phase raises :class:`P2PError`;
    - ``cache``: reuse (and keep) the result for identical inputs on this model;
    - ``wait``, ``on_wait``: when another run holds the model, wait for it (``on_wait()`` is called
      first) or, with ``wait=False``, raise (see :meth:`ModelBackend.exclusive`).
    """
    if method is None:
        method = FAMILY_DEFAULTS.get(editor.model.inversion_family)  # None still: no family inverts it
    guidance, opts = _check_options(
        editor,
        prompt,
        method,
        steps,
        guidance,
        dict(inner_steps=inner_steps, lr=lr, early_stop=early_stop, early_stop_growth=early_stop_growth),
    )
    steps = int(steps)
    check_run_callbacks(callback, stop_event, on_wait)
    sizes = editor.check_size(*_check_size(size))
    pixels = load_image(image, sizes, crop)
    options = {"crop": crop if isinstance(crop, str) else list(crop), "size": list(sizes)}
    if method == "null-text":
        options.update(opts)
    key = (
        pixels_hash(pixels),
        prompt,
        method,
        steps,
        guidance,
        json.dumps(options, sort_keys=True),
        # the trajectory's timesteps and alphas (or sigmas) come from the pipeline's scheduler config
        json.dumps(schedulers.describe(_family_scheduler(editor))[1], sort_keys=True),
        editor.model_id(),
        str(editor.device),
        str(editor.dtype),
    )
    store = _CACHES.setdefault(editor.model.denoiser, OrderedDict())
    if cache and key in store:
        store.move_to_end(key)
        return store[key]
    t0 = time.perf_counter()
    bar = _progress_bar(progress, steps * (2 if method == "null-text" else 1), f"{method} inversion")
    invert_family = _invert_flow if editor.model.inversion_family == "flow" else _invert
    try:
        with editor.exclusive(wait, on_wait, stop_event):
            result = invert_family(
                editor, pixels, prompt, method, steps, guidance, opts, _reporter(callback, bar), stop_event
            )
    finally:
        if bar is not None:
            bar.close()
    result.options, result.seconds = options, time.perf_counter() - t0
    if cache and not result.stopped:
        store[key] = result
        while len(store) > CACHE_SIZE:
            store.popitem(last=False)
    return result


def _check_options(editor, prompt, method, steps, guidance, overrides) -> tuple[float, dict]:
    """Validate :func:`invert`'s arguments; returns the guidance and the null-text settings."""
    family = editor.model.inversion_family
    problem = method_problem(method, editor.model.family, family)
    if problem:
        raise P2PError(problem)
    if family == "flow" and any(v is not None for v in overrides.values()):
        given = ", ".join(k for k, v in overrides.items() if v is not None)
        raise P2PError(f"{given}: settings of null-text inversion; a flow inversion takes none")
    if not isinstance(prompt, str):
        raise P2PError(f"the prompt must be a string describing the image, got {type(prompt).__name__}")
    if not prompt.strip() and method not in EMPTY_PROMPT_METHODS:
        # DDIM inversion under the empty prompt is what Plug-and-Play reads; the optimised ones need
        # the caption the edit changes
        raise P2PError(f"the prompt is empty: {method} inversion needs a caption of the image (edits change its words)")
    check_int("steps", steps, 1, editor.pipe.scheduler.config.num_train_timesteps)
    if not is_number(guidance) or guidance < 0:
        raise P2PError(f"guidance must be a finite number >= 0, got {guidance!r}")
    opts = {**NULL_TEXT_DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    check_int("inner_steps", opts["inner_steps"], 1, 10_000)
    for name in ("lr", "early_stop", "early_stop_growth"):
        v = opts[name]
        if not is_number(v) or v < 0 or (name == "lr" and v == 0):
            raise P2PError(f"{name} must be a finite number {'> 0' if name == 'lr' else '>= 0'}, got {v!r}")
    if method == "null-text" and editor.dtype != torch.float32:
        dtype = str(editor.dtype).replace("torch.", "")
        raise P2PError(
            f"null-text inversion needs a float32 model but this one is {dtype}: "
            "the embedding is optimised by gradient descent through the UNet, which fails in half "
            "precision. Load the model in float32 (e.g. load_pocket(dtype=torch.float32)) or use "
            "method='negative-prompt' (no optimisation)"
        )
    return float(guidance), opts


def _check_size(size) -> tuple:
    """``size`` as (height, width) for ``check_size`` (None: the model's size)."""
    if size is None or is_int(size):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(is_int(v) for v in size):
        return tuple(size)
    raise P2PError(f"size must be an integer or a (height, width) pair of integers, got {size!r}")


def _invert(editor, pixels, prompt, method, steps, guidance, opts, report, stop_event) -> Inversion:
    """The DDIM trajectory of ``pixels``, then the method's unconditional embeddings."""
    sched = ddim_scheduler(editor, steps)
    prediction_type = editor.pipe.scheduler.config.get("prediction_type", "epsilon")
    size = tuple(pixels.shape[:2])
    z0 = editor.encode_image(pixels).to(editor.device, editor.dtype)
    cond = editor.model.conditioning([editor.prompt(prompt)], size)
    try:
        trajectory = ddim_trajectory(editor, z0, cond, sched, prediction_type, report, stop_event)
    except _Stopped:
        raise P2PError("inversion stopped by the stop event during the DDIM phase (no result)") from None
    losses, iterations, stopped, uncond, uncond_pooled = [], [], False, None, None
    if method == "negative-prompt":
        uncond = [cond.hidden.detach().float().cpu()] * steps
        if cond.added is not None:  # SDXL: the prompt's pooled text on the unconditional branch too
            uncond_pooled = [cond.added["text_embeds"].detach().float().cpu()] * steps
    elif method == "null-text":
        empty = editor.model.conditioning([editor.prompt(prompt)], size, uncond=True)
        uncond, uncond_pooled, losses, iterations, stopped = null_text_optimisation(
            editor,
            trajectory,
            cond,
            empty,
            sched,
            guidance,
            prediction_type,
            inner_steps=opts["inner_steps"],
            lr=opts["lr"],
            early_stop=opts["early_stop"],
            early_stop_growth=opts["early_stop_growth"],
            callback=report,
            stop_event=stop_event,
        )
        uncond = [e.float().cpu() for e in uncond]
        if uncond_pooled is not None:
            uncond_pooled = [e.float().cpu() for e in uncond_pooled]
    return Inversion(
        method=method,
        prompt=prompt,
        steps=steps,
        guidance=guidance,
        latents=torch.cat(trajectory).float().cpu(),
        uncond_embeddings=uncond,
        timesteps=sched.timesteps.tolist(),
        image=pixels,
        model=editor.model_id(),
        prediction_type=prediction_type,
        losses=losses,
        iterations=iterations,
        stopped=stopped,
        uncond_pooled=uncond_pooled,
    )


def _family_scheduler(editor):
    model = editor.model
    return model.default_scheduler() if model.inversion_family == "flow" else model.ddim_scheduler()


def _invert_flow(editor, pixels, prompt, method, steps, guidance, opts, report, stop_event) -> Inversion:
    """The flow ODE from the picture's latents to noise with ``method`` on the model's sigmas."""
    model = editor.model
    size = tuple(pixels.shape[:2])
    sched = model.default_scheduler()
    model.set_timesteps(sched, steps, size)
    sigmas = [float(s) for s in sched.sigmas]
    z0 = editor.encode_image(pixels).to(editor.device, editor.dtype)
    cond, uncond = model.guided_conditioning(prompt, size, guidance)  # as the sampler guides
    try:
        trajectory = flow_trajectory(editor, z0, cond, uncond, guidance, method, sigmas, report, stop_event)
    except _Stopped:
        raise P2PError(f"inversion stopped by the stop event during the {method} trajectory (no result)") from None
    solver = solver_scheduler(model, method)
    model.set_timesteps(solver, steps, size)
    return Inversion(
        method=method,
        prompt=prompt,
        steps=steps,
        guidance=guidance,
        latents=torch.cat(trajectory).float().cpu(),
        uncond_embeddings=None,
        timesteps=solver.timesteps.tolist(),
        image=pixels,
        model=editor.model_id(),
        prediction_type="flow",
        family="flow",
        sigmas=sigmas,
    )


def _progress_bar(progress, total, desc):
    if progress is False or progress is None:
        return None
    if progress is True:
        from tqdm.auto import tqdm

        progress = tqdm
    if not callable(progress):
        raise P2PError(f"progress must be True, False or a tqdm-like class, got {progress!r}")
    return progress(total=total, desc=desc)


def _reporter(callback, bar):
    if callback is None and bar is None:
        return None

    def report(event: InversionStep):
        if bar is not None:
            bar.update(1)
            if event.loss is not None and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{event.loss:.2e}", iters=event.iterations, refresh=False)
        if callback is not None:
            callback(event)

    return report
