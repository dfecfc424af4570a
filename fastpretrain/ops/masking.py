"""MAE's random patch masking as torch ops: the per-sample random subset (:func:`random_masking`),
the encoder's gather of visible tokens with the positional embedding added (:func:`gather_visible`)
and the decoder's unshuffle that puts the visible tokens back, fills the rest with the mask token
and adds the decoder positional embedding (:func:`unshuffle_tokens`), each one pass over memory.

The spec is facebookresearch/mae ``models_mae.py`` (``random_masking``, ``forward_encoder``,
``forward_decoder``); ``gather_visible_reference`` and ``unshuffle_tokens_reference`` are its code.

Dtypes: the output (and the gradient of x) is in x's dtype. The positional embedding and the mask
token may be another float dtype (MAE under bf16 autocast: bf16 activations, fp32 parameters):
every term is taken to float32, added once, and the sum rounded once to x's dtype. (MAE itself
returns float32 there, because ``x + pos_embed`` promotes; the result here is that value rounded to
x's dtype.) Gradients of pos_embed and mask_token are summed in float32 and rounded once to their
own dtypes.

Index contract: each row of ``ids_keep`` holds distinct positions in [0, L), and each row of
``ids_restore`` is a permutation of [0, L), as :func:`random_masking` makes them; checked on CPU
tensors in eager mode only (no host sync on the GPU path, no data-dependent branch under
torch.compile). A violation would make the gradients wrong.

Noise order: the masking keeps the lowest-noise positions in the order of a stable ascending
``torch.argsort`` (ties by position, -0.0 equal to +0.0, NaN after +inf), for any float, on the
kernel and the reference path alike. NaN noise is ordered rather than refused, since refusing it
would cost a host sync on the GPU path and ``torch.argsort`` already gives NaN a place.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from fastpretrain.kernels import contract
from fastpretrain.ops import checks
from fastpretrain.ops.dispatch import use_kernel


class Masking(NamedTuple):
    """One random masking of a [B, L] patch grid (MAE's ``random_masking`` outputs).

    ids_keep: int64 [B, L_keep], the kept positions (in random order, as MAE's ``ids_shuffle[:, :L_keep]``).
    ids_restore: int64 [B, L], the inverse permutation of the shuffle: for position j,
        ``ids_restore[b, j] < L_keep`` iff j is kept, and then ``ids_keep[b, ids_restore[b, j]] == j``.
    mask: float32 [B, L], 1 = masked (removed), 0 = kept; the MAE loss weights.
    """

    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor


def num_kept(length: int, mask_ratio: float) -> int:
    """MAE's rule: ``int(L * (1 - mask_ratio))``."""
    return int(length * (1 - mask_ratio))


def random_masking(batch: int, length: int, mask_ratio: float, *, generator: torch.Generator | None = None,
                   device=None) -> Masking:  # fmt: skip
    """Per-sample uniform random subset of ``L_keep = int(L * (1 - mask_ratio))`` kept positions.

    Exactly MAE's draw: ``noise = torch.rand(B, L)``; ``ids_shuffle = argsort(noise)``;
    ``ids_keep = ids_shuffle[:, :L_keep]``; only the inverse permutation is a scatter here instead
    of MAE's second argsort, and the mask is read off it (one sort in all). On the GPU one Triton
    program per sample sorts its row in registers and writes all three outputs (two launches in
    all: ``torch.rand`` and that kernel); ties in the noise (torch.rand's floats have 24 random
    bits, so about one row in a thousand at L=196) are broken by position on both paths (a stable
    sort, which MAE's ``torch.argsort`` does not promise). Deterministic given ``generator`` (or
    ``torch.manual_seed``); ``device`` defaults to the generator's device.
    """
    batch, length = checks.integer("batch", batch, 1), checks.integer("length", length, 1)
    keep = _kept(length, mask_ratio)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    device = torch.device(device) if device is not None else (generator.device if generator is not None else None)
    if generator is not None and device is not None and generator.device.type != device.type:
        raise ValueError(f"generator: it lives on {generator.device}, but device={device}")
    return Masking(*_masking_op(torch.rand(batch, length, generator=generator, device=device), keep))


def masking_from_noise(noise: torch.Tensor, mask_ratio: float) -> Masking:
    """The masking :func:`random_masking` draws, for given ``noise`` [B, L] (MAE's and Hugging
    Face's ``noise`` argument): the ``int(L * (1 - mask_ratio))`` lowest-noise positions are kept,
    in the order of a stable ascending argsort (see the module docstring for ties and NaN)."""
    checks.tensor("noise", noise, checks.FLOAT, "[B, L]")
    checks.dims("noise", noise, 2, "[B, L]")
    return Masking(*_masking_op(noise.float(), _kept(noise.shape[1], mask_ratio)))


def check_mask_ratio(mask_ratio, length: int) -> float:
    """``mask_ratio`` as a float in [0, 1) that keeps at least one of ``length`` positions, or a
    ValueError naming it: the one check, made by the masking ops and by configs that hold a ratio."""
    mask_ratio = checks.real("mask_ratio", mask_ratio, "a float in [0, 1)", lambda r: 0.0 <= r < 1.0)
    if num_kept(length, mask_ratio) < 1:
        raise ValueError(f"mask_ratio: {mask_ratio} keeps no patch of {length}: int({length} * (1 - {mask_ratio})) "
                         "= 0, and at least one must be kept")  # fmt: skip
    return float(mask_ratio)


def _kept(length: int, mask_ratio) -> int:
    """How many of ``length`` positions ``mask_ratio`` keeps, checked."""
    return num_kept(length, check_mask_ratio(mask_ratio, length))


@torch.library.custom_op("fastpretrain::masking_from_noise", mutates_args=())
def _masking_op(noise: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids_keep, ids_restore, mask) of the ascending order of each noise row, its first ``keep`` kept;
    rows longer than the kernel sorts in registers take the reference's torch sort."""
    if use_kernel(noise) and noise.shape[1] <= contract.MAX_SORT:
        from fastpretrain.kernels.masking import masking_from_noise

        return masking_from_noise(noise, keep)
    return masking_from_noise_reference(noise, keep)


@_masking_op.register_fake
def _(noise, keep):
    b, length = noise.shape
    ids_restore = noise.new_empty(b, length, dtype=torch.int64)
    return noise.new_empty(b, keep, dtype=torch.int64), ids_restore, noise.new_empty(b, length)


# --- references: MAE's code, the spec and the CPU path -------------------------------------------


def masking_from_noise_reference(noise: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's ``random_masking`` steps on a stable argsort, its second argsort replaced by a scatter:
    (ids_keep, ids_restore, mask) with the ``keep`` lowest-noise positions of each row kept."""
    ids_shuffle = torch.argsort(noise, dim=1, stable=True)
    ranks = torch.arange(noise.shape[1], device=noise.device).expand(noise.shape)
    ids_restore = torch.empty_like(ids_shuffle).scatter_(1, ids_shuffle, ranks)
    return ids_shuffle[:, :keep].contiguous(), ids_restore, (ids_restore >= keep).to(torch.float32)


def gather_visible_reference(x: torch.Tensor, pos_embed: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """MAE's ``forward_encoder`` steps: ``x = x + pos_embed``, then the ``torch.gather`` of
    ``random_masking``; rounded to x's dtype (see the module docstring). Differentiable."""
    b, length, d = x.shape
    x = (x + pos_embed.reshape(1, length, d)).to(x.dtype)
    return torch.gather(x, dim=1, index=ids_keep.long().unsqueeze(-1).repeat(1, 1, d))


def unshuffle_tokens_reference(x: torch.Tensor, mask_token: torch.Tensor, pos_embed: torch.Tensor,
                               ids_restore: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """MAE's ``forward_decoder`` steps after ``decoder_embed``: append mask tokens, unshuffle with
    ``ids_restore``, put the cls token back, add ``decoder_pos_embed``; rounded to x's dtype."""
    dtype, d = x.dtype, x.shape[-1]
    ids_restore = ids_restore.long()
    mask_tokens = mask_token.reshape(1, 1, d).repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
    x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)  # no cls token
    x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, d))  # unshuffle
    x = torch.cat([x[:, :1, :], x_], dim=1)  # append cls token
    return (x + pos_embed.reshape(1, -1, d)).to(dtype)


def gather_visible_backward_reference(grad_out: torch.Tensor, ids_keep: torch.Tensor, length: int, need_dx: bool,
                                      pos_dtype: torch.dtype | None):  # fmt: skip
    """The gather's backward in plain torch: (dx [B, L, D] or None, dpos [L, D] in pos_dtype or None),
    summed in float32 and rounded once."""
    b, k, d = grad_out.shape
    index = ids_keep.long().unsqueeze(-1).expand(b, k, d)
    full = grad_out.new_zeros(b, length, d, dtype=torch.float32).scatter_(1, index, grad_out.float())
    dx = full.to(grad_out.dtype) if need_dx else None
    return dx, full.sum(0).to(pos_dtype) if pos_dtype is not None else None


def unshuffle_tokens_backward_reference(grad_out: torch.Tensor, ids_restore: torch.Tensor, keep: int, need_dx: bool,
                                        token_dtype: torch.dtype | None, pos_dtype: torch.dtype | None):  # fmt: skip
    """The unshuffle's backward in plain torch: (dx [B, 1 + K, D], dtoken [D], dpos [1 + L, D]), each
    None when not asked for, summed in float32 and rounded once."""
    g = grad_out.float()
    b, _, d = g.shape
    body = g[:, 1:]
    kept = (ids_restore < keep).unsqueeze(-1)
    dx = dtoken = dpos = None
    if need_dx:  # slot r of the shuffled sequence came from row j: dx[b, 1 + r] = dout[b, 1 + j]
        index = ids_restore.long().clamp(max=keep).unsqueeze(-1).expand_as(body)
        rows = g.new_zeros(b, keep + 1, d).scatter_(1, index, body * kept)[:, :keep]
        dx = torch.cat([g[:, :1], rows], 1).to(grad_out.dtype)
    if token_dtype is not None:
        dtoken = (body * ~kept).sum((0, 1)).to(token_dtype)
    if pos_dtype is not None:
        dpos = g.sum(0).to(pos_dtype)
    return dx, dtoken, dpos


# --- gather_visible op ---------------------------------------------------------------------------


@torch.library.custom_op("fastpretrain::gather_visible_forward", mutates_args=())
def _gather_op(x: torch.Tensor, pos: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """x [B, L, D], pos [L, D], ids_keep [B, K] -> [B, K, D] contiguous."""
    if use_kernel(x):
        from fastpretrain.kernels.masking import gather_forward

        return gather_forward(x, pos, ids_keep)
    return gather_visible_reference(x, pos, ids_keep).contiguous()


@_gather_op.register_fake
def _(x, pos, ids_keep):
    return x.new_empty(x.shape[0], ids_keep.shape[1], x.shape[2])


@torch.library.custom_op("fastpretrain::gather_visible_backward", mutates_args=())
def _gather_backward_op(grad_out: torch.Tensor, ids_keep: torch.Tensor, length: int, need_dx: bool,
                        pos_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(dx [B, L, D] in grad_out's dtype, dpos [L, D] in pos_dtype); an empty tensor for a gradient
    not asked for (need_dx False, pos_dtype None)."""
    if use_kernel(grad_out):
        from fastpretrain.kernels.masking import gather_backward

        dx, dpos = gather_backward(grad_out, ids_keep, length, need_dx, pos_dtype)
    else:
        dx, dpos = gather_visible_backward_reference(grad_out, ids_keep, length, need_dx, pos_dtype)
    return _or_empty(dx, grad_out), _or_empty(dpos, grad_out)


@_gather_backward_op.register_fake
def _(grad_out, ids_keep, length, need_dx, pos_dtype):
    b, _, d = grad_out.shape
    dx = grad_out.new_empty(b, length, d) if need_dx else grad_out.new_empty(0)
    dpos = grad_out.new_empty(length, d, dtype=pos_dtype) if pos_dtype is not None else grad_out.new_empty(0)
    return dx, dpos


def _or_empty(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Custom ops return tensors, so a gradient not asked for comes back as an empty one."""
    return like.new_empty(0) if t is None else t


def _gather_setup(ctx, inputs, output):
    x, pos, ids_keep = inputs
    ctx.save_for_backward(ids_keep)
    ctx.length, ctx.pos_dtype = x.shape[1], pos.dtype


def _gather_backward(ctx, grad_out):
    (ids_keep,) = ctx.saved_tensors
    need_dx, need_pos = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if not (need_dx or need_pos):
        return None, None, None
    dx, dpos = _gather_backward_op(grad_out, ids_keep, ctx.length, need_dx, ctx.pos_dtype if need_pos else None)
    return (dx if need_dx else None), (dpos if need_pos else None), None


_gather_op.register_autograd(_gather_backward, setup_context=_gather_setup)


# --- unshuffle_tokens op -------------------------------------------------------------------------


@torch.library.custom_op("fastpretrain::unshuffle_tokens_forward", mutates_args=())
def _unshuffle_op(x: torch.Tensor, token: torch.Tensor, pos: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
    """x [B, 1 + K, D], token [D], pos [1 + L, D], ids_restore [B, L] -> [B, 1 + L, D] contiguous."""
    if use_kernel(x):
        from fastpretrain.kernels.masking import unshuffle_forward

        return unshuffle_forward(x, token, pos, ids_restore)
    return unshuffle_tokens_reference(x, token, pos, ids_restore).contiguous()


@_unshuffle_op.register_fake
def _(x, token, pos, ids_restore):
    return x.new_empty(x.shape[0], ids_restore.shape[1] + 1, x.shape[2])


@torch.library.custom_op("fastpretrain::unshuffle_tokens_backward", mutates_args=())
def _unshuffle_backward_op(grad_out: torch.Tensor, ids_restore: torch.Tensor, keep: int, need_dx: bool,
                           token_dtype: torch.dtype | None, pos_dtype: torch.dtype | None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(dx [B, 1 + K, D], dtoken [D], dpos [1 + L, D]); empty for a gradient not asked for."""
    if use_kernel(grad_out):
        from fastpretrain.kernels.masking import unshuffle_backward

        dx, dtoken, dpos = unshuffle_backward(grad_out, ids_restore, keep, need_dx, token_dtype, pos_dtype)
    else:
        dx, dtoken, dpos = unshuffle_tokens_backward_reference(grad_out, ids_restore, keep, need_dx, token_dtype,
                                                               pos_dtype)  # fmt: skip
    return _or_empty(dx, grad_out), _or_empty(dtoken, grad_out), _or_empty(dpos, grad_out)


@_unshuffle_backward_op.register_fake
def _(grad_out, ids_restore, keep, need_dx, token_dtype, pos_dtype):
    b, l1, d = grad_out.shape
    dx = grad_out.new_empty(b, keep + 1, d) if need_dx else grad_out.new_empty(0)
    dtoken = grad_out.new_empty(d, dtype=token_dtype) if token_dtype is not None else grad_out.new_empty(0)
    dpos = grad_out.new_empty(l1, d, dtype=pos_dtype) if pos_dtype is not None else grad_out.new_empty(0)
    return dx, dtoken, dpos


def _unshuffle_setup(ctx, inputs, output):
    x, token, pos, ids_restore = inputs
    ctx.save_for_backward(ids_restore)
    ctx.keep, ctx.token_dtype, ctx.pos_dtype = x.shape[1] - 1, token.dtype, pos.dtype


def _unshuffle_backward(ctx, grad_out):
    (ids_restore,) = ctx.saved_tensors
    need_dx, need_token, need_pos = ctx.needs_input_grad[:3]
    if not (need_dx or need_token or need_pos):
        return None, None, None, None
    dx, dtoken, dpos = _unshuffle_backward_op(grad_out, ids_restore, ctx.keep, need_dx,
                                              ctx.token_dtype if need_token else None,
                                              ctx.pos_dtype if need_pos else None)  # fmt: skip
    return (dx if need_dx else None), (dtoken if need_token else None), (dpos if need_pos else None), None


_unshuffle_op.register_autograd(_unshuffle_backward, setup_context=_unshuffle_setup)


# --- public functions ----------------------------------------------------------------------------


def _check_index(name: str, ids, batch: int, x: torch.Tensor, layout: str) -> None:
    checks.tensor(name, ids, checks.INDEX, layout)
    if ids.dim() != 2 or ids.shape[0] != batch:
        raise ValueError(f"{name}: expected shape {layout}, got {tuple(ids.shape)}")
    checks.device_like(name, ids, "x", x)


def _as_rows(name: str, t: torch.Tensor, rows: int, width: int, dims: str) -> torch.Tensor:
    """[rows, width] or [1, rows, width] -> a [rows, width] view (a copy only for odd strides)."""
    if tuple(t.shape) not in ((rows, width), (1, rows, width)):
        raise ValueError(f"{name}: expected shape {dims} = ({rows}, {width}) or (1, {rows}, {width}), "
                         f"got {tuple(t.shape)}")  # fmt: skip
    return t.reshape(rows, width)


def gather_visible(x: torch.Tensor, pos_embed: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """The visible tokens with their positional embedding: ``out[b, i] = x[b, p] + pos_embed[p]``
    for ``p = ids_keep[b, i]`` (MAE's ``x + pos_embed`` then gather, in one pass).

    Args:
        x: [B, L, D] patch embeddings, float32 / float16 / bfloat16.
        pos_embed: [L, D] or [1, L, D] (MAE's layout), any of those float dtypes; a frozen buffer
            (MAE's fixed sin-cos) costs no gradient work.
        ids_keep: int64 (or int32) [B, K], distinct positions in [0, L) per row, e.g.
            ``random_masking(...).ids_keep``.
    Returns [B, K, D] in x's dtype; gradients flow to x (zero at removed positions) and pos_embed.
    """
    checks.tensor("x", x, checks.FLOAT, "[B, L, D]")
    checks.dims("x", x, 3, "[B, L, D]")
    b, length, d = x.shape
    checks.tensor("pos_embed", pos_embed, checks.FLOAT, "[L, D]")
    checks.device_like("pos_embed", pos_embed, "x", x)
    pos = _as_rows("pos_embed", pos_embed, length, d, "[L, D]")
    _check_index("ids_keep", ids_keep, b, x, f"[B={b}, K]")
    k = ids_keep.shape[1]
    if not 1 <= k <= length:
        raise ValueError(f"ids_keep: expected 1 <= K <= L = {length} kept positions per row, got K = {k}")
    if checks.host_sync_free(ids_keep) and b > 0:
        ordered = ids_keep.sort(1).values
        if ordered[:, 0].min() < 0 or ordered[:, -1].max() >= length or (ordered.diff(dim=1) == 0).any():
            raise ValueError(f"ids_keep: expected distinct positions in [0, {length}) in each row")
    return _gather_op(x, pos, ids_keep)


def unshuffle_tokens(x: torch.Tensor, mask_token: torch.Tensor, pos_embed: torch.Tensor,
                     ids_restore: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """MAE's decoder input in one pass: visible tokens back in place, ``mask_token`` elsewhere, plus
    the decoder positional embedding.

    ``out[b, 0] = x[b, 0] + pos[0]`` (cls token) and for j < L, with ``r = ids_restore[b, j]``:
    ``out[b, 1 + j] = (x[b, 1 + r] if r < K else mask_token) + pos[1 + j]``.

    Args:
        x: [B, 1 + K, Dd] encoder output (after ``decoder_embed``), token 0 the cls token.
        mask_token: [Dd] or [1, 1, Dd] (MAE's layout).
        pos_embed: [1 + L, Dd] or [1, 1 + L, Dd].
        ids_restore: int64 (or int32) [B, L], a permutation of [0, L) per row, e.g.
            ``random_masking(...).ids_restore``; K = x.shape[1] - 1 <= L.
    Returns [B, 1 + L, Dd] in x's dtype; gradients flow to x, mask_token and pos_embed.
    """
    checks.tensor("x", x, checks.FLOAT, "[B, 1 + K, Dd]")
    if x.dim() != 3 or x.shape[1] < 1:
        raise ValueError(f"x: expected a 3-d [B, 1 + K, Dd] tensor (token 0 = cls), got shape {tuple(x.shape)}")
    b, k1, d = x.shape
    _check_index("ids_restore", ids_restore, b, x, f"[B={b}, L]")
    length = ids_restore.shape[1]
    if length < 1:
        raise ValueError(f"ids_restore: expected at least one position per row, got shape {tuple(ids_restore.shape)}")
    if k1 - 1 > length:
        raise ValueError(f"x: holds K = {k1 - 1} visible tokens (after cls), more than L = {length} positions "
                         f"of ids_restore")  # fmt: skip
    checks.tensor("mask_token", mask_token, checks.FLOAT, "[Dd]")
    checks.device_like("mask_token", mask_token, "x", x)
    if tuple(mask_token.shape) not in ((d,), (1, 1, d)):
        raise ValueError(f"mask_token: expected shape ({d},) or (1, 1, {d}) like x's width, "
                         f"got {tuple(mask_token.shape)}")  # fmt: skip
    checks.tensor("pos_embed", pos_embed, checks.FLOAT, "[1 + L, Dd]")
    checks.device_like("pos_embed", pos_embed, "x", x)
    pos = _as_rows("pos_embed", pos_embed, length + 1, d, "[1 + L, Dd]")
    if checks.host_sync_free(ids_restore) and b > 0:
        ordered = ids_restore.sort(1).values
        if not torch.equal(ordered, torch.arange(length, dtype=ordered.dtype).expand(b, length)):
            raise ValueError(f"ids_restore: expected a permutation of [0, {length}) in each row")
    return _unshuffle_op(x, mask_token.reshape(d), pos, ids_restore)
