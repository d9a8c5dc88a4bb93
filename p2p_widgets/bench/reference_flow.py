"""The flow-model methods beside their authors' code (issue 27): FlowEdit's ``FlowEditSD3``
(github.com/fallenshock/FlowEdit, MIT) and ours on a tiny random-weight SD3 in float64, the same
pocket picture, prompts and noise; the maximum latent difference of the edits. The same for
FlowEdit's Flux path, RF-Inversion, and RF-Solver's and FireFlow's inversion and sampling on a tiny
Flux dev.

The authors' code is imported from a checkout given by path and is never part of this repository.
What changes at run time to run it, and only for the duration of its call:

- ``torch.randn_like`` is replaced by a function handing out pre-drawn noise (the same draws this
  project's ``flow_edit`` receives through its ``noise=`` argument). Their noise is
  ``randn_like`` of the VAE's latents, which are channels-last, and torch's CPU normals differ for
  channels-last and contiguous tensors of one seed, so both sides take the same tensors instead.
- ``FlowEditSD3`` otherwise runs unchanged under this project's diffusers on a tiny
  ``StableDiffusion3Pipeline`` (guidances above 1: with guidance 1 their SD3 path passes a tuple
  to the transformer; ``n_min`` 0: with ``n_min > 0`` their SD3 path reads ``noise_pred_tar``,
  a name it never sets).
- ``FlowEditFLUX`` is loaded from their file with one expression replaced in memory: the image
  size they derive from the latents, ``shape * pipe.vae_scale_factor // 2``, becomes
  ``shape * pipe.vae_scale_factor``. They wrote it when FluxPipeline's ``vae_scale_factor`` was
  twice the VAE's downsampling; since diffusers made it the downsampling itself, the halved size
  gives ``prepare_latents`` image ids for a quarter of the tokens and the transformer fails (their
  issues 4 and 6). Their noise there is drawn on the packed (tokens x 2x2 patches) latents: they
  get each draw packed, this project the same draw spatial.

- RF-Inversion: diffusers' community ``pipeline_flux_rf_inversion.py`` (Apache-2.0, given by path)
  runs as an ``RFInversionFluxPipeline`` built from the tiny Flux's components, unchanged except
  that its instance's ``encode_image`` returns the picture's latents as this project encodes them
  (the VAE's posterior mean: theirs draws a sample from the posterior with the global generator)
  and ``randn_like`` hands both sides the same draw ``y_1`` (packed for them).

- RF-Solver and FireFlow: RF-Solver-Edit's ``denoise`` (github.com/wangjiangshan0725/RF-Solver-Edit,
  Apache-2.0) and FireFlow's ``denoise_fireflow`` (github.com/HolmesShuan/FireFlow-Fast-Inversion-
  of-Rectified-Flow-for-Image-Semantic-Editing, Apache-2.0), both on black-forest-labs' ``flux``
  package as their repositories carry it, given by path. Their ``flux.model.Flux`` is built from
  the tiny diffusers transformer's config and takes its weights under BFL's names
  (:func:`bfl_flux_state_dict`, written here from the two models' module layouts); their
  ``prepare`` gets this project's text states. Their functions walk the sigmas ours walks (their
  ``get_schedule`` is the same shifted schedule, computed in float32), with feature sharing off
  (``info["inject_step"]`` 0). Their ``flux`` modules are imported for the call only and leave
  ``sys.modules`` after; where einops is not installed a stub module stands in for it
  (``rearrange`` / ``repeat`` of the patterns they use, as reshapes).

  Their edit with feature sharing is not one of this project's rules, so it is not compared: their
  single-stream blocks take the value of every token, text included, from the inversion's pass
  (stored by the step's interval: a sampling step's first call reads the value the inversion
  computed at the step's other end), while ``KVInjection`` (preset ``rf-solver-edit``) copies the
  image tokens' values of the source branch sampled beside the edit, at the same call.

``python -m p2p_widgets.bench.reference_flow --flowedit DIR --rf-inversion FILE --rf-solver DIR
--fireflow DIR`` prints the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import time
from pathlib import Path

import torch

from ..engine.models.flux import pack_latents, unpack_latents
from ..errors import P2PError

TOLERANCE = 1e-5
FLOWEDIT_FILES = ("FlowEdit_utils.py",)
SOURCE = "a big red circle left of a small blue square on a gray background"
TARGET = "a big green circle left of a small blue square on a gray background"
CHANGES = [
    "torch.randn_like hands out pre-drawn noise during the authors' call (both sides take the same draws)",
]


def check_flowedit_checkout(directory) -> Path:
    path = Path(directory).expanduser()
    missing = [name for name in FLOWEDIT_FILES if not (path / name).is_file()]
    if not path.is_dir() or missing:
        raise P2PError(
            f"--flowedit: {str(directory)!r} is not a checkout of fallenshock/FlowEdit (no FlowEdit_utils.py)"
        )
    return path


FLUX_SIZE_FIX = (
    "x_src.shape[2]*pipe.vae_scale_factor//2, x_src.shape[3]*pipe.vae_scale_factor//2",
    "x_src.shape[2]*pipe.vae_scale_factor, x_src.shape[3]*pipe.vae_scale_factor",
)


def _import_authors(path: Path, name: str, replace=()):
    """Their module from ``path``, with each (old, new) of ``replace`` substituted in memory first."""
    source = path.read_text()
    for old, new in replace:
        if old not in source:
            raise P2PError(f"{path}: expected to find {old!r} (another version of the authors' code?)")
        source = source.replace(old, new)
    spec = importlib.util.spec_from_loader(f"_authors_{name}", loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - the authors' code, by the user's path
    return module


class NoiseQueue:
    """Pre-drawn noise handed out in order, to either side (``draw(like)``)."""

    def __init__(self, draws):
        self.draws, self.next = list(draws), 0

    def __call__(self, like, *args, **kwargs):
        if self.next >= len(self.draws):
            raise RuntimeError("more noise asked for than drawn")
        out = self.draws[self.next]
        self.next += 1
        if tuple(out.shape) != tuple(like.shape):
            raise RuntimeError(f"noise of shape {tuple(out.shape)} asked for as {tuple(like.shape)}")
        return out.to(like.device, like.dtype)


@contextlib.contextmanager
def patched_randn_like(queue):
    original = torch.randn_like
    torch.randn_like = queue
    try:
        yield
    finally:
        torch.randn_like = original


def flowedit_sd3_case(checkout, *, steps=8, n_max=6, n_avg=2, source_guidance=3.5, target_guidance=13.5, seed=0):
    """{"difference", "changes", "effect", "seconds"}: the authors' ``FlowEditSD3`` and ours on a
    tiny SD3 in float64 (``effect``: how far the edit moved the picture's latents, for scale)."""
    from ..engine.flowedit import flow_edit
    from ..engine.images import load_image
    from ..engine.sampler import Editor
    from ..pocket.scenes import make_dataset
    from .mmdit_geometries import tiny_sd3_pipeline

    t0 = time.perf_counter()
    authors = _import_authors(check_flowedit_checkout(checkout) / "FlowEdit_utils.py", "flowedit")
    pipe = tiny_sd3_pipeline(seed).to(dtype=torch.float64)
    editor = Editor(pipe)
    images, _, _ = make_dataset(1, seed)
    pixels = load_image(images[0], (64, 64))
    x_src = editor.encode_image(pixels)
    generator = torch.Generator("cpu").manual_seed(seed)
    draws = [torch.randn(x_src.shape, generator=generator, dtype=torch.float64) for _ in range(n_max * n_avg)]

    ours = flow_edit(
        editor,
        pixels,
        SOURCE,
        TARGET,
        steps=steps,
        n_max=n_max,
        n_min=0,
        n_avg=n_avg,
        source_guidance=source_guidance,
        target_guidance=target_guidance,
        noise=NoiseQueue(draws),
        size=64,
    ).latents
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    with patched_randn_like(NoiseQueue(draws)):
        theirs = authors.FlowEditSD3(
            pipe,
            scheduler,
            x_src.clone(),
            SOURCE,
            TARGET,
            "",
            T_steps=steps,
            n_avg=n_avg,
            src_guidance_scale=source_guidance,
            tar_guidance_scale=target_guidance,
            n_min=0,
            n_max=n_max,
        )
    return {
        "difference": float((ours.double() - theirs.double()).abs().max()),
        "effect": float((ours.double() - x_src.double()).abs().max()),
        "changes": list(CHANGES),
        "seconds": time.perf_counter() - t0,
    }


def flowedit_flux_case(checkout, *, steps=8, n_max=6, n_avg=2, source_guidance=1.5, target_guidance=5.5, seed=0):
    """As :func:`flowedit_sd3_case` with the authors' ``FlowEditFLUX`` on a tiny Flux dev (guidance
    embedded), after the size fix named in the module docstring."""
    from ..engine.flowedit import flow_edit
    from ..engine.images import load_image
    from ..engine.sampler import Editor
    from ..pocket.scenes import make_dataset
    from .mmdit_geometries import tiny_flux_pipeline

    t0 = time.perf_counter()
    path = check_flowedit_checkout(checkout) / "FlowEdit_utils.py"
    authors = _import_authors(path, "flowedit_flux", [FLUX_SIZE_FIX])
    pipe = tiny_flux_pipeline(seed, guidance_embeds=True).to(dtype=torch.float64)
    editor = Editor(pipe)
    images, _, _ = make_dataset(1, seed)
    pixels = load_image(images[0], (64, 64))
    x_src = editor.encode_image(pixels)
    h, w = x_src.shape[-2:]
    generator = torch.Generator("cpu").manual_seed(seed)
    draws = [torch.randn(x_src.shape, generator=generator, dtype=torch.float64) for _ in range(n_max * n_avg)]
    settings = dict(steps=steps, n_max=n_max, n_min=0, n_avg=n_avg)
    ours = flow_edit(
        editor,
        pixels,
        SOURCE,
        TARGET,
        **settings,
        source_guidance=source_guidance,
        target_guidance=target_guidance,
        noise=NoiseQueue(draws),
        size=64,
    ).latents
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    with patched_randn_like(NoiseQueue([pack_latents(d) for d in draws])):
        theirs = authors.FlowEditFLUX(
            pipe,
            scheduler,
            x_src.clone(),
            SOURCE,
            TARGET,
            "",
            T_steps=steps,
            n_avg=n_avg,
            src_guidance_scale=source_guidance,
            tar_guidance_scale=target_guidance,
            n_min=0,
            n_max=n_max,
        )
    assert theirs.shape[-2:] == (h, w)
    return {
        "difference": float((ours.double() - theirs.double()).abs().max()),
        "effect": float((ours.double() - x_src.double()).abs().max()),
        "changes": [
            *CHANGES,
            "FlowEditFLUX: the image size 'shape * pipe.vae_scale_factor // 2' read as 'shape * "
            "pipe.vae_scale_factor' (diffusers' vae_scale_factor is no longer twice the VAE's downsampling)",
            "FlowEditFLUX: each noise draw handed out packed (tokens x 2x2 patches), ours the same draw spatial",
        ],
        "seconds": time.perf_counter() - t0,
    }


def rf_inversion_flux_case(community_file, *, steps=8, seed=0, **settings):
    """RF-Inversion's community pipeline (``invert`` then the edit) and ours on a tiny Flux dev in
    float64, same picture, prompts and ``y_1``; the edit's window and controls are set so every
    term acts (``start`` 0.125 to ``stop`` 0.75 of 8 steps, eta 0.7 decayed, gamma 0.5)."""
    # long: one comparison read top to bottom: the shared inputs, their pipeline's two calls, ours
    from ..engine.images import load_image
    from ..engine.rf_inversion import check_rf_inversion_settings, rf_inversion
    from ..engine.sampler import Editor
    from ..pocket.scenes import make_dataset
    from .mmdit_geometries import tiny_flux_pipeline

    t0 = time.perf_counter()
    path = Path(community_file).expanduser()
    if path.is_dir():  # a diffusers checkout
        path = path / "examples" / "community" / "pipeline_flux_rf_inversion.py"
    if not path.is_file() or "RFInversionFluxPipeline" not in path.read_text():
        raise P2PError(f"--rf-inversion: {str(community_file)!r} is not diffusers' pipeline_flux_rf_inversion.py")
    authors = _import_authors(path, "rf_inversion")
    params = check_rf_inversion_settings(
        {"steps": steps, "start": 0.125, "stop": 0.75, "eta": 0.7, "decay_eta": True, "guidance": 2.5, **settings}
    )
    pipe = tiny_flux_pipeline(seed, guidance_embeds=True).to(dtype=torch.float64)
    editor = Editor(pipe)
    images, _, _ = make_dataset(1, seed)
    pixels = load_image(images[0], (64, 64))
    x_src = editor.encode_image(pixels)
    h, w = x_src.shape[-2:]
    y1 = torch.randn(x_src.shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float64)
    ours = rf_inversion(editor, pixels, "", TARGET, noise=NoiseQueue([y1]), size=64, **params).latents

    names = ("scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer")
    theirs_pipe = authors.RFInversionFluxPipeline(**{name: getattr(pipe, name) for name in names})
    theirs_pipe.set_progress_bar_config(disable=True)
    theirs_pipe.encode_image = lambda image, **kwargs: (x_src.clone(), None)  # the posterior mean, as ours
    side = 64
    with patched_randn_like(NoiseQueue([pack_latents(y1)])):
        inverted, image_latents, ids = theirs_pipe.invert(
            pixels,
            source_prompt="",
            source_guidance_scale=params["source_guidance"],
            num_inversion_steps=steps,
            gamma=params["gamma"],
            height=side,
            width=side,
            dtype=torch.float64,
        )
    edited = theirs_pipe(
        prompt=TARGET,
        inverted_latents=inverted,
        image_latents=image_latents,
        latent_image_ids=ids,
        height=side,
        width=side,
        eta=params["eta"],
        decay_eta=params["decay_eta"],
        eta_decay_power=params["eta_decay_power"],
        start_timestep=params["start"],
        stop_timestep=params["stop"],
        num_inference_steps=steps,
        guidance_scale=params["guidance"],
        output_type="latent",
    ).images
    theirs = unpack_latents(edited, h, w)
    return {
        "difference": float((ours.double() - theirs.double()).abs().max()),
        "effect": float((ours.double() - x_src.double()).abs().max()),
        "changes": [
            "RFInversionFluxPipeline.encode_image (on the instance) returns the picture's posterior-mean latents",
            "torch.randn_like hands out the pre-drawn y_1 (packed) during their invert()",
        ],
        "seconds": time.perf_counter() - t0,
    }


# -- RF-Solver and FireFlow: the authors' code on black-forest-labs' own Flux model ------------------

# (option, repository, folders that may hold their ``flux`` package, their solver's function)
FLUX_SOLVER_CODE = {
    "rf-solver": ("--rf-solver", "wangjiangshan0725/RF-Solver-Edit", ("FLUX_Image_Edit/src", "src", "."), "denoise"),
    "fireflow": (
        "--fireflow",
        "HolmesShuan/FireFlow-Fast-Inversion-of-Rectified-Flow-for-Image-Semantic-Editing",
        ("src", "."),
        "denoise_fireflow",
    ),
}


def check_flux_solver_checkout(directory, method: str) -> Path:
    """The folder of ``directory`` (a checkout of the method's repository) that holds their ``flux``
    package with the solver's denoise function."""
    option, repository, folders, function = FLUX_SOLVER_CODE[method]
    root = Path(directory).expanduser()
    for folder in folders:
        sampling = root / folder / "flux" / "sampling.py"
        if sampling.is_file() and f"def {function}(" in sampling.read_text():
            return (root / folder).resolve()
    raise P2PError(
        f"{option}: {str(directory)!r} is not a checkout of {repository} "
        f"(no flux/sampling.py with {function}() under {', '.join(folders)})"
    )


def _einops_stub():
    """``einops.rearrange`` / ``repeat`` for exactly the patterns their ``flux`` package uses, written
    as reshapes (when einops is not installed); any other pattern is refused."""
    import types

    def rearrange(x, pattern, **n):
        if pattern == "b c (h ph) (w pw) -> b (h w) (c ph pw)" and n == {"ph": 2, "pw": 2}:
            return pack_latents(x)
        if pattern == "b (h w) (c ph pw) -> b c (h ph) (w pw)" and (n["ph"], n["pw"]) == (2, 2):
            return unpack_latents(x, 2 * n["h"], 2 * n["w"])
        if pattern == "B L (K H D) -> K B H L D":
            b, length, _ = x.shape
            return x.reshape(b, length, n["K"], n["H"], -1).permute(2, 0, 3, 1, 4)
        if pattern == "B H L D -> B L (H D)":
            b, h, length, d = x.shape
            return x.permute(0, 2, 1, 3).reshape(b, length, h * d)
        if pattern == "b n d (i j) -> b n d i j":
            return x.reshape(*x.shape[:-1], n["i"], n["j"])
        raise NotImplementedError(f"einops stub: rearrange {pattern!r}")

    def repeat(x, pattern, **n):
        if pattern == "h w c -> b (h w) c":
            return x.reshape(1, -1, x.shape[-1]).repeat(n["b"], 1, 1)
        if pattern == "1 ... -> bs ..." and x.shape[0] == 1:
            return x.repeat(n["bs"], *([1] * (x.ndim - 1)))
        raise NotImplementedError(f"einops stub: repeat {pattern!r}")

    module = types.ModuleType("einops")
    module.rearrange, module.repeat = rearrange, repeat
    return module


@contextlib.contextmanager
def authors_flux(src: Path):
    """Their ``flux`` package imported from ``src``: ``(flux.model, flux.sampling, changes)``. The
    ``flux`` modules (and a stub ``einops`` when none is installed) leave ``sys.modules`` after, so
    the two repositories' packages of one name never mix."""
    import importlib.util

    def theirs(name):
        return name == "flux" or name.startswith("flux.")

    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if theirs(name)}
    changes, stub = [], importlib.util.find_spec("einops") is None
    if stub:
        sys.modules["einops"] = _einops_stub()
        changes.append("einops (not installed) is a stub module: rearrange / repeat of their patterns as reshapes")
    sys.path.insert(0, str(src))
    try:
        yield importlib.import_module("flux.model"), importlib.import_module("flux.sampling"), changes
    finally:
        sys.path.remove(str(src))
        for name in [n for n in sys.modules if theirs(n)]:
            del sys.modules[name]
        sys.modules.update(saved)
        if stub:
            del sys.modules["einops"]


