"""Point-cloud ops: farthest-point sampling and kNN, kernels (interpreter on CPU) equal to the
references index for index, ties included, and the references against float64 brute force;
Chamfer distance forward (bit for bit) and both gradients against the reference's autograd, every
reduction, fp32 and fp16; opcheck; bad input. Shapes are tiny and odd: the interpreter is slow."""

import numpy as np
import pytest
import torch
from kernel_cases import assert_flash_bound

from fastpretrain.ops import chamfer_distance, chamfer_distance_reference, farthest_point_sample, knn_points
from fastpretrain.ops.points import farthest_point_sample_reference, knn_points_reference

pytestmark = pytest.mark.gpu


def cloud(b, n, seed, device="cpu", lattice=False, dtype=torch.float32):
    """Random points, or points on a 3 x 3 x 3 integer lattice (duplicates and equal distances: ties)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randint(-1, 2, (b, n, 3), generator=g).float() if lattice else torch.randn(b, n, 3, generator=g)
    return p.to(device=device, dtype=dtype)


# --- farthest-point sampling -------------------------------------------------------------------------


def test_fps_reference_is_farthest_point_sampling():
    """Each pick maximises the float64 distance to the picks before it; the first is point 0."""
    p = cloud(3, 40, seed=1)
    got = farthest_point_sample_reference(p, 12)
    q = p.double().numpy()
    for b in range(3):
        chosen = [0]
        for _ in range(11):
            d = ((q[b][:, None] - q[b][chosen][None]) ** 2).sum(-1).min(1)
            chosen.append(int(d.argmax()))
        assert got[b].tolist() == chosen


@pytest.mark.parametrize("b, n, m, lattice", [(1, 1, 1, False), (2, 37, 9, False), (3, 20, 20, True), (2, 11, 6, True)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_fps_kernel_equals_reference(b, n, m, lattice, dtype, kernel_path):
    device, context = kernel_path
    p = cloud(b, n, seed=n, device=device, lattice=lattice, dtype=dtype)
    with context():
        got = farthest_point_sample(p, m)
    assert got.dtype == torch.int64 and got.shape == (b, m)
    assert torch.equal(got, farthest_point_sample_reference(p, m))


def test_fps_ties_go_to_the_lowest_index(kernel_path):
    """Four corners of a square and their copies: after 0 the opposite corner (2, not its copy 6),
    then the lowest of the two equally far ones (1); a cloud of copies of one point repeats 0."""
    device, context = kernel_path
    square = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=torch.float32)
    p = torch.stack([torch.cat([square, square]), torch.zeros(8, 3)]).to(device)
    with context():
        got = farthest_point_sample(p, 4)
    assert got.tolist() == [[0, 2, 1, 3], [0, 0, 0, 0]]
    assert torch.equal(farthest_point_sample_reference(p, 4), got)


# --- k nearest neighbours ----------------------------------------------------------------------------


def test_knn_reference_is_sorted_by_distance_then_index():
    q, p = cloud(2, 9, seed=3, lattice=True), cloud(2, 21, seed=4, lattice=True)
    got = knn_points_reference(q, p, 7)
    d = ((q.double()[:, :, None] - p.double()[:, None]) ** 2).sum(-1).numpy()
    for b in range(2):
        for i in range(9):
            order = np.lexsort((np.arange(21), d[b, i]))[:7]  # by distance, then index
            assert got.indices[b, i].tolist() == order.tolist()
            assert np.array_equal(got.sq_dists[b, i].double().numpy(), d[b, i, order])


F32, F16 = torch.float32, torch.float16


@pytest.mark.parametrize("b, m, n, k, lattice, dtype", [(1, 1, 1, 1, False, F32), (2, 7, 19, 5, False, F32),
                                                        (1, 6, 13, 13, True, F32), (2, 5, 17, 9, True, F32),
                                                        (1, 5, 17, 9, True, F16)])  # fmt: skip
def test_knn_kernel_equals_reference(b, m, n, k, lattice, dtype, kernel_path):
    """Every index and distance, with k below, at and above the interpreter's 8-wide tile, k = N."""
    device, context = kernel_path
    q, p = (cloud(b, s, seed=s + k, device=device, lattice=lattice, dtype=dtype) for s in (m, n))
    with context():
        got = knn_points(q, p, k)
    want = knn_points_reference(q, p, k)
    assert got.indices.dtype == torch.int64 and got.sq_dists.dtype == torch.float32
    assert torch.equal(got.indices, want.indices) and torch.equal(got.sq_dists, want.sq_dists)


def test_knn_kernel_with_strided_inputs(kernel_path):
    device, context = kernel_path
    wide = cloud(1, 5, seed=5, device=device).repeat(1, 1, 2)[:, :, 1:4]  # row stride 6
    p = cloud(2, 11, seed=6, device=device).transpose(0, 1).contiguous().transpose(0, 1)[:1]  # batch stride 3
    with context():
        got = knn_points(wide, p, 4)
    want = knn_points_reference(wide, p, 4)
    assert torch.equal(got.indices, want.indices) and torch.equal(got.sq_dists, want.sq_dists)


# --- Chamfer distance --------------------------------------------------------------------------------


