"""SimMIM: the L1 loss on masked pixels (SimMIM's own formula on whole images), the mask token
standing in for masked patches (their pixels reach nothing), the probe's intermediate layer,
training through data-side masks, and ``fastpretrain simmim train|eval``."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from fastpretrain.cli import main
from fastpretrain.data.image_masking import MaskedImages
from fastpretrain.eval.probe import extract_features
from fastpretrain.eval.visualize import save_reconstruction_grid
from fastpretrain.models import SimMIM, SimMIMConfig, create_model
from fastpretrain.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"img_size": 8, "patch_size": 2, "in_chans": 3, "embed_dim": 32, "depth": 3, "num_heads": 2, "mask_patch_size": 4}


def _tiny(**kw) -> SimMIM:
    torch.manual_seed(0)
    return SimMIM(SimMIMConfig(**{**TINY, **kw}))


def test_loss_is_simmims_l1_on_masked_pixels():
    """SimMIM's loss: |x - x_rec| on the pixel mask (patch mask upsampled), summed, over masked pixels x C."""
    model = _tiny()
    imgs = torch.randn(3, 3, 8, 8)
    out = model(imgs, return_outputs=True)
    mask = out["mask"]
    assert mask.shape == (3, 16) and (mask.sum(1) == 8).all()  # 2 of the 4 groups of 2 x 2 patches
    pixel_mask = mask.view(3, 4, 4).repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None].float()
    rec = model.unpatchify(out["pred"])
    expected = ((imgs - rec).abs() * pixel_mask).sum() / pixel_mask.sum() / 3
    torch.testing.assert_close(out["loss"], expected)
    # only the masked patches count: the prediction of a visible patch gets no gradient
    pred = out["pred"].detach().requires_grad_()
    model.forward_loss(imgs, pred, mask).backward()
    assert (pred.grad[~mask] == 0).all() and (pred.grad[mask] != 0).all()
    model(imgs, mask=mask)["loss"].backward()
    assert model.encoder.mask_token.grad.abs().sum() > 0 and model.head.weight.grad.abs().sum() > 0


def test_masked_pixels_reach_nothing_and_visible_ones_do():
    model = _tiny().eval()
    imgs = torch.randn(2, 3, 8, 8)
    mask = model.random_mask(2, torch.Generator().manual_seed(1))
    patch = int(mask[0].nonzero()[0])  # a masked patch of the first image, and a visible one
    visible = int((~mask[0]).nonzero()[0])
    out = model(imgs, mask=mask, return_outputs=True)["pred"]
    for p, changes in ((patch, False), (visible, True)):
        other = imgs.clone()
        r, c = divmod(p, 4)
        other[0, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] += 5.0
        again = model(other, mask=mask, return_outputs=True)["pred"]
        assert torch.equal(again[1], out[1])
        assert (not torch.equal(again[0], out[0])) == changes


def test_intermediate_layer_is_the_blocks_before_the_norm():
    model = _tiny().eval()
    imgs = torch.randn(2, 3, 8, 8)
    enc = model.encoder
    x = enc.embed(imgs)
    for block in enc.blocks[:2]:
        x = block(x)
    torch.testing.assert_close(enc.forward_intermediate(imgs, 2), x)
    torch.testing.assert_close(enc.norm(enc.forward_intermediate(imgs, 3)), enc.forward_features(imgs))
    data = TensorDataset(imgs, torch.tensor([0, 1]))
    feats, _ = extract_features(model, data, layer=2, pool="mean")
    torch.testing.assert_close(feats, x[:, 1:].mean(1))
    with pytest.raises(ValueError, match=r"layer: expected a block number in 1 .. 3, got 4"):
        enc.forward_intermediate(imgs, 4)
    with pytest.raises(ValueError, match="layer: the raw pixels"):
        extract_features(None, data, layer=1)


