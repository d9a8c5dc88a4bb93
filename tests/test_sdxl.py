"""SDXL pipelines (two text encoders, pooled text + size conditioning) on a tiny fixture, CPU fp32.

The oracle for plain sampling is diffusers' own StableDiffusionXLPipeline: same start latents,
same DDIM steps and guidance, so the latents must agree. P2P numerics are checked as for SD:
the fast path against the explicit one, and full self-injection of an unchanged prompt.
"""

import numpy as np
import pytest
import torch

from p2p_widgets.bench.geometries import latent_blind, tiny_pipeline, tiny_xl_pipeline
from p2p_widgets.engine.blend import LocalBlend
from p2p_widgets.engine.sampler import Editor
from p2p_widgets.errors import P2PError

SRC = "a red circle on a gray background"
STEPS = 6


@pytest.fixture(scope="module")
def xl_pipe():
    return tiny_xl_pipeline(seed=1)


@pytest.fixture(scope="module")
def xl(xl_pipe):
    return Editor(xl_pipe)


def _noise(seed, shape=(1, 4, 16, 16)):
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))


@pytest.mark.parametrize("force_zeros", [True, False])
def test_sampling_matches_diffusers_sdxl_pipeline(force_zeros):
    pipe = tiny_xl_pipeline(seed=1, force_zeros_for_empty_prompt=force_zeros)
    ours = Editor(pipe).sample(SRC, seed=5, steps=STEPS, guidance=6.0)
    theirs = pipe(SRC, num_inference_steps=STEPS, guidance_scale=6.0, latents=_noise(5), output_type="latent").images
    assert torch.allclose(ours.latents, theirs, atol=1e-5), (ours.latents - theirs).abs().max()


def test_sd_sampling_matches_diffusers_pipeline():
    pipe = tiny_pipeline(seed=0)
    ours = Editor(pipe).sample(SRC, seed=5, steps=STEPS, guidance=6.0)
    theirs = pipe(SRC, num_inference_steps=STEPS, guidance_scale=6.0, latents=_noise(5), output_type="latent").images
    assert torch.allclose(ours.latents, theirs, atol=1e-5), (ours.latents - theirs).abs().max()


