"""The result of an inversion and its file format: :class:`Inversion` (latents from x_0 to x_T,
per-step unconditional embeddings, the prepared image; ``save`` / ``load`` as JSON metadata plus
safetensors), :class:`InversionStep` (progress events), and the checks that an inversion fits a
model and an edit file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...errors import P2PError, is_int, is_number
from ..images import pixels_hash
from ..inversion_methods import (  # noqa: F401  (re-exported: the engine's per-family lists)
    EMPTY_PROMPT_METHODS,
    FAMILY_DEFAULTS,
    FAMILY_METHODS,
    FLOW_METHODS,
    LABELS,
    METHODS,
    method_problem,
    methods_of,
)
from .ddim import timesteps_of
from .flow import FlowSolverScheduler


def solver_scheduler(model, method: str):
    """The scheduler an edit from a ``method`` inversion samples with on ``model`` when it names
    none: None (the model's DDIM) on a UNet, the solver that inverted it on a flow model."""
    return FlowSolverScheduler.for_model(model, method) if model.inversion_family == "flow" else None


# 2: the family ("ddim" or "flow") and, for flow inversions, float timesteps and the sigmas;
# version-1 files (DDIM inversions) still load
FORMAT_VERSION = 2
FORMAT_VERSIONS = (1, 2)


@dataclass
class Inversion:
    """An inverted image, ready to edit (see the module docstring)."""

    method: str
    prompt: str
    steps: int
    guidance: float
    latents: torch.Tensor  # (steps + 1, C, h, w) float32 on the CPU: x_0 (the image's latent) first, x_T last
    uncond_embeddings: list | None  # per sampling step (1, L, D) float32 tensors, noisiest step first; or None
    timesteps: list  # the sampling timesteps (noisiest first) the trajectory was computed on
    image: np.ndarray = field(repr=False, default=None)  # (H, W, 3) uint8: the prepared input image
    model: str = ""  # id of the model that produced it (see ``model_id``)
    prediction_type: str = "epsilon"
    options: dict = field(default_factory=dict)  # crop, size and the null-text optimisation settings
    losses: list = field(default_factory=list)  # null-text: the final loss of each optimised step
    iterations: list = field(default_factory=list)  # null-text: inner iterations used per step
    seconds: float = 0.0
    stopped: bool = False  # a stop event ended the optimisation early (later steps reuse the last embedding)
    uncond_pooled: list | None = None  # SDXL: per sampling step (1, P) pooled text of the unconditional branch
    family: str = "ddim"  # "ddim" (UNet models) or "flow" (SD3, Flux: an ODE solver's trajectory)
    sigmas: list | None = None  # flow: the schedule's sigmas (noisiest first, ending at 0) of ``latents``

    @property
    def x_T(self) -> torch.Tensor:
        """The start latent for editing, (C, h, w)."""
        return self.latents[-1]

    @property
    def x_0(self) -> torch.Tensor:
        """The image's own latent (VAE posterior mean times the scaling factor), (C, h, w)."""
        return self.latents[0]

    @property
    def image_sha256(self) -> str:
        return pixels_hash(self.image) if self.image is not None else ""

    def describe(self) -> dict:
        """A JSON-able summary (no tensors): for an edit's spec and for ``save``."""
        return {
            "format": FORMAT_VERSION,
            "method": self.method,
            "prompt": self.prompt,
            "steps": self.steps,
            "guidance": self.guidance,
            "family": self.family,
            "timesteps": self._timestep_values(self.timesteps),
            "model": self.model,
            "prediction_type": self.prediction_type,
            "latent_shape": list(self.latents.shape[1:]),
            "image_sha256": self.image_sha256,
            "options": self.options,
            "losses": [float(x) for x in self.losses],
            "iterations": [int(x) for x in self.iterations],
            "seconds": round(float(self.seconds), 3),
            "stopped": self.stopped,
            **({"sigmas": [float(s) for s in self.sigmas]} if self.family == "flow" else {}),
        }

    def _timestep_values(self, timesteps) -> list:
        # a flow schedule's timesteps are fractional (sigma times the training steps)
        return [float(t) if self.family == "flow" else int(t) for t in timesteps]

    def scheduler(self, model):
        """The scheduler an edit from this inversion samples with on ``model`` (one :meth:`check`
        accepts) when it names none: :func:`solver_scheduler` of its method, None (the model's
        DDIM) for a DDIM inversion, the solver that inverted it for a flow inversion."""
        return solver_scheduler(model, self.method)

    def check_scheduler(self, name: str | None) -> None:
        """A P2PError unless an edit may sample this inversion with the scheduler class ``name``
        (None: the edit names none)."""
        if self.family == "flow":
            if name is not None:
                raise P2PError(
                    f"a {self.method} flow inversion edits with its own solver: pass no scheduler, not {name}"
                )
        elif name is not None and name != "DDIMScheduler":
            raise P2PError(f"an inversion is a DDIM trajectory: edit it with the default DDIM scheduler, not {name}")

    def check(self, editor):
        """Raise a :class:`P2PError` naming the problem if ``editor`` cannot use this inversion."""
        model = editor.model
        if self.family == "flow":
            self._check_flow(editor)
            return
        if model.inversion_family != "ddim":
            raise P2PError(
                f"this inversion is a DDIM trajectory of a Stable Diffusion model; {model.family} cannot use it"
            )
        if self.uncond_pooled is not None and not model.is_xl:
            raise P2PError("the inversion has SDXL pooled text embeddings but this model is not an SDXL model")
        shape = (model.unet.config.in_channels, *self.latents.shape[-2:])
        if tuple(self.latents.shape[1:]) != shape:
            raise P2PError(
                f"the inversion's latents are {tuple(self.latents.shape[1:])} but this model uses "
                f"{model.unet.config.in_channels} latent channels"
            )
        if self.uncond_embeddings is not None:
            dim = model.embedding_width
            got = self.uncond_embeddings[0].shape[-1]
            if got != dim:
                raise P2PError(
                    f"the inversion's embeddings have width {got} but this model's text encoder has {dim}: "
                    "it was made with another model"
                )
        sched_prediction = model.pipe.scheduler.config.get("prediction_type", "epsilon")
        if sched_prediction != self.prediction_type:
            raise P2PError(
                f"the inversion was made for a {self.prediction_type} model but this model predicts {sched_prediction}"
            )
        self.check_timesteps(timesteps_of(editor, self.steps), "this model's schedule")
        # last: the checks above name what differs, this one only that the weights do
        if self.model and self.model != model.model_id():
            raise P2PError(
                f"the inversion was made with model {self.model} but this model is {model.model_id()}: "
                "invert the image again with this model"
            )

    def _check_flow(self, editor):
        model = editor.model
        if getattr(model, "inversion_family", None) != "flow":
            raise P2PError(
                f"this inversion is a flow trajectory of an SD3 or Flux model; a {model.family} model cannot use it"
            )
        shape = (model.latent_channels, *self.latents.shape[-2:])
        if tuple(self.latents.shape[1:]) != shape:
            raise P2PError(
                f"the inversion's latents are {tuple(self.latents.shape[1:])} but this model uses "
                f"{model.latent_channels} latent channels"
            )
        size = tuple(side * model.vae_factor for side in self.latents.shape[-2:])
        sched = self.scheduler(model)
        model.set_timesteps(sched, self.steps, size)
        self.check_timesteps(sched.timesteps, "this model's schedule")
        if self.model and self.model != model.model_id():
            raise P2PError(
                f"the inversion was made with model {self.model} but this model is {model.model_id()}: "
                "invert the image again with this model"
            )

    def check_timesteps(self, timesteps, what: str) -> None:
        """A P2PError unless ``timesteps`` (of ``what``) are the ones this inversion was made on: its
        start latent and per-step embeddings belong to them."""
        have = self._timestep_values(timesteps)
        mine = self._timestep_values(self.timesteps)
        if self.family == "flow":
            same = len(have) == len(mine) and all(abs(a - b) <= 1e-3 for a, b in zip(have, mine))
        else:
            same = have == mine
        if not same:
            raise P2PError(
                f"the inversion's timesteps {list(self.timesteps)} differ from {what} {have} for "
                f"{self.steps} steps: edit with the scheduler it was inverted with (the pipeline's DDIM)"
            )

    def reconstruct(self, editor, **kwargs):
        """Regenerate the image from the inversion with its own prompt: an :class:`EditResult`."""
        self.check(editor)
        kwargs.setdefault("guidance", self.guidance)
        return editor.edit(self.prompt, [], inversion=self, steps=self.steps, **kwargs)

    def edit(self, editor, targets, **kwargs):
        """``editor.edit(self.prompt, targets, inversion=self, steps=self.steps, guidance=self.guidance, ...)``."""
        self.check(editor)
        kwargs.setdefault("guidance", self.guidance)
        return editor.edit(self.prompt, targets, inversion=self, steps=self.steps, **kwargs)

    # -- files --------------------------------------------------------------------------------------
    def save(self, path_prefix) -> tuple[Path, Path]:
        """Write ``<prefix>.json`` (metadata) and ``<prefix>.safetensors`` (tensors); return both paths."""
        from safetensors.torch import save_file

        json_path, tensor_path = _paths(path_prefix)
        tensors = {"latents": self.latents.detach().float().contiguous().cpu()}
        if self.uncond_embeddings is not None:
            tensors["uncond_embeddings"] = torch.stack(
                [e.detach().float().reshape(e.shape[-2:]).cpu() for e in self.uncond_embeddings]
            ).contiguous()
        if self.uncond_pooled is not None:
            tensors["uncond_pooled"] = torch.stack(
                [e.detach().float().reshape(-1).cpu() for e in self.uncond_pooled]
            ).contiguous()
        if self.image is not None:
            tensors["image"] = torch.from_numpy(np.ascontiguousarray(self.image))
        meta = {**self.describe(), "tensors": tensor_path.name}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tensor_path), metadata={"p2p_widgets": "inversion", "format": str(FORMAT_VERSION)})
        json_path.write_text(json.dumps(meta, indent=1))
        return json_path, tensor_path

    @classmethod
    def load(cls, path_prefix) -> Inversion:
        """Read an inversion written by :meth:`save` (``path_prefix`` with or without ``.json``).

        The tensors are copied into memory (the file may be overwritten afterwards); a malformed
        or corrupt file, or metadata pointing outside its folder, raises a P2PError naming it."""
        json_path, tensor_path = _paths(path_prefix)
        meta = _read_metadata(json_path)
        name = meta.get("tensors", tensor_path.name)
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise P2PError(f"{json_path}: 'tensors' must name a file beside the JSON, got {name!r}")
        tensors = _read_tensors(json_path.parent / name)
        steps = meta["steps"]
        _check_shapes(tensors, steps, json_path.parent / name)
        emb, pooled, image = (tensors.get(k) for k in ("uncond_embeddings", "uncond_pooled", "image"))
        return cls(
            method=meta["method"],
            prompt=meta["prompt"],
            steps=steps,
            guidance=float(meta["guidance"]),
            latents=tensors["latents"],
            uncond_embeddings=None if emb is None else [e[None] for e in emb],
            timesteps=list(meta["timesteps"]),
            image=None if image is None else image.numpy(),
            model=meta.get("model", ""),
            prediction_type=meta.get("prediction_type", "epsilon"),
            options=meta.get("options", {}),
            losses=meta.get("losses", []),
            iterations=meta.get("iterations", []),
            seconds=float(meta.get("seconds", 0.0)),
            stopped=bool(meta.get("stopped", False)),
            uncond_pooled=None if pooled is None else [e[None] for e in pooled],
            family=meta.get("family", "ddim"),
            sigmas=meta.get("sigmas"),
        )


