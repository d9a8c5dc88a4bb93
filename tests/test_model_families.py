"""The model seam: SD3 / SD3.5 and Flux sample through the engine exactly as diffusers' pipelines do,
and every family's attention sites are read from its modules."""

from __future__ import annotations

from unittest.mock import patch

import pytest
import torch

from p2p_widgets.bench.geometries import tiny_pipeline, tiny_xl_pipeline
from p2p_widgets.bench.mmdit_geometries import FLUX_DEV_SCHEDULER, tiny_flux_pipeline, tiny_sd3_pipeline
from p2p_widgets.engine.sampler import Editor
from p2p_widgets.errors import P2PError

PROMPT = "a big red circle left of a small blue square on a gray background"


def _unpack(packed, h, w):
    """FluxPipeline's packed latents (B, h/2 * w/2, 4C) back to (B, C, h, w)."""
    b, _, c4 = packed.shape
    return packed.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c4 // 4, h, w)


def _pipeline_latents(pipe, size, steps, guidance, seed, **kwargs):
    gen = torch.Generator("cpu").manual_seed(seed)
    h, w = size
    out = pipe(
        PROMPT, height=h, width=w, num_inference_steps=steps, generator=gen, output_type="latent", **kwargs
    ).images
    return out if out.ndim == 4 else _unpack(out, h // 4, w // 4)


SD3_CASES = {
    "sd3": dict(),
    "sd3-without-t5": dict(t5=False),
    "sd3.5": dict(sd35=True),
}


@pytest.mark.parametrize("size", [(64, 64), (64, 96)], ids=["square", "wide"])
@pytest.mark.parametrize("case", list(SD3_CASES))
def test_sd3_samples_as_its_pipeline(case, size):
    pipe = tiny_sd3_pipeline(seed=3, **SD3_CASES[case])
    ours = Editor(pipe).sample(PROMPT, seed=5, steps=4, guidance=7.0, height=size[0], width=size[1]).latents
    theirs = _pipeline_latents(pipe, size, 4, 7.0, 5, guidance_scale=7.0)
    effect = (theirs - _pipeline_latents(pipe, size, 4, 1.0, 5, guidance_scale=1.0)).abs().max()
    assert (ours - theirs).abs().max() <= 1e-5, (ours - theirs).abs().max()
    assert effect > 1e-3  # guidance changed the latents: the comparison covers the uncond half


@pytest.mark.parametrize("size", [(64, 64), (64, 96)], ids=["square", "wide"])
@pytest.mark.parametrize("variant", ["dev", "schnell"])
def test_flux_samples_as_its_pipeline(variant, size):
    dev = variant == "dev"
    pipe = tiny_flux_pipeline(seed=4, guidance_embeds=dev)
    editor = Editor(pipe)
    assert editor.model.guidance_mode == ("distilled" if dev else "cfg")
    guidance = 3.5 if dev else 0.0
    ours = editor.sample(PROMPT, seed=6, steps=4, guidance=guidance, height=size[0], width=size[1]).latents
    extra = dict(guidance_scale=3.5) if dev else dict(max_sequence_length=256, guidance_scale=0.0)
    theirs = _pipeline_latents(pipe, size, 4, guidance, 6, **extra)
    assert (ours - theirs).abs().max() <= 1e-5, (ours - theirs).abs().max()


def test_flux_without_guidance_embedding_takes_true_cfg_as_the_pipeline():
    pipe = tiny_flux_pipeline(seed=4, guidance_embeds=False)
    ours = Editor(pipe).sample(PROMPT, seed=6, steps=3, guidance=4.0, height=64, width=64).latents
    theirs = _pipeline_latents(
        pipe, (64, 64), 3, 4.0, 6, negative_prompt="", true_cfg_scale=4.0, max_sequence_length=256
    )
    plain = _pipeline_latents(pipe, (64, 64), 3, 1.0, 6, max_sequence_length=256)
    assert (ours - theirs).abs().max() <= 1e-5
    assert (theirs - plain).abs().max() > 1e-3


def test_dynamic_shifting_follows_the_image_size():
    """Flux-dev's scheduler shifts by mu from the number of image tokens: the engine's timesteps are
    the pipeline's at two sizes, and they differ between the sizes."""
    import numpy as np
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    editor = Editor(tiny_flux_pipeline(seed=0))
    seen = {}
    for size in ((64, 64), (256, 512)):
        ours = editor._scheduler(6, None, size).sigmas
        ref = FlowMatchEulerDiscreteScheduler(**FLUX_DEV_SCHEDULER)
        tokens = (size[0] // 8) * (size[1] // 8)
        ref.set_timesteps(sigmas=np.linspace(1.0, 1 / 6, 6), mu=calculate_shift(tokens, 256, 4096, 0.5, 1.15))
        assert torch.allclose(ours, ref.sigmas.to(ours)), size
        seen[size] = ours
    assert (seen[(64, 64)] - seen[(256, 512)]).abs().max() > 1e-2


def _sites(pipe_or_denoiser):
    from p2p_widgets.engine.sites import sites_of

    for part in ("transformer", "unet"):
        if hasattr(pipe_or_denoiser, part):
            return sites_of(getattr(pipe_or_denoiser, part))
    return sites_of(pipe_or_denoiser)


def test_unet_sites_follow_the_modules():
    for pipe in (tiny_pipeline(), tiny_xl_pipeline()):
        sites = _sites(pipe)
        unet = pipe.unet
        assert [s.name for s in sites] and {s.name for s in sites} == set(unet.attn_processors)
        for s in sites:
            attn = unet.get_submodule(s.module)
            assert s.kind == ("cross" if attn.is_cross_attention else "self")
            assert s.keys == (("text",) if s.kind == "cross" else ("image",)) and s.queries == ("image",)
        # execution order: every down site before the middle's, the middle's before every up site
        places = [s.place for s in sites]
        assert places == sorted(places, key=["down", "mid", "up"].index)
        assert [s.order for s in sites] == list(range(len(sites)))
        # depth: how far down the U (down block i: i; up block i: n - 1 - i; the middle: n), and each
        # site's module lies inside the block its label names
        n = len(unet.down_blocks)
        for s in sites:
            if s.place == "mid":
                assert s.depth == n and any(m is unet.get_submodule(s.module) for m in unet.mid_block.modules())
                continue
            index = int(s.block.split()[1])
            block = (unet.down_blocks if s.place == "down" else unet.up_blocks)[index]
            assert s.depth == (index if s.place == "down" else n - 1 - index)
            assert any(m is unet.get_submodule(s.module) for m in block.modules())


def test_sd3_and_sd35_sites():
    sd3 = _sites(tiny_sd3_pipeline())
    assert [(s.kind, s.block) for s in sd3] == [("joint", "double 0"), ("joint", "double 1")]
    assert all(s.queries == s.keys == ("image", "text") for s in sd3)
    sd35 = _sites(tiny_sd3_pipeline(sd35=True))
    # SD3.5's attn2 is image self-attention, not cross-attention
    assert [(s.name.split(".")[-2], s.kind, s.keys) for s in sd35] == [
        ("attn", "joint", ("image", "text")),
        ("attn2", "image-self", ("image",)),
        ("attn", "joint", ("image", "text")),
    ]


def test_flux_sites_at_full_size_on_the_meta_device():
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        flux = FluxTransformer2DModel(guidance_embeds=True)  # Flux.1-dev's layout
    sites = _sites(flux)
    double = [s for s in sites if s.kind == "joint"]
    single = [s for s in sites if s.kind == "single"]
    assert (len(double), len(single)) == (19, 38) and len(sites) == 57
    assert sites[:19] == tuple(double)  # the double-stream blocks run first
    assert all(s.queries == s.keys == ("text", "image") for s in sites)
    assert [s.depth for s in single] == list(range(38)) and single[-1].block == "single 37"


def test_backend_for_refuses_other_pipelines_by_name():
    from p2p_widgets.engine.models import backend_for

    class NotAPipeline:
        transformer = torch.nn.Linear(1, 1)

    with pytest.raises(P2PError, match="Linear is not a supported model family"):
        backend_for(NotAPipeline())
    with pytest.raises(P2PError, match="has no unet"):
        backend_for(object())


@pytest.mark.parametrize("build", [tiny_pipeline, tiny_flux_pipeline, tiny_sd3_pipeline], ids=["sd", "flux", "sd3"])
def test_backend_device_and_dtype_follow_the_denoiser(build):
    """diffusers' answers (a walk over every module), read once per run: they follow pipe.to() and
    layerwise casting enabled on a made Editor (fp8 storage, float32 compute), and a run reads them
    once (a patched denoiser counts the reads)."""
    editor = Editor(build(seed=0))
    model = editor.model
    assert (model.device, model.dtype) == (torch.device("cpu"), torch.float32)
    editor.pipe.to(torch.float64)
    assert model.dtype == torch.float64
    editor.pipe.to(torch.float32)
    model.denoiser.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    assert any(p.dtype == torch.float8_e4m3fn for p in model.denoiser.parameters())
    assert (model.device, model.dtype) == (torch.device("cpu"), torch.float32)
    reads = []
    kind = type(model.denoiser)
    original = kind.dtype
    with patch.object(kind, "dtype", property(lambda self: reads.append(1) or original.fget(self))):
        result = editor.sample(PROMPT, steps=2, guidance=3.5, height=64, width=64)
    assert torch.isfinite(result.latents).all() and len(reads) == 1
