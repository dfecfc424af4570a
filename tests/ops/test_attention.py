"""Fused attention: the Triton kernels (interpreter on CPU) against the fp32 reference, forward and
every gradient, for each mask mode on odd shapes; the additive bias and its gradient (shared or per
sequence); dropout's mask and keep rate; the reference's own backward; the drop-in functional and
module; compile; bad input."""

import logging

import pytest
import torch
import torch.nn.functional as F
from kernel_cases import HALF, assert_flash_bound, shape_dtype_cases

from fastpretrain.nn import MultiheadSelfAttention, functional, repad, unpad
from fastpretrain.ops import attention, attention_reference, attention_varlen, attention_varlen_reference
from fastpretrain.ops.attention import dropout_keep_mask

pytestmark = pytest.mark.gpu

MODES = {
    "none": {},
    "causal": {"causal": True},
    "padding": {"padding": True},
    "causal+padding": {"causal": True, "padding": True},
    "dropout": {"dropout_p": 0.25},
    "causal+dropout": {"causal": True, "dropout_p": 0.4},
}
SHAPES = [  # B, H, Hk, Sq, Sk, D
    (2, 3, 3, 37, 37, 32),
    (1, 2, 2, 50, 29, 16),
    (2, 4, 2, 19, 41, 64),
    (1, 1, 1, 1, 1, 16),
    (3, 2, 1, 1, 23, 32),
]


def make_inputs(b, h, hk, sq, sk, d, seed, padding=False, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, n, s, d, generator=g) for n, s in ((h, sq), (hk, sk), (hk, sk)))
    mask = None
    if padding:  # random lengths in [1, Sk], one row with no real key when the batch allows
        lengths = torch.randint(1, sk + 1, (b,), generator=g)
        if b > 1:
            lengths[-1] = 0
        mask = torch.arange(sk)[None, :] < lengths[:, None]
    grad = torch.randn(b, h, sq, d, generator=g)
    return [t.to(device) for t in (q, k, v, grad)], None if mask is None else mask.to(device)


def fwd_bwd(fn, q, k, v, grad, dtype, **kwargs):
    leaves = [t.to(dtype).requires_grad_() for t in (q, k, v)]
    out = fn(*leaves, **kwargs)
    return [out, *torch.autograd.grad(out, leaves, grad.to(dtype))]


def assert_bound(got, ref32, same_dtype):
    """The flash-attention rule with atol 1e-5 in float32 and 4 half-precision ulps of the largest
    value otherwise (the kernels' backward reads O rounded to the input dtype, which the reference
    never does)."""
    dtype = got[0].dtype
    slack = {"atol": 1e-5} if dtype == torch.float32 else {"ulps": 4, "dtype": dtype}
    assert_flash_bound(("out", "dq", "dk", "dv"), got, ref32, same_dtype, **slack)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("shape, dtype", shape_dtype_cases(SHAPES))
def test_kernel_matches_reference(shape, mode, dtype, kernel_path):
    device, context = kernel_path
    opts = dict(MODES[mode])
    (q, k, v, grad), mask = make_inputs(*shape, seed=sum(shape), padding=opts.pop("padding", False), device=device)
    kwargs = dict(opts, key_padding_mask=mask, dropout_seed=1234)
    ref32 = fwd_bwd(attention_reference, q, k, v, grad, torch.float32, **kwargs)
    same = fwd_bwd(attention_reference, q, k, v, grad, dtype, **kwargs)
    with context():
        got = fwd_bwd(attention, q, k, v, grad, dtype, **kwargs)
    assert all(g.dtype == dtype for g in got)
    assert_bound(got, ref32, same)
    if mask is not None and not mask[-1].any():  # a row with no visible key: zero output and zero dq
        assert got[0][-1].abs().max() == 0 and got[1][-1].abs().max() == 0


BIAS_CASES = [  # (B, H, Hk, Sq, Sk, D), mode, one bias for the batch: odd lengths, GQA, batch 1 and length 1
    ((2, 2, 2, 37, 29, 32), "none", True),
    ((2, 2, 2, 37, 29, 32), "causal+padding", False),
    ((3, 2, 2, 19, 19, 16), "dropout", True),
    ((1, 2, 2, 50, 50, 16), "dropout", False),
    ((3, 4, 2, 1, 23, 64), "causal+padding", True),
    ((2, 4, 2, 17, 33, 64), "none", False),
]