_METADATA_TYPES = {"method": str, "prompt": str, "steps": int, "guidance": (int, float), "timesteps": list}


def _read_metadata(json_path: Path) -> dict:
    if not json_path.is_file():
        raise P2PError(f"no inversion metadata at {json_path}")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise P2PError(f"{json_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") not in FORMAT_VERSIONS:
        versions = " or ".join(map(str, FORMAT_VERSIONS))
        raise P2PError(f"{json_path} is not an inversion file of format {versions}")
    for key, kind in _METADATA_TYPES.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise P2PError(f"{json_path}: {key!r} is missing or not a {getattr(kind, '__name__', 'number')}")
    family = meta.get("family", "ddim")
    timestep_ok = is_int if family == "ddim" else is_number
    if (
        family not in FAMILY_METHODS
        or meta["method"] not in FAMILY_METHODS[family]
        or meta["steps"] < 1
        or not all(timestep_ok(t) for t in meta["timesteps"])
    ):
        raise P2PError(f"{json_path}: family, method, steps or timesteps hold values no inversion writes")
    if family == "flow":
        sigmas = meta.get("sigmas")
        if not isinstance(sigmas, list) or len(sigmas) != meta["steps"] + 1 or not all(map(is_number, sigmas)):
            raise P2PError(f"{json_path}: a flow inversion needs its {meta['steps'] + 1} sigmas")
    if not isinstance(meta.get("options", {}), dict):
        raise P2PError(f"{json_path}: 'options' must be an object")
    return meta


