"""Shared k-means: Lloyd steps match a float64 NumPy reference step for step (an emptied cluster
included), well-separated clusters are recovered, k-means++ seeds one point per far-apart cluster,
nearest() is the argmin over centres, and bad input names the argument."""

import numpy as np
import pytest
import torch

from fastpretrain.data import kmeans as kmeans_module
from fastpretrain.data.kmeans import kmeans, kmeans_plusplus, nearest


def lloyd_reference(x: np.ndarray, init: np.ndarray, iters: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Plain Lloyd iteration in float64, the same stopping and empty-cluster rules."""
    c, assign = init.astype(np.float64).copy(), None
    for step in range(1, iters + 1):
        d = np.sqrt(((x[:, None, :] - c[None]) ** 2).sum(-1))
        new = d.argmin(1)
        if assign is not None and (new == assign).all():
            break
        assign = new
        for j in range(len(c)):
            if (assign == j).any():
                c[j] = x[assign == j].mean(0)
        for j in range(len(c)):
            if not (assign == j).any():
                far = np.sqrt(((x[:, None, :] - c[None]) ** 2).sum(-1)).min(1).argmax()
                c[j] = x[far]
    d = np.sqrt(((x[:, None, :] - c[None]) ** 2).sum(-1))
    return c, d.argmin(1), step


@pytest.mark.parametrize("case", ["plain", "empty_cluster"])
def test_lloyd_matches_the_float64_reference(case, one_thread):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(203, 3, generator=g) * torch.tensor([1.0, 2.0, 0.5])
    init = x[:5].clone()
    if case == "empty_cluster":  # a seed far from every point owns nothing after the first step
        init[4] = torch.tensor([50.0, 50.0, 50.0])
    for iters in (1, 2, 30):
        got = kmeans(x, 5, iters=iters, init=init)
        want_c, want_assign, want_steps = lloyd_reference(x.double().numpy(), init.double().numpy(), iters)
        assert got.steps == want_steps
        np.testing.assert_allclose(got.centres.numpy(), want_c, atol=1e-5, rtol=0)
        assert np.array_equal(got.assign.numpy(), want_assign)
        inertia = float(((x.double().numpy() - want_c[want_assign]) ** 2).sum())
        assert got.inertia == pytest.approx(inertia, rel=1e-5)
    assert got.steps < 30  # converged: no assignment changed


def test_recovers_well_separated_clusters(one_thread):
    g = torch.Generator().manual_seed(1)
    means = torch.randn(6, 8, generator=g) * 20
    labels = torch.randint(6, (1200,), generator=g)
    x = means[labels] + torch.randn(1200, 8, generator=g)
    for seed in range(3):
        got = kmeans(x, 6, seed=seed)
        match = torch.cdist(got.centres, means).argmin(1)
        assert sorted(match.tolist()) == list(range(6))  # one centre per true cluster
        torch.testing.assert_close(got.centres, means[match], atol=0.3, rtol=0)
        assert torch.equal(match[got.assign], labels)  # every point in its own cluster


def test_kmeans_plusplus_seeds_one_point_per_far_cluster():
    means = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    x = (means[:, None] + torch.rand(4, 50, 2)).reshape(-1, 2)
    for seed in range(20):
        seeds = kmeans_plusplus(x, 4, torch.Generator().manual_seed(seed))
        assert sorted(torch.cdist(seeds, means).argmin(1).tolist()) == [0, 1, 2, 3]


def test_nearest_is_the_argmin_in_blocks(monkeypatch):
    monkeypatch.setattr(kmeans_module, "CHUNK", 7)  # several blocks and a ragged last one
    x, c = torch.randn(30, 4), torch.randn(5, 4)
    assert torch.equal(nearest(x, c), torch.cdist(x, c).argmin(1))
    assert torch.equal(nearest(x.double(), c), torch.cdist(x, c).argmin(1))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="k: 9 clusters need at least 9 points"):
        kmeans(torch.rand(5, 2), 9)
    with pytest.raises(ValueError, match="x: expected float points"):
        kmeans(torch.ones(5, 2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="init: expected"):
        kmeans(torch.rand(5, 2), 2, init=torch.rand(3, 2))
    with pytest.raises(ValueError, match="iters"):
        kmeans(torch.rand(5, 2), 2, iters=0)
    with pytest.raises(ValueError, match="x: expected \\[N, 3\\]"):
        nearest(torch.rand(5, 2), torch.rand(4, 3))
