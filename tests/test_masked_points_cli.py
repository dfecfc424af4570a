"""``fastpretrain masked train --modality points`` then ``masked eval``: Point-MAE's defaults
(pointnet embedder, MLP positions, Chamfer target), the tokenizer and cloud settings kept in
config.json, the eval's probe on fresh synthetic clouds; a bad flag fails naming it."""

import json

import pytest

from fastpretrain.cli import main
from fastpretrain.models import MaskedGroups

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--embed-dim", "32", "--num-heads", "2", "--depth", "1", "--decoder-embed-dim", "32", "--decoder-num-heads",
        "2", "--steps", "2", "--batch-size", "8", "--log-every", "1"]  # fmt: skip


def test_masked_train_eval_points(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["masked", "train", "--modality", "points", "--points-clouds", "16", "--points-num", "48",
                 "--points-groups", "6", "--points-group-size", "8", "--target", "geometry", *TINY,
                 "--out-dir", str(run)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "16 clouds of 48 points (8 shapes, seed 0), 6 groups of 8" in out and "mlp positions" in out
    config = json.loads((run / "config.json").read_text())
    assert config["modality"] == "points" and (config["group_dim"], config["pos_dim"]) == (24, 3)
    assert config["tokenizer"] == {"num_groups": 6, "group_size": 8, "num_points": 48, "seed": 0, "noise": 0.01}
    model = MaskedGroups.from_pretrained(run)
    assert (model.config.embedder, model.config.target, model.config.mask_ratio) == ("pointnet", "geometry", 0.6)
    result = tmp_path / "eval.json"
    assert main(["masked", "eval", str(run), "--points-probe", "16", "--probe-iters", "20", "--k", "3",
                 "--json", str(result)]) == 0  # fmt: skip
    assert "probe on 16 train / 8 test items, 8 classes" in capsys.readouterr().out
    rows = json.loads(result.read_text())["results"]
    assert set(rows) == {"ours", "random init", "raw input"} and all(0 <= r["linear"] <= 1 for r in rows.values())


def test_bad_points_flag_names_it(tmp_path, capsys):
    code = main(["masked", "train", "--modality", "points", "--points-num", "4", "--points-groups", "6", *TINY,
                 "--out-dir", str(tmp_path / "run")])  # fmt: skip
    assert code != 0
    assert "--points-num" in capsys.readouterr().err
