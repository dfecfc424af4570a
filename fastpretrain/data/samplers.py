"""Samplers of word ids that know their log-probabilities: word2vec's negatives, and the candidates
of a sampled softmax, whose logits are corrected by log Q (``fastpretrain.nn.SampledSoftmaxLoss``).

``sampler(*shape)`` draws int32 ids of that shape, with replacement, from the sampler's own seeded
torch Generator on ``device``; ``sampler.log_prob(ids)`` is float32 log Q of ids in [0, V):

- :class:`AliasSampler`: any weights, O(1) a draw through the alias table the C++ engine uses, so
  word2vec draws its negatives on the training device and they never cross the PCIe bus;
- :class:`UnigramSampler`: counts ** alpha (word2vec's noise distribution at alpha = 0.75);
- :class:`LogUniformSampler`: the Zipfian law of ids sorted by decreasing frequency,
  Q(k) = log((k + 2) / (k + 1)) / log(V + 1), as TensorFlow's ``log_uniform_candidate_sampler``;
- :class:`UniformSampler`: Q(k) = 1 / V.

With S candidates the expected count of id k is S Q(k): log S shifts every logit alike and cancels
in the softmax, so log Q is the whole correction.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fastpretrain import _C
from fastpretrain.checks import INT32_MAX, check_float, check_int


class _Sampler:
    """The device and the seeded generator every sampler draws from."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.num_classes = check_int("num_classes", num_classes, 1, INT32_MAX)
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(check_int("seed", seed, 0))


class AliasSampler(_Sampler):
    """Draws ids with probability ``weights / weights.sum()`` in O(1) each, on ``device``."""

    def __init__(self, weights: np.ndarray, device: torch.device | str = "cpu", seed: int = 0) -> None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or len(weights) == 0 or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("weights: expected a non-empty 1-D array of finite numbers >= 0")
        if not weights.sum() > 0:
            raise ValueError("weights: every weight is 0")
        super().__init__(len(weights), device, seed)
        thresholds, aliases = _C.alias_table(weights)
        self.thresholds = torch.from_numpy(thresholds.astype(np.int64)).to(self.device)
        self.aliases = torch.from_numpy(aliases.astype(np.int64)).to(self.device)
        with np.errstate(divide="ignore"):
            self._log_q = torch.from_numpy(np.log(weights / weights.sum()).astype(np.float32)).to(self.device)

    def __call__(self, *shape: int) -> torch.Tensor:
        """int32 ids of the given shape: a uniform column, kept or swapped for its alias by a coin."""
        column = torch.randint(0, self.num_classes, shape, device=self.device, generator=self.generator)
        coin = torch.randint(0, 2**32, shape, device=self.device, generator=self.generator)
        return torch.where(coin < self.thresholds[column], column, self.aliases[column]).int()

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """log Q of ``ids`` (-inf for a weight of 0)."""
        return self._log_q[ids.long()]


class UnigramSampler(AliasSampler):
    """Draws id w with probability counts[w] ** alpha / sum(counts ** alpha); a count of 0 is never
    drawn (log Q = -inf: give such a word a count before it can be a target)."""

    def __init__(self, counts: np.ndarray, alpha: float = 0.75, device: torch.device | str = "cpu",
                 seed: int = 0) -> None:  # fmt: skip
        counts = np.asarray(counts)
        if counts.ndim != 1 or counts.dtype.kind not in "iu" or (counts < 0).any():
            raise ValueError(f"counts: expected a 1-D array of integer counts >= 0, got {counts.dtype} {counts.shape}")
        check_float("alpha", alpha)
        with np.errstate(over="ignore"):
            weights = np.where(counts > 0, counts.astype(np.float64) ** alpha, 0.0)
        if not np.isfinite(weights.sum()):
            raise ValueError(f"alpha: counts ** {alpha} overflows")
        super().__init__(weights, device, seed)


class LogUniformSampler(_Sampler):
    """Zipfian ids for a vocabulary sorted by decreasing frequency: P(id <= k) = log(k + 2) / log(V + 1)."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", seed: int = 0) -> None:
        super().__init__(num_classes, device, seed)
        self._log_range = math.log(num_classes + 1)

    def __call__(self, *shape: int) -> torch.Tensor:
        u = torch.rand(shape, dtype=torch.float64, device=self.device, generator=self.generator)
        return (torch.exp(u * self._log_range).floor() - 1).clamp_(0, self.num_classes - 1).int()

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        k = ids.double()
        return (torch.log(torch.log1p(1 / (k + 1))) - math.log(self._log_range)).float()


class UniformSampler(_Sampler):
    """Every id in [0, V) equally likely."""

    def __call__(self, *shape: int) -> torch.Tensor:
        return torch.randint(0, self.num_classes, shape, device=self.device, generator=self.generator).int()

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.full(ids.shape, -math.log(self.num_classes), dtype=torch.float32, device=ids.device)
