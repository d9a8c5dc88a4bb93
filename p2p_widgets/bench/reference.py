"""Equal to the authors' code: their implementations and ours, side by side, on one model.

``python -m p2p_widgets.bench reference [--masactrl DIR] [--pnp DIR] [--p2p DIR] [--steps N] [--dtype D]``

Each DIR is a checkout of the authors' repository (this repository never contains their code):
TencentARC/MasaCtrl, MichalGeyer/pnp-diffusers, google/prompt-to-prompt. The script builds one
random-weight model with SD 1.x's layout at 512 px (attention at 64x64, 32x32 and 16x16 latents,
so the authors' layer indices and size checks apply; channels shrunk for a CPU), runs the
authors' code and ours from the same start noise and prompts, and prints the maximum absolute
difference of the final latents against the tolerance (1e-4). float64 by default (see
:func:`build_reference_model`). Exit status 1 when a case fails, 2 for bad arguments.

Cases (default 6 steps, guidance 7.5):

- MasaCtrl: ``MutualSelfAttentionControl(start_step=4, start_layer=10)`` vs ours
  ``MutualSelfAttention(start_step=4, start_layer=10)``, one start noise for both prompts.
- Plug-and-Play, two rows: "PnP inversion" compares their ``preprocess.py`` DDIM inversion of a
  synthetic picture under "" (with as many steps as the edit; theirs defaults to 999) with ours;
  "Plug-and-Play" compares ``run_pnp`` (thresholds 0.8 / 0.5, no negative prompt: ours has none)
  with ours, both reading one inversion (ours, saved over theirs), so each row measures one method.
- P2P (ours with ``compat="reference"``): replace with a word window, refine (a phrase
  appended), reweight of a new word on refine, and LocalBlend on a replace whose word grows from
  one token to two. Windows are chosen where the authors' rounding over n + 1 steps differs from
  n; LocalBlend's threshold is 0.9 (a random model's maps are nearly flat: at 0.3 the mask would
  keep every pixel); the row says how much of the latent their mask kept.

How the authors' code runs here, at run time, leaving their files untouched (the printed output
lists the changes again):

- Imports: each checkout is first on ``sys.path`` while its modules import, then its modules
  leave ``sys.modules``. Packages their imports name that are not installed (``cv2``,
  ``torchvision``, ``pytorch_lightning``) are served by stand-ins from a finder placed last on
  ``sys.meta_path`` (after diffusers is imported; an installed package always wins) only during
  those imports; the stand-ins offer what the code paths used here touch (``ToTensor`` with
  torchvision's arithmetic) and raise if anything else is called. MasaCtrl needs ``einops``
  (``pip install einops``; the script says so if it is missing).
- Models: their classes get our model's components instead of ``from_pretrained`` (a copy of the
  UNet, which their code patches): ``MasaCtrlPipeline(**components)``; ``Preprocess`` and ``PNP``
  are built without their ``__init__`` (hub downloads, CUDA, file paths) and given the attributes
  it sets; P2P's notebook (``prompt-to-prompt_stable.ipynb``) runs its import and controller code
  cells from the JSON, with its model-loading cell replaced by our globals (``LOW_RESOURCE =
  False``, CPU, our tokenizer, DDIM instead of the hub model's PNDM).
- P2P on current diffusers: the attention class is ``Attention``, not ``CrossAttention``, and
  takes ``encoder_hidden_states`` / ``attention_mask``: the copy's attention modules get a
  subclass named ``CrossAttention`` with the old head-reshaping names, and the forward that
  ``register_attention_control`` installs is called with the old argument names;
  ``set_timesteps(n, offset=1)`` is the config's ``steps_offset`` today (checked equal). In
  float64, ``AttentionReplace``'s float32 mapper is cast for its einsum (its values are exact).
- Plug-and-Play: ``preprocess.device`` (set only under ``__main__``) is "cpu",
  ``Preprocess.get_text_embeds`` gets ``device="cpu"`` (its default is "cuda"), and in float64
  its VAE takes the float32 image tensor cast to the model's dtype.
- Results: the final latents are taken where the code decodes them (P2P's ``latent2image``,
  MasaCtrl's ``latent2image``, PnP's ``decode_latent``), which then skip the VAE.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib.abc
import importlib.util
import io
import json
import sys
import tempfile
import time
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import P2PError

TOLERANCE = 1e-4
DEFAULT_STEPS = 6  # MasaCtrl controls steps 4 and 5; PnP injects features 4 steps, Q/K 3
GUIDANCE = 7.5
SIZE = 512
SEED = 0

# SD 1.x's UNet layout (four levels, two layers each, attention at 64/32/16 for 512 px, plain
# 8x8 level; 16 self-attention layers; up_blocks.1.resnets.1 at 16x16), channels shrunk for a CPU
REFERENCE_UNET = dict(
    sample_size=64,
    cross_attention_dim=64,
    attention_head_dim=1,
    layers_per_block=2,
    block_out_channels=(16, 32, 32, 32),
    norm_num_groups=16,
)

# what each checkout must hold (the files the comparison imports or reads)
CHECKOUTS = {
    "masactrl": ("masactrl/masactrl.py", "masactrl/masactrl_utils.py", "masactrl/diffuser_utils.py"),
    "pnp": ("pnp.py", "pnp_utils.py", "preprocess.py"),
    "p2p": ("ptp_utils.py", "seq_aligner.py", "prompt-to-prompt_stable.ipynb"),
}
REPOSITORIES = {"masactrl": "TencentARC/MasaCtrl", "pnp": "MichalGeyer/pnp-diffusers", "p2p": "google/prompt-to-prompt"}

MASA_PROMPTS = ("a photo of a cat sitting on the grass", "a photo of a cat standing on the grass")
PNP_TARGET = "a photo of a pink toy horse on the beach"


@dataclass
class Row:
    """One compared case: its maximum latent difference, or why it could not be measured."""

    method: str
    difference: float | None = None
    error: str | None = None
    seconds: float = 0.0
    changes: list = field(default_factory=list)
    note: str = ""  # what the case exercised, where that needs saying

    @property
    def passed(self) -> bool:
        return self.error is None and self.difference is not None and self.difference <= TOLERANCE


# -- checkouts, imports and stand-ins -----------------------------------------------------------------
def check_checkout(option: str, directory) -> Path:
    """The checkout directory for ``--option``, or a P2PError naming the option and what is missing."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise P2PError(f"--{option}: {str(directory)!r} is not a directory (a checkout of {REPOSITORIES[option]})")
    missing = [name for name in CHECKOUTS[option] if not (path / name).is_file()]
    if missing:
        raise P2PError(
            f"--{option}: {str(directory)!r} is not a checkout of {REPOSITORIES[option]}: "
            f"it has no {', '.join(missing)}"
        )
    return path


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


