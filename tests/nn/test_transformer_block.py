"""The layer library's block: pre-norm and causal blocks against hand-written SDPA ones, packed
varlen input equal to each sequence alone (and to a padded batch), LayerScale, DropPath per
sample and per packed sequence, the MLP's two dropouts, FLOPs, and the head widths the op takes."""

import pytest
import torch
import torch.nn.functional as F

from fastpretrain.nn import HEAD_DIMS, DropPath, Mlp, TransformerBlock, unpad
from fastpretrain.ops import attention

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)


def eager_block(block: TransformerBlock, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """A pre-norm block on [B, S, E] written out with F.* and SDPA."""
    b, s, e = x.shape
    h = block.attn.num_heads
    ln = lambda y, n: F.layer_norm(y, (e,), n.weight, n.bias, n.eps)  # noqa: E731
    ls = lambda y, m: y * m.gamma if hasattr(m, "gamma") else y  # noqa: E731
    q, k, v = F.linear(ln(x, block.norm1), block.attn.qkv.weight, block.attn.qkv.bias).chunk(3, -1)
    q, k, v = (t.view(b, s, h, e // h).transpose(1, 2) for t in (q, k, v))
    a = F.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(1, 2).reshape(b, s, e)
    x = x + ls(F.linear(a, block.attn.proj.weight, block.attn.proj.bias), block.ls1)
    mlp = block.mlp
    y = F.linear(F.gelu(F.linear(ln(x, block.norm2), mlp.fc1.weight, mlp.fc1.bias)), mlp.fc2.weight, mlp.fc2.bias)
    return x + ls(y, block.ls2)


@pytest.mark.parametrize("causal, init_values", [(False, None), (True, None), (False, 0.5)])
def test_pre_norm_block_matches_eager(causal, init_values):
    torch.manual_seed(0)
    block = TransformerBlock(32, 2, 48, causal=causal, init_values=init_values).eval()
    _randomise(block)
    x = torch.randn(3, 7, 32)
    with torch.no_grad():
        torch.testing.assert_close(block(x), eager_block(block, x, causal), atol=1e-5, rtol=1e-5)
    if init_values is not None:
        assert torch.equal(TransformerBlock(32, 2, 48, init_values=init_values).ls1.gamma, torch.full((32,), 0.5))


@pytest.mark.parametrize("pre_norm, causal", [(True, False), (True, True), (False, False)])
def test_packed_input_equals_each_sequence_and_the_padded_batch(pre_norm, causal):
    torch.manual_seed(0)
    block = TransformerBlock(32, 2, 64, pre_norm=pre_norm, causal=causal).eval()
    _randomise(block)
    lengths = [5, 1, 9]
    seqs = [torch.randn(n, 32) for n in lengths]
    cu = torch.tensor([0, 5, 6, 15], dtype=torch.int32)
    with torch.no_grad():
        packed = block(torch.cat(seqs), cu_seqlens=cu, max_seqlen=9)
        alone = torch.cat([block(s[None])[0] for s in seqs])
        torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
        if not causal:  # a key padding mask hides the pads; the real rows match
            padded = torch.zeros(3, 9, 32)
            mask = torch.arange(9) < torch.tensor(lengths)[:, None]
            padded[mask] = torch.cat(seqs)
            torch.testing.assert_close(block(padded, key_padding_mask=mask)[mask], packed, atol=1e-5, rtol=1e-5)


def test_post_norm_differs_from_pre_norm():
    torch.manual_seed(0)
    pre, post = TransformerBlock(32, 2, 64).eval(), TransformerBlock(32, 2, 64, pre_norm=False).eval()
    post.load_state_dict(pre.state_dict())
    x = torch.randn(2, 4, 32) * 3
    with torch.no_grad():
        y = post(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 4), atol=1e-5, rtol=0)  # ends in a LayerNorm
    assert (y - pre(x)).abs().max() > 0.5


def test_drop_path_drops_whole_samples_and_whole_packed_sequences():
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.ones(400, 3, 2)
    y = drop(x)
    per_sample = y.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 2).all(1)).all()
    assert 0.4 < (per_sample[:, 0] == 0).float().mean() < 0.6
    cu = torch.tensor([0, 3, 4, 10, 12], dtype=torch.int32)
    rows = drop(torch.ones(12, 5), cu_seqlens=cu)
    for lo, hi in zip(cu[:-1].tolist(), cu[1:].tolist()):
        assert len(set(rows[lo:hi].flatten().tolist())) == 1
    seen = {tuple(drop(torch.ones(12, 5), cu_seqlens=cu)[cu[:-1].long(), 0].tolist()) for _ in range(40)}
    assert len(seen) > 4  # the sequences are decided independently
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ValueError, match="p: expected a probability"):
        DropPath(1.0)


def test_mlp_dropouts():
    """``drop`` follows fc2 and ``hidden_drop`` the activation (BERT: 0)."""
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    outer = Mlp(16, 32, drop=0.5, hidden_drop=0.0)
    clean = outer.eval()(x)
    y = outer.train()(x)
    assert torch.all((y == 0) | torch.isclose(y, 2 * clean, atol=1e-6))
    both = Mlp(16, 32, drop=0.5)
    both.load_state_dict(outer.state_dict())
    y = both.train()(x)
    assert not torch.all((y == 0) | torch.isclose(y, 2 * clean, atol=1e-6))


def test_flops_count_weights_and_attention():
    block = TransformerBlock(64, 4, 96)
    weights = 3 * 64 * 64 + 64 * 64 + 2 * 64 * 96
    assert block.flops(10) == 2 * weights * 10 + 4 * 10**2 * 64


@pytest.mark.parametrize("d", [8, 24, 48, 256])
def test_head_dims_are_the_ones_the_op_takes(d):
    for ok in HEAD_DIMS:
        q = torch.randn(1, 1, 2, ok)
        assert attention(q, q, q).shape == q.shape
    q = torch.randn(1, 1, 2, d)
    with pytest.raises(ValueError, match=rf"\b{d}\b"):
        attention(q, q, q)


def test_unpad_feeds_the_block():
    """unpad's (x, cu_seqlens, max_seqlen) is the block's packed input."""
    block = TransformerBlock(32, 2, 64).eval()
    x, mask = torch.randn(2, 6, 32), torch.tensor([[True] * 6, [True] * 2 + [False] * 4])
    packed = unpad(x, mask)
    with torch.no_grad():
        out = block(packed.x, cu_seqlens=packed.cu_seqlens, max_seqlen=packed.max_seqlen)
        torch.testing.assert_close(out[6:], block(x[1:, :2])[0], atol=1e-5, rtol=1e-5)
