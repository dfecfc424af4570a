"""Fused linear + cross-entropy: the Triton kernels (interpreter on CPU) and the CPU path against
F.cross_entropy on the materialised logits, loss and every gradient; reductions, ignore_index,
compile, opcheck, bad input."""

import pytest
import torch
import torch.nn.functional as F
from kernel_cases import assert_flash_bound, shape_dtype_cases

from fastpretrain.ops import linear_cross_entropy, linear_cross_entropy_reference

pytestmark = pytest.mark.gpu

SHAPES = [(1, 16, 5), (37, 24, 101), (50, 40, 33), (19, 100, 64)]  # N, D, V: odd sizes, V below and above blocks


def make(n, d, v, seed, dtype=torch.float32, device="cpu", ignore=0.2):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g)
    weight = torch.randn(v, d, generator=g) * 0.3
    bias = torch.randn(v, generator=g)
    targets = torch.randint(0, v, (n,), generator=g)
    targets[torch.rand(n, generator=g) < ignore] = -100
    grad = torch.rand((), generator=g) + 0.5
    return [t.to(device) for t in (hidden, weight, bias)], targets.to(device), grad.to(device)


def loss_and_grads(fn, tensors, targets, grad, dtype, with_bias=True, **kw):
    leaves = [t.to(dtype).requires_grad_() for t in tensors]
    if not with_bias:
        leaves = leaves[:2]
    loss = fn(leaves[0], leaves[1], targets, leaves[2] if with_bias else None, **kw)
    upstream = grad * torch.ones_like(loss) if loss.dim() else grad
    return [loss, *torch.autograd.grad(loss, leaves, upstream)]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cpu_path_matches_materialised_cross_entropy(shape, with_bias, reduction):
    tensors, targets, grad = make(*shape, seed=sum(shape))
    want = loss_and_grads(linear_cross_entropy_reference, tensors, targets, grad, torch.float64, with_bias,
                          reduction=reduction)  # fmt: skip
    got = loss_and_grads(linear_cross_entropy, tensors, targets, grad, torch.float32, with_bias, reduction=reduction)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w.double(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape, dtype", shape_dtype_cases(SHAPES))
def test_kernel_matches_reference(shape, dtype, kernel_path):
    """|kernel - fp32 ref| <= 2 |same-dtype torch - fp32 ref| + atol, for the loss and every gradient."""
    device, context = kernel_path
    tensors, targets, grad = make(*shape, seed=sum(shape), device=device)
    for reduction in ("mean", "none"):
        ref32 = loss_and_grads(linear_cross_entropy_reference, tensors, targets, grad, torch.float32,
                               reduction=reduction)  # fmt: skip
        same = loss_and_grads(linear_cross_entropy_reference, tensors, targets, grad, dtype, reduction=reduction)
        with context():
            got = loss_and_grads(linear_cross_entropy, tensors, targets, grad, dtype, reduction=reduction)
        assert [t.dtype for t in got[1:]] == [dtype] * 3
        slack = {"atol": 2e-5} if dtype == torch.float32 else {"ulps": 4, "dtype": dtype}
        names = [f"{name} ({reduction})" for name in ("loss", "hidden", "weight", "bias")]
        assert_flash_bound(names, got, ref32, same, **slack)


def test_ignored_rows_get_no_gradient_and_all_ignored_mean_is_nan(kernel_path):
    device, context = kernel_path
    (hidden, weight, bias), targets, _ = make(9, 16, 40, seed=1, device=device, ignore=0.0)
    targets[::2] = -100
    hidden.requires_grad_()
    with context():
        linear_cross_entropy(hidden, weight, targets, bias).backward()
        assert torch.isnan(linear_cross_entropy(hidden, weight, torch.full_like(targets, -100), bias))
    assert hidden.grad[::2].abs().max() == 0 and hidden.grad[1::2].abs().min() > 0


def test_kernel_with_strided_inputs_and_int32_targets(kernel_path):
    device, context = kernel_path
    (hidden, weight, bias), targets, _ = make(21, 32, 70, seed=2, device=device)
    wide = torch.randn(21, 64, device=device)[:, ::2].requires_grad_()
    with context():
        got = linear_cross_entropy(wide, weight, targets.int(), bias, reduction="sum")
        (dh,) = torch.autograd.grad(got, wide)
    want = F.cross_entropy(wide @ weight.T + bias, targets, reduction="sum")
    (dh_want,) = torch.autograd.grad(want, wide)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(dh, dh_want, atol=1e-5, rtol=1e-5)


def test_compile_fullgraph():
    (hidden, weight, bias), targets, _ = make(13, 16, 30, seed=3)
    hidden.requires_grad_()
    fn = torch.compile(lambda h: linear_cross_entropy(h, weight, targets, bias), fullgraph=True)
    got = fn(hidden)
    (dh,) = torch.autograd.grad(got, hidden)
    want = linear_cross_entropy_reference(hidden, weight, targets, bias)
    (dh_want,) = torch.autograd.grad(want, hidden)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(dh, dh_want)


def test_opcheck():
    (hidden, weight, bias), targets, _ = make(7, 16, 20, seed=4, ignore=0.0)
    args = (hidden.requires_grad_(), weight.requires_grad_(), bias.requires_grad_(), targets)
    torch.library.opcheck(torch.ops.fastpretrain.linear_cross_entropy.default, args)
    _, lse = torch.ops.fastpretrain.linear_cross_entropy(*args)
    bwd = (torch.rand(7), hidden.detach(), weight.detach(), None, targets, lse.detach())
    torch.library.opcheck(torch.ops.fastpretrain.linear_cross_entropy_backward.default, bwd)


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"hidden": torch.randn(4, 8).double()}, TypeError, "hidden: expected a float32"),
        ({"hidden": "h"}, TypeError, "hidden: expected a float32, float16 or bfloat16 tensor .* got str"),
        ({"hidden": torch.randn(4, 8, 1)}, ValueError, r"hidden: expected a 2-d \[N, D\]"),
        ({"weight": torch.randn(10, 8).half()}, TypeError, "weight: expected torch.float32"),
        ({"weight": torch.randn(10, 7)}, ValueError, r"weight: expected a non-empty \[V, 8\]"),
        ({"bias": torch.randn(9)}, ValueError, r"bias: expected shape \(10,\)"),
        ({"bias": torch.randn(10).half()}, TypeError, "bias: expected torch.float32 like weight"),
        ({"targets": torch.zeros(4)}, TypeError, "targets: expected an int64 or int32"),
        ({"targets": torch.zeros(3, dtype=torch.int64)}, ValueError, r"targets: expected shape \(4,\)"),
        ({"targets": torch.tensor([0, 1, 10, 2])}, ValueError, r"targets: expected ids in \[0, 10\)"),
        ({"targets": torch.tensor([0, 1, -3, 2])}, ValueError, r"targets: expected ids in \[0, 10\)"),
        ({"weight": torch.randn(10, 8, device="meta")}, ValueError, "weight: expected a tensor on cpu"),
        ({"reduction": "avg"}, ValueError, "reduction: expected one of"),
    ],
)
def test_bad_arguments(change, error, match):
    args = {"hidden": torch.randn(4, 8), "weight": torch.randn(10, 8), "targets": torch.tensor([0, 1, 9, -100]),
            "bias": None, **change}  # fmt: skip
    with pytest.raises(error, match=match):
        linear_cross_entropy(args.pop("hidden"), args.pop("weight"), args.pop("targets"), args.pop("bias"), **args)
