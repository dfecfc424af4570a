"""TensorFlow's candidate sampling on our samplers: unique draws are the first S distinct ids of
the draw sequence, expected counts are TF's range_sampler formula, and what is drawn follows it."""

import numpy as np
import pytest
import torch
from scipy import stats

from fastpretrain.data import AliasSampler, LogUniformSampler, UniformSampler, UnigramSampler
from fastpretrain.data.samplers import first_unique

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
COUNTS = np.array([5000, 2000, 900, 400, 400, 150, 60, 20, 7, 1, 0])
SAMPLERS = {
    "alias": lambda seed: AliasSampler(COUNTS.astype(float) ** 0.75, DEVICE, seed=seed),
    "unigram": lambda seed: UnigramSampler(COUNTS, alpha=0.5, device=DEVICE, seed=seed),
    "log_uniform": lambda seed: LogUniformSampler(len(COUNTS), DEVICE, seed=seed),
    "uniform": lambda seed: UniformSampler(len(COUNTS), DEVICE, seed=seed),
}


def sequential_unique(draws, s):
    """TF's loop: draw until s distinct ids are seen; (ids in order of first appearance, tries)."""
    seen = []
    for tries, x in enumerate(draws, 1):
        if x not in seen:
            seen.append(x)
            if len(seen) == s:
                return seen, tries
    return None


@pytest.mark.parametrize("seed", range(5))
def test_first_unique_is_tensorflows_sequential_loop(seed):
    g = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, 9, (int(torch.randint(1, 60, (1,), generator=g)),), generator=g)
    for s in range(1, 10):
        want = sequential_unique(draws.tolist(), s)
        got = first_unique(draws, s)
        assert (got is None) == (want is None)
        if want is not None:
            assert got[0].tolist() == want[0] and int(got[1]) == want[1]


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("unique", [True, False])
def test_expected_counts_are_tensorflows_formula(name, unique):
    sampler = SAMPLERS[name](0)
    targets = torch.tensor([0, 3, 9, 1, 0])
    for s in (1, 4, 9):
        c = sampler.candidates(s, targets, unique=unique)
        assert c.sampled.dtype == torch.int32 and c.sampled.shape == (s,) and c.sampled.device.type == DEVICE
        q = sampler.log_prob(torch.arange(len(COUNTS), device=DEVICE)).double().exp().cpu().numpy()
        tries = int(c.num_tries)
        assert len(set(c.sampled.tolist())) == s and tries >= s if unique else tries == s
        for got, ids in ((c.true_expected_count, targets), (c.sampled_expected_count, c.sampled)):
            p = q[ids.cpu().numpy()]
            assert got.dtype == torch.float32
            np.testing.assert_allclose(got.cpu().numpy(), 1 - (1 - p) ** tries if unique else s * p, rtol=1e-6)


def test_unique_candidates_follow_the_draws():
    """The first candidate of a unique set is one plain draw (chi-square against Q); an id's
    inclusion frequency over many sets is the mean of its expected counts (TF's formula is the
    exact inclusion probability given num_tries draws of Q, up to the stopping rule's bias)."""
    sampler = LogUniformSampler(40, DEVICE, seed=3)
    q = sampler.log_prob(torch.arange(40, device=DEVICE)).double().exp().cpu().numpy()
    rounds, s = 3000, 12
    firsts, included, expected = np.zeros(40), np.zeros(40), np.zeros(40)
    targets = torch.arange(40, device=DEVICE)
    for _ in range(rounds):
        c = sampler.candidates(s, targets, unique=True)
        ids = c.sampled.cpu().numpy()
        firsts[ids[0]] += 1
        included[ids] += 1
        expected += c.true_expected_count.double().cpu().numpy()
    assert stats.chisquare(firsts, q / q.sum() * rounds).pvalue > 1e-4
    assert included.sum() == rounds * s
    np.testing.assert_allclose(included / rounds, expected / rounds, rtol=0.12, atol=0.01)
    # the expected counts of a set sum to about S: sum_k 1 - (1 - Q_k)^T is what T draws cover
    assert expected.sum() / rounds == pytest.approx(s, rel=0.05)


def test_unique_sampling_of_the_whole_support_and_too_many():
    sampler = UnigramSampler(COUNTS, device=DEVICE, seed=1)  # one count of 0: 10 drawable ids
    c = sampler.candidates(10, torch.tensor([10]), unique=True)
    assert sorted(c.sampled.tolist()) == list(range(10)) and c.true_expected_count.item() == 0
    with pytest.raises(ValueError, match="num_sampled"):
        sampler.candidates(11, torch.tensor([0]), unique=True)
    assert sampler.candidates(11, torch.tensor([0])).sampled.shape == (11,)  # with replacement: any S


def test_to_keeps_the_seed_and_moves_the_tables():
    sampler = UnigramSampler(COUNTS, seed=4)
    assert sampler.to("cpu") is sampler
    if not torch.cuda.is_available():
        pytest.skip("moving a sampler needs a second device")
    moved = sampler.to("cuda")
    assert moved.thresholds.is_cuda and moved(5).is_cuda and sampler(5).device.type == "cpu"
    assert torch.equal(moved(1000).cpu(), UnigramSampler(COUNTS, device="cuda", seed=4)(1000).cpu())


@pytest.mark.parametrize("name", ["alias", "log_uniform", "uniform"])
def test_seed_none_draws_from_torchs_generator(name):
    """The models' samplers: torch.manual_seed (the Trainer's checkpointed RNG) fixes their draws."""
    make = {"alias": lambda: AliasSampler(COUNTS.astype(float), DEVICE, seed=None),
            "log_uniform": lambda: LogUniformSampler(len(COUNTS), DEVICE, seed=None),
            "uniform": lambda: UniformSampler(len(COUNTS), DEVICE, seed=None)}[name]  # fmt: skip
    draws = []
    for _ in range(2):
        torch.manual_seed(3)
        sampler = make()
        draws.append((sampler(200), sampler.candidates(5, torch.tensor([0]), unique=True).sampled))
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][1], draws[1][1])
    torch.manual_seed(4)
    assert not torch.equal(make()(200), draws[0][0])