def bfl_flux_params(config) -> dict:
    """black-forest-labs' ``FluxParams`` of a diffusers ``FluxTransformer2DModel`` config."""
    heads = config.num_attention_heads
    return dict(
        in_channels=config.in_channels,
        vec_in_dim=config.pooled_projection_dim,
        context_in_dim=config.joint_attention_dim,
        hidden_size=heads * config.attention_head_dim,
        mlp_ratio=4.0,  # diffusers' Flux blocks: feed-forward width 4 x
        num_heads=heads,
        depth=config.num_layers,
        depth_single_blocks=config.num_single_layers,
        axes_dim=list(config.axes_dims_rope),
        theta=10000,  # diffusers' FluxPosEmbed
        qkv_bias=True,
        guidance_embed=bool(config.guidance_embeds),
    )


def bfl_flux_state_dict(transformer) -> dict:
    """A diffusers ``FluxTransformer2DModel``'s weights under black-forest-labs' names (their
    ``flux.model.Flux``): the q, k, v projections fused into one ``qkv`` (the single blocks' with the
    MLP's input too), the final modulation's halves swapped (diffusers: scale, shift; BFL: shift,
    scale). Every diffusers weight is used once, or this raises."""
    # long: one table of names, block by block, read beside the BFL model's modules
    sd = dict(transformer.state_dict())
    out = {}

    def put(bfl, *names, swap=False):
        for part in ("weight", "bias"):
            keys = [f"{name}.{part}" for name in names]
            if part == "bias" and keys[0] not in sd:
                continue
            value = torch.cat([sd.pop(k) for k in keys])
            if swap:
                value = torch.cat(value.chunk(2)[::-1])
            out[f"{bfl}.{part}"] = value

    def norm(bfl, name):
        out[f"{bfl}.scale"] = sd.pop(f"{name}.weight")

    put("img_in", "x_embedder")
    put("txt_in", "context_embedder")
    embedders = (("time_in", "timestep_embedder"), ("vector_in", "text_embedder"), ("guidance_in", "guidance_embedder"))
    for bfl, name in embedders:
        if f"time_text_embed.{name}.linear_1.weight" in sd:
            put(f"{bfl}.in_layer", f"time_text_embed.{name}.linear_1")
            put(f"{bfl}.out_layer", f"time_text_embed.{name}.linear_2")
    for i in range(transformer.config.num_layers):
        b, d = f"double_blocks.{i}", f"transformer_blocks.{i}"
        put(f"{b}.img_mod.lin", f"{d}.norm1.linear")
        put(f"{b}.txt_mod.lin", f"{d}.norm1_context.linear")
        put(f"{b}.img_attn.qkv", f"{d}.attn.to_q", f"{d}.attn.to_k", f"{d}.attn.to_v")
        put(f"{b}.txt_attn.qkv", f"{d}.attn.add_q_proj", f"{d}.attn.add_k_proj", f"{d}.attn.add_v_proj")
        norm(f"{b}.img_attn.norm.query_norm", f"{d}.attn.norm_q")
        norm(f"{b}.img_attn.norm.key_norm", f"{d}.attn.norm_k")
        norm(f"{b}.txt_attn.norm.query_norm", f"{d}.attn.norm_added_q")
        norm(f"{b}.txt_attn.norm.key_norm", f"{d}.attn.norm_added_k")
        put(f"{b}.img_attn.proj", f"{d}.attn.to_out.0")
        put(f"{b}.txt_attn.proj", f"{d}.attn.to_add_out")
        put(f"{b}.img_mlp.0", f"{d}.ff.net.0.proj")
        put(f"{b}.img_mlp.2", f"{d}.ff.net.2")
        put(f"{b}.txt_mlp.0", f"{d}.ff_context.net.0.proj")
        put(f"{b}.txt_mlp.2", f"{d}.ff_context.net.2")
    for i in range(transformer.config.num_single_layers):
        b, s = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        put(f"{b}.modulation.lin", f"{s}.norm.linear")
        put(f"{b}.linear1", f"{s}.attn.to_q", f"{s}.attn.to_k", f"{s}.attn.to_v", f"{s}.proj_mlp")
        norm(f"{b}.norm.query_norm", f"{s}.attn.norm_q")
        norm(f"{b}.norm.key_norm", f"{s}.attn.norm_k")
        put(f"{b}.linear2", f"{s}.proj_out")
    put("final_layer.linear", "proj_out")
    put("final_layer.adaLN_modulation.1", "norm_out.linear", swap=True)
    if sd:
        raise P2PError(f"diffusers Flux weights with no BFL name: {sorted(sd)[:5]}")
    return out


