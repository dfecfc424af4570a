"""word2vec's fused update kernels (in the Triton interpreter) against the pure-torch
references, and the references against a hand-computed word2vec.c update; compile, opcheck of
the in-place ops, bad input."""

import math

import fastpretrain.kernels.word2vec as kernels
import numpy as np
import pytest
import torch

from fastpretrain.data import Vocab
from fastpretrain.ops import (
    hs_update_reference,
    ns_update_reference,
    shared_ns_update_reference,
    word2vec_hs_update_,
    word2vec_ns_update_,
    word2vec_shared_ns_update_,
)

pytestmark = pytest.mark.gpu


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_reference_equals_hand_computed_word2vec_c_update():
    """One skip-gram pair, input word 0, positive 1, one negative 2, as word2vec.c's loop does it."""
    syn0 = torch.tensor([[0.5, -0.2], [0.1, 0.3], [-0.4, 0.2]])
    syn1 = torch.tensor([[0.0, 0.0], [0.3, 0.6], [-0.5, 0.1]])
    alpha = 0.1
    l1 = syn0[0].tolist()
    want0, want1, neu1e, loss = syn0.clone(), syn1.clone(), [0.0, 0.0], 0.0
    for target, label in ((1, 1), (2, 0)):
        w = syn1[target].tolist()
        f = l1[0] * w[0] + l1[1] * w[1]
        g = (label - sigmoid(f)) * alpha
        loss -= math.log(sigmoid(f if label else -f))
        neu1e = [neu1e[j] + g * w[j] for j in range(2)]
        want1[target] += torch.tensor([g * l1[0], g * l1[1]])
    want0[0] += torch.tensor(neu1e)
    got = ns_update_reference(syn0, syn1, torch.tensor([[0]]), None, torch.tensor([1]), torch.tensor([[2]]), alpha)
    torch.testing.assert_close(syn0, want0)
    torch.testing.assert_close(syn1, want1)
    assert got.item() == pytest.approx(loss, rel=1e-6)


def random_batch(n, c, k, v, d, seed):
    """Small vocabulary, so rows repeat within the batch; some negatives equal the target."""
    g = torch.Generator().manual_seed(seed)
    syn0 = (torch.rand(v, d, generator=g) - 0.5) * 2
    syn1 = (torch.rand(v, d, generator=g) - 0.5) * 2
    inputs = torch.randint(0, v, (n, c), generator=g, dtype=torch.int32)
    lengths = torch.randint(1, c + 1, (n,), generator=g, dtype=torch.int32)
    if c > 1:
        inputs[torch.arange(c) >= lengths.unsqueeze(1)] = -1
    targets = torch.randint(0, v, (n,), generator=g, dtype=torch.int32)
    negatives = torch.randint(0, v, (n, k), generator=g, dtype=torch.int32)
    if k:
        negatives[::3, 0] = targets[::3]
    return syn0, syn1, inputs, lengths, targets, negatives


GROUP = 8


def in_groups(reference_fn, n_per_example):
    """The reference applied to consecutive groups of GROUP examples, one after the other: the
    order in which a single kernel program updates the rows. The first n_per_example
    arguments are per-example tensors (or None), the rest are shared tables."""

    def run(s0, s1, *args):
        per, shared = args[:n_per_example], args[n_per_example:]
        n = len(per[0])
        losses = [
            reference_fn(s0, s1, *(None if a is None else a[i : i + GROUP] for a in per), *shared)
            for i in range(0, n, GROUP)
        ]
        return torch.cat(losses)

    return run