def _read_tensors(tensor_path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not tensor_path.is_file():
        raise P2PError(f"the inversion's tensors file {tensor_path} is missing (it is written beside the JSON)")
    try:
        # from bytes, not memory-mapped: overwriting the file later cannot change (or crash) this inversion
        return load(tensor_path.read_bytes())
    except (SafetensorError, ValueError, OSError) as exc:
        raise P2PError(f"{tensor_path} is not a readable safetensors file: {exc}") from None


def _check_shapes(tensors: dict, steps: int, tensor_path: Path) -> None:
    latents = tensors.get("latents")
    if latents is None or latents.ndim != 4 or latents.shape[0] != steps + 1:
        raise P2PError(
            f"{tensor_path} holds latents of shape {None if latents is None else tuple(latents.shape)}; "
            f"expected ({steps + 1}, C, h, w) for {steps} steps"
        )
    for key, ndim in (("uncond_embeddings", 3), ("uncond_pooled", 2)):
        value = tensors.get(key)
        if value is not None and (value.ndim != ndim or value.shape[0] != steps):
            raise P2PError(f"{tensor_path} holds {key} of shape {tuple(value.shape)} for {steps} steps")
    image = tensors.get("image")
    if image is not None and (image.ndim != 3 or image.shape[-1] != 3 or image.dtype != torch.uint8):
        raise P2PError(f"{tensor_path} holds an image of shape {tuple(image.shape)}; expected (H, W, 3) uint8")


def check_inversion(recorded: dict | None, inversion) -> None:
    """Raise a :class:`P2PError` unless ``inversion`` is the one an edit recorded (``recorded``: the
    ``describe()`` saved in its spec)."""
    if not isinstance(inversion, Inversion):
        raise P2PError(f"inversion must be an Inversion, got {type(inversion).__name__}")
    if recorded is None:
        raise P2PError("this edit started from a seed, not from an inversion")
    have = inversion.describe()
    for key in ("image_sha256", "method", "prompt", "steps", "guidance", "timesteps", "options"):
        if recorded.get(key) != have.get(key):
            raise P2PError(
                f"the inversion's {key} is {have.get(key)!r} but the edit was made from one with {recorded.get(key)!r}"
            )


def _paths(path_prefix) -> tuple[Path, Path]:
    prefix = Path(path_prefix)
    if prefix.suffix in (".json", ".safetensors"):
        prefix = prefix.with_suffix("")
    return prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".safetensors")
