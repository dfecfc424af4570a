"""LMHeadLoss: the fused head's loss with label smoothing and z-loss equals the formulas on the
materialised logits (F.cross_entropy(label_smoothing) + c * logsumexp^2), forward and every
gradient, with ignored rows, and its reported nll is the plain cross-entropy."""

import pytest
import torch
import torch.nn.functional as F

from fastpretrain.nn import LMHeadLoss

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("smoothing", "z_loss", "with_bias"), [(0.0, 0.0, False), (0.1, 0.0, True), (0.0, 1e-2, False), (0.2, 3e-2, True)]
)
def test_equals_the_materialised_formulas(smoothing, z_loss, with_bias):
    g = torch.Generator().manual_seed(0)
    n, d, v = 13, 16, 37
    hidden = torch.randn(n, d, generator=g, requires_grad=True)
    weight = torch.randn(v, d, generator=g, requires_grad=True)
    bias = torch.randn(v, generator=g, requires_grad=True) if with_bias else None
    targets = torch.randint(0, v, (n,), generator=g)
    targets[[2, 7]] = -100
    out = LMHeadLoss(label_smoothing=smoothing, z_loss=z_loss)(hidden, weight, targets, bias)
    logits = hidden @ weight.T + (0 if bias is None else bias)
    valid = targets != -100
    want = F.cross_entropy(logits, targets, label_smoothing=smoothing)
    want = want + z_loss * (torch.logsumexp(logits, -1)[valid].square().mean())
    torch.testing.assert_close(out["loss"], want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["nll"], F.cross_entropy(logits, targets).detach(), atol=1e-5, rtol=1e-5)
    assert ("z_loss" in out) == (z_loss > 0)
    params = [hidden, weight] + ([bias] if with_bias else [])
    got = torch.autograd.grad(out["loss"], params)
    expected = torch.autograd.grad(want, params)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="label_smoothing"):
        LMHeadLoss(label_smoothing=1.0)
    with pytest.raises(ValueError, match="z_loss"):
        LMHeadLoss(z_loss=-1.0)
