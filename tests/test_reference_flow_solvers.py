"""RF-Solver's and FireFlow's own inversion and sampling beside ours (issue 27): the weight mapping
from diffusers' Flux transformer to black-forest-labs' names, the checkout check, and, when a
checkout is given (P2P_RF_SOLVER, P2P_FIREFLOW), the authors' denoise functions on a tiny Flux dev
in float64."""

from __future__ import annotations

import os

import pytest
import torch

from p2p_widgets.bench import reference_flow
from p2p_widgets.errors import P2PError

CHECKOUTS = {"rf-solver": "P2P_RF_SOLVER", "fireflow": "P2P_FIREFLOW"}


def test_every_diffusers_weight_gets_one_bfl_name_with_the_fused_shapes():
    from diffusers import FluxTransformer2DModel

    from p2p_widgets.bench.mmdit_geometries import TINY_FLUX

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(**{**TINY_FLUX, "guidance_embeds": True})
    sd = transformer.state_dict()
    bfl = reference_flow.bfl_flux_state_dict(transformer)
    assert sum(v.numel() for v in bfl.values()) == sum(v.numel() for v in sd.values())
    hidden = reference_flow.bfl_flux_params(transformer.config)["hidden_size"]
    assert bfl["double_blocks.1.img_attn.qkv.weight"].shape == (3 * hidden, hidden)
    text_k = bfl["double_blocks.1.txt_attn.qkv.bias"][hidden : 2 * hidden]
    assert torch.equal(text_k, sd["transformer_blocks.1.attn.add_k_proj.bias"])
    assert bfl["single_blocks.0.linear1.weight"].shape == (3 * hidden + 4 * hidden, hidden)
    mlp_in = bfl["single_blocks.0.linear1.weight"][3 * hidden :]
    assert torch.equal(mlp_in, sd["single_transformer_blocks.0.proj_mlp.weight"])
    # diffusers' final modulation is (scale, shift), BFL's (shift, scale)
    shift, scale = bfl["final_layer.adaLN_modulation.1.weight"].chunk(2)
    assert torch.equal(torch.cat([scale, shift]), sd["norm_out.linear.weight"])
    assert "guidance_in.in_layer.weight" in bfl


def test_the_einops_stand_in_packs_as_flux_pipeline_and_refuses_other_patterns():
    einops = reference_flow._einops_stub()
    x = torch.randn(2, 4, 8, 6)
    packed = einops.rearrange(x, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=2, pw=2)
    assert torch.equal(packed[0, 1], x[0, :, 0:2, 2:4].reshape(-1))  # token (row 0, column 1): c, then the 2x2 patch
    back = einops.rearrange(packed, "b (h w) (c ph pw) -> b c (h ph) (w pw)", h=4, w=3, ph=2, pw=2)
    assert torch.equal(back, x)
    qkv = torch.arange(2 * 5 * 3 * 2 * 4.0).reshape(2, 5, 24)
    q, k, v = einops.rearrange(qkv, "B L (K H D) -> K B H L D", K=3, H=2)
    assert torch.equal(k[1, 0, 3], qkv[1, 3, 8:12]) and torch.equal(v[0, 1, 4], qkv[0, 4, 20:24])
    assert torch.equal(einops.rearrange(q, "B H L D -> B L (H D)"), qkv[..., :8])
    with pytest.raises(NotImplementedError, match="einops stub"):
        einops.rearrange(x, "b c h w -> b h w c")


@pytest.mark.parametrize("method", sorted(CHECKOUTS))
def test_a_folder_without_their_flux_package_is_refused_by_name(method, tmp_path):
    (tmp_path / "src" / "flux").mkdir(parents=True)
    (tmp_path / "src" / "flux" / "sampling.py").write_text("def denoise_midpoint(): pass\n")
    option, repository = reference_flow.FLUX_SOLVER_CODE[method][:2]
    with pytest.raises(P2PError, match=f"{option}: .* is not a checkout of {repository}"):
        reference_flow.check_flux_solver_checkout(tmp_path, method)


def _needs(method):
    """Without the checkout the test is not run, and .ci/test.sh's summary says which and how to run it."""
    option, repository = reference_flow.FLUX_SOLVER_CODE[method][:2]
    command = f"python -m p2p_widgets.bench.reference_flow {option} DIR"
    return pytest.param(method, marks=pytest.mark.needs_checkout(CHECKOUTS[method], repository, command))


@pytest.mark.parametrize("method", [_needs(method) for method in sorted(CHECKOUTS)])
def test_equal_to_the_authors_inversion_and_sampling(method):
    row = reference_flow.flux_solver_case(os.environ[CHECKOUTS[method]], method)
    print(f"{method} vs ours: {row['parts']}, effect {row['effect']:.3e}, Euler {row['euler']:.3e}")
    assert row["difference"] <= reference_flow.TOLERANCE < min(row["effect"], row["euler"])
    assert row["schedule_gap"] < 1e-6  # their own schedule is ours but for float32 rounding