def fwd_bwd_bias(fn, q, k, v, bias, grad, dtype, **kwargs):
    """[out, dq, dk, dv, dbias]: q, k, v in ``dtype``, the bias in float32 (a parameter under autocast)."""
    leaves = [t.to(dtype).requires_grad_() for t in (q, k, v)] + [bias.clone().requires_grad_()]
    out = fn(*leaves[:3], attn_bias=leaves[3], **kwargs)
    return [out, *torch.autograd.grad(out, leaves, grad.to(dtype))]


@pytest.mark.parametrize("dtype", [torch.float32, *HALF], ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("shape, mode, shared", BIAS_CASES,
                         ids=[f"{'x'.join(map(str, s))}-{m}-{'shared' if sh else 'batched'}" for s, m, sh in BIAS_CASES])  # fmt: skip
def test_kernel_with_bias_matches_reference(shape, mode, shared, dtype, kernel_path):
    """softmax(q k^T * scale + bias) v through the kernels against the reference: the output and the
    gradients of q, k, v and the bias (summed over the batch when one bias serves every sequence)."""
    device, context = kernel_path
    opts = dict(MODES[mode])
    b, h, _, sq, sk, _ = shape
    (q, k, v, grad), mask = make_inputs(*shape, seed=sum(shape) + 1, padding=opts.pop("padding", False), device=device)
    g = torch.Generator().manual_seed(sum(shape))
    bias = (2 * torch.randn((h, sq, sk) if shared else (b, h, sq, sk), generator=g)).to(device)
    kwargs = dict(opts, key_padding_mask=mask, dropout_seed=77)
    ref32 = fwd_bwd_bias(attention_reference, q, k, v, bias, grad, torch.float32, **kwargs)
    same = fwd_bwd_bias(attention_reference, q, k, v, bias, grad, dtype, **kwargs)
    with context():
        got = fwd_bwd_bias(attention, q, k, v, bias, grad, dtype, **kwargs)
    assert got[4].dtype == torch.float32 and got[4].shape == bias.shape
    slack = {"atol": 1e-5} if dtype == torch.float32 else {"ulps": 4, "dtype": dtype}
    assert_flash_bound(("out", "dq", "dk", "dv", "dbias"), got, ref32, same, **slack)
    if mode == "none":  # the bias matters: without it the output is another one
        assert (got[0].float() - attention_reference(q, k, v, **kwargs)).abs().max() > 1e-2


def test_bias_gradient_is_the_score_gradient():
    """dL/dbias written out: dS = P * (dP - rowsum(P * dP)) with P = softmax(S), dP = dO V^T, in float64."""
    (q, k, v, grad), _ = make_inputs(2, 2, 2, 6, 9, 16, seed=4)
    bias = torch.randn(2, 6, 9, requires_grad=True)
    out = attention(q, k, v, attn_bias=bias)
    (dbias,) = torch.autograd.grad(out, bias, grad)
    p = torch.softmax((q.double() @ k.double().transpose(-1, -2)) / 4 + bias.double(), -1)
    dp = grad.double() @ v.double().transpose(-1, -2)
    ds = p * (dp - (p * dp).sum(-1, keepdim=True))
    torch.testing.assert_close(dbias.double(), ds.sum(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.double(), p @ v.double(), atol=1e-5, rtol=1e-5)


def test_bias_without_grad_and_compiled():
    """A bias that needs no gradient gets none computed; the op compiles fullgraph with a bias."""
    (q, k, v, grad), _ = make_inputs(2, 2, 2, 7, 7, 16, seed=5)
    q.requires_grad_()
    bias = torch.randn(2, 7, 7)
    (dq,) = torch.autograd.grad(attention(q, k, v, attn_bias=bias), q, grad)
    want = attention_reference(q, k, v, attn_bias=bias)
    (dq_want,) = torch.autograd.grad(want, q, grad)
    torch.testing.assert_close(dq, dq_want)
    bias.requires_grad_()
    compiled = torch.compile(lambda q, k, v, b: attention(q, k, v, attn_bias=b), fullgraph=True)
    got = compiled(q, k, v, bias)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, bias, grad)[0],
                               torch.autograd.grad(attention_reference(q, k, v, attn_bias=bias), bias, grad)[0])  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, *HALF[1:]], ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("mode", ["none", "causal", "dropout", "causal+dropout"])
