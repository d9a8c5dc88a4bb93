"""Which blocks matter: generate an image, then again with each transformer block skipped.

Stable Flow (Avrahami et al. 2025) chose Flux's "vital layers" for its K/V injection so: it
generated images with one block at a time bypassed and measured how much each image moved from the
unskipped one. :func:`block_importance` runs that probe on an SD3 or Flux model::

    result = block_importance(editor, "a big red circle left of a small blue square on a gray background",
                              seed=0, steps=4, guidance=3.5)
    [(r.label, round(r.score, 3)) for r in result.records]   # [("double 0", 0.41), ..., ("single 37", 0.002)]
    result.rule(result.top(4))                                # a KVInjection over the four that matter most

**Skipping** a block: a forward hook on ``transformer_blocks[i]`` (Flux's double-stream blocks, SD3's
joint blocks) or ``single_transformer_blocks[i]`` (Flux's single-stream blocks) replaces its output
with its inputs: diffusers 0.42's blocks all return ``(encoder_hidden_states, hidden_states)`` (the
last SD3 block returns ``None`` for the text, which nothing reads after it), so the hook returns the
text and image states the block was given, as SD3's own ``skip_layers`` does. The block still runs
(its attention processors see every call, so the sampler's store and controller count as usual); its
result is dropped. The hook is removed when the run ends, also on an error or a stop.

**The measure** (``metric``), higher = that block matters more, 0 when skipping it changes nothing:

- ``"latent-cosine"`` (default): ``1 - cos`` between the final latents of the reference and of the
  skipped run (flattened, in float64; exactly 0 for bitwise equal latents). Stable Flow uses a
  perceptual similarity (DINOv2 features); offline we have no perceptual network, and the latents are
  the nearest thing: the VAE that defines them was trained with perceptual (LPIPS) and adversarial
  losses, so distances in its space follow what a viewer sees more closely than raw pixel
  differences do, and the engine's latents are normalised to about zero mean and unit variance (the
  space the flow model generates in), so a cosine there is close to a correlation. It ignores a
  change of overall scale, is bounded (0 to 2) whatever the model's latent size, and needs no decode
  of its own.
- ``"pixel-mse"``: the mean squared difference of the two decoded images (RGB in [0, 1]): what the
  picture shows, VAE decoder included, but dominated by large flat areas and colour shifts.
- a function ``metric(reference, image) -> float`` of two PIL images (e.g. ``1 - DINO similarity``
  where you have the weights); its value must be a finite number >= 0.

The probe holds the model's run lock for all its runs (another run waits, or ``wait=False``
refuses), reports progress through ``callback(ProbeEvent)`` after every step of every run, and a set
``stop_event`` ends it after the current step with the blocks measured so far (``stopped=True``).
UNet models are refused: their blocks change resolution and cannot be skipped so. The cost is
``1 + blocks`` generations: 58 on Flux.1 (19 double + 38 single blocks), 25 on SD3 medium; a few
steps (Stable Flow's own probe is of whole generations) keep it to minutes on a GPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import P2PError, check_run_callbacks, is_int, is_number

METRICS = ("latent-cosine", "pixel-mse")
#: how each metric reads in the widget
METRIC_TEXT = {"latent-cosine": "1 - cosine of the final latents", "pixel-mse": "mean squared pixel difference"}


@dataclass(frozen=True)
class BlockScore:
    """One transformer block and how much skipping it changed the image."""

    label: str  # "double 3", "single 12" (the attention sites' block labels)
    place: str  # "double" | "single"
    depth: int  # the block's index among its kind
    score: float  # the metric's value: 0 = skipping it changes nothing

    def to_dict(self) -> dict:
        return {"label": self.label, "place": self.place, "depth": self.depth, "score": self.score}


@dataclass(frozen=True)
class ProbeEvent:
    """Progress of :func:`block_importance`, after every step of every run."""

    run: int  # 0: the reference (nothing skipped); k: the k-th block skipped
    runs: int  # 1 + the number of blocks
    block: str  # the skipped block's label ("" for the reference)
    step: int  # the step just done (0 = noisiest)
    n_evals: int  # steps a run has
    record: BlockScore | None = None  # set on the last step of a block's run: its score

    @property
    def fraction(self) -> float:
        """The share of the whole probe done (0 to 1)."""
        return (self.run * self.n_evals + self.step + 1) / (self.runs * self.n_evals)


@dataclass
class BlockImportance:
    """What :func:`block_importance` measured: one record per block, double-stream blocks first."""

    records: list  # BlockScore, in the model's order (double 0.., then single 0..)
    metric: str  # the metric's name (a function's __name__)
    prompt: str
    seed: int
    steps: int
    guidance: float
    size: tuple
    reference: object = field(default=None, repr=False)  # the unskipped image (PIL)
    stopped: bool = False  # a stop event ended the probe: records has the blocks measured before it
    seconds: float = 0.0

    def scores(self) -> dict:
        """``{label: score}``."""
        return {r.label: r.score for r in self.records}

    def top(self, n: int) -> list:
        """Labels of the ``n`` highest-scoring blocks, highest first (ties: model order)."""
        order = sorted(range(len(self.records)), key=lambda k: -self.records[k].score)
        return [self.records[k].label for k in order[: max(int(n), 0)]]

    def rule(self, labels, **values):
        """A :class:`KVInjection` over the blocks ``labels`` (e.g. ``top(4)``); ``values``: its other
        parameters (``start_step``, ``copy_keys``, ...)."""
        from .joint_controls import KVInjection

        return KVInjection(**rule_blocks(labels, self.records), **values)

    def to_dicts(self) -> list:
        return [r.to_dict() for r in self.records]


def rule_blocks(labels, records) -> dict:
    """``{"double": [...], "single": [...]}``: the block indices (as words, by depth) of ``labels``,
    checked against ``records`` (BlockScore or dicts with label/place/depth)."""
    known = {}
    for r in records:
        r = r.to_dict() if isinstance(r, BlockScore) else r
        known[r["label"]] = (r["place"], r["depth"])
    blocks = {"double": set(), "single": set()}
    for label in labels:
        if label not in known:
            raise P2PError(f"no block {label!r}; the model's blocks are {', '.join(known) or 'none'}")
        place, depth = known[label]
        blocks[place].add(depth)
    return {place: [str(d) for d in sorted(depths)] for place, depths in blocks.items()}


def transformer_blocks(editor) -> list:
    """``(label, place, depth, module)`` of every skippable block of ``editor``'s model, in run order;
    a P2PError for a UNet (or any model without MM-DiT blocks)."""
    denoiser = editor.model.denoiser
    if hasattr(denoiser, "down_blocks") or not hasattr(denoiser, "transformer_blocks"):
        raise P2PError(
            f"block_importance skips transformer blocks of an MM-DiT (SD3 or Flux); this is a "
            f"{editor.model.family} model ({type(denoiser).__name__}), whose blocks change resolution "
            "and cannot be skipped"
        )
    found = [(f"double {i}", "double", i, b) for i, b in enumerate(denoiser.transformer_blocks)]
    single = getattr(denoiser, "single_transformer_blocks", None) or ()
    found += [(f"single {i}", "single", i, b) for i, b in enumerate(single)]
    return found


def _passthrough(module, args, kwargs, output):
    """A forward hook: the block's output replaced by the states it was given."""
    if not (isinstance(output, tuple) and len(output) == 2):
        raise P2PError(
            f"{type(module).__name__} returned {type(output).__name__}, not the (text, image) pair this "
            "probe knows how to skip (diffusers 0.42's blocks)"
        )
    hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
    if "encoder_hidden_states" in kwargs:
        encoder = kwargs["encoder_hidden_states"]
    else:
        encoder = args[1] if len(args) > 1 else output[0]
    return encoder, hidden


