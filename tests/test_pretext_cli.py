"""``fastpretrain inpaint|colorize train|eval`` on a tiny image file: train writes a run that loads
(the colorizer's bins fitted before training and saved with it), eval prints the probes, the
baselines and the held-out task loss, and bad flags exit 2 naming them."""

import json
import re

import numpy as np
import pytest
import torch

from fastpretrain.cli import main
from fastpretrain.models import ContextEncoder, IntensityColorizer

pytestmark = pytest.mark.usefixtures("one_thread")
SIZES = ["--img-size", "8", "--in-chans", "1", "--widths", "8", "16", "--mask-ratio", "0.25"]


@pytest.fixture
def toy(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(96) % 3
    images = rng.random((96, 8, 8)) * 60
    images[labels == 0, :, :4] += 150
    images[labels == 1, :, 4:] += 150
    images[labels == 2, :4, :] += 150
    np.savez(tmp_path / "toy.npz", images=images.astype(np.uint8), labels=labels)
    return tmp_path / "toy.npz"


def train_then_eval(command: str, toy, run, capsys, *extra: str) -> str:
    assert main([command, "train", "--data", str(toy), *SIZES, *extra, "--steps", "3", "--warmup-steps", "1", "--batch-size", "16",
                 "--out-dir", str(run), "--log-every", "1", "--device", "cpu"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert re.search(r"trained      final loss [\d.]+", out), out
    assert main([command, "eval", str(run), "--data", str(toy), "--probe-iters", "20", "--k", "5",
                 "--json", str(run / "eval.json")]) == 0  # fmt: skip
    out += capsys.readouterr().out
    rows = re.findall(rf"^({command}|random init|raw pixels) +[\d.]+% +[\d.]+%$", out, re.MULTILINE)
    assert rows == [command, "random init", "raw pixels"], out
    assert re.search(r"held-out     task loss [\d.]+ vs [\d.]+", out)
    saved = json.loads((run / "eval.json").read_text())
    assert saved["pool"] == "mean" and saved["results"]["held_out"]["heldout_loss"] > 0
    return out


def test_inpaint_train_then_eval(toy, tmp_path, capsys):
    run = tmp_path / "inpaint"
    out = train_then_eval("inpaint", toy, run, capsys, "--model", "inpaint_cnn_adv_fashion_mnist", "--disc-widths", "8")
    assert "masks        center, 4 of 16 cells of 2 px" in out and "adversarial 0.999 / 0.001" in out
    model = ContextEncoder.from_pretrained(run)
    assert model.config.adversarial and model.config.widths == (8, 16) and model.config.disc_widths == (8,)
    with pytest.raises(SystemExit) as e:
        main(["inpaint", "eval", str(run), "--data", str(toy), "--pool", "cls"])  # a CNN has no cls token
    assert e.value.code == 2 and "argument --pool: invalid choice: 'cls'" in capsys.readouterr().err


def test_colorize_train_then_eval(toy, tmp_path, capsys):
    run = tmp_path / "colorize"
    out = train_then_eval("colorize", toy, run, capsys, "--num-bins", "4", "--mask", "random", "--bin-images", "32")
    assert "bins         4 k-means intensity bins of 32 training images' pixels" in out
    assert re.search(r"hidden-pixel bin accuracy [\d.]+% vs [\d.]+%", out)
    model = IntensityColorizer.from_pretrained(run)
    bins = model.bins.flatten()
    assert bins.shape == (4,) and torch.all(bins[1:] > bins[:-1])  # fitted, sorted: not the default quantiles
    assert not torch.allclose(bins, torch.special.ndtri((torch.arange(4) + 0.5) / 4))


def test_bad_flags_exit_2(toy, tmp_path, capsys):
    base = ["colorize", "train", "--data", str(toy), *SIZES, "--steps", "1", "--warmup-steps", "0", "--out-dir",
            str(tmp_path / "r")]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main([*base, "--mask", "ring"])
    assert e.value.code == 2 and "argument --mask: expected one of ('center', 'block', 'random')" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["inpaint", "train", "--data", str(toy), *SIZES, "--mask-cell", "3"])
    assert "argument --mask-cell: 3 does not divide img_size 8" in capsys.readouterr().err