def test_varlen_kernel_matches_reference_and_padded_dense(mode, dtype, kernel_path):
    """Packed sequences (lengths 5, 17, 0, 1, 33; GQA) match the reference, and the padded dense
    call on the same tokens, dropout included (the same Philox counters). On a GPU also in bfloat16,
    what BERT trains with, bounded by the flash-attention rule."""
    device, context = kernel_path
    opts = MODES[mode]
    lengths, h, hk, d = [5, 17, 0, 1, 33], 4, 2, 32
    b, s = len(lengths), max(lengths)
    (q, k, v, grad), _ = make_inputs(b, h, hk, s, s, d, seed=7, device=device)
    mask = torch.arange(s, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
    packed = [unpad(t.transpose(1, 2), mask) for t in (q, k, v, grad)]
    cu = packed[0].cu_seqlens
    pq, pk, pv, pgrad = (p.x for p in packed)
    kwargs = dict(opts, dropout_seed=99, cu_seqlens=cu, max_seqlen=s)
    ref = fwd_bwd(attention_varlen_reference, pq, pk, pv, pgrad, torch.float32, **kwargs)
    with context():
        got = fwd_bwd(attention_varlen, pq, pk, pv, pgrad, dtype, **kwargs)
        dense = fwd_bwd(attention, q, k, v, grad * mask[:, None, :, None], dtype, key_padding_mask=mask,
                        **opts, dropout_seed=99)  # fmt: skip
    dense = [unpad(full.transpose(1, 2), mask).x for full in dense]
    if dtype != torch.float32:
        same = fwd_bwd(attention_varlen_reference, pq, pk, pv, pgrad, dtype, **kwargs)
        assert_bound(got, ref, same)
        assert_bound(dense, ref, same)
        return
    for g, r, full in zip(got, ref, dense):
        torch.testing.assert_close(g, r, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(g, full, atol=2e-5, rtol=1e-4)


def test_dropout_mask_is_the_references_and_keeps_one_minus_p(kernel_path):
    """With q = k = 0 every weight is 1/Sk and v = I makes out[i, j] = keep[i, j] / (Sk (1 - p)):
    the kernel's mask read back exactly equals ``dropout_keep_mask``, and its keep rate is 1 - p."""
    device, context = kernel_path
    b, h, s, p = 2, 3, 64, 0.3
    q = torch.zeros(b, h, s, s, device=device)
    v = torch.eye(s, device=device).expand(b, h, s, s)
    with context():
        out = attention(q, q, v, dropout_p=p, dropout_seed=2024)
        again = attention(q, q, v, dropout_p=p, dropout_seed=2024)
        other = attention(q, q, v, dropout_p=p, dropout_seed=2025)
    kept = out * s * (1 - p)
    assert torch.allclose(kept, kept.round(), atol=1e-4)
    mask = kept.round().bool()
    assert torch.equal(mask.cpu(), dropout_keep_mask(2024, p, b, h, s, s))
    assert torch.equal(out, again) and not torch.equal(out, other)
    n = mask.numel()
    assert abs(mask.float().mean().item() - (1 - p)) < 4 * (p * (1 - p) / n) ** 0.5


def test_dropout_seed_comes_from_torch_rng():
    q = torch.zeros(1, 2, 32, 32)
    v = torch.eye(32).expand(1, 2, 32, 32)
    torch.manual_seed(0)
    a = attention(q, q, v, dropout_p=0.5)
    torch.manual_seed(0)
    b = attention(q, q, v, dropout_p=0.5)
    c = attention(q, q, v, dropout_p=0.5)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("mode", list(MODES))
def test_reference_backward_matches_autograd(mode):
    """The CPU path's explicit backward formulas against autograd through the reference."""
    opts = dict(MODES[mode])
    (q, k, v, grad), mask = make_inputs(3, 4, 2, 21, 26, 16, seed=3, padding=opts.pop("padding", False))
    kwargs = dict(opts, key_padding_mask=mask, dropout_seed=5)
    want = fwd_bwd(attention_reference, q, k, v, grad, torch.float32, **kwargs)
    got = fwd_bwd(attention, q, k, v, grad, torch.float32, **kwargs)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    for bias in (torch.randn(4, 21, 26), torch.randn(3, 4, 21, 26)):
        want = fwd_bwd_bias(attention_reference, q, k, v, bias, grad, torch.float32, **kwargs)
        got = fwd_bwd_bias(attention, q, k, v, bias, grad, torch.float32, **kwargs)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def test_reference_matches_torch_sdpa():
    """The spec agrees with PyTorch's math for the shared subset (fully masked rows aside)."""
    (q, k, v, _), mask = make_inputs(3, 2, 2, 13, 13, 32, seed=11, padding=True)
    mask[-1, 0] = True
    for kwargs, sdpa in [({}, {}), ({"causal": True}, {"is_causal": True}),
                         ({"key_padding_mask": mask}, {"attn_mask": mask[:, None, None, :]})]:  # fmt: skip
        want = F.scaled_dot_product_attention(q, k, v, **sdpa)
        torch.testing.assert_close(attention_reference(q, k, v, **kwargs), want)


def test_strided_inputs_and_expanded_grads(kernel_path):
    """Views straight out of a [B, S, 3, H, D] projection, a non-unit head-dim stride, and the
    stride-0 gradient of .sum()."""
    device, context = kernel_path
    b, s, h, d = 2, 19, 2, 32
    qkv = torch.randn(b, s, 3, h, d, device=device, requires_grad=True)
    k_wide = torch.randn(b, h, s, 2 * d, device=device)
    with context():
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        got = attention(q, k_wide[..., ::2], v, causal=True)
        (dqkv,) = torch.autograd.grad(got.sum(), qkv)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    want = attention_reference(q, k_wide[..., ::2], v, causal=True)
    (dwant,) = torch.autograd.grad(want.sum(), qkv)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dqkv, dwant, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("on_kernels", [False, True])
def test_compile_fullgraph_module(on_kernels, kernel_path):
    device, context = kernel_path if on_kernels else (torch.device("cpu"), torch.enable_grad)
    torch.manual_seed(0)
    block = MultiheadSelfAttention(64, 4).to(device)
    x = torch.randn(2, 11, 64, device=device, requires_grad=True)
    mask = torch.arange(11, device=device)[None, :] < torch.tensor([11, 6], device=device)[:, None]
    with context():
        want = block(x, key_padding_mask=mask)
        compiled = torch.compile(block, fullgraph=True)
        got = compiled(x, key_padding_mask=mask)
        (dx,) = torch.autograd.grad(got.sum(), x)
    (dx_want,) = torch.autograd.grad(want.sum(), x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dx, dx_want, atol=1e-5, rtol=1e-5)


def test_opcheck():
    (q, k, v, grad), mask = make_inputs(2, 2, 1, 5, 7, 16, seed=1, padding=True)
    seed = torch.tensor([3])
    args = (q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), None, 0, mask, True, 0.25, 0.1, seed, None)
    torch.library.opcheck(torch.ops.fastpretrain.attention_forward.default, args)
    out, lse = torch.ops.fastpretrain.attention_forward(*args)
    bwd = (grad, q.detach(), k.detach(), v.detach(), out.detach(), lse.detach(), None, 0, mask, True, 0.25, 0.1, seed,
           None, False)  # fmt: skip
    torch.library.opcheck(torch.ops.fastpretrain.attention_backward.default, bwd)
    for bias in (torch.randn(2, 5, 7), torch.randn(2, 2, 5, 7)):  # shared and per sequence, with its gradient
        args = (q, k, v, None, 0, mask, False, 0.25, 0.0, None, bias.requires_grad_())
        torch.library.opcheck(torch.ops.fastpretrain.attention_forward.default, args)
        out, lse = torch.ops.fastpretrain.attention_forward(*args)
        bwd = (grad, q.detach(), k.detach(), v.detach(), out.detach(), lse.detach(), None, 0, mask, False, 0.25, 0.0,
               None, bias.detach(), True)  # fmt: skip
        torch.library.opcheck(torch.ops.fastpretrain.attention_backward.default, bwd)
    packed = [t.detach()[0, :, :5].transpose(0, 1).contiguous().requires_grad_() for t in (q, k, v)]  # [5, H, D]
    args = (*packed, torch.tensor([0, 2, 5], dtype=torch.int32), 3, None, False, 0.25, 0.0, None, None)
    torch.library.opcheck(torch.ops.fastpretrain.attention_forward.default, args)


def test_functional_matches_torch_sdpa_and_falls_back(caplog):
    (q, k, v, _), mask = make_inputs(3, 4, 2, 9, 9, 32, seed=2, padding=True)
    mask[-1, :2] = True
    cases = [{}, {"is_causal": True}, {"attn_mask": mask[:, None, None, :]}, {"attn_mask": mask[:1, None, None, :]},
             {"scale": 0.3}, {"enable_gqa": True}]  # fmt: skip
    for kw in cases:
        kv = (k, v) if kw.get("enable_gqa") else (k.repeat_interleave(2, 1), v.repeat_interleave(2, 1))
        want = F.scaled_dot_product_attention(q, *kv, **kw)
        torch.testing.assert_close(functional.scaled_dot_product_attention(q, *kv, **kw), want)
    float_mask = torch.randn(9, 9)
    with caplog.at_level(logging.DEBUG, logger="fastpretrain.nn.functional"):
        got = functional.scaled_dot_product_attention(q, q, q, attn_mask=float_mask)
        functional.scaled_dot_product_attention(q, q, q, attn_mask=float_mask)
    torch.testing.assert_close(got, F.scaled_dot_product_attention(q, q, q, attn_mask=float_mask))
    assert sum("falls back" in r.message for r in caplog.records) <= 1


def test_module_matches_eager_and_packed_matches_padded():
    torch.manual_seed(0)
    block = MultiheadSelfAttention(96, 3)
    x = torch.randn(3, 10, 96)
    mask = torch.arange(10)[None, :] < torch.tensor([10, 4, 7])[:, None]
    q, k, v = block.qkv(x).view(3, 10, 3, 3, 32).permute(2, 0, 3, 1, 4)
    eager = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :], is_causal=False)
    want = block.proj(eager.transpose(1, 2).reshape(3, 10, 96))
    got = block(x, key_padding_mask=mask)
    torch.testing.assert_close(got, want)
    packed = unpad(x, mask)
    out = block(packed.x, cu_seqlens=packed.cu_seqlens, max_seqlen=packed.max_seqlen, causal=True)
    padded = block(x, key_padding_mask=mask, causal=True)
    torch.testing.assert_close(repad(out, packed.indices, 3, 10), padded * mask[..., None])


