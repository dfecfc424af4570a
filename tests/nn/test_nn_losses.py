"""Loss modules over the fused ops: the linear cross-entropy head equals F.cross_entropy on the
materialised logits (and casts to the autocast dtype); the sampled softmax module equals the
log-Q-corrected softmax over the target and the sampled classes, in each reduction."""

import pytest
import torch
import torch.nn.functional as F

from fastpretrain.nn import LinearCrossEntropyLoss, SampledSoftmaxLoss
from fastpretrain.ops import linear_cross_entropy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_linear_cross_entropy_equals_cross_entropy_on_the_logits():
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(7, 16, generator=g), torch.randn(30, 16, generator=g)
    bias = torch.randn(30, generator=g)
    targets = torch.tensor([3, -100, 0, 29, 5, -100, 11])
    for reduction in ("mean", "sum", "none"):
        got = LinearCrossEntropyLoss(reduction=reduction)(hidden, weight, targets, bias)
        want = F.cross_entropy(hidden @ weight.T + bias, targets, reduction=reduction)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = LinearCrossEntropyLoss()(hidden, weight, targets, bias)
    want = linear_cross_entropy(hidden.bfloat16(), weight.bfloat16(), targets, bias.bfloat16())
    assert got.dtype == torch.float32 and torch.equal(got, want)


def test_sampled_softmax_is_the_corrected_softmax_over_target_and_samples():
    g = torch.Generator().manual_seed(1)
    n, d, v = 6, 8, 40
    hidden, weight, bias = torch.randn(n, d, generator=g), torch.randn(v, d, generator=g), torch.randn(v, generator=g)
    targets = torch.tensor([1, 7, 7, 30, 2, 9])
    sampled = torch.tensor([7, 12, 3, 30])
    log_q = torch.log(torch.rand(v, generator=g) * 0.1 + 0.01)
    logits_t = (hidden * weight[targets]).sum(1) + bias[targets] - log_q[targets]
    logits_s = hidden @ weight[sampled].T + bias[sampled] - log_q[sampled]
    logits_s = logits_s.masked_fill(sampled[None] == targets[:, None], float("-inf"))  # accidental hits removed
    want = torch.logsumexp(torch.cat([logits_t[:, None], logits_s], 1), 1) - logits_t
    args = (hidden, weight, targets, sampled, log_q[targets], log_q[sampled], bias)
    torch.testing.assert_close(SampledSoftmaxLoss(reduction="none")(*args), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(SampledSoftmaxLoss()(*args), want.mean(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(SampledSoftmaxLoss(reduction="sum")(*args), want.sum(), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="reduction: expected 'mean', 'sum' or 'none'"):
        SampledSoftmaxLoss(reduction="max")
