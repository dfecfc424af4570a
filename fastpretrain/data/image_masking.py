"""Patch masks for masked image modeling, drawn on the data side (in the DataLoader's workers, whose
RNGs the Trainer seeds per batch): SimMIM's random masking of square groups of patches and BEiT's
block-wise masking, and the context encoder's central square (:func:`region_masker` picks one for
the CNN pretext tasks, on a grid of pixel cells). Each masker maps a generator to a bool mask [grid_h * grid_w] (row-major
patches, True = masked); :class:`MaskedImages` adds one to every item of an image dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from fastpretrain.checks import check_int


def _fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{name}: expected a float in (0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RandomPatchMask:
    """SimMIM's mask generator: the grid is cut into ``mask_patch`` x ``mask_patch`` groups of patches
    and exactly ``round(mask_ratio * groups)`` groups, drawn uniformly, are masked whole."""

    grid: int
    mask_ratio: float = 0.6
    mask_patch: int = 1  # patches per side of a masked group (SimMIM: mask_patch_size / patch_size)

    def __post_init__(self) -> None:
        check_int("grid", self.grid, 1)
        check_int("mask_patch", self.mask_patch, 1)
        if self.grid % self.mask_patch:
            raise ValueError(f"mask_patch: {self.mask_patch} does not divide the patch grid side {self.grid}")
        _fraction("mask_ratio", self.mask_ratio)

    @property
    def num_masked(self) -> int:
        """Patches masked in every mask."""
        cells = (self.grid // self.mask_patch) ** 2
        return round(self.mask_ratio * cells) * self.mask_patch**2

    def __call__(self, generator: torch.Generator | None = None) -> torch.Tensor:
        side = self.grid // self.mask_patch
        cells = side * side
        chosen = torch.randperm(cells, generator=generator)[: round(self.mask_ratio * cells)]
        mask = torch.zeros(cells, dtype=torch.bool)
        mask[chosen] = True
        mask = mask.view(side, side).repeat_interleave(self.mask_patch, 0).repeat_interleave(self.mask_patch, 1)
        return mask.flatten()


@dataclass(frozen=True)
class BlockMask:
    """BEiT's block-wise masking (Bao et al. 2022, Algorithm 1): rectangles (area uniform between
    ``min_block`` and the patches still to mask, at most ``max_block``; aspect ratio log-uniform in
    [min_aspect, 1 / min_aspect]) are masked at random places until ``num_masked`` patches are. A block never masks more than the number still
    to go, and the mask is done when 10 tries in a row add nothing: as BEiT's, a mask often ends a
    few patches short (77.5 of 78 on average on a 14 x 14 grid at 0.4), never over."""

    grid_h: int
    grid_w: int
    num_masked: int
    min_block: int = 16
    max_block: int | None = None  # default num_masked
    min_aspect: float = 0.3

    def __post_init__(self) -> None:
        check_int("grid_h", self.grid_h, 1)
        check_int("grid_w", self.grid_w, 1)
        check_int("num_masked", self.num_masked, 1)
        if self.num_masked > self.grid_h * self.grid_w:
            raise ValueError(f"num_masked: {self.num_masked} is more than the {self.grid_h * self.grid_w} patches")
        check_int("min_block", self.min_block, 1)
        if self.max_block is not None:
            check_int("max_block", self.max_block, self.min_block)
        if isinstance(self.min_aspect, bool) or not isinstance(self.min_aspect, (int, float)) or not 0 < self.min_aspect <= 1:
            raise ValueError(f"min_aspect: expected a float in (0, 1], got {self.min_aspect!r}")

    @classmethod
    def from_ratio(cls, grid_h: int, grid_w: int, mask_ratio: float = 0.4, **kw) -> BlockMask:
        """BEiT's setting: ``mask_ratio`` of the patches (75 of 196 at 0.4), blocks of at least 16."""
        _fraction("mask_ratio", mask_ratio)
        return cls(grid_h, grid_w, max(1, round(mask_ratio * grid_h * grid_w)), **kw)

    def _block(self, mask: torch.Tensor, budget: int, generator) -> int:
        """Try 10 times to mask one block of at most ``budget`` new patches; how many it masked."""
        log_lo, log_hi = math.log(self.min_aspect), math.log(1 / self.min_aspect)
        upper = min(budget, self.num_masked if self.max_block is None else self.max_block)
        for _ in range(10):
            u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
            area = self.min_block + u[0] * (upper - self.min_block)
            aspect = math.exp(log_lo + u[1] * (log_hi - log_lo))
            h, w = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if not (0 < h < self.grid_h and 0 < w < self.grid_w):
                continue
            top = int(torch.randint(0, self.grid_h - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, self.grid_w - w + 1, (1,), generator=generator))
            region = mask[top : top + h, left : left + w]
            new = h * w - int(region.sum())
            if 0 < new <= budget:
                region.fill_(True)
                return new
        return 0

    def __call__(self, generator: torch.Generator | None = None) -> torch.Tensor:
        mask = torch.zeros(self.grid_h, self.grid_w, dtype=torch.bool)
        count = 0
        while count < self.num_masked:
            added = self._block(mask, self.num_masked - count, generator)
            if added == 0:
                break
            count += added
        return mask.flatten()


@dataclass(frozen=True)
class CenterMask:
    """Context-encoder's central region (Pathak et al. 2016): the middle square of
    ``round(grid * sqrt(mask_ratio))`` cells per side (half the side, a quarter of the area, at 0.25),
    the same for every image (``generator`` unused)."""

    grid: int
    mask_ratio: float = 0.25

    def __post_init__(self) -> None:
        check_int("grid", self.grid, 2)
        _fraction("mask_ratio", self.mask_ratio)

    @property
    def side(self) -> int:
        return min(self.grid - 1, max(1, round(self.grid * math.sqrt(self.mask_ratio))))

    @property
    def num_masked(self) -> int:
        return self.side**2

    def __call__(self, generator: torch.Generator | None = None) -> torch.Tensor:
        mask = torch.zeros(self.grid, self.grid, dtype=torch.bool)
        top = (self.grid - self.side) // 2
        mask[top : top + self.side, top : top + self.side] = True
        return mask.flatten()


REGIONS = ("center", "block", "random")


def region_masker(kind: str, grid: int, mask_ratio: float):
    """The mask generator of a pretext task's region on a ``grid`` x ``grid`` cell grid: ``"center"``
    (:class:`CenterMask`), ``"block"`` (BEiT's :class:`BlockMask`, blocks of at least a 16th of the
    grid) or ``"random"`` (single cells, SimMIM's :class:`RandomPatchMask`)."""
    if kind not in REGIONS:
        raise ValueError(f"mask: expected one of {REGIONS}, got {kind!r}")
    if kind == "center":
        return CenterMask(grid, mask_ratio)
    if kind == "block":
        return BlockMask.from_ratio(grid, grid, mask_ratio, min_block=max(1, grid * grid // 16))
    return RandomPatchMask(grid, mask_ratio)


class MaskedImages(Dataset):
    """Items ``(image, label, mask)``: an image dataset's items with a fresh mask from ``masker``."""

    def __init__(self, dataset: Dataset, masker) -> None:
        self.dataset, self.masker = dataset, masker

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        image, label = self.dataset[i]
        return image, label, self.masker()


__all__ = ["REGIONS", "BlockMask", "CenterMask", "MaskedImages", "RandomPatchMask", "region_masker"]
