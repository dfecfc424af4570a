"""The image data every image command shares: the ``--data`` sources, per-channel normalisation,
seeded subsets and evaluation splits, and the training flags and dataset built from them."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fastpretrain.cli.args import at_least
from fastpretrain.cli.errors import renamed

DATA_HELP = ("'fashion-mnist' (the shared data folder or $FASTPRETRAIN_DATA), an image folder, an IDX images file, "
             "or .npy/.npz")


def normalisation(data: str, in_chans: int, mean, std) -> tuple[list[float], list[float]]:
    """The per-channel mean/std given, else Fashion-MNIST's, ImageNet's (3 channels) or 0.5/0.5."""
    from fastpretrain.data.images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, IMAGENET_MEAN, IMAGENET_STD

    if (mean is None) != (std is None):
        raise ValueError("--mean, --std: give both or neither")
    if mean is not None:
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError(f"--mean, --std: expected {in_chans} values each (--in-chans), "
                             f"got {len(mean)} and {len(std)}")
        if not all(s > 0 for s in std):
            raise ValueError(f"--std: expected values > 0, got {list(std)}")
        return list(mean), list(std)
    if data == "fashion-mnist" and in_chans == 1:
        return list(FASHION_MNIST_MEAN), list(FASHION_MNIST_STD)
    if in_chans == 3:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    return [0.5] * in_chans, [0.5] * in_chans


def limit(dataset, n: int | None, seed: int):
    """A seeded random subset of n items (all when n is None or too large)."""
    from torch.utils.data import Subset

    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].tolist())


def eval_splits(data: str, transform, channels: int, test_fraction: float, seed: int):
    """(train, test): the source's own splits (fashion-mnist, folders with train/ and test/ or val/),
    else a seeded random split holding out ``test_fraction``."""
    from torch.utils.data import Subset

    from fastpretrain.data.images import image_dataset

    path = Path(data)
    if data == "fashion-mnist" or (path.is_dir() and (path / "train").is_dir()):
        return image_dataset(data, "train", transform, channels), image_dataset(data, "test", transform, channels)
    full = image_dataset(data, "train", transform, channels)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed)).tolist()
    n_test = max(1, round(len(full) * test_fraction))
    if n_test >= len(full):
        raise ValueError(f"--test-fraction: {test_fraction} leaves no training images of {len(full)}")
    return Subset(full, perm[n_test:]), Subset(full, perm[:n_test])


def add_image_flags(group) -> None:
    """``--data``, ``--mean``, ``--std`` and ``--max-images`` in the argument group ``group``."""
    group.add_argument("--data", default="fashion-mnist", help=DATA_HELP + " (default fashion-mnist)")
    group.add_argument("--mean", type=float, nargs="+", default=None, help="per-channel normalisation mean "
                       "(default: Fashion-MNIST's, ImageNet's or 0.5)")  # fmt: skip
    group.add_argument("--std", type=float, nargs="+", default=None, help="per-channel normalisation std")
    group.add_argument("--max-images", type=at_least(1), default=None,
                       help="train on a seeded random subset of N images (default all)")  # fmt: skip


def train_images(args: argparse.Namespace, in_chans: int, transform):
    """The training images of ``args.data`` (at most ``--max-images``) through ``transform``."""
    from fastpretrain.data.images import image_dataset

    with renamed("--data", "data", "path", "source"):
        return limit(image_dataset(args.data, "train", transform, channels=in_chans), args.max_images, args.seed)
