"""``fastpretrain masked train`` then ``masked eval`` on a small two-class .ts dataset the test
writes (sines and square waves): the run's config.json keeps the modality and the tokenizer, the
saved model loads, eval's probe table and JSON; bad flags fail in one line naming the flag."""

import json
import math
import re

import pytest
import torch

from fastpretrain.cli import main
from fastpretrain.models import MaskedGroups

pytestmark = pytest.mark.usefixtures("one_thread")


def write_split(path, n, seed):
    g = torch.Generator().manual_seed(seed)
    lines = ["@problemName Waves", "@timeStamps false", "@univariate false", "@dimensions 2", "@equalLength true",
             "@seriesLength 24", "@classLabel true sine square", "@data"]  # fmt: skip
    t = torch.arange(24.0)
    for i in range(n):
        phase = float(torch.rand(1, generator=g)) * 2 * math.pi
        wave = torch.sin(t / 3 + phase)
        wave = wave.sign() if i % 2 else wave
        channels = [wave + 0.1 * torch.randn(24, generator=g), torch.randn(24, generator=g)]
        lines.append(":".join(",".join(f"{v:.4f}" for v in c.tolist()) for c in channels) + (":square" if i % 2 else ":sine"))
    path.write_text("\n".join(lines) + "\n")


def waves(tmp_path):
    folder = tmp_path / "Waves"
    folder.mkdir()
    write_split(folder / "Waves_TRAIN.ts", 24, 0)
    write_split(folder / "Waves_TEST.ts", 20, 1)
    return folder


def test_masked_train_eval_timeseries(tmp_path, capsys):
    data, run = waves(tmp_path), tmp_path / "run"
    assert main(["masked", "train", "--modality", "timeseries", "--series", str(data), "--patch-len", "4",
                 "--embed-dim", "32", "--num-heads", "2", "--depth", "1", "--decoder-embed-dim", "32",
                 "--decoder-num-heads", "2", "--steps", "3", "--batch-size", "8", "--log-every", "1",
                 "--out-dir", str(run)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "24 series of 2 channels x 24 steps, 6 patches of 4 every 4" in out and "groups of 8 values" in out
    config = json.loads((run / "config.json").read_text())
    assert config["modality"] == "timeseries" and config["tokenizer"]["patch_len"] == 4
    assert (config["group_dim"], config["pos_dim"], config["data"]) == (8, 1, str(data))
    assert len(config["tokenizer"]["mean"]) == 2
    model = MaskedGroups.from_pretrained(run)
    assert model.config.embed_dim == 32
    result = tmp_path / "eval.json"
    assert main(["masked", "eval", str(run), "--json", str(result), "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "probe on 24 train / 20 test items, 2 classes" in out
    rows = json.loads(result.read_text())["results"]
    assert set(rows) == {"ours", "random init", "raw input"}
    assert f"{rows['ours']['linear']:>12.2%}" in out and all(0 <= r["knn"] <= 1 for r in rows.values())


@pytest.mark.parametrize("flags, match", [
    (["--patch-len", "0"], "argument --patch-len: expected an int >= 1"),
    (["--patch-len", "4", "--stride", "6"], r"--stride: expected an int in \[1, 4\]"),
    (["--series", "NoSuchSet"], "--series: 'NoSuchSet' is neither a file"),
    (["--masking", "span"], "argument --encoder: 'visible' needs a fixed masked count"),
    (["--modality", "smell"], "argument --modality: invalid choice"),
])  # fmt: skip
def test_masked_train_bad_flags_name_the_flag(tmp_path, capsys, flags, match):
    data = waves(tmp_path)
    try:
        status = main(["masked", "train", "--series", str(data), "--steps", "1", "--out-dir", str(tmp_path / "r"), *flags])
    except SystemExit as e:
        status = e.code
    assert status == 2
    assert re.search(match, capsys.readouterr().err)
