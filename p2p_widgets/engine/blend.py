"""LocalBlend: keep the pixels outside the edited words' attention (a per-step latent rule).

After each step from ``start`` on, ``x_edit <- x_src + m * (x_edit - x_src)`` with ``m`` the mask
of the words' accumulated cross-attention (see :class:`LocalBlend`).
"""

from __future__ import annotations

import copy

import torch

from ..errors import P2PError, is_int, is_number
from .prompts import Prompt
from .schedule import to_step

REFERENCE_START = 0  # the authors' LocalBlend (prompt-to-prompt_stable.ipynb) blends from the first step
REFERENCE_RESOLUTION = 16  # on their 16 x 16 cross-attention maps


class LocalBlend:
    """Keep pixels outside the edited words' attention: x_edit <- x_src + m * (x_edit - x_src).

    ``words``: one word or a list of words per prompt, source first (``[src_words, edit1_words, ...]``),
    or a single list used for every prompt where it is found. The mask is the union over the source
    and the edit of the accumulated cross-attention of the words, upsampled to the latent, max-pooled
    over 1/16 of its side (the reference's 3x3 pool at 16x16), max-normalised and thresholded;
    the region of the ``subtract`` words (given like ``words``; not pooled) in the source or the
    edit is removed from it, as in the reference.
    ``resolution``: attention grid side used for the mask (default: latent side / 4, the reference's
    16x16 at 64x64 latents, or the nearest grid of models without one). Applied from ``start``
    (fraction or step) on.
    """

    def __init__(self, words, threshold: float = 0.3, start=0.2, subtract=None, resolution: int | None = None):
        if not _names_words(words):
            # an empty word list would give an empty mask: the edit would silently equal the source
            raise P2PError(f"LocalBlend needs at least one word, got {words!r}")
        if not is_number(threshold) or not 0.0 < threshold < 1.0:
            raise P2PError(f"LocalBlend threshold must be in (0, 1), got {threshold!r}")
        if not is_number(start) or start < 0:
            raise P2PError(f"LocalBlend start must be a step or a fraction of the run, got {start!r}")
        if subtract is not None and not _names_words(subtract):
            raise P2PError(f"LocalBlend subtract must be None or words (like words), got {subtract!r}")
        if resolution is not None and (not is_int(resolution) or resolution < 1):
            raise P2PError(
                f"LocalBlend resolution must be a positive integer (an attention grid side), got {resolution!r}"
            )
        self.words, self.threshold, self.start = words, float(threshold), start
        self.subtract, self.resolution = subtract, None if resolution is None else int(resolution)

    @classmethod
    def of(cls, words, compat: str = "project") -> LocalBlend:
        """A LocalBlend of ``words`` with the defaults of ``compat``: the project's, or with
        ``"reference"`` the authors' (their stable notebook blends at every step, from step 0, on
        the 16 x 16 maps whatever the model)."""
        if compat == "reference":
            return cls(words, start=REFERENCE_START, resolution=REFERENCE_RESOLUTION)
        return cls(words)

    def to_dict(self) -> dict:
        """Every setting, for the edit JSON."""
        return {
            "words": copy.deepcopy(self.words),
            "threshold": self.threshold,
            "start": self.start,
            "subtract": copy.deepcopy(self.subtract),
            "resolution": self.resolution,
        }

    @classmethod
    def from_dict(cls, data) -> LocalBlend:
        if not isinstance(data, dict) or "words" not in data:
            raise P2PError("'blend' must be null or an object with 'words'")
        unknown = sorted(set(data) - {"words", "threshold", "start", "subtract", "resolution"})
        if unknown:
            raise P2PError(f"'blend' has unknown key(s) {', '.join(unknown)}")
        return cls(
            data["words"],
            threshold=data.get("threshold", 0.3),
            start=data.get("start", 0.2),
            subtract=data.get("subtract"),
            resolution=data.get("resolution"),
        )

    def token_weights(self, prompts: list[Prompt], which) -> torch.Tensor:
        """(B, L) 0/1 over the token positions of the blend (or subtract) words of each prompt."""
        weights = torch.zeros(len(prompts), prompts[0].max_length)
        if which is None:
            return weights
        which = [which] if isinstance(which, (str, int)) else list(which)
        if which and all(isinstance(w, (list, tuple)) for w in which):  # one list per prompt
            if len(which) != len(prompts):
                raise P2PError(f"LocalBlend got word lists for {len(which)} prompts but the run has {len(prompts)}")
            for b, (prompt, words) in enumerate(zip(prompts, which)):
                for word in words:
                    weights[b, prompt.positions(word)] = 1.0  # a missing word raises, naming the prompt
            return weights
        for word in which:  # one list for all prompts: each word must be in at least one of them
            found = False
            for b, prompt in enumerate(prompts):
                if prompt.has(word):
                    weights[b, prompt.positions(word)] = 1.0
                    found = True
            if not found:
                listed = "; ".join(f"{p.text!r}" for p in prompts)
                raise P2PError(f"LocalBlend word {word!r} is in none of the prompts: {listed}")
        return weights

    def prepare(self, prompts: list[Prompt], latent_hw, sides: list[int], store, n_evals: int) -> dict:
        """What :meth:`apply` needs during a run: the grid, first step and token weights; asks
        ``store`` to keep the grid's maps."""
        if len(prompts) < 2:
            raise P2PError("LocalBlend needs at least one edited prompt")
        side = self.resolution
        if side is None:
            # the reference's 16x16 at 64x64 latents is latent / 4; models without that grid use
            # the nearest one (the pocket model: 8x8, where its attention is localised)
            side = min(sides, key=lambda s: (abs(s - max(latent_hw) / 4), -s))
        elif side not in sides:
            raise P2PError(f"LocalBlend resolution {side} is not an attention grid of this model: {sides}")
        if store.resolutions is not None:
            store.resolutions.add(side)
        elif side > store.max_side:
            store.max_side = side
        return dict(
            side=side,
            start=to_step(self.start, n_evals, "LocalBlend start"),
            words=self.token_weights(prompts, self.words),
            subtract=self.token_weights(prompts, self.subtract) if self.subtract is not None else None,
        )

    def apply(self, state: dict, latents: torch.Tensor, store) -> torch.Tensor:
        """The edits' latents blended with the source's outside the mask (the source row unchanged)."""
        maps = store.sums[store.grid(state["side"])]
        mask = self.mask(maps, state["words"], latents.shape[-2:])
        mask = mask[:1] | mask  # union of the source's and each edit's mask
        if state["subtract"] is not None:
            sub = self.mask(maps, state["subtract"], latents.shape[-2:], pool=False)
            # united with the source's too, as the authors' get_mask does for both masks: what the
            # source's subtract words cover stays the source's in every edit
            mask = mask & ~(sub[:1] | sub)
        mask = mask.to(latents.dtype)
        return latents[:1] + mask * (latents - latents[:1])

    def mask(self, maps: torch.Tensor, token_weights: torch.Tensor, latent_hw, pool: bool = True) -> torch.Tensor:
        """Boolean masks (B, 1, h, w) from summed maps (B, gh, gw, L) and token weights (B, L)."""
        m = (maps * token_weights[:, None, None, :].to(maps)).sum(-1)[:, None]
        m = torch.nn.functional.interpolate(m, size=tuple(latent_hw), mode="nearest")
        if pool:
            # grow by 1/16 of the latent side: the reference's 3x3 pool on its 16x16 grid at 64x64
            # latents, exactly, and the same share of the image on any grid and model size (a 3x3
            # pool on a coarser grid would grow the mask over neighbouring objects)
            r = max(1, round(max(latent_hw) / 16))
            m = torch.nn.functional.max_pool2d(m, 2 * r + 1, stride=1, padding=r)
        peak = m.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]
        return (m / peak) > self.threshold


def _names_words(words) -> bool:
    """Does ``words`` (a word, a list, or one list per prompt) name at least one word?"""
    if isinstance(words, (str, int)) and not isinstance(words, bool):
        return True
    if isinstance(words, (list, tuple)):
        return any(_names_words(w) for w in words)
    return False
