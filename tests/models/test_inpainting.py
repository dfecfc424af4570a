"""Context encoder (inpainting): the region masks, the masked-region L2 against an explicit
computation (no other pixel counts, and the hole's pixels never reach the prediction), the overlap
weighting, the adversarial term's 0.999 / 0.001 weighting and its gradient routing, a tiny learning
check, and refusals of bad input."""

import pytest
import torch

from fastpretrain.data.image_masking import BlockMask, CenterMask, RandomPatchMask, region_masker
from fastpretrain.models import ContextEncoder, create_model
from fastpretrain.nn.conv import cell_mask_to_pixels, erode

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"img_size": 16, "widths": (8, 16), "disc_widths": (8, 16)}


def test_region_maskers():
    center = CenterMask(14, 0.25)()
    grid = center.view(14, 14)
    assert grid[3:10, 3:10].all() and grid.sum() == 49  # the middle 7 x 7 of 14 x 14: half the side
    assert torch.equal(center, CenterMask(14, 0.25)(torch.Generator().manual_seed(5)))  # the same for every image
    assert isinstance(region_masker("block", 14, 0.25), BlockMask)
    random = region_masker("random", 14, 0.25)
    assert isinstance(random, RandomPatchMask) and random().sum() == 49
    with pytest.raises(ValueError, match="mask: expected one of"):
        region_masker("circle", 14, 0.25)
    with pytest.raises(ValueError, match="mask_ratio: expected a float in"):
        CenterMask(14, 1.5)


def test_pixels_and_erosion():
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, 5] = mask[0, 6] = True  # cells (1, 1) and (1, 2) of a 4 x 4 grid
    pixels = cell_mask_to_pixels(mask, 3)
    want = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    want[..., 3:6, 3:9] = True
    assert torch.equal(pixels, want)
    inner = torch.zeros_like(want)
    inner[..., 4:5, 4:8] = True
    assert torch.equal(erode(pixels, 1), inner)


def test_masked_l2_is_the_explicit_sum_and_ignores_other_pixels():
    torch.manual_seed(0)
    model = ContextEncoder(**TINY, mask="random", mask_ratio=0.3)
    imgs = torch.randn(3, 1, 16, 16)
    mask = model.random_mask(3, torch.Generator().manual_seed(1))
    out = model(imgs, mask=mask, return_outputs=True)
    region = cell_mask_to_pixels(mask, 2)
    want = (out["pred"] - imgs)[region].square().mean()
    torch.testing.assert_close(out["loss"], want)
    pred = out["pred"].detach().requires_grad_()
    ContextEncoder.forward_loss(imgs, pred, out["weights"]).backward()
    assert (pred.grad[~region] == 0).all() and (pred.grad[region] != 0).all()
    changed = torch.where(region, imgs, torch.randn_like(imgs))  # other targets outside the region
    torch.testing.assert_close(ContextEncoder.forward_loss(changed, out["pred"], out["weights"]), out["loss"])


def test_the_hole_never_reaches_the_prediction():
    torch.manual_seed(0)
    model = ContextEncoder(**TINY).eval()
    imgs = torch.randn(2, 1, 16, 16)
    mask = model.random_mask(2)
    hole = cell_mask_to_pixels(mask, 2)
    other = torch.where(hole, torch.randn_like(imgs) * 5, imgs)
    with torch.no_grad():
        a, b = (model(x, mask=mask, return_outputs=True)["pred"] for x in (imgs, other))
    torch.testing.assert_close(a, b)


def test_overlap_weights_the_visible_band():
    torch.manual_seed(0)
    model = ContextEncoder(**TINY, mask="center", mask_ratio=0.25, overlap=1, overlap_weight=10.0)
    imgs = torch.randn(2, 1, 16, 16)
    mask = model.random_mask(2)
    out = model(imgs, mask=mask, return_outputs=True)
    region = cell_mask_to_pixels(mask, 2)  # the middle 8 x 8 of 16 x 16 (4 x 4 cells of 8 x 8)
    hole = torch.zeros_like(region)
    hole[..., 5:11, 5:11] = True  # shrunk by one pixel: the input hides 6 x 6
    w = hole.float() + 10.0 * (region & ~hole).float()
    assert torch.equal(out["weights"], w)
    torch.testing.assert_close(out["loss"], (w * (out["pred"] - imgs).square()).sum() / w.sum())
    visible = imgs.clone()
    visible[region & ~hole] += 3.0  # the band is input: the prediction changes
    with torch.no_grad():
        assert not torch.allclose(model(visible, mask=mask, return_outputs=True)["pred"], out["pred"])


