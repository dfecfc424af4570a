"""``fastpretrain igpt train`` then ``igpt eval`` on a small image array the test writes: the run's
palette, probe scores against raw pixels and samples.png; eval reproduces the probe; bad flags fail
in one line."""

import json

import numpy as np
import pytest
from PIL import Image

from fastpretrain.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def images(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    x = rng.integers(0, 60, (60, 8, 8)).astype(np.uint8)
    x[labels == 1, 2:6, 2:6] = 230  # class 1: a bright square
    path = tmp_path / "squares.npz"
    np.savez(path, images=x, labels=labels)
    return path


def test_igpt_train_eval(tmp_path, capsys):
    data, run = images(tmp_path), tmp_path / "run"
    flags = ["--data", str(data), "--probe-train", "40", "--probe-test", "20", "--samples", "4"]
    assert main(["igpt", "train", *flags, "--model", "igpt_tiny", "--image-size", "6", "--palette-size", "4",
                 "--steps", "4", "--batch-size", "8", "--warmup-steps", "1", "--log-every", "2",
                 "--out-dir", str(run)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "36 palette ids of 4 colours" in out and "probe        igpt" in out and "raw_pixels" in out
    palette = json.loads((run / "palette.json").read_text())
    assert len(palette) == 4 and sorted(palette) == palette
    result = json.loads((run / "eval.json").read_text())
    assert result["probe_layer"] == 1 and 0 <= result["igpt"]["linear"] <= 1 and result["raw_pixels"]["linear"] > 0.9
    grid = Image.open(run / "samples.png")
    assert grid.mode == "L" and grid.size[0] > 2 * 6
    assert main(["igpt", "eval", str(run), *flags[2:]]) == 0
    assert f"linear {result['igpt']['linear']:.2%}" in capsys.readouterr().out


def test_igpt_bad_flags(tmp_path, capsys):
    assert main(["igpt", "train", "--data", str(tmp_path / "none.npz"), "--out-dir", str(tmp_path / "r")]) == 2
    assert "--data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["igpt", "train", "--objective", "gan", "--out-dir", str(tmp_path / "r")])


def test_igpt_bert_objective_probes_without_samples(tmp_path, capsys):
    data, run = images(tmp_path), tmp_path / "run"
    assert main(["igpt", "train", "--data", str(data), "--probe-train", "40", "--probe-test", "20", "--objective", "bert",
                 "--model", "igpt_tiny", "--image-size", "6", "--palette-size", "4", "--steps", "2", "--batch-size", "8",
                 "--warmup-steps", "1", "--out-dir", str(run)]) == 0  # fmt: skip
    assert "objective bert" in capsys.readouterr().out
    assert json.loads((run / "eval.json").read_text())["igpt"]["linear"] >= 0 and not (run / "samples.png").exists()