@contextmanager
def skipped(module):
    """Inside the block, ``module`` (a transformer block) returns its inputs; the hook goes on exit."""
    handle = module.register_forward_hook(_passthrough, with_kwargs=True)
    try:
        yield module
    finally:
        handle.remove()


def _latent_cosine(reference, result) -> float:
    a = reference.latents[0].detach().to("cpu", torch.float64).flatten()
    b = result.latents[0].detach().to("cpu", torch.float64).flatten()
    if torch.equal(a, b):
        return 0.0
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-300)
    return float(min(max(1.0 - cos.item(), 0.0), 2.0))


def _pixel_mse(reference, result) -> float:
    a = np.asarray(reference.images[0], dtype=np.float64) / 255.0
    b = np.asarray(result.images[0], dtype=np.float64) / 255.0
    return float(np.mean((a - b) ** 2))


def _metric(metric) -> tuple[str, Callable]:
    """The metric's name and a function of two EditResults."""
    if metric == "latent-cosine":
        return metric, _latent_cosine
    if metric == "pixel-mse":
        return metric, _pixel_mse
    if isinstance(metric, str) or not callable(metric):
        raise P2PError(
            f"metric must be one of {', '.join(repr(m) for m in METRICS)} or a function of two PIL images, "
            f"got {metric!r}"
        )
    name = getattr(metric, "__name__", type(metric).__name__)

    def of_images(reference, result) -> float:
        value = metric(reference.images[0], result.images[0])
        if not is_number(value) or value < 0:
            raise P2PError(f"metric {name} must return a finite number >= 0, got {value!r}")
        return float(value)

    return name, of_images


