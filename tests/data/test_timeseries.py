"""Time series: the 1-D patch tokenizer's layout, padding and round trip; our .ts / .tsv reader on
small written files (missing values, labels, refusals) and on the real UCR / UEA files aeon's wheel
ships (skipped, with the install line, where it is absent)."""

import importlib.util
from pathlib import Path

import pytest
import torch

from fastpretrain.data.timeseries import (
    INSTALL_HINT,
    PatchTokenizer,
    channel_stats,
    load_dataset,
    load_split,
    read_ts,
    read_tsv,
    shipped_datasets,
)

pytestmark = pytest.mark.usefixtures("one_thread")
needs_archive = pytest.mark.skipif(importlib.util.find_spec("aeon") is None or "BasicMotions" not in shipped_datasets(),
                                   reason=f"no UCR / UEA files installed: {INSTALL_HINT}")  # fmt: skip


@pytest.mark.parametrize("patch_len, stride, steps", [(4, 4, 16), (5, 3, 17), (8, 8, 21), (6, 2, 6), (7, 7, 3)])
def test_patches_lay_out_every_step_and_map_back(patch_len, stride, steps):
    tok = PatchTokenizer(patch_len, stride)
    series = torch.randn(2, 3, steps)
    values, positions = tok(series)
    length = tok.num_patches(steps)
    assert values.shape == (2, length, 3 * patch_len) and positions.shape == (2, length, 1)
    assert torch.equal(positions[1, :, 0], torch.arange(length, dtype=torch.float32))
    padded = torch.cat([series, series[..., -1:].expand(-1, -1, patch_len + (length - 1) * stride - steps)], -1)
    for b, i, c, j in [(0, 0, 0, 0), (1, length - 1, 2, patch_len - 1), (1, length // 2, 1, patch_len // 2)]:
        assert values[b, i, c * patch_len + j] == padded[b, c, i * stride + j]
    assert length == 1 or (length - 2) * stride + patch_len < steps  # no patch of padding only
    torch.testing.assert_close(tok.series(values, steps), series)


def test_standardisation_and_missing_values():
    series = torch.tensor([[[1.0, 3.0, float("nan"), 5.0], [10.0, 10.0, 14.0, 14.0]]])
    mean, std = channel_stats(series)
    assert mean == pytest.approx([3.0, 12.0]) and std == pytest.approx([(8 / 3) ** 0.5, 2.0])
    values, _ = PatchTokenizer(2, mean=mean, std=std)(series)
    assert values[0, 1, 0] == 0.0  # the missing step, after standardising
    assert values[0, 0, 2:].tolist() == pytest.approx([-1.0, -1.0])


def test_tokenizer_refuses_bad_input_naming_it():
    with pytest.raises(ValueError, match=r"stride: expected an int in \[1, 4\]"):
        PatchTokenizer(4, 5)
    with pytest.raises(ValueError, match="patch_len: expected an int >= 1"):
        PatchTokenizer(0)
    with pytest.raises(ValueError, match=r"series: expected a float \[B, C, T\] tensor"):
        PatchTokenizer(4)(torch.zeros(3, 8))
    with pytest.raises(ValueError, match="series: expected 2 channels"):
        PatchTokenizer(4, mean=[0.0, 0.0], std=[1.0, 1.0])(torch.zeros(1, 3, 8))


TS = """# comment
@problemName Tiny
@timeStamps false
@univariate false
@dimensions 2
@equalLength true
@seriesLength 3
@classLabel true up down
@data
1,2,3:4,5,6:up
0.5,?,1:2,2,2:down
"""


def test_read_ts_on_a_small_file(tmp_path):
    (tmp_path / "Tiny").mkdir()
    (tmp_path / "Tiny" / "Tiny_TRAIN.ts").write_text(TS)
    (tmp_path / "Tiny" / "Tiny_TEST.ts").write_text(TS.replace(":up\n", ":down\n"))
    data = read_ts(tmp_path / "Tiny" / "Tiny_TRAIN.ts")
    assert data.series.shape == (2, 2, 3) and data.classes == ["up", "down"] and data.labels.tolist() == [0, 1]
    assert data.series[0, 1].tolist() == [4, 5, 6] and torch.isnan(data.series[1, 0, 1])
    train, test = load_dataset(str(tmp_path / "Tiny"))
    assert test.labels.tolist() == [1, 1] and train.name == "Tiny"
    (tmp_path / "u.tsv").write_text("2\t1\t2\n1\t3\t4\n")
    tsv = read_tsv(tmp_path / "u.tsv")
    assert tsv.series.tolist() == [[[1, 2]], [[3, 4]]] and tsv.classes == ["1", "2"] and tsv.labels.tolist() == [1, 0]


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace("4,5,6:up", "4,5:up"), "series of unequal lengths"),
    (lambda t: t.replace("@timeStamps false", "@timeStamps true"), "time stamps are not supported"),
    (lambda t: t.replace("@classLabel true up down", "@targetLabel true"), "regression dataset"),
    (lambda t: t.replace("1,2,3:", "1,x,3:"), r"Tiny_TRAIN.ts:10: not comma-separated numbers"),
    (lambda t: t.replace(":down", ":sideways"), "class 'sideways' is not one of"),
    (lambda t: t.replace("@dimensions 2", "@dimensions 3"), "@dimensions 3 but the series have 2"),
])  # fmt: skip
def test_read_ts_refuses_what_it_cannot_read(tmp_path, edit, match):
    path = tmp_path / "Tiny_TRAIN.ts"
    path.write_text(edit(TS))
    with pytest.raises(ValueError, match=match):
        read_ts(path)


def test_unknown_data_names_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match="data: 'NoSuchSet' is neither a file, a folder, nor a dataset"):
        load_split("NoSuchSet", "train")
    with pytest.raises(FileNotFoundError, match=r"data: no Empty_TRAIN.ts or .tsv in"):
        (tmp_path / "Empty").mkdir()
        load_split(str(tmp_path / "Empty"), "train")


@needs_archive
def test_the_shipped_ucr_uea_files_read_as_published():
    train, test = load_dataset("BasicMotions")
    assert train.series.shape == (40, 6, 100) and test.series.shape == (40, 6, 100)
    assert train.classes == ["Standing", "Running", "Walking", "Badminton"]
    assert torch.bincount(train.labels).tolist() == [10, 10, 10, 10]
    train, test = load_dataset("JapaneseVowels_eq")
    assert train.series.shape == (270, 12, 25) and test.series.shape == (370, 12, 25) and len(train.classes) == 9
    ts = load_split("GunPoint", "train")  # the same split in two formats: .ts and .tsv read alike
    root = Path(importlib.util.find_spec("aeon").submodule_search_locations[0])
    tsv = read_tsv(root / "datasets" / "data" / "GunPoint" / "GunPoint_TRAIN.tsv", ts.classes)
    assert ts.series.shape == (50, 1, 150) and torch.allclose(ts.series, tsv.series) and torch.equal(ts.labels, tsv.labels)