def test_pooled_text_and_size_reach_the_unet(xl):
    """Dropping the pooled text or changing the size ids changes the image: they are really used."""
    prompts = [xl.prompt(SRC)]
    cond = xl.model.conditioning(prompts, (64, 64))
    assert cond.hidden.shape == (1, 77, 64) and cond.added["text_embeds"].shape == (1, 32)
    assert cond.added["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]]
    x, t = _noise(0), torch.tensor(500)
    base = xl.model.unet(x, t, **cond.unet_kwargs()).sample
    no_pool = cond.with_pooled(torch.zeros(1, 32))
    other_size = xl.model.conditioning(prompts, (32, 48))
    assert (xl.model.unet(x, t, **no_pool.unet_kwargs()).sample - base).abs().max() > 1e-4
    assert (xl.model.unet(x, t, **other_size.unet_kwargs()).sample - base).abs().max() > 1e-4


TOL = 1e-4  # fast vs explicit: float32 summation order (observed up to 3.2e-5)
NO_INJECTION = dict(cross=0.0, self_attn=0.0)

# each case with what to change for the same run without the rule's effect under test: fast must
# equal explicit within TOL, and the edit must end >= 100 TOL from that run (a fast path scaling the
# injected term by 0.95 fails)
CASES = {
    "replace": (dict(targets="a blue circle on a gray background"), NO_INJECTION),
    "refine": (dict(targets="a red circle on a striped gray background", kind="refine"), NO_INJECTION),
    "reweight": (dict(targets="a blue circle on a gray background", reweight={"blue": 2.0}), dict(reweight=None)),
    # the tiny XL UNet's word maps are nearly flat: up to threshold 0.9 the mask covered everything
    # (the blend changed the edit by 5e-6); at 0.99 it keeps a sixteenth of the image
    "local_blend": (
        dict(targets="a blue circle on a gray background", blend=LocalBlend(["circle"], threshold=0.99)),
        dict(blend=None),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_matches_explicit_on_sdxl(xl, case):
    kwargs, change = CASES[case]
    kwargs = dict(kwargs)
    targets = kwargs.pop("targets")
    fast = xl.edit(SRC, targets, seed=2, steps=STEPS, mode="fast", **kwargs)
    explicit = xl.edit(SRC, targets, seed=2, steps=STEPS, mode="explicit", **kwargs)
    difference = float((fast.latents - explicit.latents).abs().max())
    assert difference <= TOL, f"{case}: fast vs explicit {difference:.3g}"
    without = {k: v for k, v in {**kwargs, **change}.items() if v is not None}
    plain = xl.edit(SRC, targets, seed=2, steps=STEPS, **without)
    effect = float((fast.latents[1] - plain.latents[1]).abs().max())
    print(f"{case} on SDXL: effect / tolerance {effect / TOL:.0f}")
    assert effect >= 100 * TOL, f"{case}: effect {effect:.3g} is {effect / TOL:.0f} x the tolerance (< 100)"


def test_same_prompt_full_injection_reproduces_the_source_on_sdxl(xl):
    result = xl.edit(SRC, SRC, seed=2, steps=STEPS, cross=1.0, self_attn=1.0)
    assert torch.allclose(result.latents[0], result.latents[1], atol=1e-5)
    assert set(result.store.sums) == {(8, 8)}  # the tiny XL UNet attends at 8x8 only


def _latent_error(editor, inv, guidance):
    out = editor.edit(inv.prompt, [], inversion=inv, steps=inv.steps, guidance=guidance)
    return float((out.latents[0] - inv.x_0).pow(2).mean())


def test_sdxl_inversion_round_trip_and_files(tmp_path):
    """On the latent-blind XL fixture (exact DDIM inversion, see test_inversion.py)."""
    from p2p_widgets.engine.inversion import Inversion

    xl = Editor(latent_blind(tiny_xl_pipeline(seed=1)))
    image = np.asarray(xl.sample(SRC, seed=3, steps=STEPS, guidance=1.0).images[0])
    null = xl.invert(image, SRC, method="null-text", steps=STEPS, guidance=5.0, inner_steps=20, lr=0.1, cache=False)
    assert null.uncond_embeddings[0].shape == (1, 77, 64) and null.uncond_pooled[0].shape == (1, 32)
    assert not torch.equal(null.uncond_pooled[-1], torch.zeros(1, 32))  # optimised beside the token states
    ddim = xl.invert(image, SRC, method="ddim", steps=STEPS, guidance=5.0, cache=False)
    assert _latent_error(xl, null, 5.0) < 0.05 * _latent_error(xl, ddim, 5.0)

    # negative-prompt inversion cancels guidance only if the pooled text is the prompt's as well
    fast = xl.invert(image, SRC, method="negative-prompt", steps=STEPS, guidance=5.0, cache=False)
    assert len(fast.uncond_pooled) == STEPS and fast.uncond_pooled[0].shape == (1, 32)
    guided = xl.edit(SRC, [], inversion=fast, steps=STEPS, guidance=5.0).latents
    unguided = xl.edit(SRC, [], inversion=ddim, steps=STEPS, guidance=1.0).latents
    # equal up to float rounding: the guided run batches [uncond, cond], the unguided one cond alone, and
    # batch size picks different CPU kernels (1.1e-5 seen on this machine's CPU, also before any change)
    assert torch.allclose(guided, unguided, atol=5e-5), (guided - unguided).abs().max()

    fast.save(tmp_path / "inv")
    loaded = Inversion.load(tmp_path / "inv")
    assert all(torch.equal(a, b) for a, b in zip(loaded.uncond_pooled, fast.uncond_pooled, strict=True))
    a = fast.edit(xl, "a blue circle on a gray background").latents
    b = loaded.edit(xl, "a blue circle on a gray background").latents
    assert torch.equal(a, b)
    with pytest.raises(P2PError, match="not an SDXL model"):
        fast.edit(Editor(tiny_pipeline(seed=0)), "a blue circle on a gray background")


def test_pipelines_that_are_not_sdxl_base_are_refused(xl_pipe):
    class NoTextTime:
        def __init__(self, pipe):
            self.__dict__.update(pipe.components)
            self.config = pipe.config
            self.unet = type("U", (), {"config": {**pipe.unet.config, "addition_embed_type": None}})()

    with pytest.raises(P2PError, match="text_time"):
        Editor(NoTextTime(xl_pipe))

    class Refiner(NoTextTime):
        def __init__(self, pipe):
            super().__init__(pipe)
            self.unet, self.config = pipe.unet, {**pipe.config, "requires_aesthetics_score": True}

    with pytest.raises(P2PError, match="refiner"):
        Editor(Refiner(xl_pipe))


@pytest.mark.parametrize("make", [tiny_pipeline, tiny_xl_pipeline])
def test_load_pipeline_reads_saved_sd_and_sdxl_checkpoints(tmp_path, make):
    from p2p_widgets.models import load_pipeline

    pipe = make(seed=4)
    pipe.save_pretrained(tmp_path, safe_serialization=True)
    loaded = load_pipeline(str(tmp_path), device="cpu", dtype=torch.float32)
    assert type(loaded) is type(pipe)
    a = Editor(pipe).sample(SRC, seed=1, steps=3).latents
    b = Editor(loaded).sample(SRC, seed=1, steps=3).latents
    assert torch.equal(a, b)


def test_load_pipeline_refuses_other_pipeline_classes(tmp_path):
    from p2p_widgets.models import load_pipeline

    (tmp_path / "model_index.json").write_text('{"_class_name": "KandinskyPipeline"}')
    with pytest.raises(P2PError, match="KandinskyPipeline"):
        load_pipeline(str(tmp_path), device="cpu")


def test_fp16_sdxl_vae_decodes_in_fp32_and_stays_fp16():
    """SDXL's VAE overflows in fp16; like diffusers' pipeline the editor upcasts it for the call."""
    pipe = tiny_xl_pipeline(seed=1)
    pipe.vae.to(torch.float16)
    seen = []
    pipe.vae.decoder.register_forward_pre_hook(lambda module, args: seen.append(module.conv_in.weight.dtype))
    editor = Editor(pipe)
    images = editor.decode(torch.zeros(1, 4, 16, 16))
    assert seen == [torch.float32] and pipe.vae.dtype == torch.float16 and images.dtype == np.uint8