def _check(prompt, seed, guidance) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise P2PError(f"the prompt must be a non-empty string, got {prompt!r}")
    if not is_int(seed) or seed < 0:
        raise P2PError(f"seed must be an integer >= 0, got {seed!r}")
    if not is_number(guidance) or guidance < 0:
        raise P2PError(f"guidance must be a finite number >= 0, got {guidance!r}")


def block_importance(
    editor,
    prompt: str,
    *,
    seed: int,
    steps: int,
    guidance: float,
    height=None,
    width=None,
    metric="latent-cosine",
    callback=None,
    stop_event=None,
    wait: bool = True,
    on_wait=None,
) -> BlockImportance:
    """Score every transformer block of ``editor``'s SD3 / Flux model by how much skipping it changes
    the image of ``prompt`` (see the module docstring). ``callback(ProbeEvent)`` after every step;
    ``stop_event``: a ``threading.Event`` that ends the probe after the current step; ``wait`` /
    ``on_wait``: as :meth:`ModelBackend.exclusive` (another run holds the model)."""
    blocks = transformer_blocks(editor)
    _check(prompt, seed, guidance)
    name, measure = _metric(metric)
    check_run_callbacks(callback, stop_event, on_wait)
    height, width = editor.check_size(height, width)
    n_evals = editor.count_evals(steps, size=(height, width))  # checks steps
    run = dict(seed=seed, steps=steps, guidance=guidance, height=height, width=width)
    t0 = time.perf_counter()
    with editor.exclusive(wait, on_wait, stop_event):
        records, reference, stopped = _probe(editor, prompt, run, blocks, measure, n_evals, callback, stop_event)
    return BlockImportance(
        records,
        name,
        prompt,
        int(seed),
        int(steps),
        float(guidance),
        (height, width),
        reference=None if reference is None else reference.images[0],
        stopped=stopped,
        seconds=time.perf_counter() - t0,
    )


def _probe(editor, prompt, run_args, blocks, measure, n_evals, callback, stop_event):
    """The reference run, then one run per block skipped; stops early on the stop event. Returns
    (records, the reference EditResult or None, stopped)."""
    from .store import AttentionStore

    runs = 1 + len(blocks)

    def sample(run, label):
        def report(event):
            callback(ProbeEvent(run, runs, label, event.step, n_evals))

        return editor.sample(
            prompt,
            **run_args,
            store=AttentionStore(resolutions=(), keep_steps=False),  # no maps: only the images count
            callback=None if callback is None else report,
            stop_event=stop_event,
        )

    reference = sample(0, "")
    if reference.stopped:
        return [], None, True
    records = []
    for run, (label, place, depth, module) in enumerate(blocks, start=1):
        with skipped(module):
            result = sample(run, label)
        if result.stopped:
            return records, reference, True
        score = measure(reference, result)
        if not math.isfinite(score):
            raise P2PError(f"the score of {label} is not finite ({score})")
        records.append(BlockScore(label, place, depth, score))
        if callback is not None:
            callback(ProbeEvent(run, runs, label, n_evals - 1, n_evals, records[-1]))
        if stop_event is not None and stop_event.is_set():
            return records, reference, len(records) < len(blocks)
    return records, reference, False
