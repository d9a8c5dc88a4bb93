"""Attention sites: every attention call of a model, with what it attends over, in execution order.

Built once per model from its modules (never from parsing names elsewhere). A site is one
attention processor::

    AttentionSite(name="up_blocks.1.attentions.0.transformer_blocks.0.attn2.processor",
                  kind="cross", order=9, place="up", block="up 1", depth=1,
                  queries=("image",), keys=("text",))

Kinds: ``self`` and ``cross`` (UNet ``attn1`` / ``attn2``), ``joint`` (an MM-DiT double-stream
block: image and text queries over image and text keys; SD3 orders the segments [image; text],
Flux [text; image]), ``single`` (Flux's single-stream blocks: the block joins [text; image]
itself and never tells the processor where the text ends), ``image-self`` (SD3.5's extra
image-only attention, ``attn2`` of its dual-attention blocks). ``place`` is where the block sits:
``down`` / ``mid`` / ``up`` in a UNet, ``double`` / ``single`` in a DiT; ``depth`` is the UNet
level (0 = full resolution) or the DiT block's index among its kind.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("self", "cross", "joint", "single", "image-self")
IMAGE, TEXT = "image", "text"


@dataclass(frozen=True)
class AttentionSite:
    name: str  # the processor's key in ``denoiser.attn_processors``
    kind: str  # one of KINDS
    order: int  # position among all sites in execution order
    place: str  # "down" | "mid" | "up" | "double" | "single"
    block: str  # a label: "down 0", "mid", "up 1", "double 7", "single 12"
    depth: int  # UNet level (0 = full resolution) or the DiT block's index
    queries: tuple  # the query segments in order, e.g. ("image",) or ("text", "image")
    keys: tuple  # the key segments in order
    unit: str = ""  # the module holding it: a UNet block's attention (Transformer2DModel), a DiT block

    @property
    def module(self) -> str:
        return self.name[: -len(".processor")]

    @property
    def reads_text(self) -> bool:
        """Whether image queries read text keys here (the cross-attention analogue)."""
        return TEXT in self.keys

    @property
    def is_cross(self) -> bool:
        """A UNet cross-attention layer: image queries over text keys only."""
        return self.kind == "cross"


def sites_of(denoiser) -> tuple[AttentionSite, ...]:
    """The attention sites of a diffusers UNet, SD3 transformer or Flux transformer."""
    if hasattr(denoiser, "down_blocks"):
        found = _unet_sites(denoiser)
    elif hasattr(denoiser, "single_transformer_blocks"):
        found = _flux_sites(denoiser)
    elif hasattr(denoiser, "transformer_blocks"):
        found = _sd3_sites(denoiser)
    else:
        raise TypeError(f"no attention sites known for {type(denoiser).__name__}")
    sites = tuple(AttentionSite(name, kind, k, *rest) for k, (name, kind, *rest) in enumerate(found))
    _check_complete(denoiser, sites)
    return sites


def _unet_sites(unet):
    """Down blocks, the middle block, up blocks; in each, resnet i then attention i (as they run);
    in each transformer block attn1 (self) then attn2 (cross)."""
    n = len(unet.down_blocks)
    parts = [("down", f"down_blocks.{i}", blk, i, i) for i, blk in enumerate(unet.down_blocks)]
    if unet.mid_block is not None:
        parts.append(("mid", "mid_block", unet.mid_block, None, n))
    parts += [("up", f"up_blocks.{i}", blk, i, n - 1 - i) for i, blk in enumerate(unet.up_blocks)]
    for place, prefix, block, index, depth in parts:
        label = place if index is None else f"{place} {index}"
        for j, transformer in enumerate(getattr(block, "attentions", None) or ()):
            for k, tb in enumerate(getattr(transformer, "transformer_blocks", ())):
                base = f"{prefix}.attentions.{j}.transformer_blocks.{k}"
                for attr in ("attn1", "attn2"):
                    attn = getattr(tb, attr, None)
                    if attn is None:
                        continue
                    cross = getattr(attn, "is_cross_attention", attr == "attn2")
                    kind, keys = ("cross", (TEXT,)) if cross else ("self", (IMAGE,))
                    unit = f"{prefix}.attentions.{j}"
                    yield f"{base}.{attr}.processor", kind, place, label, depth, (IMAGE,), keys, unit


def _sd3_sites(transformer):
    for i, block in enumerate(transformer.transformer_blocks):
        joint = (IMAGE, TEXT)
        unit = f"transformer_blocks.{i}"
        yield f"{unit}.attn.processor", "joint", "double", f"double {i}", i, joint, joint, unit
        if getattr(block, "attn2", None) is not None:  # SD3.5's dual attention: image only
            yield f"{unit}.attn2.processor", "image-self", "double", f"double {i}", i, (IMAGE,), (IMAGE,), unit


def _flux_sites(transformer):
    joint = (TEXT, IMAGE)
    for i, _ in enumerate(transformer.transformer_blocks):
        unit = f"transformer_blocks.{i}"
        yield f"{unit}.attn.processor", "joint", "double", f"double {i}", i, joint, joint, unit
    for i, _ in enumerate(transformer.single_transformer_blocks):
        unit = f"single_transformer_blocks.{i}"
        yield f"{unit}.attn.processor", "single", "single", f"single {i}", i, joint, joint, unit


def _check_complete(denoiser, sites) -> None:
    """Every processor the model has is a site (a model with attention elsewhere is not understood)."""
    names = {s.name for s in sites}
    missing = sorted(set(denoiser.attn_processors) - names)
    if missing or len(names) != len(sites):
        raise TypeError(f"{type(denoiser).__name__} has attention processors outside its known sites: {missing[:3]}")
