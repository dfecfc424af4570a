"""nn.SampledSoftmax, TensorFlow's sampled_softmax_loss end to end: against a float64 dense
reference built from the candidates and TF's expected counts (loss and every gradient), accidental
hits dropped, the full softmax in eval mode, and the estimate converging to the full softmax's
loss as the number of samples grows."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastpretrain.data import LogUniformSampler, UniformSampler, UnigramSampler
from fastpretrain.nn.losses import SampledSoftmax

pytestmark = pytest.mark.usefixtures("one_thread")


def head(v, d, s, sampler, unique=True, seed=0, remove=True):
    torch.manual_seed(seed)
    layer = SampledSoftmax(d, v, s, sampler, unique=unique, remove_accidental_hits=remove)
    with torch.no_grad():
        layer.bias.normal_()
    return layer


def dense_reference(hidden, weight, bias, targets, sampled, tries, q, unique, remove):
    """float64: logits of [target] + candidates minus log of TF's expected counts, hits to -inf."""
    h, w, b = hidden.double(), weight.double(), bias.double()
    q = torch.as_tensor(q, dtype=torch.float64)
    count = (lambda ids: 1 - (1 - q[ids]) ** tries) if unique else (lambda ids: len(sampled) * q[ids])
    cols = torch.cat([targets[:, None], sampled[None, :].long().expand(len(targets), -1)], 1)
    logits = (h[:, None, :] * w[cols]).sum(-1) + b[cols] - count(cols).log()
    if remove:
        hit = torch.cat([torch.zeros(len(targets), 1, dtype=torch.bool), cols[:, 1:] == cols[:, :1]], 1)
        logits = logits.masked_fill(hit, float("-inf"))
    return torch.logsumexp(logits, 1) - logits[:, 0]


@pytest.mark.parametrize("unique", [True, False])
@pytest.mark.parametrize("remove", [True, False])
def test_gradients_match_a_float64_reference(unique, remove):
    v, d, n, s = 37, 12, 23, 9
    counts = np.arange(v, 0, -1) ** 2
    sampler = UnigramSampler(counts, alpha=0.75, seed=5)
    layer = head(v, d, s, sampler, unique=unique, remove=remove)
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(n, d, generator=g, requires_grad=True)
    targets = torch.randint(0, 6, (n,), generator=g)  # frequent ids: accidental hits are likely
    loss = layer(hidden, targets)
    loss.sum().backward()
    # the same candidates again from a sampler of the same seed
    c = UnigramSampler(counts, alpha=0.75, seed=5).candidates(s, targets, unique)
    assert (c.sampled[None, :] == targets[:, None]).any(), "no accidental hit to test"
    leaves = [t.detach().double().requires_grad_() for t in (hidden, layer.weight, layer.bias)]
    q = sampler.log_prob(torch.arange(v)).double().exp()
    want = dense_reference(*leaves, targets, c.sampled, int(c.num_tries), q, unique, remove)
    want.sum().backward()
    torch.testing.assert_close(loss.double(), want.detach(), atol=1e-5, rtol=1e-5)
    for got, ref in zip((hidden.grad, layer.weight.grad, layer.bias.grad), leaves):
        torch.testing.assert_close(got.double(), ref.grad, atol=1e-5, rtol=1e-5)


def test_an_accidental_hit_is_the_candidate_dropped_from_that_row():
    v, d = 30, 8
    layer = head(v, d, 6, UniformSampler(v, seed=2), unique=False)
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(1, d, generator=g)
    c = UniformSampler(v, seed=2).candidates(6, torch.tensor([0]))
    target = c.sampled[2:3].long()  # the target is the third candidate
    got = layer(hidden, target)
    keep = c.sampled != c.sampled[2]
    z = hidden @ layer.weight.T + layer.bias - (6 * torch.ones(v) / v).log()
    logits = torch.cat([z[:, target[0]], z[0, c.sampled[keep].long()]])
    torch.testing.assert_close(got[0], torch.logsumexp(logits, 0) - logits[0])


def test_eval_and_num_sampled_0_are_the_full_softmax():
    v, d = 50, 8
    layer = head(v, d, 10, LogUniformSampler(v))
    hidden, targets = torch.randn(7, d), torch.randint(0, v, (7,))
    want = F.cross_entropy(hidden @ layer.weight.T + layer.bias, targets, reduction="none")
    layer.eval()
    torch.testing.assert_close(layer(hidden, targets), want, atol=1e-5, rtol=1e-5)
    full = head(v, d, 0, None)
    full.load_state_dict(layer.state_dict())
    torch.testing.assert_close(full.train()(hidden, targets), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("unique", [True, False])
def test_estimate_converges_to_the_full_softmax(unique):
    """The mean sampled loss over draws approaches the full softmax's as S grows (it is biased
    for small S: the candidates miss the large logits); unique sampling of nearly all ids is exact.
    With replacement and S >> V it drifts again, as TF's does: the target keeps its correction
    -log(S Q_t) while its hits are removed, so its own term fades (hence S <= 256 there)."""
    v, d, n = 200, 16, 64
    g = torch.Generator().manual_seed(0)
    layer = head(v, d, 1, LogUniformSampler(v, seed=1), unique=unique)
    with torch.no_grad():
        layer.weight.mul_(3)
    hidden, targets = torch.randn(n, d, generator=g), torch.randint(0, 50, (n,), generator=g)
    full = layer.eval()(hidden, targets).mean().item()
    layer.train()
    errors = []
    for s in (4, 16, 64, 150) if unique else (4, 16, 64, 256):
        layer.num_sampled = s
        estimates = [layer(hidden, targets).mean().item() for _ in range(30)]
        errors.append(abs(np.mean(estimates) - full) / full)
    assert all(a > b for a, b in itertools.pairwise(errors)), errors
    assert errors[0] > 0.1 and errors[-1] < 0.02, errors
    if unique:
        layer.num_sampled = v - 1
        assert layer(hidden, targets).mean().item() == pytest.approx(full, rel=2e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_sampled: expected an int >= 0"):
        SampledSoftmax(4, 10, -1, None)
    with pytest.raises(ValueError, match="sampler: draws from 9 classes, expected 10"):
        SampledSoftmax(4, 10, 3, UniformSampler(9))
