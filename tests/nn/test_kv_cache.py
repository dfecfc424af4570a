"""Cached decoding: a prompt then one token at a time through cached_block gives the same states
as the causal block on the whole sequence, with learned (plain) and rotary attention."""

import pytest
import torch

from fastpretrain.nn import KVCache, RotarySelfAttention, TransformerBlock, cached_block

pytestmark = pytest.mark.usefixtures("one_thread")


def _blocks(rotary: bool, n: int = 2) -> list[TransformerBlock]:
    blocks = [TransformerBlock(32, 2, 64, causal=True).eval() for _ in range(n)]
    if rotary:
        for b in blocks:
            b.attn = RotarySelfAttention(32, 2, max_positions=16).eval()
    return blocks


@pytest.mark.parametrize("rotary", [False, True])
def test_prompt_then_single_tokens_equal_the_full_forward(rotary):
    torch.manual_seed(0)
    blocks = _blocks(rotary)
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        full = x
        for b in blocks:
            full = b(full)
        cache = KVCache(len(blocks), max_len=12)
        outs = []
        for chunk in (x[:, :4], *x[:, 4:].split(1, dim=1)):
            h = chunk
            for i, b in enumerate(blocks):
                h = cached_block(b, h, cache, i)
            outs.append(h)
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.lengths == [9, 9]


def test_cache_errors_are_named():
    block = _blocks(False, 1)[0]
    cache = KVCache(1, max_len=4)
    with torch.no_grad():
        cached_block(block, torch.randn(1, 3, 32), cache, 0)
        with pytest.raises(ValueError, match="x: 2 new tokens after 3 cached ones"):
            cached_block(block, torch.randn(1, 2, 32), cache, 0)
        cached_block(block, torch.randn(1, 1, 32), cache, 0)
        with pytest.raises(ValueError, match="k: 5 tokens overflow the cache of 4"):
            cached_block(block, torch.randn(1, 1, 32), cache, 0)
    with pytest.raises(ValueError, match="block: cached decoding needs a pre-norm causal"):
        cached_block(TransformerBlock(32, 2, 64), torch.randn(1, 1, 32), KVCache(1, 4), 0)
