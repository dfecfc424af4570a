"""Point-cloud ops: farthest-point sampling and k nearest neighbours (Point-MAE's grouping, whose
CUDA extensions break on new GPUs) and the Chamfer distance as a loss, on the Triton kernels of
``fastpretrain.kernels.points``.

Every squared distance, kernel and reference alike, is ``dx * dx + dy * dy + dz * dz`` in float32
(inputs of any float dtype converted first), products rounded before the adds, so both paths
agree bit for bit and so do the indices chosen on them:

- :func:`farthest_point_sample` starts every cloud at point 0 (as pointnet2's CUDA FPS does);
  each next point maximises the squared distance to the points chosen so far, the lowest index
  on ties. Clouds beyond contract.MAX_FPS_POINTS points are sampled by the reference in torch.
- :func:`knn_points` sorts neighbours by (squared distance, index): ties go to the lower index.
  k beyond contract.MAX_KNN_K runs the reference.
- :func:`chamfer_distance`: each point's squared distance to its nearest point of the other cloud
  (the first on ties), both directions; gradients reach both clouds (a point's nearest neighbour
  held fixed, as torch.min's gradient does). NaN coordinates are not supported.

FPS and kNN return indices (and detached distances): no gradient flows through them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from fastpretrain.kernels import contract
from fastpretrain.ops import checks
from fastpretrain.ops.dispatch import use_kernel

_REDUCTIONS = ("mean", "sum", "none")


class KNN(NamedTuple):
    """The k nearest points of each query: indices int64 [B, M, k] and squared distances float32 [B, M, k]."""

    indices: torch.Tensor
    sq_dists: torch.Tensor


def squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|a - b|^2`` over the last dim (size 3) in float32 (float64 stays float64), broadcast, in the
    kernels' exact order."""
    dtype = torch.promote_types(a.dtype, torch.float32)
    dx, dy, dz = (a.to(dtype) - b.to(dtype)).unbind(-1)
    return dx * dx + dy * dy + dz * dz


# --- farthest-point sampling -----------------------------------------------------------------------


