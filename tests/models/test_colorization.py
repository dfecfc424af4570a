"""Colorization-style bin prediction: bins fitted by the shared k-means, pixel classes against a
brute-force nearest-bin reference and their round trip, Zhang et al.'s rebalancing weights, the
rebalanced cross-entropy against an explicit computation (only hidden pixels count), the annealed
mean, save/load of the fitted bins, a tiny learning check and refusals."""

import pytest
import torch
import torch.nn.functional as F

from fastpretrain.models import ColorizeConfig, IntensityColorizer, create_model
from fastpretrain.models.colorization import rebalance_weights
from fastpretrain.nn.conv import cell_mask_to_pixels

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"img_size": 16, "widths": (8, 16), "num_bins": 5}


def fitted(seed: int = 0, **kw) -> tuple[IntensityColorizer, torch.Tensor]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    levels = torch.tensor([-1.0, 0.0, 0.5, 1.5, 3.0])
    imgs = levels[torch.randint(5, (6, 1, 16, 16), generator=g)] + 0.02 * torch.randn(6, 1, 16, 16, generator=g)
    model = IntensityColorizer(**{**TINY, **kw}).fit_bins(imgs.permute(0, 2, 3, 1).reshape(-1, 1))
    return model, imgs


def test_bins_targets_and_round_trip():
    model, imgs = fitted()
    bins = model.bins.flatten()
    torch.testing.assert_close(bins, torch.tensor([-1.0, 0.0, 0.5, 1.5, 3.0]), atol=0.01, rtol=0)  # sorted centres
    targets = model.targets(imgs)
    reference = (imgs[:, 0, :, :, None] - bins).abs().argmin(-1)  # brute force: the nearest bin
    assert torch.equal(targets, reference)
    as_image = model.bins.view(1, 1, 1, 5)  # each bin's own value maps back to its id
    assert torch.equal(model.targets(as_image.expand(1, 1, 1, 5)).flatten(), torch.arange(5))
    decoded = model.decode(F.one_hot(targets, 5).permute(0, 3, 1, 2).float() * 100)  # a sure prediction -> its bin
    torch.testing.assert_close(decoded, bins[targets][:, None])
    assert (decoded - imgs).abs().max() < 0.1


def test_rebalance_weights_match_zhang():
    counts = torch.tensor([70.0, 20.0, 10.0])
    p = counts / counts.sum()
    w = 1 / (0.5 * p + 0.5 / 3)
    w = w / (p * w).sum()
    torch.testing.assert_close(rebalance_weights(counts, 0.5), w.float())
    assert (p * rebalance_weights(counts, 0.5)).sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(rebalance_weights(counts, 1.0), torch.ones(3))  # lambda 1: no rebalancing
    model, imgs = fitted()
    counts = torch.bincount(model.targets(imgs).flatten(), minlength=5)
    torch.testing.assert_close(model.class_weights, rebalance_weights(counts, 0.5))


def test_loss_is_the_rebalanced_ce_of_hidden_pixels_only():
    model, imgs = fitted()
    mask = model.random_mask(6, torch.Generator().manual_seed(3))
    out = model(imgs, mask=mask, return_outputs=True)
    hidden = cell_mask_to_pixels(mask, 2)[:, 0]
    logits, t = out["logits"], out["targets"]
    logp = logits.log_softmax(1).gather(1, t[:, None])[:, 0]
    want = -(model.class_weights[t] * logp)[hidden].sum() / hidden.sum()
    torch.testing.assert_close(out["loss"], want)
    torch.testing.assert_close(out["acc"], (logits.argmax(1) == t)[hidden].float().mean())
    leaf = logits.detach().requires_grad_()
    model.forward_loss(leaf, t, hidden).backward()
    assert (leaf.grad.permute(0, 2, 3, 1)[~hidden] == 0).all() and (leaf.grad.permute(0, 2, 3, 1)[hidden] != 0).any()
    with torch.no_grad():  # the hidden pixels' values never reach the logits
        other = torch.where(hidden[:, None], torch.randn_like(imgs) * 4, imgs)
        model.eval()
        torch.testing.assert_close(model(other, mask=mask, return_outputs=True)["logits"],
                                   model(imgs, mask=mask, return_outputs=True)["logits"])  # fmt: skip


def test_fitted_bins_save_and_load(tmp_path):
    model, imgs = fitted()
    model.save_pretrained(tmp_path)
    loaded = IntensityColorizer.from_pretrained(tmp_path)
    assert torch.equal(loaded.bins, model.bins) and torch.equal(loaded.class_weights, model.class_weights)
    assert torch.equal(loaded.targets(imgs), model.targets(imgs))


def test_learns_the_hidden_bins():
    """Vertical stripes of one level per column: the visible columns above and below the hidden
    centre tell its bins; 40 Adam steps take the hidden-pixel accuracy far above the best constant's."""
    model, _ = fitted(mask="center", mask_ratio=0.25)
    g = torch.Generator().manual_seed(1)
    columns = torch.tensor([-1.0, 0.0, 0.5, 1.5, 3.0])[torch.randint(5, (32, 1, 1, 16), generator=g)]
    imgs = columns.expand(32, 1, 16, 16).contiguous()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        out = model(imgs)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["acc"] > 0.6, out["acc"]  # a constant class scores about 0.2


def test_bad_inputs():
    model = create_model("colorize_cnn_fashion_mnist", **TINY)
    with pytest.raises(ValueError, match=r"imgs: expected \[B, 1, 16, 16\]"):
        model(torch.randn(2, 1, 15, 15))
    with pytest.raises(ValueError, match=r"mask: expected bool \[2, 64\]"):
        model(torch.randn(2, 1, 16, 16), mask=torch.zeros(2, 64))
    with pytest.raises(ValueError, match=r"pixels: expected float \[N, 1\]"):
        model.fit_bins(torch.rand(100, 3))
    with pytest.raises(ValueError, match="k: 5 clusters need at least 5 pixels"):
        model.fit_bins(torch.rand(3, 1))
    with pytest.raises(ValueError, match=r"rebalance: expected a float in \(0, 1\]"):
        ColorizeConfig(rebalance=0.0)
    with pytest.raises(ValueError, match="num_bins: expected an int >= 2"):
        ColorizeConfig(num_bins=1)
    with pytest.raises(ValueError, match="temperature: expected a float > 0"):
        ColorizeConfig(temperature=0)
