"""Plug-and-Play: the authors' ``preprocess.py`` inversion and ``PNP.run_pnp`` beside ours (two rows)."""

from __future__ import annotations

import copy
import functools
import tempfile
from pathlib import Path

from .inputs import GUIDANCE, synthetic_image
from .row import Row, _measure
from .shim import Recorder, _bare, _components, _ddim, _InputCast, _patched, _quiet, authors_imports

PNP_TARGET = "a photo of a pink toy horse on the beach"


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
    from ...engine.sampler import Editor

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
    from ...engine.controls import PlugAndPlay
    from ...engine.sampler import Editor

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