# -- the model ----------------------------------------------------------------------------------------
def build_reference_model(dtype="float64"):
    """The random-weight SD-layout pipeline (CPU) every comparison runs on, in ``dtype``.

    float64 by default: the random UNet is no denoiser, so its latents grow to |x| ~ 40 over ten
    DDIM steps, and two float32 implementations of the same attention (our fused and explicit
    paths) already end 6e-5 apart there; in float64 exact agreement shows as ~1e-12 and the 1e-4
    tolerance measures the methods, not rounding."""
    import torch
    from diffusers.utils import logging as diffusers_logging

    from ..pocket.model import assemble_pipeline, build_components
    from .geometries import SDGEOM_TEXT, SDGEOM_VAE

    pipe = assemble_pipeline(*build_components(SDGEOM_VAE, SDGEOM_TEXT, REFERENCE_UNET, seed=SEED))
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its advice to load other precisions with from_pretrained
    try:
        return pipe.to(dtype=getattr(torch, dtype))
    finally:
        diffusers_logging.set_verbosity(level)


def start_noise(pipe):
    """(1, 4, 64, 64): the start latents both sides share (one draw for every prompt)."""
    import torch

    generator = torch.Generator("cpu").manual_seed(SEED)
    shape = (1, pipe.unet.config.in_channels, SIZE // 8, SIZE // 8)
    return torch.randn(shape, generator=generator).to(pipe.unet.dtype)


def synthetic_image():
    """A smooth 512x512 RGB picture (upsampled seeded noise): the image Plug-and-Play inverts."""
    import numpy as np
    from PIL import Image

    cells = np.random.default_rng(SEED).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize((SIZE, SIZE), Image.BICUBIC)


def max_difference(a, b) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()  # float64: a float32 cast would round |x| ~ 30 to 2e-6
    if a.shape != b.shape:
        raise P2PError(f"the two sides' latents differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a - b).abs().max())


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


# -- MasaCtrl -------------------------------------------------------------------------------------------
# the DDIM of MasaCtrl's playground notebooks (steps_offset 0, which their pipeline's constructor,
# StableDiffusionPipeline's, turns into 1 with a deprecation notice: timesteps end at 1)
MASACTRL_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False
)


def masactrl_authors(directory: Path, pipe, noise, steps: int, changes: list):
    """MasaCtrl's pipeline with ``MutualSelfAttentionControl(4, 10)`` registered: final latents (2 rows)."""
    from diffusers import DDIMScheduler

    if _missing("einops"):
        raise P2PError("MasaCtrl's code needs einops: pip install einops")
    with authors_imports(directory, changes):
        from masactrl.diffuser_utils import MasaCtrlPipeline
        from masactrl.masactrl import MutualSelfAttentionControl
        from masactrl.masactrl_utils import regiter_attention_editor_diffusers
    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers' notice that it sets steps_offset to 1 (below)
        model = MasaCtrlPipeline(
            **_components(pipe, copy.deepcopy(pipe.unet)),
            scheduler=DDIMScheduler(**MASACTRL_SCHEDULER),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        control = MutualSelfAttentionControl(start_step=4, start_layer=10, total_steps=steps)
    changes.append("MasaCtrlPipeline built from our model's components (a copy of the UNet), not from_pretrained")
    record = Recorder()
    model.latent2image = record
    changes.append("MasaCtrlPipeline.latent2image records the final latents instead of decoding them")
    with _quiet():
        regiter_attention_editor_diffusers(model, control)
        model(
            list(MASA_PROMPTS), latents=noise.expand(2, -1, -1, -1), num_inference_steps=steps, guidance_scale=GUIDANCE
        )
    return record.latents


def masactrl_ours(pipe, noise, steps: int):
    from ..engine.controls import MutualSelfAttention
    from ..engine.sampler import Editor

    # our default DDIM: the playground's settings with steps_offset 1, which is what their
    # scheduler becomes (StableDiffusionPipeline's constructor rewrites steps_offset 0 to 1)
    result = Editor(pipe).edit(
        MASA_PROMPTS[0],
        MASA_PROMPTS[1],
        rules=[MutualSelfAttention(start_step=4, start_layer=10)],
        steps=steps,
        guidance=GUIDANCE,
        latents=noise,
    )
    return result.latents


# -- Plug-and-Play ---------------------------------------------------------------------------------------
def _pnp_config(folder: Path, steps: int) -> dict:
    return dict(
        seed=1,
        device="cpu",
        output_path=str(folder),
        image_path=str(folder / "image.png"),
        latents_path=str(folder / "latents_forward"),
        sd_version="1.5",
        guidance_scale=GUIDANCE,
        n_timesteps=steps,
        prompt=PNP_TARGET,
        negative_prompt="",  # ours has no negative prompt (their example config has one)
        pnp_attn_t=0.5,
        pnp_f_t=0.8,
    )


def _pnp_invert(preprocess, pipe, unet, config: dict, steps: int, changes: list) -> None:
    """Their preprocess.py: DDIM inversion under "" with ``steps`` steps, latents saved per timestep."""
    import torch

    save_path = Path(config["latents_path"]) / "image"
    save_path.mkdir(parents=True)
    components = _components(pipe, unet)
    if pipe.vae.dtype != torch.float32:
        components["vae"] = _InputCast(pipe.vae)
        changes.append(f"Preprocess.vae casts the float32 image tensor to the model's {pipe.vae.dtype}")
    pre = _bare(preprocess.Preprocess, device="cpu", sd_version="1.5", use_depth=False, scheduler=_ddim(pipe))
    for name, value in components.items():
        setattr(pre, name, value)
    pre.inversion_func = pre.ddim_inversion
    pre.get_text_embeds = functools.partial(preprocess.Preprocess.get_text_embeds, pre, device="cpu")
    changes.append(
        "Preprocess built without __init__ (our components); preprocess.device = 'cpu', "
        f"get_text_embeds(device='cpu'); inverted with --steps {steps} (their default 999) and --inversion_prompt ''"
    )
    with _quiet(), _patched(preprocess, device="cpu"):
        pre.extract_latents(
            num_steps=steps,
            data_path=config["image_path"],
            save_path=str(save_path),
            timesteps_to_save=None,
            inversion_prompt="",
        )


def _pnp_timesteps(pipe, steps: int) -> list[int]:
    scheduler = _ddim(pipe)
    scheduler.set_timesteps(steps)
    return sorted(scheduler.timesteps.tolist())


def pnp_authors_inversion(directory: Path, pipe, config: dict, steps: int, changes: list, state: dict):
    """Their preprocess.py's inversion: the latents it saved, timesteps ascending (x_t1 ... x_T)."""
    import torch

    with authors_imports(directory, changes):
        import pnp as pnp_module
        import preprocess
    state.update(pnp=pnp_module, unet=copy.deepcopy(pipe.unet))
    synthetic_image().save(config["image_path"])
    _pnp_invert(preprocess, pipe, state["unet"], config, steps, changes)
    folder = Path(config["latents_path"]) / "image"
    return torch.cat([torch.load(folder / f"noisy_latents_{t}.pt") for t in _pnp_timesteps(pipe, steps)])


def pnp_ours_inversion(pipe, steps: int, state: dict):
    from ..engine.sampler import Editor

    state["inversion"] = Editor(pipe).invert(
        synthetic_image(), "", method="ddim", steps=steps, guidance=GUIDANCE, cache=False
    )
    return state["inversion"].latents[1:]


def pnp_authors_edit(pipe, config: dict, steps: int, changes: list, state: dict):
    """Their ``PNP.run_pnp`` reading OUR inversion's latents (written over theirs): the edit's final latents."""
    import torch

    folder = Path(config["latents_path"]) / "image"
    for t, latents in zip(_pnp_timesteps(pipe, steps), state["inversion"].latents[1:]):
        torch.save(latents[None].to(pipe.unet.dtype), folder / f"noisy_latents_{t}.pt")
    changes.append("run_pnp reads our inversion's latents, saved over theirs (the row above compares the inversions)")
    model = _bare(state["pnp"].PNP, config=config, device="cpu", scheduler=_ddim(pipe))
    for name, value in _components(pipe, state["unet"]).items():
        setattr(model, name, value)
    model.scheduler.set_timesteps(steps, device="cpu")
    with _quiet():
        model.image, model.eps = model.get_data()
        model.text_embeds = model.get_text_embeds(config["prompt"], config["negative_prompt"])
        model.pnp_guidance_embeds = model.get_text_embeds("", "").chunk(2)[0]
        changes.append("PNP built without __init__: its attributes set as __init__ sets them, from our components")
        record = model.decode_latent = Recorder()
        changes.append("PNP.decode_latent records the final latents instead of decoding them")
        model.run_pnp()
    return record.latents


def pnp_ours_edit(pipe, steps: int, state: dict):
    from ..engine.controls import PlugAndPlay
    from ..engine.sampler import Editor

    result = Editor(pipe).edit(
        "",
        PNP_TARGET,
        rules=[PlugAndPlay(feature_until=0.8, attention_until=0.5)],
        inversion=state["inversion"],
        steps=steps,
        guidance=GUIDANCE,
    )
    return result.latents[1:]


def _compare_pnp(directory: Path, pipe, steps: int) -> list[Row]:
    """Two rows: the inversions (theirs and ours from the same picture), then the edits from one
    inversion (ours, written where their code reads its own), so each row measures one method."""
    inversion, edit, state = Row("PnP inversion"), Row("Plug-and-Play"), {}
    with tempfile.TemporaryDirectory() as tmp:
        config = _pnp_config(Path(tmp), steps)
        _measure(
            inversion,
            lambda: pnp_authors_inversion(directory, pipe, config, steps, inversion.changes, state),
            lambda: pnp_ours_inversion(pipe, steps, state),
        )
        if "inversion" in state and "pnp" in state:
            _measure(
                edit,
                lambda: pnp_authors_edit(pipe, config, steps, edit.changes, state),
                lambda: pnp_ours_edit(pipe, steps, state),
            )
        else:
            edit.error = "no inversion to edit (see the row above)"
    return [inversion, edit]


# -- Prompt-to-Prompt ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class P2PCase:
    """One P2P edit: the prompts, our ``Editor.edit`` options and the authors' controller."""

    name: str
    source: str
    target: str
    ours: dict
    authors: object  # (notebook namespace, prompts, steps) -> their controller


def _refine(ns, prompts, steps, **options):
    return ns["AttentionRefine"](prompts, steps, cross_replace_steps=0.75, self_replace_steps=0.4, **options)


def _reweight(ns, prompts, steps):
    equalizer = ns["get_equalizer"](prompts[1], ("croutons",), (3,))
    return ns["AttentionReweight"](
        prompts,
        steps,
        cross_replace_steps=0.75,
        self_replace_steps=0.4,
        equalizer=equalizer,
        controller=_refine(ns, prompts, steps),
    )


def _replace(ns, prompts, steps, cross, **options):
    return ns["AttentionReplace"](prompts, steps, cross_replace_steps=cross, self_replace_steps=0.4, **options)


# LocalBlend's threshold: a random model's word maps are nearly flat (0.65 to 1 of their peak
# after pooling), so the authors' 0.3 would keep every pixel and test no mask; 0.9 keeps about half
BLEND_THRESHOLD = 0.9

# windows 0.75 and 0.3: over 6 steps the authors' int(f * 7) gives 5 and 2 where int(f * 6) gives 4 and 1
P2P_CASES = (
    P2PCase(
        "P2P replace",
        "a painting of a squirrel eating a burger",
        "a painting of a lion eating a burger",
        dict(kind="replace", cross={"default_": 0.75, "lion": 0.3}, self_attn=0.4),
        lambda ns, p, n: _replace(ns, p, n, {"default_": 0.75, "lion": 0.3}),
    ),
    P2PCase(
        "P2P refine",
        "a photo of a house on a mountain",
        "a photo of a house on a mountain at fall",
        dict(kind="refine", cross=0.75, self_attn=0.4),
        _refine,
    ),
    P2PCase(
        "P2P reweight",
        "a bowl of soup",
        "a bowl of pea soup with croutons",
        dict(kind="refine", cross=0.75, self_attn=0.4, reweight={"croutons": 3.0}),
        _reweight,
    ),
    P2PCase(
        "P2P LocalBlend",
        "a painting of a squirrel eating a burger",
        "a painting of a squirrel eating a lasagne",
        dict(kind="replace", cross={"default_": 1.0, "lasagne": 0.2}, self_attn=0.4, blend=("burger", "lasagne")),
        lambda ns, p, n: _replace(
            ns,
            p,
            n,
            {"default_": 1.0, "lasagne": 0.2},
            local_blend=ns["LocalBlend"](p, ("burger", "lasagne"), threshold=BLEND_THRESHOLD),
        ),
    ),
)


def _old_call(self, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
    """The forward P2P installs takes old diffusers' argument names (``context``, ``mask``)."""
    if "forward" not in self.__dict__:  # not (yet) replaced by theirs
        return super(type(self), self).__call__(hidden_states, encoder_hidden_states, attention_mask, **kwargs)
    return self.forward(hidden_states, context=encoder_hidden_states, mask=attention_mask)


def old_attention_names(unet):
    """``unet``'s attention modules as old diffusers' ``CrossAttention`` (the class name P2P looks
    for, its head-reshaping method names, its argument names); returns ``unet``."""
    from diffusers.models.attention_processor import Attention

    aliases = {}
    for module in unet.modules():
        if isinstance(module, Attention):
            cls = type(module)
            if cls not in aliases:
                methods = dict(
                    reshape_heads_to_batch_dim=cls.head_to_batch_dim,
                    reshape_batch_dim_to_heads=cls.batch_to_head_dim,
                    __call__=_old_call,
                )
                aliases[cls] = type("CrossAttention", (cls,), methods)
            module.__class__ = aliases[cls]
    return unet


def p2p_namespace(directory: Path, pipe, steps: int, changes: list) -> dict:
    """The notebook's import and controller cells, run with our model in place of its loading cell."""
    import torch

    notebook = directory / "prompt-to-prompt_stable.ipynb"
    imports, controllers = notebook_cells(notebook, ("import ptp_utils", "class AttentionControlEdit"))
    model = types.SimpleNamespace(**_components(pipe), device=torch.device("cpu"))
    model.scheduler = accept_offset(_ddim(pipe))
    ns = dict(
        __name__="prompt_to_prompt_stable",
        LOW_RESOURCE=False,
        NUM_DIFFUSION_STEPS=steps,
        GUIDANCE_SCALE=GUIDANCE,
        MAX_NUM_WORDS=77,
        device=torch.device("cpu"),
        ldm_stable=model,
        tokenizer=pipe.tokenizer,
    )
    with authors_imports(directory, changes):
        for k, source in enumerate((imports, controllers)):
            exec(compile(source, f"<{notebook.name}: code cell {k + 1} of 2 run>", "exec"), ns)  # their code
    changes.append(
        "notebook: its import and controller cells run; its model-loading cell replaced by "
        "LOW_RESOURCE=False, device cpu, our tokenizer and model (DDIM from our config, not PNDM)"
    )
    changes.append(
        "diffusers 0.42: attention modules renamed CrossAttention with reshape_heads_to_batch_dim / "
        "reshape_batch_dim_to_heads, called as forward(x, context, mask); set_timesteps(offset=1) = steps_offset 1"
    )
    changes.append("ptp_utils.latent2image records the final latents (no decoding); tqdm off")
    if pipe.unet.dtype != torch.float32:
        changes.append(f"AttentionReplace's float32 mapper (0, 1, 1/n: exact) cast to {pipe.unet.dtype} for its einsum")
    return ns


def p2p_authors(ns: dict, case: P2PCase, pipe, noise, steps: int):
    """``ptp_utils.text2image_ldm_stable`` with the case's controller: final latents (2 rows)."""
    import numpy as np

    ptp_utils, model = ns["ptp_utils"], ns["ldm_stable"]
    model.unet = old_attention_names(copy.deepcopy(pipe.unet))
    prompts = [case.source, case.target]
    controller = case.authors(ns, prompts, steps)
    for part in (controller, getattr(controller, "prev_controller", None)):
        mapper = getattr(part, "mapper", None)
        if mapper is not None and mapper.is_floating_point():  # Replace's einsum takes one dtype
            part.mapper = mapper.to(pipe.unet.dtype)
    record = Recorder(result=np.zeros((2, 8, 8, 3), dtype=np.uint8))
    with _quiet(), _patched(ptp_utils, latent2image=record, tqdm=lambda steps: steps):
        ptp_utils.text2image_ldm_stable(
            model, prompts, controller, num_inference_steps=steps, guidance_scale=GUIDANCE, latent=noise
        )
    return record.latents


def p2p_ours(pipe, case: P2PCase, noise, steps: int):
    from ..engine.blend import LocalBlend
    from ..engine.sampler import Editor

    options = dict(case.ours)
    if "blend" in options:  # the stable notebook's LocalBlend: every step from the first
        options["blend"] = LocalBlend([[w] for w in options["blend"]], threshold=BLEND_THRESHOLD, start=0)
    result = Editor(pipe).edit(
        case.source, case.target, latents=noise, steps=steps, guidance=GUIDANCE, compat="reference", **options
    )
    return result.latents


# -- the comparison ----------------------------------------------------------------------------------------
def _measure(row: Row, authors, ours) -> Row:
    """Run both sides; any failure becomes the row's error (the other methods still run)."""
    t0 = time.perf_counter()
    try:
        theirs = authors()
        if theirs is None:
            raise P2PError("the authors' run returned no latents (their decode step was never reached)")
        row.difference = max_difference(ours(), theirs)
    except Exception as exc:  # noqa: BLE001 - one method's failure is reported in its row
        row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    row.seconds = time.perf_counter() - t0
    return row


def compare(checkouts: dict, steps: int, pipe=None, dtype: str = "float64") -> list[Row]:
    """One row per case of each method whose checkout is given (``{"masactrl": Path, ...}``), on
    ``pipe`` (default: :func:`build_reference_model` in ``dtype``)."""
    pipe = build_reference_model(dtype) if pipe is None else pipe
    noise = start_noise(pipe)
    rows = []
    if "masactrl" in checkouts:
        row = Row("MasaCtrl")
        rows.append(
            _measure(
                row,
                lambda: masactrl_authors(checkouts["masactrl"], pipe, noise, steps, row.changes),
                lambda: masactrl_ours(pipe, noise, steps),
            )
        )
    if "pnp" in checkouts:
        rows += _compare_pnp(checkouts["pnp"], pipe, steps)
    if "p2p" in checkouts:
        rows += _compare_p2p(checkouts["p2p"], pipe, noise, steps)
    return rows


def _compare_p2p(directory: Path, pipe, noise, steps: int) -> list[Row]:
    changes = []
    try:
        ns = p2p_namespace(directory, pipe, steps, changes)
    except Exception as exc:  # noqa: BLE001 - reported in every P2P row
        return [Row(case.name, error=f"{type(exc).__name__}: {exc}"[:300], changes=changes) for case in P2P_CASES]
    rows = []
    for case in P2P_CASES:
        row, theirs = Row(case.name, changes=changes if not rows else []), {}

        def authors(case=case, theirs=theirs):
            theirs["latents"] = p2p_authors(ns, case, pipe, noise, steps)
            return theirs["latents"]

        rows.append(_measure(row, authors, lambda case=case: p2p_ours(pipe, case, noise, steps)))
        if "blend" in case.ours and theirs.get("latents") is not None:
            kept = float((theirs["latents"][0] == theirs["latents"][1]).all(0).double().mean())
            row.note = f"their LocalBlend kept the source's latents at {kept:.0%} of the positions"
    return rows


def report(rows: list[Row], steps: int, dtype: str = "float64", out=None) -> str:
    """The table (and the changes made to run the authors' code) as printed."""
    lines = [
        f"reference model: SD 1.x UNet layout at {SIZE} px (attention at 64/32/16), random weights, {dtype} CPU; "
        f"{steps} steps, guidance {GUIDANCE}",
        f"{'method':<16} {'max |latent diff|':>18} {'tolerance':>10}  result   seconds",
    ]
    for r in rows:
        value = "-" if r.difference is None else f"{r.difference:.3e}"
        verdict = "pass" if r.passed else "FAIL"
        lines.append(f"{r.method:<16} {value:>18} {TOLERANCE:>10.0e}  {verdict:<7} {r.seconds:7.1f}")
    for r in rows:
        if r.error:
            lines.append(f"{r.method}: error: {r.error}")
        if r.note:
            lines.append(f"{r.method}: {r.note}")
    changed = [r for r in rows if r.changes]
    if changed:
        lines.append("changes made to run the authors' code (at run time; their files untouched):")
        for r in changed:
            lines += [f"  {r.method}: {c}" for c in r.changes]
    text = "\n".join(lines)
    print(text, file=out or sys.stdout)
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p2p_widgets.bench reference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option, repository in REPOSITORIES.items():
        p.add_argument(f"--{option}", metavar="DIR", help=f"a checkout of {repository}")
    p.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help=f"sampling steps of every run (default {DEFAULT_STEPS})"
    )
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="the model's precision (default float64: see build_reference_model)",
    )
    return p


def checkouts_of(args) -> dict:
    """``{option: Path}`` for the given checkouts; P2PError naming a bad one, or none given."""
    given = {option: getattr(args, option) for option in CHECKOUTS if getattr(args, option)}
    if not given:
        raise P2PError("give at least one checkout: --masactrl DIR, --pnp DIR or --p2p DIR")
    if not 2 <= args.steps <= 1000:
        raise P2PError(f"--steps must be between 2 and 1000, got {args.steps}")
    return {option: check_checkout(option, directory) for option, directory in given.items()}


def main(argv=None):
    """Exit status 0 when every compared case is within the tolerance, 1 otherwise, 2 for bad arguments."""
    args = parser().parse_args(argv)
    try:
        checkouts = checkouts_of(args)
    except P2PError as exc:
        print(f"reference: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    rows = compare(checkouts, args.steps, dtype=args.dtype)
    report(rows, args.steps, args.dtype)
    raise SystemExit(0 if all(r.passed for r in rows) else 1)


if __name__ == "__main__":
    main()
