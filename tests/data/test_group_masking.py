"""Group masking policies, by their statistics: span masking's per-position masked probability
against its exact float64 expectation (wav2vec 2.0 / fairseq's draw, edge effects included), random
masking's exact count and uniformity over positions, block masking as BEiT's BlockMask on the grid."""

import math

import pytest
import torch

from fastpretrain.data.group_masking import BlockGroupMask, RandomGroupMask, SpanMask, mask_policy
from fastpretrain.data.image_masking import BlockMask

pytestmark = pytest.mark.usefixtures("one_thread")


def span_expectation(length: int, mask_prob: float, span: int) -> torch.Tensor:
    """float64 [L]: P(group t masked) when n = floor(mask_prob * L / span + U) starts (clamped to
    [1, M]) are drawn without replacement from the M = L - span + 1 positions whose span fits."""
    m = length - span + 1
    x = mask_prob * length / span
    counts = {min(max(math.floor(x), 1), m): 1 - (x - math.floor(x)), min(max(math.floor(x) + 1, 1), m): x - math.floor(x)}
    out = torch.zeros(length, dtype=torch.float64)
    for t in range(length):
        covering = min(t, m - 1) - max(t - span + 1, 0) + 1  # starts whose span covers t
        for n, weight in counts.items():
            out[t] += weight * (1 - math.comb(m - covering, n) / math.comb(m, n))
    return out


@pytest.mark.parametrize("length, mask_prob, span", [(50, 0.65, 10), (12, 0.65, 5), (30, 0.2, 3)])
def test_span_masking_matches_its_exact_expectation_per_position(length, mask_prob, span):
    draws = 6000
    mask = SpanMask(mask_prob, span)(draws, length, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (draws, length) and mask.dtype == torch.bool
    expected = span_expectation(length, mask_prob, span)
    freq = mask.double().mean(0)
    sigma = (expected * (1 - expected) / draws).sqrt().clamp(min=1e-3)
    assert ((freq - expected).abs() / sigma).max() < 5, (freq - expected).abs().max()
    overall = expected.mean()
    assert abs(mask.double().mean() - overall) < 5 * math.sqrt(overall * (1 - overall) / (draws * length)) + 2e-3
    for row in mask[:200].tolist():  # every masked run is whole spans: at least span long
        runs = "".join("1" if v else "0" for v in row).split("0")
        assert all(len(r) >= span for r in runs if r)


def test_span_masking_is_wav2vec2s_49_percent_at_its_settings():
    """p 0.65, span 10 on a long sequence masks about 1 - (1 - 0.065)^10 = 49% (edges aside)."""
    mask = SpanMask()(200, 500, generator=torch.Generator().manual_seed(1))
    assert abs(mask.double().mean().item() - span_expectation(500, 0.65, 10).mean().item()) < 0.01
    assert abs(span_expectation(500, 0.65, 10)[100:400].mean().item() - (1 - (1 - 0.065) ** 10)) < 0.01


def test_random_masking_masks_exactly_its_count_uniformly():
    draws, length, ratio = 4000, 37, 0.6
    mask = RandomGroupMask(ratio)(draws, length, generator=torch.Generator().manual_seed(2))
    masked = length - int(length * (1 - ratio))
    assert (mask.sum(1) == masked).all()
    p = masked / length
    z = (mask.double().mean(0) - p) / math.sqrt(p * (1 - p) / draws)
    assert z.abs().max() < 4.5
    # pairs of positions are masked together as often as a uniform subset says
    both = (mask[:, 0] & mask[:, 1]).double().mean()
    assert abs(both - masked * (masked - 1) / (length * (length - 1))) < 0.03


def test_block_masking_is_beits_block_mask_on_the_grid():
    policy = BlockGroupMask(mask_ratio=0.4, rows=4, min_block=3)
    masks = policy(6, 40, generator=torch.Generator().manual_seed(3))
    reference = BlockMask(4, 10, 16, min_block=3)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(masks, torch.stack([reference(g) for _ in range(6)]))
    many = policy(300, 40, generator=torch.Generator().manual_seed(4))
    assert (many.sum(1) <= 16).all() and many.sum(1).double().mean() > 14


def test_policies_refuse_bad_settings_naming_them():
    with pytest.raises(ValueError, match="span_length: 10 does not leave a group unmasked"):
        SpanMask()(2, 10)
    with pytest.raises(ValueError, match="mask_prob: expected a float in"):
        SpanMask(mask_prob=0.0)
    with pytest.raises(ValueError, match="rows: 3 rows do not divide the 40 groups"):
        BlockGroupMask(rows=3)(1, 40)
    with pytest.raises(ValueError, match="rows: expected an int >= 2"):
        BlockGroupMask(rows=1)
    with pytest.raises(ValueError, match="mask_ratio: expected a float in"):
        RandomGroupMask(1.0)
    with pytest.raises(ValueError, match="masking: expected one of random, span, block, got 'stripes'"):
        mask_policy("stripes")
