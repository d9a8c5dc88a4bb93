"""AttentionStore: per-step cross-attention maps per token, averaged over heads and layers.

Only the conditional half of the batch is stored (the unconditional branch is never edited), and
for edited prompts the stored maps are the post-edit maps, as in the reference. Maps arrive
head-averaged from the processors at each layer whose query grid is in ``resolutions``; the store
averages the layers of one grid size per step (on the device) and keeps

- ``steps[t][(h, w)]``: the step's map, (B, h, w, L), in ``step_dtype`` on the model's device
  (copying every step to the host would synchronise the GPU once per evaluation; readers such
  as ``step_maps`` and the playback widget move what they show);
- a running sum over steps per grid (``average()``, LocalBlend masks);
- with ``detail=True``, also per-head running sums per (UNet part, grid), for looking at how heads
  and the down / mid / up layers differ (``detail_maps()``, ``token_maps(place=, head=)``).

Memory, SD 1.5 at 512 px (64x64 latents; stored grids 32x32, 16x16, 8x8 = 1,344 positions),
L = 77 tokens: one prompt costs 1,344 x 77 x 2 B = 207 KB per step in fp16 (414 KB in fp32); a
source + one edit therefore keep ~0.41 MB per step, ~21 MB over 50 steps, plus one fp32 running
sum (0.83 MB). The reference kept full per-head maps instead (~335 MB per copy for the 32x32
self-attention alone).
"""

from __future__ import annotations

import threading

import torch

from ..errors import P2PError

_CLAIMS = threading.Lock()  # claim() tests and marks in one step: two runs cannot both take a store