def _no_injection_info() -> dict:
    """The ``info`` their edit.py builds, with feature sharing off (``inject`` 0 steps)."""
    return {
        "feature_path": None,
        "feature": {},
        "inject_step": 0,
        "start_layer_index": 20,
        "end_layer_index": 37,
        "reuse_v": 1,
        "editing_strategy": "replace_v",
        "qkv_ratio": [1.0, 1.0, 1.0],
    }


def _one_call_gap(editor, model, inp, text, x, sigma, guidance) -> float:
    """Their model's velocity and ours at one point: the weight mapping alone, before any solver."""
    from types import SimpleNamespace

    def full(value):
        return torch.full((x.shape[0],), value, dtype=torch.float64)

    info = {**_no_injection_info(), "inject": False}
    call = dict(img=inp["img"], img_ids=inp["img_ids"], txt=inp["txt"], txt_ids=inp["txt_ids"], y=inp["vec"])
    theirs, _ = model(**call, timesteps=full(sigma), guidance=full(guidance), info=info)
    cond = editor.model.conditioning([editor.prompt(text)])
    t = torch.tensor(sigma * editor.pipe.scheduler.config.num_train_timesteps, dtype=torch.float32)
    ours = editor.model.predict(SimpleNamespace(block=None), x, t, cond, None, guidance)
    return float((unpack_latents(theirs, *x.shape[-2:]) - ours).abs().max())


