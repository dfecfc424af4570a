"""Image transforms: MAE's random resized crop + flip (boxes, seeds, identity, flip rate) and their argument checks."""

import pytest
import torch

from fastpretrain.data.image_transforms import Normalize, RandomResizedCropFlip, Resize

pytestmark = pytest.mark.usefixtures("one_thread")


def test_augmentation_shapes_ranges_and_seeds():
    img = torch.rand(1, 28, 28)
    aug = RandomResizedCropFlip(28, mean=[0.5], std=[0.25])
    outs = [aug(img, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert outs[0].shape == (1, 28, 28) and -2 <= outs[0].min() and outs[0].max() <= 2
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    torch.manual_seed(5)
    a = aug(img)
    torch.manual_seed(5)
    assert torch.equal(a, aug(img))  # the global RNG, which the Trainer seeds
    # crop boxes lie inside the image and cover 20-100% of it (within rounding)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = aug.box(28, 40, g)
        assert 0 <= top and top + h <= 28 and 0 <= left and left + w <= 40
        assert 0.18 <= h * w / (28 * 40) <= 1.0 and 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1
    # the whole image at full scale and a fixed aspect ratio, unflipped, is the image itself
    ident = RandomResizedCropFlip(28, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(ident(img), img, atol=1e-6)
    flipped = RandomResizedCropFlip(28, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    seen = {torch.allclose(flipped(img, torch.Generator().manual_seed(s)), img.flip(-1), atol=1e-6) for s in range(8)}
    assert seen == {True, False}  # flipped sometimes, not always
    rgb = RandomResizedCropFlip(16)(torch.rand(3, 40, 30))
    assert rgb.shape == (3, 16, 16) and 0 <= rgb.min() and rgb.max() <= 1


def test_resize_and_normalize():
    img = torch.rand(3, 8, 8)
    assert torch.equal(Resize(8)(img), img)  # the right size already: untouched
    out = Resize(4, mean=[0.5] * 3, std=[0.25] * 3)(img)
    small = torch.nn.functional.interpolate(img[None], size=(4, 4), mode="bilinear", antialias=True)[0].clamp(0, 1)
    assert torch.allclose(out, (small - 0.5) / 0.25)
    assert torch.allclose(Normalize([0.2, 0.4, 0.6], [0.5, 1.0, 2.0])(img),
                          (img - torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1)) / torch.tensor([0.5, 1.0, 2.0]).view(3, 1, 1))


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCropFlip(28, scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="ratio"):
        RandomResizedCropFlip(28, ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match="size: expected an int >= 1"):
        RandomResizedCropFlip(0)
    with pytest.raises(ValueError, match="mean, std"):
        Normalize([0.5], [0.0])
