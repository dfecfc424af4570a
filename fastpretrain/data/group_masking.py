"""Which groups of a tokenized sequence to mask (True = masked), drawn per sample on the batch's device:

- :class:`RandomGroupMask`: exactly ``L - int(L * (1 - mask_ratio))`` groups, a uniform subset (MAE,
  Point-MAE, Ti-MAE), drawn by the fused :func:`fastpretrain.nn.random_masking` op; the only policy
  with a fixed count, hence the only one the visible-only (MAE-style) encoder takes.
- :class:`SpanMask`: wav2vec 2.0's spans (fairseq ``compute_mask_indices``, static lengths): with
  ``mask_prob`` 0.65 and ``span_length`` 10, ``n = floor(mask_prob * L / span_length + U[0, 1))``
  start positions (at least one) are drawn without replacement and each masks ``span_length``
  groups from there; spans overlap, so about 1 - (1 - 0.065)^10 = 49% of the groups end up masked.
  Starts are drawn from the ``L - span_length + 1`` positions whose span fits (fairseq draws from
  one fewer, so its last frame is never masked).
- :class:`BlockGroupMask`: BEiT's block-wise masking on groups laid out as a ``rows`` x ``L / rows``
  grid (a spectrogram's frequency x time patches), one :class:`fastpretrain.data.image_masking.BlockMask`
  draw per sample. A 1-D sequence has no blocks: use spans.

``mask_policy(name, **settings)`` builds one by name (:data:`POLICIES`); each is called as
``policy(batch, length, generator=None, device=None)`` -> bool [B, L].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fastpretrain.checks import check_float, check_int
from fastpretrain.data.image_masking import BlockMask
from fastpretrain.nn import check_mask_ratio, random_masking


def _rand(shape, generator, device) -> torch.Tensor:
    """Uniform [0, 1) floats drawn on the generator's device, returned on ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=where, dtype=torch.float64).to(device)


@dataclass(frozen=True)
class RandomGroupMask:
    """A uniform random subset of ``L - int(L * (1 - mask_ratio))`` groups per sample."""

    mask_ratio: float = 0.75
    fixed_count = True

    def __post_init__(self) -> None:
        check_float("mask_ratio", self.mask_ratio)
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio: expected a float in (0, 1), got {self.mask_ratio!r}")

    def __call__(self, batch: int, length: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        check_mask_ratio(self.mask_ratio, length)
        device = device if device is not None else (generator.device if generator is not None else None)
        return random_masking(batch, length, self.mask_ratio, generator=generator, device=device).mask.bool()


@dataclass(frozen=True)
class SpanMask:
    """wav2vec 2.0's span masking (see the module docstring)."""

    mask_prob: float = 0.65
    span_length: int = 10
    fixed_count = False

    def __post_init__(self) -> None:
        check_int("span_length", self.span_length, 1)
        check_float("mask_prob", self.mask_prob)
        if not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob: expected a float in (0, 1], got {self.mask_prob!r}")

    def starts(self, length: int) -> int:
        """How many positions a span may start at: those whose span fits in ``length``."""
        if self.span_length >= length:
            raise ValueError(f"span_length: {self.span_length} does not leave a group unmasked in a sequence of "
                             f"{length}")  # fmt: skip
        return length - self.span_length + 1

    def __call__(self, batch: int, length: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        check_int("batch", batch, 1)
        m = self.starts(check_int("length", length, 2))
        count = (self.mask_prob * length / self.span_length + _rand(batch, generator, device)).floor()
        count = count.long().clamp(1, m)
        order = _rand((batch, m), generator, device).argsort(dim=1)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(m, device=order.device).expand(batch, m))
        chosen = (rank < count[:, None]).long()
        before = torch.nn.functional.pad(chosen.cumsum(dim=1), (1, 0))  # before[:, s] = starts chosen below s
        t = torch.arange(length, device=order.device)
        hi, lo = t.clamp(max=m - 1) + 1, (t - self.span_length + 1).clamp(min=0)
        return (before[:, hi] - before[:, lo]) > 0


@dataclass(frozen=True)
class BlockGroupMask:
    """BEiT's block-wise masking of ``round(mask_ratio * L)`` groups on a ``rows`` x ``L / rows`` grid."""

    mask_ratio: float = 0.4
    rows: int = 2
    min_block: int = 4
    min_aspect: float = 0.3
    fixed_count = False

    def __post_init__(self) -> None:
        check_int("rows", self.rows, 2)  # BlockMask's blocks are shorter than the grid: one row has none
        check_int("min_block", self.min_block, 1)
        check_float("mask_ratio", self.mask_ratio)
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio: expected a float in (0, 1), got {self.mask_ratio!r}")

    def masker(self, length: int) -> BlockMask:
        """The BlockMask for a sequence of ``length`` groups."""
        if length % self.rows:
            raise ValueError(f"rows: {self.rows} rows do not divide the {length} groups into a grid")
        return BlockMask(self.rows, length // self.rows, max(1, round(self.mask_ratio * length)),
                         min_block=self.min_block, min_aspect=self.min_aspect)  # fmt: skip

    def __call__(self, batch: int, length: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        check_int("batch", batch, 1)
        masker = self.masker(length)
        if generator is not None and generator.device.type != "cpu":
            seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
            generator = torch.Generator().manual_seed(seed)  # BlockMask draws on the CPU
        return torch.stack([masker(generator) for _ in range(batch)]).to(device)


POLICIES = {"random": RandomGroupMask, "span": SpanMask, "block": BlockGroupMask}


def mask_policy(name: str, **settings):
    """The policy ``name`` (one of :data:`POLICIES`) with ``settings`` (its fields)."""
    if name not in POLICIES:
        raise ValueError(f"masking: expected one of {', '.join(POLICIES)}, got {name!r}")
    return POLICIES[name](**settings)


__all__ = ["POLICIES", "BlockGroupMask", "RandomGroupMask", "SpanMask", "mask_policy"]