def loss_and_grads(fn, x, y, dtype, reduction, seed=0):
    x, y = x.to(dtype).requires_grad_(), y.to(dtype).requires_grad_()
    out = fn(x, y, reduction=reduction)
    if reduction == "none":  # weight the points unequally, so a wrong index shows in the gradient
        g = torch.Generator().manual_seed(seed)
        weights = [torch.rand(t.shape, generator=g).to(t.device) for t in out]
        total = sum((t * w).sum() for t, w in zip(out, weights))
        return [*out, *torch.autograd.grad(total, (x, y))]
    return [out, *torch.autograd.grad(out * 1.7, (x, y))]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cpu_path_matches_float64_reference(reduction):
    x, y = cloud(3, 23, seed=7), cloud(3, 10, seed=8)
    want = loss_and_grads(chamfer_distance_reference, x.double(), y.double(), torch.float64, reduction)
    got = loss_and_grads(chamfer_distance, x, y, torch.float32, reduction)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("b, n, m, lattice", [(1, 1, 1, False), (2, 13, 5, False), (1, 9, 21, False), (2, 11, 17, True)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_chamfer_kernel_matches_reference(b, n, m, lattice, dtype, kernel_path):
    """Distances bit for bit against the reference in float32 on the same inputs; gradients within
    the flash-attention bound of the float32 reference's autograd, with unequal point weights (on
    lattice clouds, full of equally near points, a gradient on the wrong one of them shows)."""
    device, context = kernel_path
    x, y = (cloud(b, s, seed=s + i, device=device, lattice=lattice) for i, s in enumerate((n, m)))
    ref32 = loss_and_grads(chamfer_distance_reference, x.to(dtype).float(), y.to(dtype).float(), torch.float32, "none")
    same = loss_and_grads(chamfer_distance_reference, x, y, dtype, "none")
    with context():
        got = loss_and_grads(chamfer_distance, x, y, dtype, "none")
    assert torch.equal(got[0], ref32[0]) and torch.equal(got[1], ref32[1])
    assert got[2].dtype == dtype and got[3].dtype == dtype
    slack = {"atol": 1e-6} if dtype == torch.float32 else {"ulps": 4, "dtype": dtype}
    assert_flash_bound(["d x", "d y"], got[2:], ref32[2:], same[2:], **slack)


def test_chamfer_kernel_reductions_and_shared_nearest(kernel_path):
    """Many x points share one nearest y (the scatter of the backward); mean and sum both ways."""
    device, context = kernel_path
    x = cloud(2, 11, seed=9, device=device) * 0.1
    y = torch.cat([torch.zeros(2, 1, 3), cloud(2, 4, seed=10) + 5.0], 1).to(device)
    for reduction in ("mean", "sum"):
        want = loss_and_grads(chamfer_distance_reference, x, y, torch.float32, reduction)
        with context():
            got = loss_and_grads(chamfer_distance, x, y, torch.float32, reduction)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)


def test_opcheck():
    x, y = cloud(2, 7, seed=11), cloud(2, 5, seed=12)
    torch.library.opcheck(torch.ops.fastpretrain.farthest_point_sample.default, (x, 4))
    torch.library.opcheck(torch.ops.fastpretrain.knn_points.default, (x, y, 3))
    torch.library.opcheck(torch.ops.fastpretrain.chamfer_nearest.default, (x.requires_grad_(), y.requires_grad_()))
    _, _, i_xy, i_yx = torch.ops.fastpretrain.chamfer_nearest(x, y)
    args = (torch.rand(2, 7), torch.rand(2, 5), x.detach(), y.detach(), i_xy, i_yx)
    torch.library.opcheck(torch.ops.fastpretrain.chamfer_backward.default, args)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: farthest_point_sample(torch.randn(2, 5, 3).double(), 2), TypeError, "points: expected a float32"),
        (lambda: farthest_point_sample(torch.randn(2, 5, 2), 2), ValueError, r"points: expected a \[B, N, 3\]"),
        (lambda: farthest_point_sample(torch.randn(2, 0, 3), 1), ValueError, "at least one point"),
        (lambda: farthest_point_sample(torch.randn(2, 5, 3), 6), ValueError, "num_samples: expected at most the 5"),
        (lambda: farthest_point_sample(torch.randn(2, 5, 3), 0), ValueError, "num_samples: expected an int >= 1"),
        (lambda: farthest_point_sample(torch.randn(2, 5, 3), 2.0), TypeError, "num_samples: expected an int"),
        (lambda: knn_points(torch.randn(2, 4, 3), torch.randn(3, 5, 3), 2), ValueError, "points: expected 2 clouds"),
        (lambda: knn_points(torch.randn(2, 4, 3), torch.randn(2, 5, 3).half(), 2), TypeError, "points: expected torch.float32"),
        (lambda: knn_points(torch.randn(4, 3), torch.randn(2, 5, 3), 2), ValueError, r"queries: expected a \[B, M, 3\]"),
        (lambda: knn_points(torch.randn(2, 4, 3), torch.randn(2, 5, 3), 6), ValueError, "k: expected at most the 5"),
        (lambda: chamfer_distance(torch.randn(2, 4, 3), "y"), TypeError, "y: expected a float32.* got str"),
        (lambda: chamfer_distance(torch.randn(2, 4, 3), torch.randn(2, 5, 3, device="meta")), ValueError,
         "y: expected a tensor on cpu"),
        (lambda: chamfer_distance(torch.randn(2, 4, 3), torch.randn(2, 5, 3), reduction="avg"), ValueError,
         "reduction: expected one of"),
    ],
)  # fmt: skip
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
