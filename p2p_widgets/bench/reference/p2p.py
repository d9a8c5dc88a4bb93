"""Prompt-to-Prompt: the authors' notebook controllers under ``ptp_utils`` beside ours (``compat="reference"``)."""

from __future__ import annotations

import copy
import types
from dataclasses import dataclass
from pathlib import Path

from .inputs import GUIDANCE
from .row import Row, _measure
from .shim import Recorder, _components, _ddim, _patched, _quiet, accept_offset, authors_imports, notebook_cells


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
    from ...engine.blend import LocalBlend
    from ...engine.sampler import Editor

    options = dict(case.ours)
    if "blend" in options:  # the stable notebook's LocalBlend: every step from the first
        options["blend"] = LocalBlend([[w] for w in options["blend"]], threshold=BLEND_THRESHOLD, start=0)
    result = Editor(pipe).edit(
        case.source, case.target, latents=noise, steps=steps, guidance=GUIDANCE, compat="reference", **options
    )
    return result.latents


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
