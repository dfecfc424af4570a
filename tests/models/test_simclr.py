"""SimCLR: the augmentation pair (each step does what it says, grey images get no colour ops, seeded
draws repeat), the model's loss is NT-Xent written out on its projections, a few steps on fixed
pairs lower it, and the CLI trains and evaluates a tiny run."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastpretrain.cli import main
from fastpretrain.data.views import ColorJitter, GaussianBlur, RandomGrayscale, SimCLRAugment, TwoViews
from fastpretrain.models import SimCLR, create_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_two_views_are_two_seeded_draws():
    img = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))
    pair = TwoViews(SimCLRAugment(28, mean=[0.5], std=[0.25]))
    a = pair(img, torch.Generator().manual_seed(3))
    assert a.shape == (2, 1, 28, 28) and not torch.equal(a[0], a[1])
    assert torch.equal(a, pair(img, torch.Generator().manual_seed(3)))


def test_colour_jitter_on_grey_changes_only_brightness_and_contrast():
    img = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    out = ColorJitter(brightness=0.0, contrast=0.0, saturation=5.0, hue=0.5, p=1.0)(img)
    torch.testing.assert_close(out, img)  # saturation and hue need three channels
    bright = ColorJitter(brightness=0.5, contrast=0.0, saturation=0.0, hue=0.0, p=1.0)(
        img, torch.Generator().manual_seed(2)
    )
    ratio = bright / img
    torch.testing.assert_close(ratio, ratio.flatten()[0].expand_as(ratio))  # one factor for every pixel
    assert torch.equal(ColorJitter(p=0.0)(img), img)


def test_hue_rotation_keeps_grey_pixels_and_greyscale_equalises_channels():
    grey = torch.full((3, 4, 4), 0.4)
    torch.testing.assert_close(ColorJitter(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.5, p=1.0)(grey), grey)
    rgb = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(4))
    out = RandomGrayscale(p=1.0)(rgb)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    torch.testing.assert_close(out[0], 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    assert torch.equal(RandomGrayscale(p=1.0)(rgb[:1]), rgb[:1])


def test_blur_is_a_normalised_gaussian():
    blur = GaussianBlur(sigma=(1.0, 1.0), p=1.0)
    flat = torch.full((1, 30, 30), 0.7)
    torch.testing.assert_close(blur(flat), flat)
    impulse = torch.zeros(1, 30, 30)
    impulse[0, 15, 15] = 1.0
    out = blur(impulse)[0]
    assert out.sum().item() == pytest.approx(1.0, abs=1e-6) and out[15, 15] < 1.0
    k = torch.exp(-torch.tensor([1.0, 0.0, 1.0]) / 2)
    torch.testing.assert_close(out[14:17, 14:17], torch.outer(k, k) / k.sum() ** 2)  # 3 taps: a tenth of 30


@pytest.mark.parametrize(
    "kwargs, match",
    [({"strength": -1.0}, "strength: expected a float >= 0"), ({"blur": 2.0}, r"blur: expected a probability in \[0, 1\]"),
     ({"scale": (0.5, 0.1)}, "scale: expected 0 < low <= high <= 1")],
)  # fmt: skip
def test_augment_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimCLRAugment(28, **kwargs)


def test_loss_is_nt_xent_of_the_projections():
    torch.manual_seed(0)
    model = create_model("simclr_vit_fashion_mnist", depth=1, temperature=0.3)
    views = torch.randn(5, 2, 1, 28, 28)
    loss = model(views)["loss"]
    z = model.projector(model.represent(views.transpose(0, 1).flatten(0, 1)))
    z = F.normalize(z, dim=-1)
    logits = (z @ z.T / 0.3).masked_fill(torch.eye(10, dtype=torch.bool), float("-inf"))
    torch.testing.assert_close(loss, F.cross_entropy(logits, (torch.arange(10) + 5) % 10))
    pooled = create_model("simclr_vit_fashion_mnist", depth=1, pool="mean")
    tokens = pooled.encoder.forward_features(views[:, 0])
    torch.testing.assert_close(pooled.represent(views[:, 0]), tokens[:, 1:].mean(1))


def test_a_few_steps_on_fixed_pairs_lower_the_loss():
    torch.manual_seed(0)
    model = create_model("simclr_vit_fashion_mnist", depth=1, proj_hidden=64)
    imgs = torch.rand(16, 1, 28, 28)
    views = torch.stack([imgs, imgs + 0.05 * torch.randn_like(imgs)], 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = model(views)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize(
    "change, match",
    [({"pool": "max"}, "pool: expected one of"), ({"temperature": 0.0}, "temperature: expected a float > 0"),
     ({"proj_dim": 0}, "proj_dim: expected an int >= 1")],
)  # fmt: skip
def test_config_refuses_bad_fields(change, match):
    with pytest.raises(ValueError, match=match):
        create_model("simclr_vit_fashion_mnist", **change)


def test_forward_refuses_single_views():
    with pytest.raises(ValueError, match=r"views: expected \[B, 2, 1, 28, 28\] \(two views per image\)"):
        create_model("simclr_vit_fashion_mnist", depth=1)(torch.randn(4, 1, 28, 28))


def test_cli_trains_and_evaluates(tmp_path, capsys):
    images = tmp_path / "toy.npz"
    rng = np.random.default_rng(0)
    np.savez(images, images=rng.integers(0, 255, (40, 8, 8), dtype=np.uint8), labels=rng.integers(0, 3, 40))
    sizes = ["--img-size", "8", "--patch-size", "4", "--in-chans", "1", "--embed-dim", "32", "--depth", "1",
             "--num-heads", "2", "--proj-hidden", "16", "--proj-dim", "8"]  # fmt: skip
    run = tmp_path / "run"
    assert main(["simclr", "train", "--data", str(images), *sizes, "--batch-size", "8", "--steps", "2", "--warmup-steps", "0",
                 "--device", "cpu", "--out-dir", str(run)]) == 0  # fmt: skip
    assert "two SimCLR views each" in capsys.readouterr().out
    model = SimCLR.from_pretrained(run)
    assert model.config.embed_dim == 32 and model.config.proj_dim == 8
    summary = tmp_path / "probe.json"
    assert main(["simclr", "eval", str(run), "--data", str(images), "--device", "cpu", "--probe-iters", "5",
                 "--k", "3", "--json", str(summary)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "simclr" in out and "random init" in out and "raw pixels" in out
    assert main(["simclr", "eval", str(run), "--data", str(images), "--reconstruction", str(tmp_path / "r.png")]) == 2
    assert "--reconstruction: SimCLR has no decoder" in capsys.readouterr().err