def test_unpad_repad_round_trip():
    x = torch.randn(4, 6, 5)
    mask = torch.rand(4, 6) > 0.5
    mask[2] = False
    packed = unpad(x, mask)
    assert packed.x.shape == (int(mask.sum()), 5)
    assert packed.cu_seqlens.tolist() == [0, *mask.sum(1).cumsum(0).tolist()]
    assert packed.max_seqlen == max(int(mask.sum(1).max()), 1)
    torch.testing.assert_close(repad(packed.x, packed.indices, 4, 6), x * mask[..., None])


def good():
    q = torch.randn(2, 4, 5, 16)
    return {"q": q, "k": q.clone(), "v": q.clone()}


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"q": torch.randn(2, 4, 5, 16).double()}, TypeError, "q: expected a float32, float16 or bfloat16 tensor"),
        ({"q": [[0.0]]}, TypeError, "q: expected a float32, float16 or bfloat16 tensor .* got list"),
        ({"k": torch.randn(2, 4, 5, 16).half()}, TypeError, "k: expected torch.float32 like q"),
        (
            {"q": torch.randn(2, 4, 5, 80), "k": torch.randn(2, 4, 5, 80), "v": torch.randn(2, 4, 5, 80)},
            ValueError,
            "head dim 80 is not supported",
        ),  # fmt: skip
        ({"q": torch.randn(4, 5, 16)}, ValueError, "q: expected a 4-d"),
        ({"v": torch.randn(2, 4, 6, 16)}, ValueError, "k, v: expected equal shapes"),
        ({"k": torch.randn(2, 3, 5, 16), "v": torch.randn(2, 3, 5, 16)}, ValueError, "must divide q's 4 heads"),
        ({"k": torch.randn(3, 4, 5, 16), "v": torch.randn(3, 4, 5, 16)}, ValueError, "k: expected batch 2"),
        ({"k": torch.randn(2, 4, 5, 16, device="meta")}, ValueError, "k: expected a tensor on cpu"),
        ({"key_padding_mask": torch.ones(2, 5)}, TypeError, "key_padding_mask: expected a bool tensor"),
        ({"key_padding_mask": torch.ones(2, 4, dtype=torch.bool)}, ValueError,
         r"key_padding_mask: expected shape \(2, 5\)"),
        ({"key_padding_mask": torch.ones(2, 5, dtype=torch.bool, device="meta")}, ValueError,
         "key_padding_mask: expected a tensor on cpu"),
        ({"dropout_p": 1.0}, ValueError, r"dropout_p: expected a float in \[0, 1\)"),
        ({"dropout_p": "0.1"}, TypeError, r"dropout_p: expected a float in \[0, 1\), got str"),
        ({"scale": -1.0}, ValueError, "scale: expected a finite float > 0"),
        ({"scale": "big"}, TypeError, "scale: expected a finite float > 0"),
        ({"dropout_p": 0.1, "dropout_seed": 1.5}, TypeError, "dropout_seed: expected an int >= 0"),
        ({"attn_bias": torch.randn(4, 5, 6)}, ValueError,
         r"attn_bias: expected shape \(4, 5, 5\) or \(2, 4, 5, 5\) \(heads, queries, keys\), got \(4, 5, 6\)"),
        ({"attn_bias": torch.randn(1, 4, 5, 5)}, ValueError, r"attn_bias: expected shape .* got \(1, 4, 5, 5\)"),
        ({"attn_bias": torch.ones(4, 5, 5, dtype=torch.int64)}, TypeError, "attn_bias: expected a float32, float16"),
        ({"attn_bias": torch.ones(4, 5, 5, device="meta")}, ValueError, "attn_bias: expected a tensor on cpu"),
    ],
)
def test_bad_arguments(change, error, match):
    args = {**good(), **change}
    with pytest.raises(error, match=match):
        attention(args.pop("q"), args.pop("k"), args.pop("v"), **args)


