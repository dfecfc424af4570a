"""Positional embeddings: fixed sin-cos tables (1-D, and MAE's 2-D for patch grids) and BEiT's
learned relative position bias. Learned absolute positions are a plain ``nn.Parameter`` (ViT's
``pos_embed``) or ``nn.Embedding`` (BERT), which keeps the reference projects' weight names."""

from __future__ import annotations

import torch
from torch import nn

from fastpretrain.checks import check_int


def _sincos(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """float64 [N, dim]: ``[sin(pos * omega), cos(pos * omega)]``, ``omega_i = 10000 ** (-i / (dim / 2))``."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    out = pos.reshape(-1, 1).to(torch.float64) * omega
    return torch.cat([out.sin(), out.cos()], dim=1)


def sincos_pos_embed_1d(dim: int, length: int) -> torch.Tensor:
    """The sin-cos table of positions 0 .. length - 1, float32 [length, dim] (MAE's 1-D formula)."""
    check_int("dim", dim, 2)
    check_int("length", length, 1)
    if dim % 2:
        raise ValueError(f"dim: the 1-D sin-cos embedding needs an even width, got {dim}")
    return _sincos(dim, torch.arange(length)).float()


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int | None = None, cls_token: bool = True) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos positional embedding (``util/pos_embed.py``), float32
    [cls_token + grid_h * grid_w, dim]; the cls row is zeros.

    Patches are numbered row-major (h outer). As in MAE's code (``np.meshgrid(grid_w, grid_h)``),
    the first half of the channels encodes the column (w) and the second half the row (h), each a
    1-D table of width dim / 2.
    """
    check_int("dim", dim, 4)
    if dim % 4:
        raise ValueError(f"dim: the 2-D sin-cos embedding needs a multiple of 4, got {dim}")
    grid_w = grid_h if grid_w is None else grid_w
    h, w = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64),
                          indexing="ij")  # fmt: skip
    emb = torch.cat([_sincos(dim // 2, w), _sincos(dim // 2, h)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb])
    return emb.float()


class RelativePositionBias(nn.Module):
    """BEiT's relative position bias for a cls token and a (grid_h, grid_w) patch grid: one learned
    bias per head for each relative offset (dy, dx) between two patches, and three more for
    cls -> patch, patch -> cls and cls -> cls. ``forward()`` -> the additive attention bias
    [num_heads, 1 + L, 1 + L] (query rows, key columns)."""

    def __init__(self, grid_h: int, grid_w: int, num_heads: int, device=None, dtype=None) -> None:
        super().__init__()
        for name, value in (("grid_h", grid_h), ("grid_w", grid_w), ("num_heads", num_heads)):
            check_int(name, value, 1)
        offsets = (2 * grid_h - 1) * (2 * grid_w - 1)
        table = torch.zeros(offsets + 3, num_heads, device=device, dtype=dtype)
        self.relative_position_bias_table = nn.Parameter(table)
        y, x = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
        y, x = y.flatten(), x.flatten()
        dy, dx = y[:, None] - y[None, :] + grid_h - 1, x[:, None] - x[None, :] + grid_w - 1
        length = grid_h * grid_w
        index = torch.empty(1 + length, 1 + length, dtype=torch.long)
        index[1:, 1:] = dy * (2 * grid_w - 1) + dx
        index[0, :], index[:, 0], index[0, 0] = offsets, offsets + 1, offsets + 2
        self.register_buffer("relative_position_index", index.to(device), persistent=False)

    def forward(self) -> torch.Tensor:
        return self.relative_position_bias_table[self.relative_position_index].permute(2, 0, 1)
