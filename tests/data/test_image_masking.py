"""Patch masks for masked image modeling, checked statistically over thousands of draws: SimMIM's
random groups (exact count, whole groups, every group equally likely) and BEiT's block-wise masks
(the count it aims at and never passes, blocks rather than scattered patches, no preferred axis)."""

import math

import pytest
import torch

from fastpretrain.data.image_masking import BlockMask, MaskedImages, RandomPatchMask

pytestmark = pytest.mark.usefixtures("one_thread")


def draws(masker, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([masker(g) for _ in range(n)])


def neighbour_masked(masks: torch.Tensor) -> float:
    """Of the masked patches, the fraction with a masked 4-neighbour (masks [N, H, W])."""
    nb = torch.zeros_like(masks)
    nb[:, 1:] |= masks[:, :-1]
    nb[:, :-1] |= masks[:, 1:]
    nb[:, :, 1:] |= masks[:, :, :-1]
    nb[:, :, :-1] |= masks[:, :, 1:]
    return ((nb & masks).sum() / masks.sum()).item()


def test_random_patch_mask_masks_whole_groups_uniformly():
    masker = RandomPatchMask(grid=12, mask_ratio=0.6, mask_patch=2)  # 36 groups of 2 x 2, 22 masked
    assert masker.num_masked == 22 * 4
    masks = draws(masker, 3000).view(-1, 12, 12)
    assert (masks.flatten(1).sum(1) == 88).all()
    groups = masks.view(-1, 6, 2, 6, 2)
    assert (groups.all(dim=(2, 4)) == groups.any(dim=(2, 4))).all()  # a group is masked whole or not at all
    # each group is masked with probability 22/36: binomial counts over 3000 draws within 4.5 sigma
    freq = groups.any(dim=(2, 4)).float().sum(0)
    p, n = 22 / 36, 3000
    assert ((freq - n * p).abs() < 4.5 * math.sqrt(n * p * (1 - p))).all(), freq
    # and a pair of groups is masked together as often as drawing without replacement says
    together = (groups.any(dim=(2, 4)).flatten(1)[:, 0] & groups.any(dim=(2, 4)).flatten(1)[:, 35]).float().mean()
    assert abs(together.item() - 22 / 36 * 21 / 35) < 0.03


def test_random_patch_mask_checks_and_repeats():
    with pytest.raises(ValueError, match="mask_patch: 3 does not divide the patch grid side 8"):
        RandomPatchMask(8, 0.5, 3)
    with pytest.raises(ValueError, match=r"mask_ratio: expected a float in \(0, 1\), got 1.0"):
        RandomPatchMask(8, 1.0)
    assert torch.equal(draws(RandomPatchMask(8, 0.5), 5, seed=3), draws(RandomPatchMask(8, 0.5), 5, seed=3))


def test_block_mask_statistics():
    masker = BlockMask(14, 14, num_masked=75)  # BEiT's setting: 75 of 196 patches, blocks of >= 16
    masks = draws(masker, 2000).view(-1, 14, 14)
    counts = masks.flatten(1).sum(1).float()
    assert counts.max() <= 75 and counts.mean() > 72 and counts.min() >= 60, (counts.mean(), counts.min())
    # blocks, not scattered patches: nearly every masked patch has a masked neighbour, far more than
    # with the same number of patches drawn at random
    random = draws(RandomPatchMask(14, 75 / 196), 2000).view(-1, 14, 14)
    assert neighbour_masked(masks) > 0.99 and neighbour_masked(random) < 0.9
    # every patch gets masked, central ones more often than corners (blocks are placed inside the grid)
    freq = masks.float().mean(0)
    assert freq.min() > 0.02 and freq[6:8, 6:8].mean() > 3 * freq[[0, 0, -1, -1], [0, -1, 0, -1]].mean()
    # the aspect ratio is log-uniform on [0.3, 1/0.3]: rows and columns spanned are alike on average,
    # and the transposed frequencies match
    rows, cols = masks.any(2).sum(1).float(), masks.any(1).sum(1).float()
    assert abs(rows.mean() - cols.mean()) < 0.25, (rows.mean(), cols.mean())
    assert (freq - freq.T).abs().max() < 0.06


def test_a_block_has_the_drawn_shape():
    """One block of area 12 (min_block = max_block): its shape (round(sqrt(12 a)), round(sqrt(12 / a)))
    for a log-uniform aspect a in [0.3, 1 / 0.3], redrawn while it masks more than the 12 allowed;
    the shapes' frequencies over 3000 blocks against that law (its probabilities by quadrature)."""
    masker = BlockMask(10, 10, num_masked=12, min_block=12, max_block=12)
    g = torch.Generator().manual_seed(0)
    shapes = []
    for _ in range(3000):
        mask = torch.zeros(10, 10, dtype=torch.bool)
        assert masker._block(mask, 12, g) == mask.sum() > 0
        rows, cols = mask.any(1).sum().item(), mask.any(0).sum().item()
        assert rows * cols == mask.sum()  # a rectangle
        shapes.append((rows, cols))
    grid = torch.linspace(math.log(0.3), -math.log(0.3), 200001, dtype=torch.float64).exp()
    h, w = (12 * grid).sqrt().round(), (12 / grid).sqrt().round()
    fits = h * w <= 12
    pairs, counts = torch.unique(torch.stack([h[fits], w[fits]], 1), dim=0, return_counts=True)
    law = {(int(a), int(b)): c / fits.sum().item() for (a, b), c in zip(pairs.tolist(), counts.tolist())}
    assert set(shapes) <= set(law)
    chi2 = sum((shapes.count(s) - 3000 * p) ** 2 / (3000 * p) for s, p in law.items())
    assert chi2 < 25, (chi2, law)  # len(law) - 1 = 5 degrees of freedom: 25 is p < 2e-4


def test_block_mask_checks_and_ratio():
    assert BlockMask.from_ratio(14, 14, 0.4).num_masked == 78
    with pytest.raises(ValueError, match="num_masked: 200 is more than the 196 patches"):
        BlockMask(14, 14, 200)
    with pytest.raises(ValueError, match=r"min_aspect: expected a float in \(0, 1\]"):
        BlockMask(14, 14, 75, min_aspect=2.0)
    with pytest.raises(ValueError, match="max_block: expected an int >= 16"):
        BlockMask(14, 14, 75, max_block=4)


def test_masked_images_adds_a_mask_to_each_item():
    data = MaskedImages([(torch.zeros(1, 8, 8), 3)] * 4, RandomPatchMask(2, 0.5))
    image, label, mask = data[1]
    assert label == 3 and image.shape == (1, 8, 8) and mask.dtype == torch.bool and mask.sum() == 2 and len(data) == 4