def test_trainer_learns_from_data_side_masks(tmp_path):
    """Images of one colour each: visible patches tell the masked ones, so the L1 loss falls far
    below predicting the dataset's mean image (the no-information floor)."""
    model = _tiny(init_values=None)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(16, 3, 1, 1, generator=g).expand(16, 3, 8, 8).contiguous()
    floor = (images - images.median(0).values).abs().mean().item()
    data = MaskedImages(TensorDataset(images, torch.zeros(16, dtype=torch.long)), model.config.masker())
    history = Trainer(model, data, TrainConfig(out_dir=str(tmp_path), steps=40, batch_size=16, lr=3e-3, log_every=10,
                                               weight_decay=0.0, schedule="constant", device="cpu")).fit()  # fmt: skip
    losses = [row["loss"] for row in history]
    assert losses[-1] < 0.3 * floor < losses[0], (floor, losses)


def test_sizes_round_trip_and_bad_config(tmp_path):
    base = create_model("simmim_vit_base", depth=1)
    assert base.encoder.blocks[0].ls1.gamma[0].item() == pytest.approx(0.1) and base.config.mask_patch_size == 32
    assert base.config.masker().num_masked == round(0.6 * 49) * 4
    model = _tiny().eval()
    model.save_pretrained(tmp_path)
    loaded = SimMIM.from_pretrained(tmp_path).eval()
    imgs, mask = torch.rand(2, 3, 8, 8), model.random_mask(2, torch.Generator().manual_seed(0))
    assert torch.equal(loaded(imgs, mask=mask)["loss"], model(imgs, mask=mask)["loss"])
    path = save_reconstruction_grid(model, imgs, tmp_path / "grid.png", scale=2)
    assert np.asarray(Image.open(path)).shape == (3 * (16 + 2) + 2, 2 * (16 + 2) + 2, 3)
    with pytest.raises(ValueError, match="mask_patch_size: expected a multiple of patch_size 2 that divides img_size 8"):
        SimMIMConfig(**{**TINY, "mask_patch_size": 3})
    with pytest.raises(ValueError, match=r"mask_ratio: expected a float in \(0, 1\)"):
        SimMIMConfig(**{**TINY, "mask_ratio": 0.0})


def test_cli_train_then_eval(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.arange(96) % 3
    images = rng.random((96, 8, 8)) * 60
    images[labels == 0, :, :4] += 150
    images[labels == 1, :, 4:] += 150
    images[labels == 2, :4, :] += 150
    np.savez(tmp_path / "toy.npz", images=images.astype(np.uint8), labels=labels)
    sizes = ["--img-size", "8", "--patch-size", "2", "--in-chans", "1", "--embed-dim", "32", "--depth", "2",
             "--num-heads", "2", "--mask-patch-size", "4"]  # fmt: skip
    run = tmp_path / "run"
    assert main(["simmim", "train", "--data", str(tmp_path / "toy.npz"), *sizes, "--max-images", "64", "--steps", "3",
                 "--batch-size", "16", "--out-dir", str(run), "--log-every", "1", "--device", "cpu"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "masks        8 of 16 patches, groups of 4 px" in out and re.search(r"trained      final loss [\d.]+", out)
    assert json.loads((run / "config.json").read_text())["mask_patch_size"] == 4
    args = ["simmim", "eval", str(run), "--data", str(tmp_path / "toy.npz"), "--probe-iters", "30", "--k", "5"]
    assert main([*args, "--reconstruction", str(tmp_path / "grid.png"), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "features     block 1 of 2, before the final norm" in out
    rows = re.findall(r"^(simmim|random init|raw pixels) +[\d.]+% +[\d.]+%$", out, re.MULTILINE)
    assert rows == ["simmim", "random init", "raw pixels"]
    assert json.loads((tmp_path / "r.json").read_text())["layer"] == 1 and (tmp_path / "grid.png").is_file()
    assert main([*args, "--probe-layer", "0", "--no-baselines", "--json", str(tmp_path / "r0.json")]) == 0
    assert json.loads((tmp_path / "r0.json").read_text())["layer"] is None
    assert main([*args, "--probe-layer", "3"]) == 2
    assert "--probe-layer: expected 0 .. 2 (the model's depth), got 3" in capsys.readouterr().err
