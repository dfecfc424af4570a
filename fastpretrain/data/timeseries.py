"""Multivariate time series for masked modeling: the UCR / UEA archive's ``.ts`` (and UCR ``.tsv``)
files read by our own small loader, the real ones found inside an installed wheel that ships them
(aeon's ``aeon/datasets/data/<Name>/<Name>_TRAIN.ts``: BasicMotions, JapaneseVowels_eq, GunPoint,
ArrowHead, OSULeaf, ACSF1, ItalyPowerDemand, ...; ``pip install --no-deps aeon`` is enough, nothing
of aeon is imported), and the 1-D patch tokenizer (PatchTST / Ti-MAE): a series [B, C, T] becomes
L patches of ``patch_len`` steps every ``stride`` steps, each group the C x patch_len values, its
position the patch index.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
from pathlib import Path
from typing import ClassVar

import torch

from fastpretrain.checks import check_int
from fastpretrain.data.modalities import GroupsCollate, Labelled, Modality, ModalityData
from fastpretrain.nn.groups import Groups

PACKAGES = ("aeon", "sktime")  # wheels that carry UCR / UEA files under <package>/datasets/data/
INSTALL_HINT = "pip install --no-deps aeon (its wheel ships the files; nothing of it is imported)"
STD_EPS = 1e-8


class TimeSeriesData:
    """One split: ``series`` float32 [N, C, T], ``labels`` int64 [N] (indices into ``classes``)."""

    def __init__(self, series: torch.Tensor, labels: torch.Tensor, classes: list[str], name: str = "") -> None:
        self.series, self.labels, self.classes, self.name = series, labels, classes, name

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.series[i], int(self.labels[i])


def _header_bool(value: str, path: Path, key: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"path: {path}: @{key} should be true or false, got {value!r}")
    return value.lower() == "true"


def read_ts(path: str | Path, classes: list[str] | None = None) -> TimeSeriesData:
    """A ``.ts`` file (sktime / aeon format: ``@`` header lines, then one series per line, its
    channels separated by ``:``, values by ``,``, ``?`` missing, the class label last). Series must
    have one length (the archive's ``_eq`` variants pad the unequal ones); ``classes`` fixes the
    label order (default: the file's ``@classLabel`` list)."""
    path = Path(path)
    header: dict[str, str] = {}
    rows: list[list[list[float]]] = []
    names: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        in_data = False
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                key, _, value = line[1:].partition(" ") if line.startswith("@") else ("", "", "")
                if not key:
                    raise ValueError(f"path: {path}:{number}: expected an @ header line before @data, got {line[:40]!r}")
                header[key.lower()] = value.strip()
                in_data = key.lower() == "data"
                if in_data and header.get("targetlabel", "false").split(" ")[0].lower() == "true":
                    raise ValueError(f"path: {path} is a regression dataset (@targetLabel), expected class labels")
                continue
            fields = line.split(":")
            labelled = header.get("classlabel", "false").split(" ")[0].lower() == "true"
            if labelled:
                names.append(fields.pop().strip())
            try:
                rows.append([[math.nan if v.strip() == "?" else float(v) for v in ch.split(",")] for ch in fields])
            except ValueError:
                raise ValueError(f"path: {path}:{number}: not comma-separated numbers") from None
    if "data" not in header:
        raise ValueError(f"path: {path} is not a .ts file (no @data line)")
    if _header_bool(header.get("timestamps", "false"), path, "timeStamps"):
        raise ValueError(f"path: {path}: series with time stamps are not supported")
    if not rows:
        raise ValueError(f"path: {path} holds no series")
    channels = {len(r) for r in rows}
    lengths = {len(ch) for r in rows for ch in r}
    if len(channels) > 1:
        raise ValueError(f"path: {path}: series have different channel counts {sorted(channels)}")
    if len(lengths) > 1:
        raise ValueError(f"path: {path}: series of unequal lengths ({min(lengths)} .. {max(lengths)}); use an "
                         f"equal-length variant (the archive's *_eq files)")  # fmt: skip
    if "dimensions" in header and int(header["dimensions"]) != channels.pop():
        raise ValueError(f"path: {path}: @dimensions {header['dimensions']} but the series have {len(rows[0])}")
    if classes is None:
        listed = header.get("classlabel", "").split()[1:]
        classes = listed or sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise ValueError(f"path: {path}: class {unknown[0]!r} is not one of {classes}")
    labels = torch.tensor([index[n] for n in names] if names else [-1] * len(rows), dtype=torch.long)
    return TimeSeriesData(torch.tensor(rows, dtype=torch.float32), labels, list(classes), header.get("problemname", ""))


def read_tsv(path: str | Path, classes: list[str] | None = None) -> TimeSeriesData:
    """A UCR ``.tsv`` file: one univariate series per line, the class label first, tab-separated."""
    path = Path(path)
    rows, names = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            label, *values = line.split("\t")
            try:
                rows.append([[float(v) for v in values]])
            except ValueError:
                raise ValueError(f"path: {path}:{number}: not tab-separated numbers") from None
            names.append(label.strip())
    if not rows or len({len(r[0]) for r in rows}) > 1:
        raise ValueError(f"path: {path}: expected series of one length, got {len({len(r[0]) for r in rows})} lengths")
    classes = classes or sorted(set(names), key=lambda c: (float(c), c) if _is_number(c) else (math.inf, c))
    index = {c: i for i, c in enumerate(classes)}
    if set(names) - set(index):
        raise ValueError(f"path: {path}: class {min(set(names) - set(index))!r} is not one of {classes}")
    return TimeSeriesData(torch.tensor(rows), torch.tensor([index[n] for n in names]), list(classes), path.stem)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def shipped_files() -> dict[str, Path]:
    """Name -> TRAIN file of every classification dataset (``@classLabel true``, a TEST split beside
    it) that an installed package of :data:`PACKAGES` ships, found without importing the package."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            for train in sorted((Path(root) / "datasets" / "data").glob("*/*_TRAIN.ts")):
                name = train.name[: -len("_TRAIN.ts")]
                if name not in found and (train.parent / f"{name}_TEST.ts").is_file() and _classified(train):
                    found[name] = train
    return found


def _classified(path: Path) -> bool:
    """Whether the .ts file's header says ``@classLabel true``."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.lower().startswith("@classlabel"):
                return line.split()[1].lower() == "true"
            if line.lower().startswith("@data"):
                return False
    return False


def shipped_datasets() -> list[str]:
    """The UCR / UEA classification datasets (a TRAIN and a TEST split) the installed packages ship."""
    return sorted(shipped_files())


def load_split(data: str, split: str, classes: list[str] | None = None) -> TimeSeriesData:
    """Split ``split`` (train or test) of ``data``: a dataset a package ships (``BasicMotions``), a
    folder holding ``<folder name>_TRAIN.ts`` / ``_TEST.ts`` (or ``.tsv``), or one ``.ts`` / ``.tsv``
    file (then only that file, whatever the split)."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected train or test, got {split!r}")
    path = Path(data)
    if path.is_file():
        return (read_tsv if path.suffix == ".tsv" else read_ts)(path, classes)
    if path.is_dir():
        folder, name = path, path.name
    else:
        shipped = shipped_files()
        if data not in shipped:
            raise FileNotFoundError(f"data: {data!r} is neither a file, a folder, nor a dataset an installed package "
                                    f"ships ({', '.join(shipped) or f'none installed: {INSTALL_HINT}'})")  # fmt: skip
        folder, name = shipped[data].parent, data
    for suffix, read in ((".ts", read_ts), (".tsv", read_tsv)):
        file = folder / f"{name}_{split.upper()}{suffix}"
        if file.is_file():
            return read(file, classes)
    raise FileNotFoundError(f"data: no {name}_{split.upper()}.ts or .tsv in {folder}")


def load_dataset(data: str) -> tuple[TimeSeriesData, TimeSeriesData]:
    """(train, test) splits of ``data`` (see :func:`load_split`), the test labels in the train's class order."""
    train = load_split(data, "train")
    test = load_split(data, "test", train.classes)
    if test.series.shape[1:] != train.series.shape[1:]:
        raise ValueError(f"data: {data}: test series are {tuple(test.series.shape[1:])}, train "
                         f"{tuple(train.series.shape[1:])} (channels, steps)")  # fmt: skip
    return train, test


class PatchTokenizer:
    """[B, C, T] series -> :class:`Groups` of 1-D patches: ``values`` [B, L, C * patch_len] (each
    patch channel-major: channel 0's steps, then channel 1's, ...), ``positions`` [B, L, 1] the
    patch index. ``mean`` / ``std`` (per channel) standardise first; missing values (NaN) become 0
    after it. When the patches do not end on the last step, the series is padded with its last value
    (PatchTST), so every step is in a patch; :meth:`series` maps values back (overlaps averaged)."""

    def __init__(self, patch_len: int, stride: int | None = None, mean: list[float] | None = None,
                 std: list[float] | None = None) -> None:  # fmt: skip
        self.patch_len = check_int("patch_len", patch_len, 1)
        self.stride = check_int("stride", patch_len if stride is None else stride, 1, patch_len)
        if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std)):
            raise ValueError("std: give mean and std together, one value per channel each")
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32)

    def num_patches(self, steps: int) -> int:
        """L for series of ``steps`` steps."""
        return 1 + max(0, math.ceil((steps - self.patch_len) / self.stride))

    def _check(self, series: torch.Tensor) -> None:
        if not isinstance(series, torch.Tensor) or series.dim() != 3 or not series.is_floating_point():
            got = f"{series.dtype} {tuple(series.shape)}" if isinstance(series, torch.Tensor) else type(series).__name__
            raise ValueError(f"series: expected a float [B, C, T] tensor, got {got}")
        if self.mean is not None and series.shape[1] != len(self.mean):
            raise ValueError(f"series: expected {len(self.mean)} channels (the mean / std's), got {series.shape[1]}")

    def __call__(self, series: torch.Tensor) -> Groups:
        self._check(series)
        batch, channels, steps = series.shape
        x = series
        if self.mean is not None:
            x = (x - self.mean.to(x)[:, None]) / self.std.to(x)[:, None]
        x = torch.nan_to_num(x, nan=0.0)
        padded = self.patch_len + (self.num_patches(steps) - 1) * self.stride
        if padded > steps:
            x = torch.cat([x, x[..., -1:].expand(-1, -1, padded - steps)], dim=-1)
        patches = x.unfold(-1, self.patch_len, self.stride)  # [B, C, L, p]
        values = patches.permute(0, 2, 1, 3).reshape(batch, patches.shape[2], channels * self.patch_len)
        positions = torch.arange(patches.shape[2], dtype=x.dtype, device=x.device).expand(batch, -1)[..., None]
        return Groups(values.contiguous(), positions.contiguous())

    def series(self, values: torch.Tensor, steps: int) -> torch.Tensor:
        """Patch values [B, L, C * patch_len] -> the (standardised) series [B, C, steps], overlaps averaged."""
        batch, length, width = values.shape
        if width % self.patch_len or length != self.num_patches(steps):
            raise ValueError(f"values: expected [B, {self.num_patches(steps)}, C * {self.patch_len}], got "
                             f"{tuple(values.shape)}")  # fmt: skip
        channels, padded = width // self.patch_len, self.patch_len + (length - 1) * self.stride
        cols = values.reshape(batch, length, channels, self.patch_len).permute(0, 2, 3, 1)
        cols = cols.reshape(batch, channels * self.patch_len, length)
        fold = torch.nn.functional.fold
        total = fold(cols, (1, padded), (1, self.patch_len), stride=(1, self.stride))
        count = fold(torch.ones_like(cols), (1, padded), (1, self.patch_len), stride=(1, self.stride))
        return (total / count).reshape(batch, channels, padded)[..., :steps]


