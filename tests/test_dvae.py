"""The dVAE tokenizer: KL to the uniform prior as its formula, the annealed temperature and KL
weight, hard codes = argmax, training lowers the reconstruction error of the hard codes below the
mean image, tokens cached once per (tokenizer, images), and ``fastpretrain dvae train|eval``."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from fastpretrain.cli import main
from fastpretrain.data.image_masking import RandomPatchMask
from fastpretrain.data.visual_tokens import TokenizedImages, cached_tokens
from fastpretrain.models import DVAE, DVAEConfig, create_model
from fastpretrain.models.dvae import kl_to_uniform
from fastpretrain.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"img_size": 8, "in_chans": 1, "hidden_dim": 16, "num_downsample": 1, "num_tokens": 16, "codebook_dim": 8,
        "anneal_steps": 100, "kl_warmup_steps": 50}  # fmt: skip


def test_kl_to_uniform_is_its_formula():
    logits = torch.randn(3, 7, 2, 2, dtype=torch.float64)
    q = logits.softmax(1)
    torch.testing.assert_close(kl_to_uniform(logits).double(), (q * (q * 7).log()).sum(1), atol=1e-6, rtol=1e-6)
    assert kl_to_uniform(torch.zeros(2, 5)).abs().max() < 1e-6  # uniform codes: no KL
    assert kl_to_uniform(torch.tensor([[50.0, 0, 0, 0]])).item() == pytest.approx(math.log(4), abs=1e-4)


def test_schedules_and_hard_codes():
    torch.manual_seed(0)
    model = DVAE(DVAEConfig(**TINY))
    assert model.temperature(0) == 1.0 and model.temperature(100) == model.temperature(500) == 1 / 16
    assert model.temperature(50) == pytest.approx((1 + 1 / 16) / 2)
    assert model.kl_scale(0) == 0 and model.kl_scale(25) == pytest.approx(0.005) and model.kl_scale(99) == 0.01
    imgs = torch.randn(2, 1, 8, 8)
    model.train()
    out = model(imgs)
    assert int(model.step) == 1 and out["temperature"] == 1.0
    tokens = model.tokenize(imgs)
    assert tokens.shape == (2, 16) and torch.equal(tokens, model.logits(imgs).argmax(1).flatten(1))
    model.eval()
    torch.testing.assert_close(model(imgs)["recon"], (model.decode_tokens(tokens) - imgs).square().mean())
    assert int(model.step) == 1  # eval forwards do not advance the schedules
    with pytest.raises(ValueError, match="img_size: 10 is not divisible by 2 \\*\\* num_downsample = 4"):
        DVAEConfig(**{**TINY, "img_size": 10, "num_downsample": 2})
    with pytest.raises(ValueError, match="temperature_end: expected 0 < temperature_end <= temperature_start"):
        DVAEConfig(**{**TINY, "temperature_end": 2.0})


def test_training_beats_the_mean_image(tmp_path):
    """Four patterns: the hard codes must tell them apart, rebuilding the images far better than their mean."""
    torch.manual_seed(0)
    model = DVAE(DVAEConfig(**TINY))
    base = torch.zeros(4, 1, 8, 8)
    base[0, :, :4], base[1, :, 4:], base[2, :, :, :4], base[3, :, :, 4:] = 1, 1, 1, 1
    images = base.repeat(8, 1, 1, 1) + 0.05 * torch.randn(32, 1, 8, 8)
    floor = (images - images.mean(0)).square().mean().item()
    Trainer(model, TensorDataset(images, torch.zeros(32)), TrainConfig(out_dir=str(tmp_path), steps=80, batch_size=32,
            lr=3e-3, weight_decay=0.0, schedule="constant", device="cpu", log_every=50)).fit()  # fmt: skip
    model.eval()
    recon = (model.decode_tokens(model.tokenize(images)) - images).square().mean().item()
    assert recon < 0.25 * floor, (recon, floor)


def test_tokens_are_cached_once_per_key(tmp_path):
    images = TensorDataset(torch.randn(10, 1, 8, 8), torch.zeros(10))
    calls = []

    def tokenize(x):
        calls.append(len(x))
        return (x.flatten(1)[:, :4] > 0).long()

    first = cached_tokens(tokenize, images, tmp_path, {"tokenizer": "a"}, batch_size=4)
    again = cached_tokens(tokenize, images, tmp_path, {"tokenizer": "a"}, batch_size=4)
    assert calls == [4, 4, 2] and torch.equal(first, again) and first.dtype == torch.int64
    assert torch.equal(first, (images.tensors[0].flatten(1)[:, :4] > 0).long())
    cached_tokens(tokenize, images, tmp_path, {"tokenizer": "b"})  # another tokenizer: computed again
    assert calls == [4, 4, 2, 10] and len(list(tmp_path.glob("tokens-*.npy"))) == 2
    assert not list(tmp_path.glob("*.tmp*"))
    data = TokenizedImages(images, first, RandomPatchMask(2, 0.5))
    image, codes, mask = data[3]
    assert torch.equal(codes, first[3]) and mask.sum() == 2 and torch.equal(image, images.tensors[0][3])
    with pytest.raises(ValueError, match="tokens: 9 rows for 10 images"):
        TokenizedImages(images, first[:9], RandomPatchMask(2, 0.5))


def test_cli_train_then_eval(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "toy.npz", images=rng.integers(0, 255, (40, 8, 8), dtype=np.uint8), labels=np.arange(40) % 2)
    sizes = ["--img-size", "8", "--hidden-dim", "8", "--num-downsample", "1", "--num-tokens", "16", "--codebook-dim", "8"]
    run = tmp_path / "run"
    assert main(["dvae", "train", "--data", str(tmp_path / "toy.npz"), *sizes, "--steps", "3", "--batch-size", "8",
                 "--out-dir", str(run), "--log-every", "1", "--device", "cpu", "--no-augment"]) == 0  # fmt: skip
    assert "4 x 4 codes of 16" in capsys.readouterr().out
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["temperature"] < 1.0
    assert main(["dvae", "eval", str(run), "--data", str(tmp_path / "toy.npz"), "--reconstruction",
                 str(tmp_path / "r.png"), "--num-images", "3", "--json", str(tmp_path / "r.json")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "8 held-out images" in out and "codes used" in out
    stats = json.loads((tmp_path / "r.json").read_text())
    assert 1 <= stats["codes_used"] <= 16 and stats["recon_mse"] > 0 and 1 <= stats["perplexity"] <= 16
    assert np.asarray(Image.open(tmp_path / "r.png")).shape[0] == 2 * (8 * 12 + 2) + 2
    assert create_model("dvae_imagenet", hidden_dim=8, codebook_dim=8).config.grid_size == 28
