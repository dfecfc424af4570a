"""MAE masking: random_masking against MAE's two-argsort code (bit for bit) and its statistics; the
gather and unshuffle kernels (interpreter on CPU) against the references, forward and every
gradient on odd shapes and dtypes; the CPU path against MAE's code; compile, opcheck, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fastpretrain.kernels import contract
from kernel_cases import assert_flash_bound
from scipy import stats

from fastpretrain.ops import (
    Masking,
    gather_visible,
    gather_visible_reference,
    masking_from_noise,
    random_masking,
    unshuffle_tokens,
    unshuffle_tokens_reference,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.gpu


# --- MAE's own code (facebookresearch/mae models_mae.py), the spec ----------------------------------


def mae_random_masking(x, mask_ratio, noise):
    """``MaskedAutoencoderViT.random_masking`` with the noise passed in."""
    N, L, D = x.shape
    len_keep = int(L * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
    mask = torch.ones([N, L], device=x.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return x_masked, mask, ids_restore, ids_keep


def mae_decoder_input(x, mask_token, decoder_pos_embed, ids_restore):
    """``forward_decoder`` from the mask tokens to the positional embedding."""
    mask_tokens = mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
    x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
    x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
    x = torch.cat([x[:, :1, :], x_], dim=1)
    return x + decoder_pos_embed


# --- random_masking ----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch, length, ratio", [(4, 196, 0.75), (3, 10, 0.6), (1, 1, 0.0), (5, 11, 0.9), (2, 9, 0.5)])
def test_random_masking_is_maes_draw(batch, length, ratio):
    noise = torch.rand(batch, length, generator=torch.Generator().manual_seed(batch * length))
    _, mask, ids_restore, ids_keep = mae_random_masking(torch.zeros(batch, length, 1), ratio, noise)
    got = random_masking(batch, length, ratio, generator=torch.Generator().manual_seed(batch * length))
    assert isinstance(got, Masking)
    assert got.ids_keep.dtype == got.ids_restore.dtype == torch.int64 and got.mask.dtype == torch.float32
    assert torch.equal(got.ids_keep, ids_keep) and torch.equal(got.ids_restore, ids_restore)
    assert torch.equal(got.mask, mask)
    torch.manual_seed(3)  # no generator: torch's global RNG, like MAE's torch.rand
    noise = torch.rand(batch, length)
    torch.manual_seed(3)
    assert torch.equal(random_masking(batch, length, ratio).ids_restore, mae_random_masking(
        torch.zeros(batch, length, 1), ratio, noise)[2])  # fmt: skip


def test_random_masking_structure_and_seeds():
    b, length, ratio = 64, 50, 0.7
    keep = int(length * (1 - ratio))
    m = random_masking(b, length, ratio, generator=torch.Generator().manual_seed(0))
    assert m.ids_keep.shape == (b, keep) and m.ids_restore.shape == m.mask.shape == (b, length)
    assert torch.equal(m.ids_restore.sort(1).values, torch.arange(length).expand(b, length))  # a permutation
    kept = m.ids_restore < keep
    j = torch.arange(length).expand(b, length)
    assert torch.equal(m.ids_keep.gather(1, m.ids_restore.clamp(max=keep - 1))[kept], j[kept])  # its inverse
    assert torch.equal(m.mask, (~kept).float()) and (m.mask.sum(1) == length - keep).all()
    assert (m.mask.gather(1, m.ids_keep) == 0).all()
    again = random_masking(b, length, ratio, generator=torch.Generator().manual_seed(0))
    other = random_masking(b, length, ratio, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) for u, v in zip(m, again))
    assert not torch.equal(m.ids_keep, other.ids_keep)


def test_random_masking_is_uniform():
    """Each position is kept with frequency 1 - ratio (chi-square over positions), and the first
    kept slot is uniform too (the order of ids_keep is random, as in MAE)."""
    b, length, ratio = 4000, 16, 0.75
    m = random_masking(b, length, ratio, generator=torch.Generator().manual_seed(7))
    keep = m.ids_keep.shape[1]
    counts = (1 - m.mask).sum(0)
    assert counts.sum() == b * keep
    p_kept = stats.chisquare(counts.numpy(), [b * keep / length] * length).pvalue
    p_first = stats.chisquare(torch.bincount(m.ids_keep[:, 0], minlength=length).numpy()).pvalue
    assert p_kept > 1e-3 and p_first > 1e-3
    # the same test rejects a slightly biased rule (noise tilted 5% towards low positions)
    g = torch.Generator().manual_seed(7)
    tilted = (torch.rand(b, length, generator=g) + 0.05 * torch.arange(length) / length).argsort(1)[:, :keep]
    assert stats.chisquare(torch.bincount(tilted.flatten(), minlength=length).numpy()).pvalue < 1e-3


def stable_masking(noise, keep):
    """MAE's outputs from a stable argsort (the kernel's tie rule)."""
    ids_shuffle = torch.argsort(noise, dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return ids_shuffle[:, :keep], ids_restore, (ids_restore >= keep).float()


@pytest.mark.parametrize("batch, length, keep", [(4, 13, 3), (2, 196, 49), (1, 1, 1), (3, 16, 16), (2, 9, 1)])
def test_masking_kernel_matches_stable_argsort(batch, length, keep, kernel_path, monkeypatch):
    """The in-register sort (ties included, broken by position) and, for rows over MAX_SORT, the
    op's torch sort, against MAE's code on a stable argsort."""
    device, context = kernel_path
    noise = torch.rand(batch, length, generator=torch.Generator().manual_seed(length))
    noise[0, length // 2:] = noise[0, 0]  # ties
    noise = noise.to(device)
    want = stable_masking(noise, keep)
    with context():
        got = torch.ops.fastpretrain.masking_from_noise(noise, keep)
    for name, g, w in zip(("ids_keep", "ids_restore", "mask"), got, want):
        assert g.dtype == w.dtype and torch.equal(g, w), name
    monkeypatch.setattr(contract, "MAX_SORT", 8)
    with context():
        fallback = torch.ops.fastpretrain.masking_from_noise(noise, keep)
    assert all(torch.equal(g, w) for g, w in zip(fallback, want))


def any_float_noise(length: int) -> torch.Tensor:
    """Rows of noise torch.rand never draws: negatives, values >= 2.0 (the kernel's old padding
    key), NaN of both signs, +-inf, -0.0 beside +0.0, denormals, and a row of NaN only."""
    g = torch.Generator().manual_seed(length)
    nan = torch.tensor(float("nan"))
    specials = torch.stack([nan, -nan, *torch.tensor([float("inf"), -float("inf"), -0.0, 0.0, 1e-45, -1e-45, 3e38,
                                                      -3e38, 2.0, 2.0, -1.0, -2.0])])  # fmt: skip
    noise = torch.randn(6, length, generator=g) * 10
    noise[1] = torch.rand(length, generator=g) * 100 + 2.0
    noise[2, : len(specials)] = specials[:length]
    noise[3] = nan
    noise[4, ::3], noise[4, 1::3] = -0.0, 0.0
    noise[5] = specials[torch.randint(0, len(specials), (length,), generator=g)]
    return noise


@pytest.mark.parametrize("length", [49, 13, 64])
def test_masking_kernel_orders_any_float_as_the_reference(length, kernel_path):
    """Issue 13: NaN noise, or noise >= 2.0 on a row whose length is not a power of 2 (Fashion-MNIST's
    L=49), made the kernel write out of bounds, and negative noise kept other patches than the
    reference. Now both paths keep the patches of a stable torch.argsort for any float."""
    device, context = kernel_path
    noise = any_float_noise(length)
    keep = length // 4
    want = stable_masking(noise, keep)
    reference = torch.ops.fastpretrain.masking_from_noise(noise, keep)  # CPU tensors: the reference path
    with context():
        got = torch.ops.fastpretrain.masking_from_noise(noise.to(device), keep)
    for name, g, r, w in zip(("ids_keep", "ids_restore", "mask"), got, reference, want):
        assert torch.equal(g.cpu(), w) and torch.equal(r, w), name


def test_random_masking_same_draw_on_kernels(kernel_path):
    device, context = kernel_path
    want = random_masking(5, 20, 0.75, generator=torch.Generator(device).manual_seed(4), device=device)
    with context():
        got = random_masking(5, 20, 0.75, generator=torch.Generator(device).manual_seed(4), device=device)
    assert all(torch.equal(g, w) for g, w in zip(got, want))


# --- kernels vs reference --------------------------------------------------------------------------


def assert_bound(got, ref32, same, names):
    """The flash-attention rule with 8 float32 ulps of the largest value, or 2 half-precision ones
    (tensor by tensor: a float32 pos_embed gets a float32 gradient next to a half output)."""
    for name, g, r, s in zip(names, got, ref32, same, strict=True):
        assert_flash_bound([name], [g], [r], [s], ulps=8 if g.dtype == torch.float32 else 2)


def run(fn, tensors, grad, needs):
    """fn(*tensors) and the gradients of the float leaves in ``needs`` (None where not needed)."""
    leaves = [t.detach().requires_grad_(n) if n is not None else t for t, n in zip(tensors, needs)]
    out = fn(*leaves)
    wanted = [t for t, n in zip(leaves, needs) if n]
    grads = torch.autograd.grad(out, wanted, grad) if wanted else ()
    for t, n in zip(leaves, needs):
        if n is False:
            assert t.grad is None
    return [out, *grads]


GATHER_SHAPES = [(3, 10, 24, 4), (5, 13, 100, 1), (2, 7, 24, 7), (1, 1, 24, 1), (4, 9, 1, 3)]  # B, L, D, K
# layout of pos_embed, its dtype (None = x's), its requires_grad, x's requires_grad
VARIANTS = {
    "pos3d": ("3d", None, True, True),
    "pos2d": ("2d", None, True, True),
    "frozen_pos": ("3d", None, False, True),
    "fp32_pos": ("3d", torch.float32, True, True),
    "frozen_x": ("2d", None, True, False),
}


def gather_inputs(b, length, d, k, seed, device):
    g = torch.Generator().manual_seed(seed)
    ids = torch.rand(b, length, generator=g).argsort(1)[:, :k]
    x, pos = torch.randn(b, length, d, generator=g), torch.randn(1, length, d, generator=g)
    return x.to(device), pos.to(device), ids.to(device), torch.randn(b, k, d, generator=g).to(device)


def dtype_variants(variants, half):
    """Every variant in float32; in float16 and bfloat16 (what MAE trains in; no tl.dot here, so the
    interpreter runs it right) those whose dtypes differ (the rest is the same code)."""
    return [(v, torch.float32) for v in variants] + [(v, t) for t in (torch.float16, torch.bfloat16) for v in half]


@pytest.mark.parametrize("variant, dtype", dtype_variants(VARIANTS, ["pos3d", "fp32_pos", "frozen_x"]))
@pytest.mark.parametrize("shape", GATHER_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gather_kernel_matches_reference(shape, variant, dtype, kernel_path):
    device, context = kernel_path
    layout, pos_dtype, pos_grad, x_grad = VARIANTS[variant]
    x, pos, ids, grad = gather_inputs(*shape, seed=sum(shape), device=device)
    pos = pos[0] if layout == "2d" else pos
    needs = (x_grad, pos_grad, None)
    ref32 = run(gather_visible_reference, (x, pos, ids), grad, needs)
    cast = (x.to(dtype), pos.to(pos_dtype or dtype), ids)
    same = run(gather_visible_reference, cast, grad.to(dtype), needs)
    with context():
        got = run(gather_visible, cast, grad.to(dtype), needs)
    assert got[0].dtype == dtype and got[0].is_contiguous()
    assert [t.dtype for t in got[1:]] == [t.dtype for t, n in zip(cast, needs) if n]
    assert_bound(got, ref32, same, ["out", *(n for n, need in zip(["dx", "dpos"], needs) if need)])
    if x_grad:  # removed positions get exactly zero gradient
        removed = torch.ones(shape[0], shape[1], dtype=torch.bool, device=device).scatter_(1, ids, False)
        assert (got[1][removed] == 0).all()


UNSHUFFLE_SHAPES = [(3, 10, 24, 4), (5, 13, 100, 1), (2, 7, 24, 7), (1, 1, 24, 1), (2, 6, 20, 0), (4, 9, 1, 3)]
# layout of mask_token / pos_embed, their dtype (None = x's), requires_grad of (x, mask_token, pos_embed)
UNSHUFFLE_VARIANTS = {
    "params3d": ("3d", None, (True, True, True)),
    "params2d": ("2d", None, (True, True, True)),
    "frozen_pos": ("3d", None, (True, True, False)),  # MAE's fixed sin-cos decoder_pos_embed
    "frozen_params": ("2d", None, (True, False, False)),
    "fp32_params": ("3d", torch.float32, (True, True, True)),
    "frozen_x": ("2d", None, (False, True, True)),
}


def unshuffle_inputs(b, length, d, k, seed, device):
    g = torch.Generator().manual_seed(seed)
    ids_restore = torch.rand(b, length, generator=g).argsort(1).argsort(1)
    x, token = torch.randn(b, 1 + k, d, generator=g), torch.randn(1, 1, d, generator=g)
    pos, grad = torch.randn(1, 1 + length, d, generator=g), torch.randn(b, 1 + length, d, generator=g)
    return [t.to(device) for t in (x, token, pos, ids_restore, grad)]


@pytest.mark.parametrize("variant, dtype",
                         dtype_variants(UNSHUFFLE_VARIANTS, ["params3d", "fp32_params", "frozen_pos"]))  # fmt: skip
@pytest.mark.parametrize("shape", UNSHUFFLE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_unshuffle_kernel_matches_reference(shape, variant, dtype, kernel_path):
    device, context = kernel_path
    layout, param_dtype, needs = UNSHUFFLE_VARIANTS[variant]
    x, token, pos, ids, grad = unshuffle_inputs(*shape, seed=sum(shape), device=device)
    if layout == "2d":
        token, pos = token.reshape(-1), pos[0]
    needs = (*needs, None)
    ref32 = run(unshuffle_tokens_reference, (x, token, pos, ids), grad, needs)
    cast = (x.to(dtype), token.to(param_dtype or dtype), pos.to(param_dtype or dtype), ids)
    same = run(unshuffle_tokens_reference, cast, grad.to(dtype), needs)
    with context():
        got = run(unshuffle_tokens, cast, grad.to(dtype), needs)
    assert got[0].dtype == dtype and got[0].is_contiguous()
    assert [t.dtype for t in got[1:]] == [t.dtype for t, n in zip(cast, needs) if n]
    assert_bound(got, ref32, same, ["out", *(n for n, need in zip(["dx", "dtoken", "dpos"], needs) if need)])
    if needs[1] and shape[3] == shape[1]:  # no masked slot: the mask token gets exactly zero
        assert (got[2 if needs[0] else 1] == 0).all()


def test_int32_ids_and_strided_inputs(kernel_path):
    """int32 ids, x and pos as non-contiguous views (row strides, a sliced feature dim)."""
    device, context = kernel_path
    x, pos, ids, grad = gather_inputs(3, 11, 40, 5, seed=1, device=device)
    wide = torch.randn(3, 11, 80, device=device)[..., ::2]  # feature stride 2
    for inputs in [(x.transpose(0, 1).contiguous().transpose(0, 1), pos.expand(1, 11, 40), ids.int()),
                   (wide, pos, ids.t().contiguous().t())]:  # fmt: skip
        with context():
            got = gather_visible(*inputs)
        torch.testing.assert_close(got, gather_visible_reference(*inputs))
    y, token, dpos, ids_restore, _ = unshuffle_inputs(2, 8, 24, 3, seed=2, device=device)
    y_t = y.transpose(0, 1).contiguous().transpose(0, 1)
    with context():
        got = unshuffle_tokens(y_t, token, dpos, ids_restore.int())
    torch.testing.assert_close(got, unshuffle_tokens_reference(y, token, dpos, ids_restore))


def test_expanded_grads(kernel_path):
    """The stride-0 gradient of out.sum() reaches every gradient correctly."""
    device, context = kernel_path
    x, pos, ids, _ = gather_inputs(3, 10, 36, 4, seed=5, device=device)
    y, token, dpos, ids_restore, _ = unshuffle_inputs(3, 10, 36, 4, seed=6, device=device)
    leaves = [t.requires_grad_() for t in (x, pos, y, token, dpos)]

    def loss(gather, unshuffle):
        return gather(x, pos, ids).sum() + unshuffle(y, token, dpos, ids_restore).sum()

    want = torch.autograd.grad(loss(gather_visible_reference, unshuffle_tokens_reference), leaves)
    with context():
        got = torch.autograd.grad(loss(gather_visible, unshuffle_tokens), leaves)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


# --- the CPU path against MAE's code ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_path_is_maes_formulation(dtype):
    """The op without kernels (its own backward formulas) against MAE's code under autograd; in
    bfloat16 activations with float32 parameters (autocast's mix), MAE's float32 result rounded
    to bfloat16 — the documented dtype rule."""
    b, length, d, dd, ratio = 3, 16, 12, 8, 0.75
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, length, d, generator=g).to(dtype).requires_grad_()
    pos = torch.randn(1, length + 1, d, generator=g).requires_grad_()  # MAE: cls slot first
    noise = torch.rand(b, length, generator=torch.Generator().manual_seed(1))
    m = random_masking(b, length, ratio, generator=torch.Generator().manual_seed(1))
    ours = gather_visible(x, pos[:, 1:], m.ids_keep)
    theirs, mask, ids_restore, _ = mae_random_masking(x + pos[:, 1:, :], ratio, noise)
    assert torch.equal(ours, theirs.to(dtype)) and torch.equal(m.mask, mask)
    k = m.ids_keep.shape[1]
    y = torch.randn(b, 1 + k, dd, generator=g).to(dtype).requires_grad_()
    token = torch.randn(1, 1, dd, generator=g).requires_grad_()
    dec_pos = torch.randn(1, 1 + length, dd, generator=g).requires_grad_()
    ours_dec = unshuffle_tokens(y, token, dec_pos, ids_restore)
    theirs_dec = mae_decoder_input(y, token, dec_pos, ids_restore)
    assert torch.equal(ours_dec, theirs_dec.to(dtype))
    gy, gx = torch.randn(ours_dec.shape, generator=g).to(dtype), torch.randn(ours.shape, generator=g).to(dtype)
    leaves = (x, pos, y, token, dec_pos)
    got = torch.autograd.grad([ours, ours_dec], leaves, [gx, gy])
    want = torch.autograd.grad([theirs, theirs_dec], leaves, [gx.float(), gy.float()])
    tol = {"atol": 1e-6, "rtol": 1e-6} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 1e-2}
    for name, u, v in zip(("x", "pos", "y", "mask_token", "dec_pos"), got, want):
        assert u.dtype == v.dtype, name
        torch.testing.assert_close(u, v, **tol, msg=name)


# --- compile and opcheck ---------------------------------------------------------------------------


class TinyMAE(torch.nn.Module):
    def __init__(self, length=12, d=16, dd=8):
        super().__init__()
        self.embed = torch.nn.Linear(6, d)
        self.pos = torch.nn.Parameter(torch.randn(1, 1 + length, d) * 0.02)
        self.decoder_embed = torch.nn.Linear(d, dd)
        self.mask_token = torch.nn.Parameter(torch.randn(1, 1, dd))
        self.register_buffer("decoder_pos", torch.randn(1, 1 + length, dd))  # frozen, like MAE's sin-cos

    def forward(self, patches, ids_keep, ids_restore):
        x = gather_visible(self.embed(patches), self.pos[:, 1:], ids_keep)
        cls = self.pos[:, :1].expand(x.shape[0], -1, -1)
        x = self.decoder_embed(torch.cat([cls, x], 1))
        return unshuffle_tokens(x, self.mask_token, self.decoder_pos, ids_restore).pow(2).mean()


@pytest.mark.parametrize("on_kernels", [False, True])
def test_compile_fullgraph(on_kernels, kernel_path):
    device, context = kernel_path if on_kernels else (torch.device("cpu"), torch.enable_grad)
    torch.manual_seed(0)
    model = TinyMAE().to(device)
    patches = torch.randn(3, 12, 6, device=device)
    m = random_masking(3, 12, 0.75, generator=torch.Generator().manual_seed(2), device="cpu")
    ids_keep, ids_restore = m.ids_keep.to(device), m.ids_restore.to(device)
    params = list(model.parameters())
    with context():
        want = model(patches, ids_keep, ids_restore)
        dwant = torch.autograd.grad(want, params)
        got = torch.compile(model, fullgraph=True, backend="aot_eager" if on_kernels else "inductor")(
            patches, ids_keep, ids_restore)  # fmt: skip
        dgot = torch.autograd.grad(got, params)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    for u, v in zip(dgot, dwant):
        torch.testing.assert_close(u, v, atol=1e-6, rtol=1e-5)


def test_opcheck():
    torch.library.opcheck(torch.ops.fastpretrain.masking_from_noise.default, (torch.rand(3, 10), 4))
    x, pos, ids, grad = gather_inputs(2, 7, 6, 3, seed=3, device="cpu")
    torch.library.opcheck(torch.ops.fastpretrain.gather_visible_forward.default,
                          (x.requires_grad_(), pos[0].requires_grad_(), ids))  # fmt: skip
    for need_dx, pos_dtype in [(True, torch.float32), (False, torch.float16), (True, None)]:
        torch.library.opcheck(torch.ops.fastpretrain.gather_visible_backward.default,
                              (grad, ids, 7, need_dx, pos_dtype))  # fmt: skip
    y, token, dpos, ids_restore, dgrad = unshuffle_inputs(2, 7, 6, 3, seed=4, device="cpu")
    torch.library.opcheck(torch.ops.fastpretrain.unshuffle_tokens_forward.default,
                          (y.requires_grad_(), token.reshape(6).requires_grad_(), dpos[0].requires_grad_(),
                           ids_restore))  # fmt: skip
    for args in [(True, torch.float32, torch.float32), (False, None, torch.bfloat16), (True, torch.float16, None)]:
        torch.library.opcheck(torch.ops.fastpretrain.unshuffle_tokens_backward.default, (dgrad, ids_restore, 3, *args))


# --- bad input ---------------------------------------------------------------------------------------


def gather_args():
    return {"x": torch.randn(2, 5, 4), "pos_embed": torch.randn(1, 5, 4), "ids_keep": torch.tensor([[0, 3], [4, 1]])}


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"x": torch.randn(2, 5, 4).double()}, TypeError, "x: expected a float32, float16 or bfloat16 tensor"),
        ({"x": torch.zeros(2, 5, 4, dtype=torch.int64)}, TypeError, "x: expected a float32, float16 or bf"),
        ({"x": torch.randn(5, 4)}, ValueError, "x: expected a 3-d"),
        ({"ids_keep": torch.tensor([[0.0, 3.0], [4.0, 1.0]])}, TypeError, "ids_keep: expected an int64 or int32"),
        ({"ids_keep": torch.tensor([[0, 3], [4, 1]], dtype=torch.int16)}, TypeError, "ids_keep: expected an int64"),
        ({"ids_keep": torch.tensor([0, 3])}, ValueError, r"ids_keep: expected shape \[B=2, K\]"),
        ({"ids_keep": torch.arange(6).view(1, 6)}, ValueError, r"ids_keep: expected shape \[B=2, K\]"),
        ({"ids_keep": torch.arange(6).repeat(2, 1)}, ValueError, "ids_keep: expected 1 <= K <= L = 5"),
        ({"ids_keep": torch.zeros(2, 0, dtype=torch.int64)}, ValueError, "ids_keep: expected 1 <= K"),
        ({"ids_keep": torch.tensor([[0, 5], [4, 1]])}, ValueError, r"ids_keep: expected distinct .* in \[0, 5\)"),
        ({"ids_keep": torch.tensor([[2, 2], [4, 1]])}, ValueError, "ids_keep: expected distinct"),
        ({"ids_keep": torch.tensor([[0, 3], [4, 1]], device="meta")}, ValueError, "ids_keep: expected a tensor on cpu"),
        ({"pos_embed": torch.randn(1, 6, 4)}, ValueError, r"pos_embed: expected shape \[L, D\] = \(5, 4\)"),
        ({"pos_embed": torch.randn(2, 5, 4)}, ValueError, "pos_embed: expected shape"),
        ({"pos_embed": torch.randn(1, 5, 4).double()}, TypeError, "pos_embed: expected a float32"),
        ({"pos_embed": torch.randn(1, 5, 4, device="meta")}, ValueError, "pos_embed: expected a tensor on cpu"),
    ],
)
def test_gather_bad_arguments(change, error, match):
    args = {**gather_args(), **change}
    with pytest.raises(error, match=match):
        gather_visible(**args)


def unshuffle_args():
    return {"x": torch.randn(2, 3, 4), "mask_token": torch.randn(1, 1, 4), "pos_embed": torch.randn(1, 6, 4),
            "ids_restore": torch.tensor([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])}  # fmt: skip


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"x": torch.randn(2, 3, 4).half().double()}, TypeError, "x: expected a float32, float16 or bfloat16 tensor"),
        ({"x": torch.randn(2, 0, 4)}, ValueError, r"x: expected a 3-d \[B, 1 \+ K, Dd\]"),
        ({"x": torch.randn(2, 7, 4)}, ValueError, "x: holds K = 6 visible tokens"),
        ({"ids_restore": torch.tensor([[0, 1, 2, 3, 4]])}, ValueError, r"ids_restore: expected shape \[B=2, L\]"),
        ({"ids_restore": torch.rand(2, 5)}, TypeError, "ids_restore: expected an int64 or int32 tensor"),
        ({"ids_restore": torch.tensor([[0, 1, 2, 3, 3], [4, 3, 2, 1, 0]])}, ValueError, "ids_restore: expected a perm"),
        ({"ids_restore": torch.tensor([[0, 1, 2, 3, 5], [4, 3, 2, 1, 0]])}, ValueError, "ids_restore: expected a perm"),
        ({"ids_restore": torch.zeros(2, 0, dtype=torch.int64)}, ValueError, "ids_restore: expected at least one"),
        ({"mask_token": torch.randn(1, 1, 5)}, ValueError, r"mask_token: expected shape \(4,\) or \(1, 1, 4\)"),
        ({"mask_token": torch.randn(4, 1)}, ValueError, "mask_token: expected shape"),
        ({"mask_token": torch.randn(4).long()}, TypeError, "mask_token: expected a float32"),
        ({"mask_token": torch.randn(4, device="meta")}, ValueError, "mask_token: expected a tensor on cpu"),
        ({"pos_embed": torch.randn(1, 5, 4)}, ValueError, r"pos_embed: expected shape \[1 \+ L, Dd\] = \(6, 4\)"),
        ({"pos_embed": torch.randn(6, 5)}, ValueError, "pos_embed: expected shape"),
        ({"pos_embed": "pos"}, TypeError, "pos_embed: expected a float32, .* got str"),
    ],
)
def test_unshuffle_bad_arguments(change, error, match):
    args = {**unshuffle_args(), **change}
    with pytest.raises(error, match=match):
        unshuffle_tokens(**args)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((4, 10, 1.0), {}, ValueError, r"mask_ratio: expected a float in \[0, 1\)"),
        ((4, 10, -0.1), {}, ValueError, r"mask_ratio: expected a float in \[0, 1\)"),
        ((4, 10, "0.5"), {}, TypeError, "mask_ratio: expected a float"),
        ((4, 3, 0.7), {}, ValueError, r"mask_ratio: 0.7 keeps no patch of 3: int\(3 \* \(1 - 0.7\)\) = 0"),
        ((0, 10, 0.5), {}, ValueError, "batch: expected an int >= 1"),
        ((4, 0, 0.5), {}, ValueError, "length: expected an int >= 1"),
        ((4, 10.0, 0.5), {}, TypeError, "length: expected an int >= 1"),
        ((4, 10, 0.5), {"generator": 3}, TypeError, "generator: expected a torch.Generator"),
        ((4, 10, 0.5), {"generator": torch.Generator(), "device": "meta"}, ValueError, "generator: it lives on cpu"),
    ],
)
def test_random_masking_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        random_masking(*args, **kwargs)


@pytest.mark.parametrize(
    "noise, ratio, error, match",
    [
        (torch.rand(2, 5).double(), 0.5, TypeError, "noise: expected a float32, float16 or bfloat16 tensor"),
        ([[0.1, 0.2]], 0.5, TypeError, "noise: expected .* got list"),
        (torch.rand(5), 0.5, ValueError, r"noise: expected a 2-d \[B, L\] tensor"),
        (torch.rand(2, 5), 1.0, ValueError, r"mask_ratio: expected a float in \[0, 1\)"),
        (torch.rand(2, 3), 0.7, ValueError, r"mask_ratio: 0.7 keeps no patch of 3: int\(3 \* \(1 - 0.7\)\) = 0"),
        (torch.rand(2, 5), None, TypeError, "mask_ratio: expected a float"),
    ],
)
def test_masking_from_noise_bad_arguments(noise, ratio, error, match):
    with pytest.raises(error, match=match):
        masking_from_noise(noise, ratio)


# --- benchmark script ----------------------------------------------------------------------------


def run_benchmark(out, *args, fail=None):
    """The JSON and markdown of ``bench_masking.py --smoke`` on CPU (one thread), with the rows whose
    fields contain ``fail`` made to raise (FASTPRETRAIN_BENCH_FAIL)."""
    env = {k: v for k, v in os.environ.items() if k != "FASTPRETRAIN_BENCH_FAIL"}
    env.update({"OMP_NUM_THREADS": "1", **({"FASTPRETRAIN_BENCH_FAIL": fail} if fail else {})})
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_masking.py"), "--smoke", "--out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "masking_cpu_smoke.json").read_text()), (out / "masking_cpu_smoke.md").read_text()


def checked_outputs(case, backward):
    """What a row's max_err must name: the outputs, and with the backward each trainable input's gradient."""
    outputs = {"x_masked", "mask"} if case.startswith("encoder") else {"out"}
    trainable = {"d_x"} | ({"d_pos_embed"} if "trainable" in case else set())
    trainable |= {"d_mask_token"} if case.startswith("decoder") else set()
    return outputs | (trainable if backward else set())


def test_benchmark_smoke(tmp_path):
    """The GPU benchmark on a tiny CPU shape: every case x candidate x pass checked (outputs and every
    gradient; ours through the Triton kernels in the interpreter) and timed, GB/s and floor from the
    copy bandwidth measured in the run (or --copy-gbs); with ours made to fail, its rows are error
    rows and MAE's are still measured."""
    result, md = run_benchmark(tmp_path)
    rows = result["rows"]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    assert [c.split()[0] for c in cases] == ["encoder", "encoder", "decoder", "decoder"]
    assert [(r["case"], r["candidate"], r["pass"]) for r in rows] == [
        (c, n, p) for c in cases for p in ("fwd", "fwd+bwd") for n in ("ours", "MAE eager")
    ]
    assert result["complete"] is True and result["copy_gbs_source"] == "measured" and result["copy_gbs"] > 0
    assert len([line for line in md.splitlines() if line.startswith("| ")]) == 1 + len(rows)
    for r in rows:
        assert r["valid"] is True and set(r["max_err"]) == checked_outputs(r["case"], r["pass"] == "fwd+bwd"), r
        assert r["floor_us"] == pytest.approx(r["bytes"] / (result["copy_gbs"] * 1e3))
        assert r["gb_per_s"] == pytest.approx(r["bytes"] / (r["us"] * 1e3))
        assert r["x_floor"] == pytest.approx(r["us"] / r["floor_us"])
        base = next(b for b in rows if (b["case"], b["pass"], b["candidate"]) == (r["case"], r["pass"], "MAE eager"))
        assert r["speedup_vs_eager"] == pytest.approx(base["us"] / r["us"])
        if r["candidate"] == "ours":
            assert max(r["max_err"].values()) < 1e-5

    result, md = run_benchmark(tmp_path, "--copy-gbs", "1000", fail="ours")
    rows = result["rows"]
    assert result["complete"] is True and (result["copy_gbs"], result["copy_gbs_source"]) == (1000, "--copy-gbs")
    failed = [("error" in r, r["candidate"]) for r in rows]
    assert failed == [(n == "ours", n) for _ in range(8) for n in ("ours", "MAE eager")]
    assert md.count("injected failure") == 8
    for r in rows:
        if r["candidate"] == "ours":
            assert "injected failure" in r["error"] and r["speedup_vs_eager"] is None and "us" not in r
        else:
            assert r["valid"] is True and r["speedup_vs_eager"] == 1
            assert r["floor_us"] == pytest.approx(r["bytes"] / 1e6)  # 1000 GB/s: a µs per 1e6 bytes