def farthest_point_sample_reference(points: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Pure torch, the spec: int64 [B, num_samples] indices into each cloud, starting at 0."""
    b, n, _ = points.shape
    out = torch.zeros(b, num_samples, dtype=torch.int64, device=points.device)
    dist = torch.full((b, n), float("inf"), device=points.device)
    cur = torch.zeros(b, dtype=torch.int64, device=points.device)
    rows = torch.arange(b, device=points.device)
    for i in range(1, num_samples):
        dist = torch.minimum(dist, squared_distance(points, points[rows, cur][:, None]))
        cur = dist.argmax(1)
        out[:, i] = cur
    return out


@torch.library.custom_op("fastpretrain::farthest_point_sample", mutates_args=())
def _fps_op(points: torch.Tensor, num_samples: int) -> torch.Tensor:
    if use_kernel(points) and points.shape[1] <= contract.MAX_FPS_POINTS:
        from fastpretrain.kernels.points import farthest_point_sample

        return farthest_point_sample(points, num_samples)
    return farthest_point_sample_reference(points, num_samples)


@_fps_op.register_fake
def _(points, num_samples):
    return points.new_empty(points.shape[0], num_samples, dtype=torch.int64)


def _check_cloud(name: str, t, layout: str = "[B, N, 3]") -> None:
    checks.tensor(name, t, checks.FLOAT, layout)
    if t.dim() != 3 or t.shape[2] != 3 or t.shape[1] == 0:
        raise ValueError(f"{name}: expected a {layout} tensor with at least one point, got shape {tuple(t.shape)}")


def farthest_point_sample(points: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Farthest-point sampling: ``num_samples`` indices per cloud (int64 [B, num_samples]), the
    first always 0, each next the point farthest from those chosen (lowest index on ties).

    Args:
        points: [B, N, 3] float32 / float16 / bfloat16 (distances are taken in float32).
        num_samples: 1 <= num_samples <= N.
    """
    _check_cloud("points", points)
    m = checks.integer("num_samples", num_samples, 1)
    if m > points.shape[1]:
        raise ValueError(f"num_samples: expected at most the {points.shape[1]} points of each cloud, got {m}")
    return _fps_op(points.detach(), m)


# --- k nearest neighbours --------------------------------------------------------------------------


def knn_points_reference(queries: torch.Tensor, points: torch.Tensor, k: int) -> KNN:
    """Pure torch, the spec: a stable sort of each query's squared distances, the first k."""
    d = squared_distance(queries[:, :, None], points[:, None])
    sq, idx = torch.sort(d, dim=2, stable=True)
    return KNN(idx[..., :k].contiguous(), sq[..., :k].contiguous())


@torch.library.custom_op("fastpretrain::knn_points", mutates_args=())
def _knn_op(queries: torch.Tensor, points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    if use_kernel(queries) and k <= contract.MAX_KNN_K:
        from fastpretrain.kernels.points import knn

        return knn(queries, points, k)
    return tuple(knn_points_reference(queries, points, k))


@_knn_op.register_fake
def _(queries, points, k):
    b, m, _ = queries.shape
    return queries.new_empty(b, m, k, dtype=torch.int64), queries.new_empty(b, m, k, dtype=torch.float32)


def _check_pair(a_name: str, a, b_name: str, b, a_layout: str, b_layout: str) -> None:
    _check_cloud(a_name, a, a_layout)
    _check_cloud(b_name, b, b_layout)
    checks.dtype_like(b_name, b, a_name, a)
    checks.device_like(b_name, b, a_name, a)
    if b.shape[0] != a.shape[0]:
        raise ValueError(f"{b_name}: expected {a.shape[0]} clouds like {a_name}, got {b.shape[0]}")


def knn_points(queries: torch.Tensor, points: torch.Tensor, k: int) -> KNN:
    """The ``k`` nearest ``points`` of each query, ascending by (squared distance, index).

    Args:
        queries: [B, M, 3] float32 / float16 / bfloat16; points: [B, N, 3] in queries' dtype.
        k: 1 <= k <= N.
    Returns :class:`KNN` (indices int64 [B, M, k], squared distances float32 [B, M, k]), no gradient.
    """
    _check_pair("queries", queries, "points", points, "[B, M, 3]", "[B, N, 3]")
    k = checks.integer("k", k, 1)
    if k > points.shape[1]:
        raise ValueError(f"k: expected at most the {points.shape[1]} points of each cloud, got {k}")
    return KNN(*_knn_op(queries.detach(), points.detach(), k))


# --- Chamfer distance ------------------------------------------------------------------------------


def nearest_reference(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(squared distance float32 [B, NA], index int64 [B, NA]) of each a point's nearest b point
    (torch.min's first minimum); differentiable in a and b."""
    return squared_distance(a[:, :, None], b[:, None]).min(2)


def _reduce(d_xy: torch.Tensor, d_yx: torch.Tensor, reduction: str):
    if reduction == "none":
        return d_xy, d_yx
    if reduction == "sum":
        return d_xy.sum() + d_yx.sum()
    return d_xy.mean() + d_yx.mean()


def chamfer_distance_reference(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean"):
    """Pure torch, the spec (autograd through torch.min): see :func:`chamfer_distance`."""
    return _reduce(nearest_reference(x, y)[0], nearest_reference(y, x)[0], reduction)


def chamfer_backward_reference(grad_xy, grad_yx, x, y, idx_xy, idx_yx) -> tuple[torch.Tensor, torch.Tensor]:
    """The explicit backward in plain torch (the CPU path's): float32 (d x, d y) from both directions'
    distance gradients: d a_i += 2 g_i (a_i - b_j) and d b_j -= the same, j = a_i's nearest."""
    gx, gy = torch.zeros_like(x, dtype=torch.float32), torch.zeros_like(y, dtype=torch.float32)
    for src, dst, g, idx, g_src, g_dst in ((x, y, grad_xy, idx_xy, gx, gy), (y, x, grad_yx, idx_yx, gy, gx)):
        at = idx[..., None].expand(-1, -1, 3)
        v = 2.0 * g.float()[..., None] * (src.float() - dst.float().gather(1, at))
        g_src += v
        g_dst.scatter_add_(1, at, -v)
    return gx, gy


@torch.library.custom_op("fastpretrain::chamfer_nearest", mutates_args=())
def _chamfer_op(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(d_xy [B, N], d_yx [B, M] float32, idx_xy [B, N], idx_yx [B, M] int64)."""
    if use_kernel(x):
        from fastpretrain.kernels.points import nearest

        return _both(nearest, x, y)
    with torch.no_grad():
        return _both(nearest_reference, x, y)


def _both(nearest_fn, x, y):
    d_xy, i_xy = nearest_fn(x, y)
    d_yx, i_yx = nearest_fn(y, x)
    return d_xy, d_yx, i_xy, i_yx


@_chamfer_op.register_fake
def _(x, y):
    (b, n, _), m = x.shape, y.shape[1]
    f32, i64 = torch.float32, torch.int64
    return x.new_empty(b, n, dtype=f32), x.new_empty(b, m, dtype=f32), x.new_empty(b, n, dtype=i64), x.new_empty(b, m, dtype=i64)


@torch.library.custom_op("fastpretrain::chamfer_backward", mutates_args=())
def _chamfer_backward_op(grad_xy: torch.Tensor, grad_yx: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                         idx_xy: torch.Tensor, idx_yx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(d x, d y) in x's and y's dtypes."""
    if use_kernel(x):
        from fastpretrain.kernels.points import chamfer_backward

        gx, gy = chamfer_backward(grad_xy, grad_yx, x, y, idx_xy, idx_yx)
    else:
        gx, gy = chamfer_backward_reference(grad_xy, grad_yx, x, y, idx_xy, idx_yx)
    return gx.to(x.dtype), gy.to(y.dtype)


@_chamfer_backward_op.register_fake
def _(grad_xy, grad_yx, x, y, idx_xy, idx_yx):
    return torch.empty_like(x), torch.empty_like(y)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs, output[2], output[3])


def _backward(ctx, grad_xy, grad_yx, _grad_i, _grad_j):
    x, y, idx_xy, idx_yx = ctx.saved_tensors
    return _chamfer_backward_op(grad_xy, grad_yx, x, y, idx_xy, idx_yx)


_chamfer_op.register_autograd(_backward, setup_context=_setup_context)


def chamfer_distance(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean"):
    """Chamfer distance between clouds ``x`` and ``y`` on squared distances (Point-MAE's L2 Chamfer).

    Args:
        x: [B, N, 3], y: [B, M, 3], float32 / float16 / bfloat16, same dtype.
        reduction: "mean" (mean over x of the nearest squared distance into y, plus the same from y
            into x, averaged over clouds: Point-MAE's ``ChamferDistanceL2``), "sum" (both sums), or
            "none": the two directions' distances themselves, (d_xy float32 [B, N], d_yx [B, M]).
    Gradients reach x and y, in their dtype.
    """
    _check_pair("x", x, "y", y, "[B, N, 3]", "[B, M, 3]")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    d_xy, d_yx, _, _ = _chamfer_op(x, y)
    return _reduce(d_xy, d_yx, reduction)
