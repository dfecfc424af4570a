"""Samplers of word ids that know their log-probabilities: word2vec's negatives, and the candidates
of a sampled softmax, whose logits are corrected by log Q (``fastpretrain.nn.SampledSoftmaxLoss``).

``sampler(*shape)`` draws int32 ids of that shape, with replacement, from the sampler's own seeded
torch Generator on ``device`` (``seed=None``: torch's default generator there, as the models use); ``sampler.log_prob(ids)`` is float32 log Q of ids in [0, V):

- :class:`AliasSampler`: any weights, O(1) a draw through the alias table the C++ engine uses, so
  word2vec draws its negatives on the training device and they never cross the PCIe bus;
- :class:`UnigramSampler`: counts ** alpha (word2vec's noise distribution at alpha = 0.75);
- :class:`LogUniformSampler`: the Zipfian law of ids sorted by decreasing frequency,
  Q(k) = log((k + 2) / (k + 1)) / log(V + 1), as TensorFlow's ``log_uniform_candidate_sampler``;
- :class:`UniformSampler`: Q(k) = 1 / V.

With S candidates the expected count of id k is S Q(k): log S shifts every logit alike and cancels
in the softmax, so log Q is the whole correction.

:meth:`candidates` is TensorFlow's ``*_candidate_sampler``: S candidates shared by the batch and the
expected counts of the targets and of the candidates, whose logs the sampled softmax subtracts.
With ``unique=True`` draws are repeated until S distinct ids are seen, and an id's expected count
is TF's ``range_sampler`` formula 1 - (1 - Q)^num_tries; all on the sampler's device, one host
sync per round of draws (2 S, doubled while fewer than S distinct ids are seen).
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import numpy as np
import torch

from fastpretrain import _C
from fastpretrain.checks import INT32_MAX, check_float, check_int


class Candidates(NamedTuple):
    """What :meth:`candidates` returns, as TF's candidate samplers (plus ``num_tries``)."""

    sampled: torch.Tensor  # [S] int32 ids shared by the batch
    true_expected_count: torch.Tensor  # [N] float32 expected count of each target among the draws
    sampled_expected_count: torch.Tensor  # [S] float32
    num_tries: torch.Tensor  # int64 scalar: draws made (S when not unique)


def first_unique(draws: torch.Tensor, num_sampled: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first ``num_sampled`` distinct ids of the sequence ``draws``, in order of first
    appearance, and how many draws it took to see them (TF's ``num_tries``); None if the
    sequence holds fewer distinct ids."""
    ids, inverse = torch.unique(draws, return_inverse=True)
    if ids.numel() < num_sampled:  # the host sync
        return None
    position = torch.arange(draws.numel(), device=draws.device)
    first = torch.full(ids.shape, draws.numel(), device=draws.device).scatter_reduce_(0, inverse, position, "amin")
    first, order = first.sort()
    return ids[order[:num_sampled]], first[num_sampled - 1] + 1


class _Sampler:
    """The device and the seeded generator every sampler draws from."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", seed: int | None = 0) -> None:
        self.num_classes = check_int("num_classes", num_classes, 1, INT32_MAX)
        self.device = torch.device(device)
        self.seed = None if seed is None else check_int("seed", seed, 0)
        self.generator = self._generator(self.device)

    def _generator(self, device: torch.device) -> torch.Generator | None:
        """Its own generator of ``seed``, or with seed None torch's default one of the device (which
        the Trainer's checkpoints save and restore, so a resumed run draws what it would have)."""
        return None if self.seed is None else torch.Generator(device).manual_seed(self.seed)

    def support(self) -> int:
        """How many ids can be drawn (Q > 0)."""
        return self.num_classes

    def expected_count(self, ids: torch.Tensor, num_tries: torch.Tensor | int, unique: bool) -> torch.Tensor:
        """TF's expected count of ``ids`` after ``num_tries`` draws: 1 - (1 - Q)^num_tries for
        unique sampling, num_tries * Q otherwise; float32, computed in float64."""
        q = self.log_prob(ids).double().exp()
        tries = torch.as_tensor(num_tries, dtype=torch.float64, device=q.device)
        return (-torch.expm1(tries * torch.log1p(-q)) if unique else tries * q).float()

    def candidates(self, num_sampled: int, targets: torch.Tensor, unique: bool = False) -> Candidates:
        """``num_sampled`` candidate ids shared by the batch and the expected counts of ``targets``
        and of the candidates (TF's ``log_uniform_candidate_sampler`` and its siblings). ``unique``:
        distinct candidates, drawn until ``num_sampled`` distinct ids are seen."""
        check_int("num_sampled", num_sampled, 1, self.support() if unique else INT32_MAX)
        if not unique:
            sampled, tries = self(num_sampled), torch.tensor(num_sampled, device=self.device)
        else:
            draws = self(2 * num_sampled)  # rounds of a size set by S alone: the draws follow the RNG state
            while (found := first_unique(draws, num_sampled)) is None:
                draws = torch.cat([draws, self(draws.numel())])
            sampled, tries = found
            sampled = sampled.int()
        targets = targets.to(self.device)
        return Candidates(sampled, self.expected_count(targets, tries, unique),
                          self.expected_count(sampled, tries, unique), tries)  # fmt: skip

    def to(self, device: torch.device | str):
        """This sampler on ``device`` (tables moved, a generator of the same seed there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        moved = copy.copy(self)
        moved.device, moved.generator = device, self._generator(device)
        for name, value in vars(self).items():
            if torch.is_tensor(value):
                setattr(moved, name, value.to(device))
        return moved


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

    def support(self) -> int:
        return int((self._log_q > -math.inf).sum())

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