@pytest.mark.parametrize(
    "cu, max_seqlen, error, match",
    [
        (torch.tensor([0, 3, 7]), 4, TypeError, "cu_seqlens: expected an int32 tensor"),
        (torch.tensor([0], dtype=torch.int32), 4, ValueError, r"cu_seqlens: expected a 1-d \[B \+ 1\] tensor"),
        (torch.tensor([0, 3, 6], dtype=torch.int32), 4, ValueError, r"cu_seqlens: expected 0 = cu\[0\]"),
        (torch.tensor([0, 5, 3, 7], dtype=torch.int32), 5, ValueError, r"cu_seqlens: expected 0 = cu\[0\]"),
        (torch.tensor([0, 3, 7], dtype=torch.int32), 3, ValueError, "max_seqlen: 3 is below the longest sequence"),
        (torch.tensor([0, 3, 7], dtype=torch.int32), 0, ValueError, "max_seqlen: expected an int >= 1"),
        (torch.tensor([0, 3, 7], dtype=torch.int32), 4.0, TypeError, "max_seqlen: expected an int >= 1"),
    ],
)
def test_bad_varlen_arguments(cu, max_seqlen, error, match):
    q = torch.randn(7, 2, 32)
    with pytest.raises(error, match=match):
        attention_varlen(q, q, q, cu, max_seqlen)
