"""Id samplers: each draws what its log_prob says (on a large sample; the probabilities sum to 1),
repeats under a seed, and gives the sampled softmax its log-Q correction: with it the sampled loss's
gradient approaches the full softmax's, without it it does not."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fastpretrain.data import AliasSampler, LogUniformSampler, UniformSampler, UnigramSampler
from fastpretrain.nn import SampledSoftmaxLoss

COUNTS = [40_000, 20_000, 8_000, 3_000, 1_000, 400, 100]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SAMPLERS = {
    "alias": lambda seed: AliasSampler(np.array(COUNTS, dtype=float) ** 0.75, DEVICE, seed=seed),
    "unigram": lambda seed: UnigramSampler(np.array(COUNTS), alpha=0.5, device=DEVICE, seed=seed),
    "log_uniform": lambda seed: LogUniformSampler(len(COUNTS), DEVICE, seed=seed),
    "uniform": lambda seed: UniformSampler(len(COUNTS), DEVICE, seed=seed),
}


def test_device_alias_sampler_follows_its_weights():
    """The torch sampler that draws negatives on the training device, on a large sample."""
    weights = np.array(COUNTS, dtype=float) ** 0.75
    draws = AliasSampler(weights, DEVICE, seed=0)(500_000, 4)
    assert draws.dtype == torch.int32 and draws.shape == (500_000, 4)
    observed = np.bincount(draws.cpu().numpy().ravel(), minlength=len(COUNTS))
    assert stats.chisquare(observed, weights / weights.sum() * observed.sum()).pvalue > 1e-4
    again = AliasSampler(weights, DEVICE, seed=0)(500_000, 4)
    assert torch.equal(draws, again)


@pytest.mark.parametrize("name", SAMPLERS)
def test_draws_follow_log_prob(name):
    sampler = SAMPLERS[name](0)
    draws = sampler(250_000, 2)
    assert draws.dtype == torch.int32 and draws.shape == (250_000, 2) and draws.device.type == DEVICE
    q = sampler.log_prob(torch.arange(len(COUNTS), device=DEVICE))
    assert q.dtype == torch.float32
    q = q.double().exp().cpu().numpy()
    assert q.sum() == pytest.approx(1.0, abs=1e-6)
    observed = np.bincount(draws.cpu().numpy().ravel(), minlength=len(COUNTS))
    assert stats.chisquare(observed, q / q.sum() * observed.sum()).pvalue > 1e-4, (observed, q)
    assert torch.equal(SAMPLERS[name](0)(250_000, 2), draws) and not torch.equal(SAMPLERS[name](1)(250_000, 2), draws)


def test_unigram_is_counts_to_the_alpha_and_never_draws_a_count_of_0():
    sampler = UnigramSampler(np.array([9, 0, 1]), alpha=0.5)
    np.testing.assert_allclose(sampler.log_prob(torch.arange(3)).numpy(), [math.log(0.75), -math.inf, math.log(0.25)],
                               rtol=1e-6)
    assert 1 not in sampler(10_000).tolist()


def test_log_uniform_is_tensorflows_zipfian_law():
    v = 1000
    sampler = LogUniformSampler(v, seed=0)
    k = np.arange(v)
    expected = np.log(np.log((k + 2) / (k + 1)) / np.log(v + 1))
    np.testing.assert_allclose(sampler.log_prob(torch.from_numpy(k)).numpy(), expected, rtol=1e-6)
    assert sampler.log_prob(torch.tensor([0])).item() == pytest.approx(math.log(math.log(2) / math.log(v + 1)))
    draws = sampler(1_000_000)
    assert draws.min() == 0 and draws.max() == v - 1


def test_log_q_corrects_the_sampled_softmax_gradient():
    """Many samples (with accidental hits kept): the log-Q corrected gradient w.r.t. the hidden states
    is within a few percent of the full softmax's; uncorrected, Zipfian candidates bias it by 20%."""
    g = torch.Generator().manual_seed(0)
    v, d, n, s = 50, 8, 64, 20_000
    hidden, weight = torch.randn(n, d, generator=g, requires_grad=True), torch.randn(v, d, generator=g)
    targets = torch.randint(0, v, (n,), generator=g)
    full_loss = torch.nn.functional.cross_entropy(hidden @ weight.T, targets, reduction="sum")
    (full,) = torch.autograd.grad(full_loss, hidden)
    sampler = LogUniformSampler(v, seed=0)
    sampled = sampler(s)
    loss = SampledSoftmaxLoss(remove_accidental_hits=False, reduction="sum")
    errors = []
    for log_q_targets, log_q_sampled in ((sampler.log_prob(targets), sampler.log_prob(sampled)),
                                         (torch.zeros(n), torch.zeros(s))):  # fmt: skip
        (grad,) = torch.autograd.grad(loss(hidden, weight, targets, sampled, log_q_targets, log_q_sampled), hidden)
        errors.append(((grad - full).norm() / full.norm()).item())
    assert errors[0] < 0.05 and errors[1] > 0.15, errors


@pytest.mark.parametrize("make,match", [
    (lambda: AliasSampler(np.zeros(3)), "weights: every weight is 0"),
    (lambda: AliasSampler(np.array([1.0, -1.0])), "weights: expected"),
    (lambda: UnigramSampler(np.array([1.5, 2.0])), "counts: expected"),
    (lambda: UnigramSampler(np.array([10**6]), alpha=1e6), "alpha: counts"),
    (lambda: LogUniformSampler(0), "num_classes"),
    (lambda: UniformSampler(5, seed=-1), "seed"),
])  # fmt: skip
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