def assert_same_update(kernel_path, kernel_fn, reference_fn, syn0, syn1, args, atol=2e-5):
    """kernel_fn(syn0, syn1, *args) on the kernel path equals reference_fn on CPU tensors."""
    device, context = kernel_path
    k0, k1 = syn0.to(device), syn1.to(device)
    r0, r1 = syn0.clone(), syn1.clone()
    with context():
        loss_k = kernel_fn(k0, k1, *(a.to(device) if torch.is_tensor(a) else a for a in args))
    loss_r = reference_fn(r0, r1, *args)
    assert not torch.equal(r0, syn0) and not torch.equal(r1, syn1), "the update changed nothing"
    torch.testing.assert_close(loss_k.cpu(), loss_r, atol=atol, rtol=1e-5)
    torch.testing.assert_close(k0.cpu(), r0, atol=atol, rtol=1e-5)
    torch.testing.assert_close(k1.cpu(), r1, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("c,k,d,cbow_mean", [(1, 0, 50, True), (1, 1, 100, True), (1, 5, 300, True),
                                              (6, 3, 50, True), (4, 2, 37, False), (1, 25, 64, True)])  # fmt: skip
def test_ns_kernel_matches_reference(c, k, d, cbow_mean, monkeypatch, kernel_path):
    """One program walking the batch group by group: the update order is the reference's exactly."""
    n = 33
    monkeypatch.setattr(kernels, "BLOCK_N", GROUP)
    monkeypatch.setattr(kernels, "PROGRAMS", 1)
    syn0, syn1, inputs, lengths, targets, negatives = random_batch(n, c, k, v=7, d=d, seed=c * 100 + k)
    lengths = lengths if c > 1 else None
    assert_same_update(
        kernel_path,
        lambda s0, s1, i, t, neg, n_: word2vec_ns_update_(s0, s1, i, t, neg, 0.1, lengths=n_, cbow_mean=cbow_mean),
        in_groups(lambda s0, s1, i, t, neg, n_: ns_update_reference(s0, s1, i, n_, t, neg, 0.1, cbow_mean), 4),
        syn0, syn1, (inputs, targets, negatives, lengths),
    )  # fmt: skip


def test_ns_kernel_many_programs_without_shared_rows(kernel_path):
    """Default blocking (many programs): exact when no row is shared between examples."""
    n, k, d = 150, 2, 40
    perm = torch.randperm(n * (k + 2), generator=torch.Generator().manual_seed(0)).int()
    inputs, targets, negatives = perm[:n, None], perm[n : 2 * n], perm[2 * n :].view(n, k)
    syn0, syn1 = torch.randn(n * (k + 2), d) * 0.3, torch.randn(n * (k + 2), d) * 0.3
    assert_same_update(
        kernel_path,
        lambda s0, s1, i, t, neg: word2vec_ns_update_(s0, s1, i, t, neg, 0.05),
        lambda s0, s1, i, t, neg: ns_update_reference(s0, s1, i, None, t, neg, 0.05),
        syn0, syn1, (inputs, targets, negatives),
    )  # fmt: skip


@pytest.mark.parametrize("c,d,cbow_mean", [(1, 50, True), (1, 100, True), (8, 30, True), (5, 64, False)])
def test_hs_kernel_matches_reference(c, d, cbow_mean, monkeypatch, kernel_path):
    v, n = 23, 29
    monkeypatch.setattr(kernels, "BLOCK_N", GROUP)
    monkeypatch.setattr(kernels, "PROGRAMS", 1)
    counts = np.random.default_rng(d).integers(1, 1000, v)
    h = Vocab([f"w{i}" for i in range(v)], counts).huffman()
    codes, points, code_lengths = (torch.from_numpy(x) for x in (h.codes, h.points, h.lengths))
    syn0, syn1, inputs, lengths, targets, _ = random_batch(n, c, 0, v=v, d=d, seed=d + c)
    syn1 = syn1[: v - 1].contiguous() * 2  # some logits beyond +-6: those nodes are skipped
    lengths = lengths if c > 1 else None
    assert_same_update(
        kernel_path,
        lambda s0, s1, i, t, n_, *h: word2vec_hs_update_(s0, s1, i, t, *h, 0.2, lengths=n_, cbow_mean=cbow_mean),
        in_groups(lambda s0, s1, i, t, n_, *h: hs_update_reference(s0, s1, i, n_, t, *h, 0.2, cbow_mean), 3),
        syn0, syn1, (inputs, targets, lengths, codes, points, code_lengths),
    )  # fmt: skip


def test_hs_reference_loss_is_the_huffman_path_likelihood():
    """The loss of one example is -log prod_i sigmoid((1 - 2 code_i) f_i) over its path."""
    h = Vocab(list("abcd"), np.array([10, 5, 3, 1])).huffman()
    syn0, syn1 = torch.randn(4, 8), torch.randn(3, 8) * 0.1
    target = 3
    want = -sum(
        math.log(sigmoid((1 - 2 * int(h.codes[target, i])) * float(syn0[1] @ syn1[h.points[target, i]])))
        for i in range(h.lengths[target])
    )
    tables = (torch.from_numpy(h.codes), torch.from_numpy(h.points), torch.from_numpy(h.lengths))
    loss = hs_update_reference(syn0, syn1, torch.tensor([[1]]), None, torch.tensor([target]), *tables, 0.0)
    assert loss.item() == pytest.approx(want, rel=1e-5)


def test_op_compiles_fullgraph_on_cpu():
    syn0, syn1, inputs, _, targets, negatives = random_batch(16, 1, 3, v=11, d=12, seed=5)
    eager0, eager1 = syn0.clone(), syn1.clone()
    want = word2vec_ns_update_(eager0, eager1, inputs, targets, negatives, 0.1)
    step = torch.compile(lambda a, b: word2vec_ns_update_(a, b, inputs, targets, negatives, 0.1), fullgraph=True)
    got = step(syn0, syn1)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(syn0, eager0)
    torch.testing.assert_close(syn1, eager1)


def test_opcheck_of_the_in_place_updates():
    """torch.library.opcheck on the three ops, which mutate syn0 and syn1 (declared in their schemas)."""
    syn0, syn1, inputs, lengths, targets, negatives = random_batch(9, 4, 3, v=11, d=8, seed=6)
    op = torch.ops.fastpretrain
    torch.library.opcheck(op.word2vec_ns_update.default, (syn0, syn1, inputs, lengths, targets, negatives, 0.1, True))
    h = Vocab([f"w{i}" for i in range(11)], np.arange(11, 0, -1) * 10).huffman()
    tables = tuple(torch.from_numpy(x) for x in (h.codes, h.points, h.lengths))
    torch.library.opcheck(op.word2vec_hs_update.default, (syn0, syn1, inputs, lengths, targets, *tables, 0.1, False))
    torch.library.opcheck(op.word2vec_shared_ns_update.default, (syn0, syn1, inputs, targets, negatives, 0.1))


def test_cbow_without_lengths_counts_the_window(kernel_path, monkeypatch):
    """CBOW windows without ``lengths``: the kernels divide by the count of real (non -1) context
    rows, as the references do, the same update as with the lengths given."""
    monkeypatch.setattr(kernels, "PROGRAMS", 1)
    syn0, syn1, inputs, lengths, targets, negatives = random_batch(13, 5, 2, v=9, d=16, seed=8)
    assert (lengths < 5).any() and not torch.equal(lengths, targets)
    device, context = kernel_path
    runs = []
    for given in (None, lengths):
        s0, s1 = syn0.to(device, copy=True), syn1.to(device, copy=True)
        tensors = [t.to(device) for t in (inputs, targets, negatives)]
        with context():
            loss = word2vec_ns_update_(s0, s1, *tensors, 0.1, lengths=None if given is None else given.to(device))
        runs.append([loss, s0, s1])
    assert all(torch.equal(u, v) for u, v in zip(*runs))


def ns_args():
    return {"syn0": torch.zeros(5, 4), "syn1": torch.zeros(5, 4), "inputs": torch.zeros(3, 1, dtype=torch.int32),
            "targets": torch.zeros(3, dtype=torch.int32), "negatives": torch.zeros(3, 1, dtype=torch.int32),
            "alpha": 0.1}  # fmt: skip


@pytest.mark.parametrize(
    "change,error,match",
    [({"syn0": torch.zeros(5, 4, dtype=torch.float64)}, TypeError, "syn0: expected a float32 tensor"),
     ({"syn0": [[0.0] * 4] * 5}, TypeError, "syn0: expected a float32 tensor .* got list"),
     ({"syn0": torch.zeros(10, 4).t().contiguous().t()}, ValueError, "syn0: expected a contiguous 2-d"),
     ({"syn0": torch.zeros(20)}, ValueError, "syn0: expected a contiguous 2-d"),
     ({"syn1": torch.zeros(5, 3)}, ValueError, "syn1: expected 4 columns"),
     ({"inputs": torch.zeros(3, dtype=torch.int32)}, ValueError, r"inputs: expected \[N, C\]"),
     ({"inputs": torch.zeros(3, 1)}, TypeError, "inputs: expected an int64 or int32 tensor"),
     ({"targets": torch.zeros(3)}, TypeError, "targets: expected an int64 or int32"),
     ({"targets": torch.zeros(2, dtype=torch.int32)}, ValueError, r"targets: expected shape \(3,\)"),
     ({"negatives": torch.zeros(2, 1, dtype=torch.int32)}, ValueError, r"negatives: expected shape \(3, K >= 0\)"),
     ({"negatives": torch.zeros(3, 1, dtype=torch.float32)}, TypeError, "negatives: expected an int64 or int32"),
     ({"negatives": torch.zeros(3, 1, dtype=torch.int32, device="meta")}, ValueError,
      "negatives: expected a tensor on cpu like syn0"),
     ({"lengths": torch.ones(2, dtype=torch.int32)}, ValueError, r"lengths: expected shape \(3,\)"),
     ({"alpha": float("nan")}, ValueError, "alpha: expected a learning rate >= 0"),
     ({"alpha": "0.1"}, TypeError, "alpha: expected a learning rate >= 0, got str")],
)  # fmt: skip
def test_bad_arguments(change, error, match):
    args = {**ns_args(), **change}
    with pytest.raises(error, match=match):
        word2vec_ns_update_(**args)


def test_bad_hs_and_shared_arguments():
    syn0, syn1, inputs, _, targets, negatives = random_batch(4, 1, 2, v=6, d=4, seed=1)
    codes, points, lengths = torch.zeros(6, 3, dtype=torch.int8), torch.zeros(6, 3, dtype=torch.int32), torch.ones(6)
    with pytest.raises(TypeError, match="code_lengths: expected an int64 or int32 tensor"):
        word2vec_hs_update_(syn0, syn1, inputs, targets, codes, points, lengths, 0.1)
    with pytest.raises(TypeError, match="codes: expected an int8, int64 or int32 tensor"):
        word2vec_hs_update_(syn0, syn1, inputs, targets, codes.float(), points, lengths.int(), 0.1)
    with pytest.raises(ValueError, match=r"codes: expected shape \(6, 3\)"):
        word2vec_hs_update_(syn0, syn1, inputs, targets, codes[:, :2], points, lengths.int(), 0.1)
    with pytest.raises(ValueError, match=r"centers: expected shape \(4,\)"):
        word2vec_shared_ns_update_(syn0, syn1, inputs, targets[:3], negatives, 0.1)
    with pytest.raises(ValueError, match=r"negatives: expected shape \(4, K >= 1\)"):
        word2vec_shared_ns_update_(syn0, syn1, inputs, targets, negatives[:, :0], 0.1)


def test_shared_reference_is_per_pair_word2vec_from_the_rows_before_the_center():
    """HogBatch on one center: each (context, target) pair takes word2vec's step, all computed
    from the rows as they were before this center, and summed."""
    syn0, syn1 = torch.randn(6, 5) * 0.5, torch.randn(6, 5) * 0.5
    contexts, centers, negatives = torch.tensor([[1, 2, 1, -1]]), torch.tensor([3]), torch.tensor([[4, 3, 0]])
    want0, want1, loss = syn0.clone(), syn1.clone(), 0.0
    for c in (1, 2, 1):
        for t, label in ((3, 1), (4, 0), (0, 0)):  # the negative equal to the center is skipped
            f = float(syn0[c] @ syn1[t])
            g = (label - sigmoid(f)) * 0.2
            loss -= math.log(sigmoid(f if label else -f))
            want0[c] += g * syn1[t]
            want1[t] += g * syn0[c]
    got = shared_ns_update_reference(syn0, syn1, contexts, centers, negatives, 0.2)
    torch.testing.assert_close(syn0, want0)
    torch.testing.assert_close(syn1, want1)
    assert got.item() == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize("c,k,d", [(4, 1, 16), (10, 5, 50), (6, 15, 100), (3, 3, 37)])
def test_shared_kernel_matches_reference(c, k, d, monkeypatch, kernel_path):
    """One program walking the centers in turn equals the reference applied center by center."""
    n = 11
    monkeypatch.setattr(kernels, "PROGRAMS", 1)
    syn0, syn1, contexts, _, centers, negatives = random_batch(n, c, k, v=9, d=d, seed=c + k + d)
    syn0, syn1 = syn0 * 0.3, syn1 * 0.3
    atol = 2e-5 if kernel_path[0].type == "cpu" else 5e-3  # tf32 scores on a GPU
    assert_same_update(
        kernel_path,
        lambda s0, s1, x, t, neg: word2vec_shared_ns_update_(s0, s1, x, t, neg, 0.1),
        lambda s0, s1, x, t, neg: torch.cat([shared_ns_update_reference(s0, s1, x[i : i + 1], t[i : i + 1],
                                                                        neg[i : i + 1], 0.1) for i in range(n)]),
        syn0, syn1, (contexts, centers, negatives), atol=atol,
    )  # fmt: skip