class AttentionStore:
    def __init__(
        self,
        resolutions=None,
        max_side: int = 32,
        keep_steps: bool = True,
        step_dtype=torch.float16,
        detail: bool = False,
        text_to_image: bool = False,
    ):
        """``resolutions``: grid sides to store (e.g. ``[16, 8]``); default every side <= ``max_side``.
        ``detail``: also keep per-head sums per UNet part ("down", "mid", "up") and grid.
        ``text_to_image``: on joint attention (SD3, Flux) also keep the text queries' maps over the
        image keys (where each word reads from), summed over sites and steps: :meth:`text_image_maps`."""
        self.detail, self.text_to_image = bool(detail), bool(text_to_image)
        self.text_image_sums: dict = {}  # grid -> (B, h, w, L) summed over sites and steps
        self.text_image_counts: dict = {}
        self.detail_sums: dict = {}  # (place, grid) -> (B, heads, h, w, L) summed over layers and steps
        self.detail_counts: dict = {}
        self.resolutions = None if resolutions is None else {int(r) for r in resolutions}
        self.max_side, self.keep_steps, self.step_dtype = max_side, keep_steps, step_dtype
        self.steps: list[dict] = []
        self.sums: dict = {}
        self.n_steps = 0
        self._layer_sum: dict = {}
        self._layer_count: dict = {}
        self._claimed = False  # set by claim() when a run takes the store

    def claim(self) -> None:
        """Mark the store as taken by a run that is starting, or a P2PError if a run holds it (its
        maps, or another run claimed it first, even one still waiting for its UNet): its sums would
        mix the two runs (LocalBlend reads them), and clearing it would lose the maps kept in it."""
        with _CLAIMS:
            if self._claimed or not self.empty:
                raise P2PError("the store already holds a run: pass a fresh AttentionStore() for each run")
            self._claimed = True

    @property
    def empty(self) -> bool:
        """Whether no run has added maps yet (a run needs an empty store: see the sampler)."""
        return not (self.n_steps or self._layer_sum or self.detail_sums or self.text_image_sums)

    def wants(self, grid: tuple[int, int]) -> bool:
        side = max(grid)
        return side in self.resolutions if self.resolutions is not None else side <= self.max_side

    def add(
        self, grid: tuple[int, int], maps: torch.Tensor, place: str | None = None, heads: torch.Tensor | None = None
    ):
        """One layer's head-averaged maps, (B, h*w, L); with ``detail``, its per-head maps
        ``heads`` (B, H, h*w, L) and the UNet part it is in."""
        if self.detail and heads is not None:
            key = (place, grid)
            per_head = heads.reshape(*heads.shape[:2], grid[0], grid[1], heads.shape[-1]).float()
            self.detail_sums[key] = self.detail_sums[key] + per_head if key in self.detail_sums else per_head.clone()
            self.detail_counts[key] = self.detail_counts.get(key, 0) + 1
        maps = maps.reshape(maps.shape[0], grid[0], grid[1], maps.shape[-1]).float()
        if grid in self._layer_sum:
            self._layer_sum[grid] += maps
            self._layer_count[grid] += 1
        else:
            self._layer_sum[grid], self._layer_count[grid] = maps, 1

    @property
    def running(self) -> dict:
        """This step's maps so far: grid (h, w) -> (B, h, w, L), the mean of the layers stored yet."""
        return {g: (s / self._layer_count[g]).reshape(s.shape[0], *g, s.shape[-1]) for g, s in self._layer_sum.items()}

    def add_text_image(self, grid: tuple[int, int], maps: torch.Tensor):
        """One joint site's head-averaged text -> image maps, (B, L, h*w)."""
        maps = maps.transpose(1, 2).reshape(maps.shape[0], grid[0], grid[1], maps.shape[1]).float()
        sums = self.text_image_sums
        sums[grid] = sums[grid] + maps if grid in sums else maps.clone()
        self.text_image_counts[grid] = self.text_image_counts.get(grid, 0) + 1

    def text_image_maps(self, prompt_index: int, positions, side: int | None = None) -> torch.Tensor:
        """(len(positions), h, w): how much each token at ``positions`` of prompt ``prompt_index``
        attends to each image position (its query's probabilities on the image keys, which with the
        text keys' share sum to 1), the mean over joint sites and steps. Needs
        ``AttentionStore(text_to_image=True)`` and a run on SD3 or Flux."""
        if not self.text_to_image:
            raise P2PError("text -> image maps are kept only by AttentionStore(text_to_image=True)")
        if not self.text_image_sums:
            raise P2PError("no text -> image maps stored: they exist on joint attention (SD3, Flux) only")
        g = self.grid(side)
        return _select(self.text_image_sums[g] / self.text_image_counts[g], prompt_index, positions)

    def end_step(self) -> dict:
        """Close the current evaluation: average its layers, update the running sums."""
        step = {g: s / self._layer_count[g] for g, s in self._layer_sum.items()}
        for g, m in step.items():
            self.sums[g] = self.sums[g] + m if g in self.sums else m.clone()
        if self.keep_steps:
            self.steps.append({g: m.to(self.step_dtype) for g, m in step.items()})
        self._layer_sum, self._layer_count = {}, {}
        self.n_steps += 1
        return step

    @property
    def grids(self) -> list[tuple[int, int]]:
        return sorted(self.sums, key=lambda g: g[0] * g[1])

    def grid(self, side: int | None = None) -> tuple[int, int]:
        """The stored grid with side ``side`` (default: the coarsest)."""
        if not self.sums:
            raise P2PError("the attention store is empty: run the sampler first")
        if side is None:
            return self.grids[0]
        for g in self.grids:
            if max(g) == side:
                return g
        raise P2PError(f"no attention stored at {side}x{side}; stored grids: {self.grids}")

    def average(self, side: int | None = None) -> torch.Tensor:
        """(B, h, w, L) mean over all steps so far (and over layers) at one grid."""
        g = self.grid(side)
        return (self.sums[g] / max(self.n_steps, 1)).cpu()

    def detail_maps(self, side: int | None = None, place: str | None = None, head: int | None = None) -> torch.Tensor:
        """(B, h, w, L) mean over steps and layers of one UNet part (``"down"``, ``"mid"``, ``"up"``;
        None: all) and one head (None: their mean). Needs ``AttentionStore(detail=True)``."""
        total = self._detail_total(side, place)
        if head is None:
            return total.mean(1).cpu()
        if not 0 <= head < total.shape[1]:
            raise P2PError(f"head {head} is out of range: these layers have {total.shape[1]} heads")
        return total[:, head].cpu()

    def n_heads(self, side: int | None = None, place: str | None = None) -> int:
        """Heads of the layers :meth:`detail_maps` reads for ``side`` and ``place``."""
        return self._detail_total(side, place).shape[1]

    def _detail_total(self, side, place):
        if not self.detail:
            raise P2PError("per-head maps are kept only by AttentionStore(detail=True)")
        g = self.grid(side)
        keys = [k for k in self.detail_sums if k[1] == g and (place is None or k[0] == place)]
        if not keys:
            places = sorted({k[0] for k in self.detail_sums if k[1] == g})
            raise P2PError(f"no {place!r} layers attend at {g[0]}x{g[1]}; parts there: {places}")
        return sum(self.detail_sums[k] for k in keys) / sum(self.detail_counts[k] for k in keys)

    def step_maps(self, step: int, side: int | None = None) -> torch.Tensor:
        if not self.keep_steps:
            raise P2PError("this store was created with keep_steps=False")
        if not 0 <= step < len(self.steps):
            raise P2PError(f"step {step} is out of range: {len(self.steps)} steps stored")
        return self.steps[step][self.grid(side)].float().cpu()

    def token_maps(
        self,
        prompt_index: int,
        positions,
        side: int | None = None,
        step: int | None = None,
        place: str | None = None,
        head: int | None = None,
    ):
        """(len(positions), h, w) maps of token ``positions`` of prompt ``prompt_index`` (``place`` /
        ``head``: one UNet part / one head, over all steps: see :meth:`detail_maps`)."""
        if place is not None or head is not None:
            if step is not None:
                raise P2PError("per-part / per-head maps are kept over all steps, not per step")
            maps = self.detail_maps(side, place, head)
        else:
            maps = self.average(side) if step is None else self.step_maps(step, side)
        return _select(maps, prompt_index, positions)


def _select(maps: torch.Tensor, prompt_index: int, positions) -> torch.Tensor:
    """(len(positions), h, w) of one prompt's (B, h, w, L) maps; out-of-range indices are named."""
    if not isinstance(prompt_index, int) or not 0 <= prompt_index < maps.shape[0]:
        raise P2PError(f"prompt index {prompt_index!r} is out of range: {maps.shape[0]} prompts stored")
    positions = list(positions)
    bad = [p for p in positions if not isinstance(p, int) or not 0 <= p < maps.shape[-1]]
    if bad:
        raise P2PError(f"token positions {bad} are out of range: the maps have positions 0-{maps.shape[-1] - 1}")
    return maps[prompt_index][..., positions].permute(2, 0, 1).cpu()
