"""The model seam: one backend per model family (see ``base.ModelBackend``).

- ``unet``: Stable Diffusion 1.x / 2.x and SDXL base pipelines (and the pocket UNet);
- ``sd3``: Stable Diffusion 3 / 3.5 (MM-DiT, [image; text] joint attention);
- ``flux``: Flux.1 dev / schnell and the pocket flow model (MM-DiT, [text; image], packed latents).
"""

from __future__ import annotations

from ...errors import P2PError
from .base import ModelBackend


def backend_for(pipe, device=None) -> ModelBackend:
    """The backend of ``pipe``'s family, chosen from the parts it has (a pipeline of another family,
    or an object that is no pipeline, is named in the error)."""
    if isinstance(pipe, ModelBackend):
        return pipe
    if getattr(pipe, "unet", None) is not None:
        from .unet import UNetBackend

        return UNetBackend(pipe, device)
    transformer = getattr(pipe, "transformer", None)
    kind = type(transformer).__name__
    if kind == "FluxTransformer2DModel":
        from .flux import FluxBackend

        return FluxBackend(pipe, device)
    if kind == "SD3Transformer2DModel":
        from .sd3 import SD3Backend

        return SD3Backend(pipe, device)
    if transformer is not None:
        raise P2PError(f"{type(pipe).__name__} with a {kind} is not a supported model family (SD, SDXL, SD3, Flux)")
    raise P2PError(
        f"the pipeline has no unet: Editor needs a Stable Diffusion (1.x, 2.x, XL, 3) or Flux pipeline, "
        f"got {type(pipe).__name__}"
    )
