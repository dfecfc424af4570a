"""Contrastive losses (InfoNCE: one-way, CLIP's symmetric, SimCLR's with self-similarity left out,
extra negatives; SigLIP): the Triton kernels (interpreter on CPU) and the CPU path against the
materialised F.cross_entropy / logsigmoid reference, loss and every gradient (query, key, scale,
bias); compile, fake tensors, opcheck, bad input."""

import pytest
import torch
import torch.nn.functional as F
from kernel_cases import assert_flash_bound, shape_dtype_cases

from fastpretrain.ops import (
    infonce_loss,
    infonce_loss_reference,
    siglip_loss,
    siglip_loss_reference,
    simclr_targets,
)

pytestmark = pytest.mark.gpu

# N, M, D: odd sizes, one row and one column, M above N (extra negatives), D across the D block.
SHAPES = [(1, 1, 16), (37, 53, 24), (50, 50, 40), (38, 38, 100)]
MODES = ["rows", "symmetric", "simclr", "siglip"]
LEAVES = {"simclr": ("query", "scale"), "siglip": ("query", "key", "scale", "bias")}  # what gets a gradient


def make(n, m, d, seed, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
    scale, bias = torch.rand((), generator=g) * 5 + 2, torch.randn((), generator=g)
    return [t.to(device) for t in (q, k, scale, bias)]


def options(mode, n, m):
    """The op's keyword arguments for ``mode`` on an N x M problem (SimCLR uses keys = queries)."""
    if mode == "symmetric":
        return {"symmetric": True} if n == m else None
    if mode == "simclr":
        if n % 2:
            return None
        targets, exclude = simclr_targets(n // 2)
        return {"targets": targets, "exclude": exclude}
    return {}


def loss_and_grads(mode, fn, tensors, dtype, grad, reduction="mean", normalize=True, **kw):
    """[loss, d query, d key, d scale(, d bias)]: tensors cast to ``dtype``, scale and bias float32 leaves."""
    q, k, scale, bias = tensors
    q, k = q.to(dtype).requires_grad_(), k.to(dtype).requires_grad_()
    scale, bias = scale.clone().requires_grad_(), bias.clone().requires_grad_()
    if mode == "simclr":
        k = q
    if mode == "siglip":
        loss = fn(q, k, scale, bias, normalize=normalize, reduction=reduction, **kw)
        leaves = [q, k, scale, bias]
    else:
        loss = fn(q, k, scale, normalize=normalize, reduction=reduction, **kw)
        leaves = [q, scale] if mode == "simclr" else [q, k, scale]
    upstream = grad * torch.ones_like(loss)
    return [loss, *torch.autograd.grad(loss, leaves, upstream)]


def fns(mode):
    return (siglip_loss, siglip_loss_reference) if mode == "siglip" else (infonce_loss, infonce_loss_reference)


def materialised(mode, q, k, scale, bias=None, *, normalize):
    """The losses written out from their definitions, independently of the ops' reference."""
    if normalize:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    z = scale * q @ k.T
    n = q.shape[0]
    if mode == "siglip":
        labels = 2 * torch.eye(n, k.shape[0], dtype=z.dtype) - 1
        return -F.logsigmoid(labels * (z + bias)).sum() / n
    if mode == "simclr":
        z = z.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
        return F.cross_entropy(z, (torch.arange(n) + n // 2) % n)
    rows = F.cross_entropy(z, torch.arange(n))
    return (rows + F.cross_entropy(z.T, torch.arange(n))) / 2 if mode == "symmetric" else rows


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_reference_is_the_loss_written_out(mode, normalize):
    tensors = make(6, 6 if mode != "rows" else 9, 8, seed=5)
    kw = options(mode, 6, 6)
    got = loss_and_grads(mode, fns(mode)[1], tensors, torch.float64, 1.0, normalize=normalize, **kw)
    want = loss_and_grads(mode, lambda *a, normalize, reduction: materialised(mode, *a, normalize=normalize), tensors,
                          torch.float64, 1.0, normalize=normalize)  # fmt: skip
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


def kernel_cases() -> list:
    """(shape, dtype, mode) for every shape the mode takes (SimCLR: an even N = M; symmetric: N = M)."""
    return [pytest.param(*p.values, mode, id=f"{p.id}-{mode}") for p in shape_dtype_cases(SHAPES) for mode in MODES
            if options(mode, *p.values[0][:2]) is not None]  # fmt: skip


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "shape, mode", [(s, m) for s in SHAPES for m in MODES if options(m, *s[:2]) is not None], ids=str
)
def test_cpu_path_matches_reference(shape, mode, reduction):
    kw = options(mode, shape[0], shape[1])
    tensors = make(*shape, seed=sum(shape))
    want = loss_and_grads(mode, fns(mode)[1], tensors, torch.float64, 0.7, reduction, **kw)
    got = loss_and_grads(mode, fns(mode)[0], tensors, torch.float32, 0.7, reduction, **kw)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g.double(), w.double(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape, dtype, mode", kernel_cases())
def test_kernel_matches_reference(shape, dtype, mode, kernel_path):
    """|kernel - fp64 ref| <= 2 |same-dtype torch - fp64 ref| + slack, loss and every gradient."""
    kw = options(mode, shape[0], shape[1])
    device, context = kernel_path
    kw = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
    tensors = make(*shape, seed=sum(shape), device=device)
    fn, ref = fns(mode)
    for reduction, normalize in (("mean", True), ("none", False)):
        ref64 = loss_and_grads(mode, ref, tensors, torch.float64, 0.7, reduction, normalize, **kw)
        same = loss_and_grads(mode, ref, tensors, dtype, 0.7, reduction, normalize, **kw)
        with context():
            got = loss_and_grads(mode, fn, tensors, dtype, 0.7, reduction, normalize, **kw)
        assert [t.dtype for t in got[1:]] == [t.dtype for t in same[1:]]
        slack = {"ulps": 4, "dtype": dtype}
        leaves = LEAVES.get(mode, ("query", "key", "scale"))
        names = [f"{name} ({reduction})" for name in ("loss", *leaves)]
        assert_flash_bound(names, got, ref64, same, **slack)


def test_extra_negatives_and_explicit_targets(kernel_path):
    """Targets anywhere in the key matrix, and keys that are nobody's positive, as MoCo's queue."""
    device, context = kernel_path
    q, k, scale, _ = make(13, 40, 16, seed=7, device=device)
    targets = torch.randperm(40, generator=torch.Generator().manual_seed(0))[:13].to(device)
    q.requires_grad_()
    with context():
        got = infonce_loss(q, k, scale, targets=targets, normalize=False, reduction="sum")
        (dq,) = torch.autograd.grad(got, q)
    want = F.cross_entropy(scale * q @ k.T, targets, reduction="sum")
    (dq_want,) = torch.autograd.grad(want, q)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(dq, dq_want, atol=1e-5, rtol=1e-5)


def test_kernel_with_strided_inputs_int32_ids_and_float_scale(kernel_path):
    device, context = kernel_path
    wide = torch.randn(21, 64, device=device)[:, ::2].requires_grad_()
    key = torch.randn(30, 32, device=device)
    targets, exclude = torch.arange(21, dtype=torch.int32) + 3, torch.arange(21, dtype=torch.int32)
    with context():
        got = infonce_loss(wide, key, 4.0, targets=targets.to(device), exclude=exclude.to(device), reduction="none")
        (dq,) = torch.autograd.grad(got.sum(), wide)  # the stride-0 upstream gradient of .sum()
    want = infonce_loss_reference(wide, key, 4.0, targets=targets.long(), exclude=exclude.long(), reduction="none")
    (dq_want,) = torch.autograd.grad(want.sum(), wide)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dq, dq_want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_compile_fullgraph(mode):
    kw = options(mode, 12, 12)
    tensors = make(12, 12, 16, seed=3)
    fn, ref = fns(mode)
    compiled = torch.compile(fn, fullgraph=True)
    got = loss_and_grads(mode, compiled, tensors, torch.float32, 1.0, **kw)
    want = loss_and_grads(mode, ref, tensors, torch.float32, 1.0, **kw)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_fake_tensors_give_the_shapes_and_dtypes(mode):
    kw = options(mode, 10, 10)
    q, k = (torch.empty(10, 8, device="meta", dtype=torch.float16) for _ in range(2))
    kw = {key: v.to("meta") if isinstance(v, torch.Tensor) else v for key, v in kw.items()}
    fn = fns(mode)[0]
    scale = torch.ones((), device="meta")
    scalars = (scale, scale) if mode == "siglip" else (scale,)
    loss = fn(q, k, *scalars, reduction="none", **kw)
    assert loss.shape == (10,) and loss.dtype == torch.float32 and loss.device.type == "meta"


def test_opcheck():
    q, k, scale, bias = make(7, 9, 16, seed=4)
    leaves = [t.requires_grad_() for t in (q, k, scale, bias)]
    targets, exclude = torch.arange(7) + 1, torch.arange(7)
    torch.library.opcheck(torch.ops.fastpretrain.infonce.default, (q, k, scale, targets, exclude, None))
    sq = torch.randn(7, 16, requires_grad=True)
    sym = (sq, k[:7].detach().requires_grad_(), scale, torch.arange(7), None, torch.arange(7))
    torch.library.opcheck(torch.ops.fastpretrain.infonce.default, sym)
    _, lse, _, col_lse = torch.ops.fastpretrain.infonce(*sym)
    bwd = (torch.rand(7), torch.rand(7), sq.detach(), k[:7].detach(), scale.detach(), torch.arange(7), None,
           torch.arange(7), lse.detach(), col_lse.detach())  # fmt: skip
    torch.library.opcheck(torch.ops.fastpretrain.infonce_backward.default, bwd)
    torch.library.opcheck(torch.ops.fastpretrain.siglip.default, (*leaves, targets))
    sig_bwd = (torch.rand(7), q.detach(), k.detach(), scale.detach(), bias.detach(), targets)
    torch.library.opcheck(torch.ops.fastpretrain.siglip_backward.default, sig_bwd)


def test_simclr_targets_pair_the_views_and_leave_out_self():
    targets, exclude = simclr_targets(3, offset=6)
    assert targets.tolist() == [9, 10, 11, 6, 7, 8] and exclude.tolist() == [6, 7, 8, 9, 10, 11]
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        simclr_targets(0)


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"query": torch.randn(4, 8).double()}, TypeError, "query: expected a float32"),
        ({"query": "q"}, TypeError, "query: expected a float32, float16 or bfloat16 tensor .* got str"),
        ({"query": torch.randn(4, 8, 1)}, ValueError, r"query: expected a non-empty \[N, D\]"),
        ({"query": torch.randn(0, 8)}, ValueError, r"query: expected a non-empty \[N, D\]"),
        ({"key": torch.randn(6, 8).half()}, TypeError, "key: expected torch.float32 like query"),
        ({"key": torch.randn(6, 7)}, ValueError, r"key: expected a non-empty \[M, 8\]"),
        ({"key": torch.randn(6, 8, device="meta")}, ValueError, "key: expected a tensor on cpu"),
        ({"key": torch.randn(3, 8)}, ValueError, "targets: None pairs query i with key i, so needs M >= N"),
        ({"scale": "hot"}, TypeError, "scale: expected a real number or a one-element float tensor, got str"),
        ({"scale": torch.ones(2)}, ValueError, r"scale: expected a real number or a one-element tensor, got shape"),
        ({"scale": torch.ones(1, dtype=torch.int64)}, TypeError, "scale: expected a float32"),
        ({"targets": torch.zeros(4)}, TypeError, "targets: expected an int64 or int32"),
        ({"targets": torch.zeros(3, dtype=torch.int64)}, ValueError, r"targets: expected shape \(4,\)"),
        ({"targets": torch.tensor([0, 1, 6, 2])}, ValueError, r"targets: expected ids in \[0, 6\)"),
        ({"exclude": torch.tensor([1, 0, 7, -1])}, ValueError, r"exclude: expected ids in \[0, 6\) or ignore_index=-1"),
        ({"exclude": torch.tensor([0, 2, 3, -1])}, ValueError, "exclude: a row's excluded key is its target"),
        ({"symmetric": True}, ValueError, "symmetric: needs as many keys as queries"),
        ({"reduction": "avg"}, ValueError, "reduction: expected one of"),
        ({"normalize": 1}, TypeError, "normalize: expected a bool, got int"),
    ],
)
def test_bad_arguments(change, error, match):
    args = {"query": torch.randn(4, 8), "key": torch.randn(6, 8), "scale": 2.0, **change}
    with pytest.raises(error, match=match):
        infonce_loss(args.pop("query"), args.pop("key"), args.pop("scale"), **args)


def test_siglip_bad_bias():
    with pytest.raises(TypeError, match="bias: expected a real number or a one-element float tensor, got NoneType"):
        siglip_loss(torch.randn(4, 8), torch.randn(4, 8), 10.0, None)
