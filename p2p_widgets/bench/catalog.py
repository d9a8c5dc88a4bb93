"""Every model geometry the benchmarks know, by name: :data:`SIZES` (its image side) and
:func:`build_model` (UNet ones from ``geometries``, MM-DiT ones from ``mmdit_geometries``, the
pocket models from their weights). ``flux``, ``sd3`` and ``sd35`` are Flux.1-dev's, SD3-medium's
and SD3.5-large's transformers at full size (random weights, built on the device in the dtype)."""

from __future__ import annotations

from . import mmdit_geometries as mmdit
from .geometries import (
    SD15_TEXT,
    SD15_UNET,
    SD15_VAE,
    SDGEOM_TEXT,
    SDGEOM_UNET,
    SDGEOM_VAE,
    SDXL_TEXT2,
    SDXL_UNET,
    SDXL_VAE,
    tiny_pipeline,
    tiny_xl_pipeline,
    xl_pipeline,
)

SIZES = {
    "tiny": 64,
    "tinyxl": 64,
    "sdgeom": 256,
    "sd15": 512,
    "sdxl": 1024,
    "pocket": 32,
    "tinysd3": 64,
    "tinyflux": 64,
    "sd3geom": 256,
    "fluxgeom": 256,
    "pocketflow": 32,
    "flux": 1024,
    "sd3": 1024,
    "sd35": 1024,
}


def build_model(name: str, device: str, dtype):
    import torch

    from ..pocket.flow import load_flow_pocket
    from ..pocket.model import assemble_pipeline, build_components, load_pocket

    mmdit_builders = {
        "tinysd3": mmdit.tiny_sd3_pipeline,
        "tinyflux": mmdit.tiny_flux_pipeline,
        "sd3geom": mmdit.sd3geom_pipeline,
        "fluxgeom": mmdit.fluxgeom_pipeline,
    }
    full_size = {"flux": mmdit.flux_pipeline, "sd3": mmdit.sd3_pipeline, "sd35": mmdit.sd35_pipeline}
    if name in full_size:
        pipe = full_size[name](device=device, dtype=dtype)
    elif name in mmdit_builders:
        with torch.device(device):
            pipe = mmdit_builders[name]()
    elif name == "pocketflow":
        pipe = load_flow_pocket(device="cpu", dtype=None)
    elif name == "tiny":
        pipe = tiny_pipeline()
    elif name == "tinyxl":
        pipe = tiny_xl_pipeline()
    elif name == "pocket":
        pipe = load_pocket(device="cpu", dtype=None)
    elif name == "sdxl":
        with torch.device(device):  # random init on the target device: seconds instead of minutes on CPU
            pipe = xl_pipeline(SDXL_VAE, SD15_TEXT, SDXL_TEXT2, SDXL_UNET)
    else:
        configs = (SDGEOM_VAE, SDGEOM_TEXT, SDGEOM_UNET) if name == "sdgeom" else (SD15_VAE, SD15_TEXT, SD15_UNET)
        with torch.device(device):
            pipe = assemble_pipeline(*build_components(*configs, seed=0))
    return pipe.to(device=device, dtype=dtype)
