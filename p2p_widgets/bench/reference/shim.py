"""Run-time shims for the authors' code: imports from a checkout (stand-ins for packages not
installed), their classes without ``__init__``, attributes patched for a while, their decode step
recorded instead of run, old diffusers' ``set_timesteps(offset=)``."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import io
import json
import sys
import types
import warnings
from pathlib import Path

from ...errors import P2PError


def _refuse(name):
    def call(*args, **kwargs):
        raise P2PError(f"{name} is a stand-in here (the package is not installed); this comparison never calls it")

    return call


def _to_tensor(picture):
    """torchvision's ToTensor on a PIL image: uint8 HWC -> float CHW in [0, 1] (divided by 255)."""
    import numpy as np
    import torch

    array = np.array(picture, dtype=np.uint8, copy=True)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous().float().div(255)


class _Resize:
    def __init__(self, size):
        self.size = size

    def __call__(self, picture):
        if min(picture.size) != self.size:
            raise P2PError(f"the Resize stand-in keeps images whose short side is {self.size}, got {picture.size}")
        return picture


class _Saved:
    def save(self, *args, **kwargs):
        return None


def _stand_ins() -> dict:
    """Modules for the authors' imports that this project does not install."""

    def module(name, package=False, **attrs):
        mod = types.ModuleType(name)
        if package:
            mod.__path__ = []
        mod.__dict__.update(attrs)
        return mod

    transforms = module(
        "torchvision.transforms", ToTensor=lambda: _to_tensor, Resize=_Resize, ToPILImage=lambda: lambda x: _Saved()
    )
    return {
        "cv2": module("cv2", FONT_HERSHEY_SIMPLEX=0, getTextSize=_refuse("cv2.getTextSize"), putText=_refuse("cv2")),
        "torchvision": module("torchvision", package=True, transforms=transforms),
        "torchvision.utils": module("torchvision.utils", save_image=_refuse("torchvision.utils.save_image")),
        "torchvision.io": module("torchvision.io", read_image=_refuse("torchvision.io.read_image")),
        "torchvision.transforms": transforms,
        "pytorch_lightning": module("pytorch_lightning", seed_everything=_refuse("pytorch_lightning.seed_everything")),
    }


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on ``sys.meta_path``: serves a stand-in only for an import nothing installed answers,
    and remembers which were served."""

    def __init__(self):
        self.modules, self.used = _stand_ins(), []

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in self.modules else None

    def create_module(self, spec):
        self.used.append(spec.name)
        return self.modules[spec.name]

    def exec_module(self, module):
        return None


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name.split(".")[0]) is None
    except (ImportError, ValueError):
        return True


@contextlib.contextmanager
def authors_imports(directory: Path, changes: list):
    """While importing from a checkout: it is first on ``sys.path`` and third-party packages that
    are not installed are stand-ins; afterwards both are gone and its modules leave ``sys.modules``."""
    import diffusers  # noqa: F401  (before any stand-in: diffusers probes what is installed)
    import transformers  # noqa: F401

    finder = _StandInFinder()
    root = str(directory.resolve())
    before = set(sys.modules)
    sys.meta_path.append(finder)
    sys.path.insert(0, root)
    try:
        with warnings.catch_warnings():
            # their decorators ask for CUDA autocast at import; on a CPU torch disables it and says so
            warnings.filterwarnings("ignore", message="CUDA is not available", category=UserWarning)
            yield
    finally:
        sys.path.remove(root)
        sys.meta_path.remove(finder)
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if name in finder.used or origin.startswith(root):
                del sys.modules[name]
        if finder.used:
            changes.append(f"stand-ins for packages not installed, while importing: {', '.join(sorted(finder.used))}")


def notebook_cells(path: Path, markers) -> list[str]:
    """The code cells of a notebook that contain each marker, in the notebook's order."""
    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise P2PError(f"{path}: not a readable notebook ({exc})") from None
    sources = ["".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code"]
    found = []
    for marker in markers:
        matching = [s for s in sources if marker in s]
        if not matching:
            raise P2PError(f"{path}: no code cell contains {marker!r} (not the notebook this comparison reads)")
        found.append(matching[0])
    return found


class Recorder:
    """Stands where the authors decode their final latents: keeps them and skips the VAE."""

    def __init__(self, result=None):
        self.latents, self.result = None, result

    def __call__(self, *args, **kwargs):
        import torch

        self.latents = next(a for a in (*args, *kwargs.values()) if torch.is_tensor(a)).detach().clone()
        return self.result if self.result is not None else torch.zeros(1, 3, 8, 8)


def accept_offset(scheduler):
    """Let ``scheduler.set_timesteps`` take old diffusers' ``offset`` (today: the config's ``steps_offset``)."""
    original = scheduler.set_timesteps

    def set_timesteps(num_inference_steps, offset=None, **kwargs):
        if offset is not None and offset != scheduler.config.steps_offset:
            raise P2PError(
                f"set_timesteps(offset={offset}) but the scheduler's steps_offset is {scheduler.config.steps_offset}"
            )
        return original(num_inference_steps, **kwargs)

    scheduler.set_timesteps = set_timesteps
    return scheduler


def _ddim(pipe, **overrides):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config({**pipe.scheduler.config, **overrides})


@contextlib.contextmanager
def _quiet():
    """Their prints and progress bars stay out of the table."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


_ABSENT = object()


@contextlib.contextmanager
def _patched(obj, **attributes):
    """``obj``'s attributes set for a while (one it lacked is removed again afterwards)."""
    old = {name: getattr(obj, name, _ABSENT) for name in attributes}
    for name, value in attributes.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is _ABSENT:
                delattr(obj, name)
            else:
                setattr(obj, name, value)


def _bare(cls, **attributes):
    """An instance of one of the authors' ``nn.Module`` classes without its ``__init__`` (which
    downloads a model and reads files), holding ``attributes`` instead."""
    import torch

    obj = cls.__new__(cls)
    torch.nn.Module.__init__(obj)
    for name, value in attributes.items():
        setattr(obj, name, value)
    return obj


class _InputCast:
    """The VAE taking images of any float dtype: their ToTensor gives float32, the model may be float64."""

    def __init__(self, vae):
        self.vae = vae

    def encode(self, images):
        return self.vae.encode(images.to(self.vae.dtype))

    def decode(self, latents):
        return self.vae.decode(latents)


def _components(pipe, unet=None) -> dict:
    return dict(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=unet or pipe.unet)