def test_adversarial_weighting_and_gradient_routing():
    torch.manual_seed(0)
    model = ContextEncoder(**TINY, adversarial=True)
    imgs = torch.randn(4, 1, 16, 16)
    mask = model.random_mask(4)
    out = model(imgs, mask=mask, return_outputs=True)
    torch.testing.assert_close(out["loss"], 0.999 * out["rec"] + 0.001 * out["adv"] + out["disc"])
    # adv and disc against their definitions, on the fill with the region pasted into the real image
    region = out["weights"] > 0
    filled = torch.where(region, out["pred"], imgs).detach()
    d = model.discriminator
    with torch.no_grad():
        torch.testing.assert_close(out["adv"], -torch.nn.functional.logsigmoid(d(filled)).mean())
        torch.testing.assert_close(out["disc"], -(torch.nn.functional.logsigmoid(d(imgs)).mean()
                                                  + torch.nn.functional.logsigmoid(-d(filled)).mean()))  # fmt: skip
    # one backward: the generator gets 0.999 rec + 0.001 adv, the discriminator only its BCE
    gen = [p for n, p in model.named_parameters() if not n.startswith("discriminator.")]
    disc = list(d.parameters())
    out["loss"].backward()
    torch.manual_seed(0)
    again = ContextEncoder(**TINY, adversarial=True)
    again.load_state_dict(model.state_dict())
    hole, weights = again.pixel_weights(mask)
    pred = again.predict(imgs, hole)
    rec = again.forward_loss(imgs, pred, weights)
    fake_logit = again.discriminator(torch.where(weights > 0, pred, imgs))
    adv = -torch.nn.functional.logsigmoid(fake_logit).mean()
    g_gen = torch.autograd.grad(0.999 * rec + 0.001 * adv, [p for n, p in again.named_parameters()
                                                             if not n.startswith("discriminator.")])  # fmt: skip
    for got, want in zip((p.grad for p in gen), g_gen):
        torch.testing.assert_close(got, want)
    fake = again.discriminator(torch.where(weights > 0, pred, imgs).detach())
    real = again.discriminator(imgs)
    disc_loss = -(torch.nn.functional.logsigmoid(real).mean() + torch.nn.functional.logsigmoid(-fake).mean())
    for got, want in zip((p.grad for p in disc), torch.autograd.grad(disc_loss, list(again.discriminator.parameters()))):
        torch.testing.assert_close(got, want)


def test_learns_to_fill_a_predictable_region():
    """Each image is one of four random smooth patterns (plus noise): the context tells which, so
    after 40 Adam steps the centre's L2 is far below filling in 0, the mean (what the untrained
    decoder's output is near)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    patterns = torch.nn.functional.avg_pool2d(torch.randn(4, 1, 16, 16, generator=g), 5, 1, 2) * 3
    imgs = patterns[torch.arange(64) % 4] + 0.05 * torch.randn(64, 1, 16, 16, generator=g)
    model = ContextEncoder(**TINY)
    mask = model.random_mask(64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = model(imgs, mask=mask)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    region = cell_mask_to_pixels(mask, 2)
    fill_mean = imgs[region].square().mean().item()
    assert loss.item() < 0.1 * fill_mean, (loss.item(), fill_mean)


def test_bad_inputs():
    model = create_model("inpaint_cnn_fashion_mnist", **TINY)
    with pytest.raises(ValueError, match=r"imgs: expected \[B, 1, 16, 16\]"):
        model(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"mask: expected bool \[2, 64\]"):
        model(torch.randn(2, 1, 16, 16), mask=torch.zeros(2, 49, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask_cell: 3 does not divide img_size 16"):
        ContextEncoder(**TINY, mask_cell=3)
    with pytest.raises(ValueError, match="widths: expected a non-empty sequence"):
        ContextEncoder(img_size=16, widths=())
    with pytest.raises(ValueError, match="adv_weight: expected a float >= 0"):
        ContextEncoder(**TINY, adv_weight=-1.0)
    with pytest.raises(ValueError, match="mask: expected one of"):
        ContextEncoder(**TINY, mask="ring")


def test_probe_features_are_the_mean_pooled_feature_map():
    from torch.utils.data import TensorDataset

    from fastpretrain.eval.probe import extract_features

    torch.manual_seed(0)
    model = ContextEncoder(**TINY)
    imgs, labels = torch.randn(5, 1, 16, 16), torch.arange(5)
    x, y = extract_features(model, TensorDataset(imgs, labels), pool="mean", batch_size=2)
    with torch.no_grad():
        torch.testing.assert_close(x, model.encoder.forward_features(imgs).mean((2, 3)))
    assert torch.equal(y, labels) and x.shape == (5, 16)
    with pytest.raises(ValueError, match="pool: a CNN's feature map has no cls token"):
        extract_features(model, TensorDataset(imgs, labels), pool="cls")