def channel_stats(series: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of [N, C, T] series over all their (non-missing) steps."""
    flat = series.transpose(0, 1).reshape(series.shape[1], -1).double()
    ok = ~flat.isnan()
    count = ok.sum(1).clamp(min=1)
    mean = torch.where(ok, flat, 0).sum(1) / count
    var = torch.where(ok, (flat - mean[:, None]) ** 2, 0).sum(1) / count
    return mean.tolist(), (var.sqrt() + STD_EPS).tolist()


def _positive(text: str) -> int:
    """An argparse type: an int >= 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return int(text)


class TimeSeries(Modality):
    """UCR / UEA classification datasets, 1-D patches, a linear / kNN probe on the classes."""

    name = "timeseries"
    help = "UCR / UEA time series (.ts / .tsv), cut into 1-D patches"
    defaults: ClassVar[dict] = {"masking": "random", "encoder": "visible", "position": "sincos"}
    flags: ClassVar[dict] = {"data": "--series", "path": "--series", "patch_len": "--patch-len", "stride": "--stride"}

    def add_flags(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--series", default="BasicMotions", metavar="DATA",
                           help="timeseries: a UCR / UEA dataset an installed package ships (aeon's: BasicMotions, "
                                "JapaneseVowels_eq, GunPoint, ...), a folder with <Name>_TRAIN.ts / _TEST.ts, or a "
                                ".ts / .tsv file (default BasicMotions)")  # fmt: skip
        group.add_argument("--patch-len", type=_positive, default=8, help="timeseries: steps per patch (default 8)")
        group.add_argument("--stride", type=_positive, default=None,
                           help="timeseries: steps between patch starts (default: the patch length)")  # fmt: skip

    def add_eval_flags(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--series", default=None, metavar="DATA",
                           help="timeseries: the labelled TRAIN / TEST splits to probe on, as for train (default: "
                                "the run's)")  # fmt: skip

    def settings(self, args: argparse.Namespace) -> dict:
        train = load_split(args.series, "train")
        mean, std = channel_stats(train.series)
        tokenizer = PatchTokenizer(args.patch_len, args.stride, mean, std)  # checks the flags
        return {"patch_len": tokenizer.patch_len, "stride": tokenizer.stride, "mean": mean, "std": std}

    def tokenizer(self, settings: dict) -> PatchTokenizer:
        return PatchTokenizer(settings["patch_len"], settings["stride"], settings["mean"], settings["std"])

    def train_data(self, args: argparse.Namespace, settings: dict) -> ModalityData:
        train = load_split(args.series, "train")
        tokenizer = self.tokenizer(settings)
        channels, steps = train.series.shape[1:]
        line = (f"data         {args.series}: {len(train):,} series of {channels} channels x {steps} steps, "
                f"{tokenizer.num_patches(steps)} patches of {tokenizer.patch_len} every {tokenizer.stride}")  # fmt: skip
        return ModalityData(train, GroupsCollate(tokenizer), channels * tokenizer.patch_len, 1, (line,),
                            {"data": str(args.series)})  # fmt: skip

    def probe_data(self, args: argparse.Namespace, settings: dict, run: dict) -> tuple[Labelled, Labelled]:
        train, test = load_dataset(args.series or run.get("data", "BasicMotions"))
        return Labelled(train.series, train.labels), Labelled(test.series, test.labels)

    def raw_features(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num(inputs.flatten(1).float(), nan=0.0)


__all__ = ["PatchTokenizer", "TimeSeries", "TimeSeriesData", "channel_stats", "load_dataset",
           "load_split", "read_ts", "read_tsv", "shipped_datasets", "shipped_files"]  # fmt: skip
