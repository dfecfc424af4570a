"""Rotary position embeddings: the rotation equals the complex-number form of RoPE, scores depend
on relative offsets only, and packed sequences restart their positions (a packed batch equals each
sequence run alone)."""

import pytest
import torch

from fastpretrain.nn import RotarySelfAttention, apply_rotary, positions_in_sequences, rope_tables

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rotation_is_the_complex_product_of_each_pair():
    g = torch.Generator().manual_seed(0)
    n, h, d = 7, 3, 16
    x = torch.randn(n, h, d, generator=g)
    cos, sin = rope_tables(d, 11, theta=500.0)
    positions = torch.tensor([0, 3, 1, 10, 4, 4, 9])
    got = apply_rotary(x, cos[positions], sin[positions])
    freqs = 500.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rotor = torch.polar(torch.ones(n, d // 2, dtype=torch.float64), positions[:, None].double() * freqs)
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double()) * rotor[:, None]
    torch.testing.assert_close(got, torch.cat([z.real, z.imag], -1).float(), atol=1e-5, rtol=1e-5)


def test_scores_depend_on_the_offset_only():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 1, 32, generator=g), torch.randn(1, 1, 32, generator=g)
    cos, sin = rope_tables(32, 64)

    def score(pq, pk):
        a = apply_rotary(q, cos[[pq]], sin[[pq]])
        b = apply_rotary(k, cos[[pk]], sin[[pk]])
        return (a * b).sum()

    torch.testing.assert_close(score(5, 2), score(40, 37), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(score(5, 2), score(5, 3), atol=1e-3)


def test_positions_restart_in_every_sequence():
    cu = torch.tensor([0, 3, 4, 9], dtype=torch.int32)
    assert positions_in_sequences(cu, 9).tolist() == [0, 1, 2, 0, 0, 1, 2, 3, 4]


def test_packed_batch_equals_each_sequence_alone():
    torch.manual_seed(2)
    attn = RotarySelfAttention(32, 2, max_positions=16).eval()
    lengths = [5, 1, 9]
    xs = [torch.randn(n, 32) for n in lengths]
    cu = torch.tensor([0, 5, 6, 15], dtype=torch.int32)
    packed = attn(torch.cat(xs), causal=True, cu_seqlens=cu, max_seqlen=9)
    alone = torch.cat([attn(x[None], causal=True)[0] for x in xs])
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
    (packed.square().sum()).backward()
    assert attn.qkv.weight.grad.abs().sum() > 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="head_dim: rotary embeddings need an even head width"):
        rope_tables(15, 4)
    with pytest.raises(ValueError, match="length"):
        rope_tables(16, 0)
    with pytest.raises(ValueError, match="max_seqlen: required"):
        RotarySelfAttention(32, 2, 8)(torch.randn(4, 32), cu_seqlens=torch.tensor([0, 4]))
