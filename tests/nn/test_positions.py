"""Positions: the 1-D sin-cos table is MAE's 1-D formula and the 2-D one is two 1-D halves (column,
then row); BEiT's relative position bias is one learned entry per relative offset, shared by every
patch pair with that offset, plus three for the cls token."""

import numpy as np
import pytest
import torch

from fastpretrain.nn import RelativePositionBias, sincos_pos_embed_1d, sincos_pos_embed_2d


def _mae_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    """facebookresearch/mae util/pos_embed.py get_1d_sincos_pos_embed_from_grid (float64)."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


@pytest.mark.parametrize("dim, length", [(2, 1), (16, 9), (64, 50)])
def test_sincos_1d_is_maes_formula(dim, length):
    ours = sincos_pos_embed_1d(dim, length)
    assert ours.dtype == torch.float32 and ours.shape == (length, dim)
    np.testing.assert_allclose(ours.numpy(), _mae_1d(dim, np.arange(length, dtype=np.float64)), atol=1e-6)
    with pytest.raises(ValueError, match="dim: the 1-D sin-cos embedding needs an even width"):
        sincos_pos_embed_1d(7, 3)


def test_sincos_2d_is_the_column_then_the_row_table():
    table = sincos_pos_embed_2d(16, 3, 4, cls_token=False)  # 3 rows, 4 columns, row-major
    one_d = sincos_pos_embed_1d(8, 4)
    assert torch.equal(table[1 * 4 + 2, :8], one_d[2]) and torch.equal(table[1 * 4 + 2, 8:], one_d[1])
    assert torch.equal(sincos_pos_embed_2d(16, 3, 4)[0], torch.zeros(16))


def test_relative_position_bias_is_shared_by_equal_offsets():
    gh, gw, heads = 3, 4, 2
    rpb = RelativePositionBias(gh, gw, heads)
    offsets = (2 * gh - 1) * (2 * gw - 1)
    assert rpb.relative_position_bias_table.shape == (offsets + 3, heads)
    assert "relative_position_index" not in rpb.state_dict()  # rebuilt from the grid, not saved
    with torch.no_grad():
        rpb.relative_position_bias_table.copy_(torch.randn(offsets + 3, heads))
    bias = rpb()
    assert bias.shape == (heads, 1 + gh * gw, 1 + gh * gw)
    by_offset = {}
    for i in range(gh * gw):
        for j in range(gh * gw):
            offset = (i // gw - j // gw, i % gw - j % gw)
            by_offset.setdefault(offset, []).append(bias[:, 1 + i, 1 + j])
    assert len(by_offset) == offsets
    for values in by_offset.values():
        assert all(torch.equal(v, values[0]) for v in values)
    distinct = {tuple(v[0].tolist()) for v in by_offset.values()}
    assert len(distinct) == offsets  # different offsets, different entries
    table = rpb.relative_position_bias_table
    assert torch.equal(bias[:, 0, 1:], table[offsets][:, None].expand(heads, gh * gw))  # cls -> patch
    assert torch.equal(bias[:, 1:, 0], table[offsets + 1][:, None].expand(heads, gh * gw))  # patch -> cls
    assert torch.equal(bias[:, 0, 0], table[offsets + 2])  # cls -> cls
    bias.sum().backward()
    assert (table.grad > 0).all()  # every entry is used