def flux_solver_case(checkout, method, *, steps=8, guidance=2.0, seed=0):
    """The authors' inversion and sampling (``method``: ``"rf-solver"``, RF-Solver-Edit's
    ``denoise``; ``"fireflow"``, FireFlow's ``denoise_fireflow``) and ours on a tiny Flux dev in
    float64, as their edit.py runs them with feature sharing off: invert the picture's latents under
    the source prompt at guidance 1, sample back under the source prompt (the reconstruction) and
    under the target prompt (the edit) at ``guidance``, on our timesteps. Ours:
    ``editor.invert(..., method=method)`` then ``editor.edit(..., inversion=inv)`` with no rule
    (rows: source, target). ``parts``: the max latent differences of those three and of one
    velocity (the weight mapping alone); ``difference``: their maximum; ``effect``: how far the
    edit moved the picture's latents; ``euler``: how far Euler's inversion lands from the solver's
    (the size of a solver's own effect)."""
    # long: one comparison read top to bottom: our side, their model and inputs, their three calls
    from ..engine.images import load_image
    from ..engine.rules import EditRule
    from ..engine.sampler import Editor
    from ..pocket.scenes import make_dataset
    from .mmdit_geometries import tiny_flux_pipeline

    t0 = time.perf_counter()
    src = check_flux_solver_checkout(checkout, method)
    function = FLUX_SOLVER_CODE[method][3]
    pipe = tiny_flux_pipeline(seed, guidance_embeds=True).to(dtype=torch.float64)
    editor = Editor(pipe)
    images, _, _ = make_dataset(1, seed)
    pixels = load_image(images[0], (64, 64))
    x_src = editor.encode_image(pixels).double()
    h, w = x_src.shape[-2:]

    inv = editor.invert(pixels, SOURCE, method=method, steps=steps, guidance=1.0, size=64, cache=False)
    euler = editor.invert(pixels, SOURCE, method="euler", steps=steps, guidance=1.0, size=64, cache=False)
    ours = editor.edit(SOURCE, TARGET, inversion=inv, steps=steps, guidance=guidance, rules=[EditRule()]).latents
    sigmas = [float(s) for s in inv.sigmas]  # 1 ... 0, the model's shifted schedule

    with authors_flux(src) as (model_module, sampling, changes):
        model = model_module.Flux(model_module.FluxParams(**bfl_flux_params(pipe.transformer.config)))
        model.load_state_dict(bfl_flux_state_dict(pipe.transformer))
        model = model.to(torch.float64).eval()
        denoise = getattr(sampling, function)

        def inputs(text, img):
            cond = editor.model.conditioning([editor.prompt(text)])  # the same text states both sides
            return sampling.prepare(lambda p: cond.hidden, lambda p: cond.pooled, img, text)

        inp = inputs(SOURCE, x_src)
        schedule = sampling.get_schedule(steps, inp["img"].shape[1], shift=True)
        with torch.no_grad():
            call_gap = _one_call_gap(editor, model, inp, SOURCE, x_src, sigmas[len(sigmas) // 2], guidance)
            noise, info = denoise(model, **inp, timesteps=sigmas, inverse=True, info=_no_injection_info(), guidance=1.0)
            back = {}
            for name, text in (("reconstruction", SOURCE), ("edit", TARGET)):
                inp = {**inputs(text, x_src), "img": noise}
                back[name], _ = denoise(model, **inp, timesteps=sigmas, inverse=False, info=info, guidance=guidance)
    theirs_noise = unpack_latents(noise, h, w)[0]
    parts = {
        "one model call (velocity)": call_gap,
        "inversion": float((inv.latents[-1].double() - theirs_noise).abs().max()),
        "reconstruction": float((ours[0].double() - unpack_latents(back["reconstruction"], h, w)[0]).abs().max()),
        "edit": float((ours[1].double() - unpack_latents(back["edit"], h, w)[0]).abs().max()),
    }
    return {
        "difference": max(parts.values()),
        "parts": parts,
        "effect": float((ours[1].double() - x_src[0]).abs().max()),
        "euler": float((euler.latents[-1].double() - inv.latents[-1].double()).abs().max()),
        "schedule_gap": max(abs(a - b) for a, b in zip(schedule, sigmas)),
        "changes": [
            *changes,
            f"their {function}() walks our sigmas (their get_schedule's differ by at most "
            f"{max(abs(a - b) for a, b in zip(schedule, sigmas)):.1e}: float32 rounding of the same shift)",
            "their flux.model.Flux holds the tiny diffusers transformer's weights (bfl_flux_state_dict), "
            "float64, on the CPU; their text encoders are ours (prepare() gets our T5 states and CLIP vector)",
            "feature sharing off (info['inject_step'] 0), as ours runs with no rule; the picture's latents "
            "are ours (their edit.py encodes with BFL's autoencoder in bfloat16)",
        ],
        "seconds": time.perf_counter() - t0,
    }


def main(argv=None) -> int:
    # long: the options, then one printed block per case
    import functools

    parser = argparse.ArgumentParser(prog="python -m p2p_widgets.bench.reference_flow", description=__doc__)
    parser.add_argument("--flowedit", help="a checkout of github.com/fallenshock/FlowEdit")
    parser.add_argument(
        "--rf-inversion", help="diffusers' examples/community/pipeline_flux_rf_inversion.py (or a diffusers checkout)"
    )
    parser.add_argument("--rf-solver", help="a checkout of github.com/wangjiangshan0725/RF-Solver-Edit")
    parser.add_argument(
        "--fireflow",
        help="a checkout of github.com/HolmesShuan/FireFlow-Fast-Inversion-of-Rectified-Flow-for-Image-Semantic-Editing"
        " (its src/ holds their flux package)",
    )
    args = parser.parse_args(argv)
    if not (args.flowedit or args.rf_inversion or args.rf_solver or args.fireflow):
        parser.error("give --flowedit DIR, --rf-inversion FILE, --rf-solver DIR and/or --fireflow DIR")
    cases = []
    if args.flowedit:
        cases += [
            ("FlowEditSD3 (tiny SD3", flowedit_sd3_case, args.flowedit),
            ("FlowEditFLUX (tiny Flux dev", flowedit_flux_case, args.flowedit),
        ]
    if args.rf_inversion:
        cases.append(("RF-Inversion community pipeline (tiny Flux dev", rf_inversion_flux_case, args.rf_inversion))
    for method, where, name in (("rf-solver", args.rf_solver, "RF-Solver"), ("fireflow", args.fireflow, "FireFlow")):
        if where:
            case = functools.partial(flux_solver_case, method=method)
            cases.append((f"{name} inversion + sampling, BFL Flux model (tiny Flux dev", case, where))
    failed = 0
    for name, case, where in cases:
        try:
            row = case(where)
        except P2PError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        verdict = "ok" if row["difference"] <= TOLERANCE else "DIFFERS"
        failed += verdict != "ok"
        print(
            f"{name}, float64): max latent difference {row['difference']:.3e} "
            f"(tolerance {TOLERANCE:g}; the edit moved the latents by {row['effect']:.3e}) {verdict} "
            f"in {row['seconds']:.1f} s"
        )
        for part, value in row.get("parts", {}).items():
            print(f"  {part}: max latent difference {value:.3e}")
        if "euler" in row:
            print(f"  (Euler's inversion lands {row['euler']:.3e} from this solver's: the size of a solver's effect)")
        for change in row["changes"]:
            print(f"  changed at run time: {change}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
