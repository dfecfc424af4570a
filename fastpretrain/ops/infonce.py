"""Contrastive losses without the similarity matrix in memory: InfoNCE (CLIP's symmetric image-text
loss, SimCLR's NT-Xent with 2N - 1 negatives, MoCo-style extra negatives) and SigLIP's sigmoid loss,
over logits ``z = scale * q @ k.T`` of N queries and M keys (``scale`` = 1 / temperature, a float
or a learnable one-element tensor that gets its gradient).

The logits are formed in float32 from the inputs' dtype; the Triton kernels compute them tile by
tile (once for the row log-sum-exp, once more per direction when symmetric, once in the backward),
so memory is O((N + M) D), not O(N M). Normalisation (``normalize=True``, cosine similarities) is
``F.normalize`` in torch before the op: O(N D), and autograd differentiates it.

Ids (targets, exclude) are checked on CPU tensors in eager mode only, as the other ops' are.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from fastpretrain.ops import checks
from fastpretrain.ops.dispatch import use_kernel

_REDUCTIONS = ("mean", "sum", "none")
ORACLE = (*checks.FLOAT, torch.float64)  # the references also run in float64, as the tests' oracle


def _logits(query, key, scale):
    """scale * query @ key.T in float32 (float64 for a float64 oracle)."""
    z = query @ key.T
    z = z.to(torch.promote_types(z.dtype, torch.float32))
    return z * scale.to(z.dtype)


def _masked(z, exclude):
    """z with column exclude[i] of row i at -inf (exclude -1: none)."""
    if exclude is None:
        return z
    cols = torch.arange(z.shape[1], device=z.device)
    return z.masked_fill(cols[None, :] == exclude[:, None].long(), float("-inf"))


# --- InfoNCE -----------------------------------------------------------------------------------------


def infonce_backward_reference(grad_rows, grad_cols, query, key, scale, targets, exclude, col_targets, lse, col_lse):
    """The explicit backward in plain torch (the CPU path's): (d query, d key, d scale) in float32 for
    per-row (and, when symmetric, per-column) loss gradients, from the saved float32 log-sum-exps."""
    z = _logits(query, key, scale)
    rows, cols = torch.arange(z.shape[0], device=z.device), torch.arange(z.shape[1], device=z.device)
    dz = torch.exp(_masked(z, exclude) - lse[:, None])
    dz[rows, targets.long()] -= 1.0
    dz *= grad_rows.float()[:, None]
    if col_targets is not None:
        dc = torch.exp(z - col_lse[None, :])
        dc[col_targets.long(), cols] -= 1.0
        dz += dc * grad_cols.float()[None, :]
    gq, gk = dz @ key.float(), dz.T @ query.float()
    s = scale.float()
    return gq * s, gk * s, (query.float() * gq).sum()


def _infonce_reference_forward(query, key, scale, targets, exclude, col_targets):
    """The CPU path's forward: both directions from one materialised z, as the kernels share their tiles."""
    z = _logits(query, key, scale)
    rows = _masked(z, exclude)
    lse = torch.logsumexp(rows, 1)
    loss = lse - rows.gather(1, targets.long()[:, None])[:, 0]
    if col_targets is None:
        return loss, lse, loss.new_empty(0), lse.new_empty(0)
    col_lse = torch.logsumexp(z, 0)
    return loss, lse, col_lse - z.gather(0, col_targets.long()[None, :])[0], col_lse


@torch.library.custom_op("fastpretrain::infonce", mutates_args=())
def _infonce_op(query: torch.Tensor, key: torch.Tensor, scale: torch.Tensor, targets: torch.Tensor,
                exclude: torch.Tensor | None,
                col_targets: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(row loss [N], row lse [N], column loss [M], column lse [M]) float32; the column ones are
    empty unless ``col_targets`` (the symmetric loss: key j against every query, target col_targets[j])."""
    if not use_kernel(query):
        return _infonce_reference_forward(query, key, scale, targets, exclude, col_targets)
    from fastpretrain.kernels.infonce import infonce_col_lse, infonce_lse

    loss, lse = infonce_lse(query, key, scale, targets, exclude)
    if col_targets is None:
        return loss, lse, loss.new_empty(0), lse.new_empty(0)
    return loss, lse, *infonce_col_lse(query, key, scale, col_targets)


@_infonce_op.register_fake
def _(query, key, scale, targets, exclude, col_targets):
    n, m = query.shape[0], key.shape[0] if col_targets is not None else 0
    rows, cols = (query.new_empty(size, dtype=torch.float32) for size in (n, m))
    return rows, torch.empty_like(rows), cols, torch.empty_like(cols)


@torch.library.custom_op("fastpretrain::infonce_backward", mutates_args=())
def _infonce_backward_op(grad_rows: torch.Tensor, grad_cols: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                         scale: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None,
                         col_targets: torch.Tensor | None, lse: torch.Tensor,
                         col_lse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(d query, d key, d scale) in the inputs' dtypes."""
    if use_kernel(query):
        from fastpretrain.kernels.infonce import contrastive_backward

        symmetric = col_targets is not None
        dq, dk, ds, _ = contrastive_backward(query, key, scale, grad_rows, targets, exclude=exclude, lse=lse,
                                             col_targets=col_targets, col_lse=col_lse if symmetric else None,
                                             grad_cols=grad_cols if symmetric else None)  # fmt: skip
    else:
        dq, dk, ds = infonce_backward_reference(grad_rows, grad_cols, query, key, scale, targets, exclude, col_targets,
                                                lse, col_lse)  # fmt: skip
    return dq.to(query.dtype), dk.to(key.dtype), ds.to(scale.dtype)


@_infonce_backward_op.register_fake
def _(grad_rows, grad_cols, query, key, scale, targets, exclude, col_targets, lse, col_lse):
    return torch.empty_like(query), torch.empty_like(key), torch.empty_like(scale)


def _infonce_setup(ctx, inputs, output):
    query, key, scale, targets, exclude, col_targets = inputs
    ctx.save_for_backward(query, key, scale, targets, exclude, col_targets, output[1], output[3])


def _infonce_backward(ctx, grad_rows, grad_lse, grad_cols, grad_col_lse):
    query, key, scale, targets, exclude, col_targets, lse, col_lse = ctx.saved_tensors
    grad_rows = torch.zeros_like(lse) if grad_rows is None else grad_rows
    grad_cols = torch.zeros_like(col_lse) if grad_cols is None else grad_cols
    dq, dk, ds = _infonce_backward_op(grad_rows, grad_cols, query, key, scale, targets, exclude, col_targets, lse,
                                      col_lse)  # fmt: skip
    return dq, dk, ds, None, None, None


_infonce_op.register_autograd(_infonce_backward, setup_context=_infonce_setup)


# --- SigLIP ------------------------------------------------------------------------------------------


def _siglip_signs(n, m, targets, device):
    """-1 at (i, targets[i]), +1 elsewhere: softplus(sign * (z + bias)) is -log sigmoid(label * (z + bias))."""
    sign = torch.ones(n, m, device=device)
    sign[torch.arange(n, device=device), targets.long()] = -1.0
    return sign


def siglip_backward_reference(grad_rows, query, key, scale, bias, targets):
    """The explicit backward in plain torch (the CPU path's): (d query, d key, d scale, d bias) in float32."""
    z = _logits(query, key, scale)
    sign = _siglip_signs(*z.shape, targets, z.device)
    dz = grad_rows.float()[:, None] * sign * torch.sigmoid(sign * (z + bias.float()))
    gq, gk = dz @ key.float(), dz.T @ query.float()
    s = scale.float()
    return gq * s, gk * s, (query.float() * gq).sum(), dz.sum()


@torch.library.custom_op("fastpretrain::siglip", mutates_args=())
def _siglip_op(query: torch.Tensor, key: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
               targets: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Per-row loss [N] float32: the sum over the M keys of -log sigmoid(label * (z + bias))."""
    if use_kernel(query):
        from fastpretrain.kernels.infonce import siglip_rows

        return siglip_rows(query, key, scale, bias, targets)
    z = _logits(query, key, scale)
    return F.softplus(_siglip_signs(*z.shape, targets, z.device) * (z + bias.float())).sum(1)


@_siglip_op.register_fake
def _(query, key, scale, bias, targets):
    return query.new_empty(query.shape[0], dtype=torch.float32)


@torch.library.custom_op("fastpretrain::siglip_backward", mutates_args=())
def _siglip_backward_op(grad_rows: torch.Tensor, query: torch.Tensor, key: torch.Tensor, scale: torch.Tensor,
                        bias: torch.Tensor,
                        targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(d query, d key, d scale, d bias) in the inputs' dtypes."""
    if use_kernel(query):
        from fastpretrain.kernels.infonce import contrastive_backward

        dq, dk, ds, db = contrastive_backward(query, key, scale, grad_rows, targets, bias=bias)
    else:
        dq, dk, ds, db = siglip_backward_reference(grad_rows, query, key, scale, bias, targets)
    return dq.to(query.dtype), dk.to(key.dtype), ds.to(scale.dtype), db.to(bias.dtype)


@_siglip_backward_op.register_fake
def _(grad_rows, query, key, scale, bias, targets):
    return torch.empty_like(query), torch.empty_like(key), torch.empty_like(scale), torch.empty_like(bias)


def _siglip_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _siglip_backward(ctx, grad_rows):
    query, key, scale, bias, targets = ctx.saved_tensors
    return *_siglip_backward_op(grad_rows, query, key, scale, bias, targets), None


_siglip_op.register_autograd(_siglip_backward, setup_context=_siglip_setup)


# --- public functions --------------------------------------------------------------------------------


def _scalar(name, value, like):
    """``value`` (a real number or a one-element float tensor) as a float32 0-d tensor on ``like``'s device,
    differentiable when it is a tensor."""
    if isinstance(value, torch.Tensor):
        checks.tensor(name, value, checks.FLOAT, "of one element")
        if value.numel() != 1:
            raise ValueError(f"{name}: expected a real number or a one-element tensor, got shape {tuple(value.shape)}")
        checks.device_like(name, value, "query", like)
        return value.float().reshape(())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number or a one-element float tensor, got {type(value).__name__}")
    return torch.tensor(float(value), device=like.device)


def _prepare(query, key, targets, exclude, symmetric, reduction, normalize, dtypes=checks.FLOAT):
    """Checked inputs: (query, key, targets [N] int64 or as given, exclude or None)."""
    checks.tensor("query", query, dtypes, "[N, D]")
    if query.dim() != 2 or query.numel() == 0:
        raise ValueError(f"query: expected a non-empty [N, D] tensor, got shape {tuple(query.shape)}")
    n, d = query.shape
    checks.tensor("key", key, dtypes, "[M, D]")
    checks.dtype_like("key", key, "query", query)
    if key.dim() != 2 or key.shape[0] == 0 or key.shape[1] != d:
        raise ValueError(f"key: expected a non-empty [M, {d}] tensor, got shape {tuple(key.shape)}")
    checks.device_like("key", key, "query", query)
    m = key.shape[0]
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize: expected a bool, got {type(normalize).__name__}")
    if symmetric and (m != n or targets is not None or exclude is not None):
        raise ValueError(f"symmetric: needs as many keys as queries and the diagonal positives (targets=None, "
                         f"exclude=None), got N={n}, M={m}")  # fmt: skip
    if targets is None:
        if m < n:
            raise ValueError(f"targets: None pairs query i with key i, so needs M >= N, got N={n}, M={m}")
        targets = torch.arange(n, device=query.device)
    checks.tensor("targets", targets, checks.INDEX, "[N]")
    checks.shape("targets", targets, (n,))
    checks.device_like("targets", targets, "query", query)
    checks.ids_in_range("targets", targets, m)
    if exclude is not None:
        checks.tensor("exclude", exclude, checks.INDEX, "[N]")
        checks.shape("exclude", exclude, (n,))
        checks.device_like("exclude", exclude, "query", query)
        checks.ids_in_range("exclude", exclude, m, ignore=-1)
        if checks.host_sync_free(exclude) and bool((exclude == targets).any()):
            raise ValueError("exclude: a row's excluded key is its target (its loss would be infinite)")
    if normalize:
        query, key = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
    return query, key, targets, exclude


def _reduce(rows, reduction):
    return rows if reduction == "none" else rows.sum() if reduction == "sum" else rows.mean()


def infonce_loss(query, key, scale, *, targets=None, exclude=None, symmetric=False, normalize=True, reduction="mean"):
    """InfoNCE: ``F.cross_entropy(scale * q @ k.T, targets)`` (q, k L2-normalised rows when ``normalize``)
    without the [N, M] logits in memory.

    Args:
        query: [N, D] float32 / float16 / bfloat16; key: [M, D] in query's dtype.
        scale: 1 / temperature: a real number, or a one-element float tensor (learnable: it gets a gradient).
        targets: [N] int64/int32, the positive key of each query (default: key i, which needs M >= N;
            keys past N are extra negatives).
        exclude: [N] int64/int32, one key per query left out of its softmax (-1: none), e.g. SimCLR's
            self-similarity; see :func:`simclr_targets`.
        symmetric: CLIP's loss, the mean of both directions (queries over keys and keys over queries,
            N == M, diagonal positives); "none" then gives (row_i + column_i) / 2.
        reduction: "mean", "sum" or "none" ([N]).
    Returns the loss in float32; gradients reach query, key and a tensor scale.
    """
    query, key, targets, exclude = _prepare(query, key, targets, exclude, symmetric, reduction, normalize)
    scale = _scalar("scale", scale, query)
    col_targets = targets if symmetric else None
    rows, _, cols, _ = _infonce_op(query, key, scale, targets, exclude, col_targets)
    return _reduce((rows + cols) / 2 if symmetric else rows, reduction)


def infonce_loss_reference(query, key, scale, *, targets=None, exclude=None, symmetric=False, normalize=True,
                           reduction="mean"):  # fmt: skip
    """Pure torch, the spec: F.cross_entropy on the materialised float32 logits (excluded keys at -inf)."""
    query, key, targets, exclude = _prepare(query, key, targets, exclude, symmetric, reduction, normalize, ORACLE)
    z = _logits(query, key, _scalar("scale", scale, query))
    rows = F.cross_entropy(_masked(z, exclude), targets.long(), reduction="none")
    if symmetric:
        rows = (rows + F.cross_entropy(z.T, targets.long(), reduction="none")) / 2
    return _reduce(rows, reduction)


def simclr_targets(n: int, device=None, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, exclude) for SimCLR's NT-Xent over z = cat(view 1, view 2) of 2n rows, whose rows sit at
    ``offset`` in the key matrix (another rank's share of a gathered batch starts further on): row i's
    positive is its other view, (i + n) mod 2n, and its own column is left out, leaving 2n - 1 candidates."""
    n = checks.integer("n", n, 1)
    rows = torch.arange(2 * n, device=device)
    return (rows + n) % (2 * n) + offset, rows + offset


def siglip_loss(query, key, scale, bias, *, targets=None, normalize=True, reduction="mean"):
    """SigLIP (Zhai et al. 2023): -log sigmoid(label_ij (scale q_i.k_j + bias)) summed over every pair,
    label +1 at (i, targets[i]) (default: the diagonal), -1 elsewhere, without the [N, M] logits in memory.

    ``scale`` and ``bias``: real numbers or learnable one-element float tensors (SigLIP initialises
    them to 10 and -10). reduction: "mean" divides the sum by N, as the paper does (not by N * M),
    "sum", or "none" (the per-query sums, [N]). Returns float32; gradients reach query, key, scale, bias.
    """
    query, key, targets, _ = _prepare(query, key, targets, None, False, reduction, normalize)
    rows = _siglip_op(query, key, _scalar("scale", scale, query), _scalar("bias", bias, query), targets)
    return _reduce(rows, reduction)


def siglip_loss_reference(query, key, scale, bias, *, targets=None, normalize=True, reduction="mean"):
    """Pure torch, the spec: -logsigmoid on the materialised float32 logits."""
    query, key, targets, _ = _prepare(query, key, targets, None, False, reduction, normalize, ORACLE)
    z = _logits(query, key, _scalar("scale", scale, query)) + _scalar("bias", bias, query)
    labels = -_siglip_signs(*z.shape, targets, z.device)
    return _reduce(-F.logsigmoid(labels * z).sum(1), reduction)
