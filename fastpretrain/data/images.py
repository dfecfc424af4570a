"""Image datasets (map-style, items ``(image float32 [C, H, W], label int)``); their transforms
are in :mod:`fastpretrain.data.image_transforms`.

Sources: a folder of class subfolders (:class:`ImageFolder`, like torchvision's), IDX files
(:class:`IDXDataset`, the MNIST / Fashion-MNIST format), NumPy arrays (:class:`ArrayDataset`,
``.npy`` / ``.npz``), and :func:`fashion_mnist` for the copy beside the project. Images are held
as uint8 (arrays, IDX) or read on access (folders), scaled to [0, 1], then ``transform`` applies.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fastpretrain.data.datasets import find_data

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")  # fmt: skip
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _TensorImages(Dataset):
    """uint8 images [N, C, H, W] in memory with int64 labels [N]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None, source: str) -> None:
        if len(images) == 0:
            raise ValueError(f"{source}: holds no images")
        if len(labels) != len(images):
            raise ValueError(f"{source}: {len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform, self.source = images, labels.long(), transform, source

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.images[i]
        img = img.float() / 255 if img.dtype == torch.uint8 else img.float()
        return (self.transform(img) if self.transform else img), int(self.labels[i])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def _open(path: Path):
    """The file, decompressed when it is gzip (by its magic bytes, whatever its name)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (optionally .gz) as a NumPy array: magic 0x0000TTNN (type TT, NN dimensions),
    then NN big-endian uint32 sizes, then the data."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: IDX file {str(path)!r} does not exist")
    types = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    with _open(path) as f:
        head = f.read(4)
        if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] not in types:
            raise ValueError(f"path: {str(path)!r} is not an IDX file (magic {head.hex()})")
        ndim = head[3]
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=types[head[2]])
    if data.size != math.prod(shape):
        raise ValueError(f"path: {str(path)!r} holds {data.size} values, its header says {shape}")
    return data.reshape(shape)


class IDXDataset(_TensorImages):
    """Images [N, H, W] (grey) or [N, H, W, C] from an IDX file, labels from another (optional:
    without one every label is 0)."""

    def __init__(self, images: str | os.PathLike, labels: str | os.PathLike | None = None,
                 transform: Callable | None = None) -> None:  # fmt: skip
        pixels = read_idx(images)
        if pixels.ndim not in (3, 4) or pixels.dtype != np.uint8:
            raise ValueError(f"images: expected uint8 [N, H, W] or [N, H, W, C] in {images}, got {pixels.dtype} {pixels.shape}")
        tensor = torch.from_numpy(pixels.copy())
        tensor = tensor[:, None] if tensor.dim() == 3 else tensor.permute(0, 3, 1, 2).contiguous()
        label_array = read_idx(labels) if labels is not None else np.zeros(len(pixels), dtype=np.int64)
        if label_array.ndim != 1:
            raise ValueError(f"labels: expected a 1-d IDX file, got shape {label_array.shape}")
        super().__init__(tensor, torch.from_numpy(label_array.astype(np.int64)), transform, str(images))


class ArrayDataset(_TensorImages):
    """Images from a NumPy array, or a ``.npy`` / ``.npz`` file: [N, H, W] (grey), [N, H, W, C] or
    [N, C, H, W] with C in {1, 3, 4}; uint8 in 0..255 or floats in [0, 1]. Labels: ``labels`` (an
    array or a .npy path), else an ``.npz``'s ``labels`` / ``y`` / ``y_train`` entry, else all 0."""

    IMAGE_KEYS, LABEL_KEYS = ("images", "x", "x_train", "arr_0"), ("labels", "y", "y_train", "arr_1")

    def __init__(self, images, labels=None, transform: Callable | None = None) -> None:
        source = str(images) if not isinstance(images, np.ndarray) else "images"
        if not isinstance(images, np.ndarray):
            images, found = self._load(Path(images))
            labels = found if labels is None else labels
        if labels is not None and not isinstance(labels, np.ndarray):
            path = Path(labels)
            if not path.is_file():
                raise FileNotFoundError(f"labels: file {str(path)!r} does not exist")
            labels = np.load(path)
        if images.ndim == 3:
            images = images[:, None]
        elif images.ndim == 4 and images.shape[-1] in (1, 3, 4):
            images = images.transpose(0, 3, 1, 2)
        elif not (images.ndim == 4 and images.shape[1] in (1, 3, 4)):
            raise ValueError(f"images: expected [N, H, W], [N, H, W, C] or [N, C, H, W] with C in (1, 3, 4), "
                             f"got shape {images.shape}")  # fmt: skip
        if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"images: expected uint8 or float pixels, got {images.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(images))
        if tensor.is_floating_point():
            tensor = tensor.float()
        labels = np.zeros(len(images), dtype=np.int64) if labels is None else np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels: expected a 1-d integer array, got {labels.dtype} of shape {labels.shape}")
        super().__init__(tensor, torch.from_numpy(labels.astype(np.int64)), transform, source)

    @classmethod
    def _load(cls, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        if not path.is_file():
            raise FileNotFoundError(f"images: file {str(path)!r} does not exist")
        if path.suffix == ".npy":
            return np.load(path), None
        if path.suffix != ".npz":
            raise ValueError(f"images: expected a .npy or .npz file, got {str(path)!r}")
        with np.load(path) as z:
            image_key = next((k for k in cls.IMAGE_KEYS if k in z), None)
            if image_key is None:
                raise ValueError(f"images: {str(path)!r} has none of the entries {cls.IMAGE_KEYS} (it has {list(z)})")
            label_key = next((k for k in cls.LABEL_KEYS if k in z), None)
            return z[image_key], (z[label_key] if label_key else None)


class ImageFolder(Dataset):
    """``root/<class>/<image>`` (classes sorted by name, label = index), read with PIL on access.

    ``channels``: 3 converts to RGB, 1 to grey. Images of differing sizes need a ``transform``
    that makes them equal (e.g. :class:`~fastpretrain.data.image_transforms.RandomResizedCropFlip` or
    :class:`~fastpretrain.data.image_transforms.Resize`) to be batched.
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None, channels: int = 3) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"root: image folder {str(root)!r} does not exist")
        if channels not in (1, 3):
            raise ValueError(f"channels: expected 1 or 3, got {channels!r}")
        self.classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise ValueError(f"root: {str(root)!r} has no class subfolders (expected root/<class>/<image>)")
        self.samples = [(p, label) for label, name in enumerate(self.classes)
                        for p in sorted((root / name).rglob("*")) if p.suffix.lower() in IMG_EXTENSIONS]  # fmt: skip
        if not self.samples:
            raise ValueError(f"root: no images ({', '.join(IMG_EXTENSIONS)}) under {str(root)!r}")
        self.root, self.transform, self.channels = root, transform, channels

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB" if self.channels == 3 else "L"))
        img = torch.from_numpy(pixels.copy()).float().div_(255)
        img = img[None] if img.dim() == 2 else img.permute(2, 0, 1)
        return (self.transform(img) if self.transform else img), label


# --- Fashion-MNIST --------------------------------------------------------------------------------


def fashion_mnist(split: str = "train", transform: Callable | None = None, root: str | os.PathLike | None = None) -> IDXDataset:
    """Fashion-MNIST (60k train / 10k test, 28 x 28 grey, 10 classes) from its IDX files in
    ``root/fashion-mnist`` (default: the first shared data folder that holds it, see
    :func:`fastpretrain.data.datasets.find_data`)."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    folder = Path(root) / "fashion-mnist" if root is not None else find_data("fashion-mnist")
    prefix = "train" if split == "train" else "t10k"
    images, labels = folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.is_file() or not labels.is_file():
        raise FileNotFoundError(f"fashion-mnist: {images.name} and {labels.name} are not in {str(folder)!r}; set "
                                "FASTPRETRAIN_DATA to the folder holding fashion-mnist/, or pass a PATH to other data")  # fmt: skip
    return IDXDataset(images, labels, transform)


def image_dataset(source: str | os.PathLike, split: str = "train", transform: Callable | None = None,
                  channels: int = 3) -> Dataset:  # fmt: skip
    """A dataset from a name or path: ``fashion-mnist`` (``split`` train/test); a folder of class
    subfolders (or one with ``train/`` and ``test/`` or ``val/`` inside: ``split`` picks); an IDX
    images file (labels from the matching ``*labels-idx1-ubyte*`` beside it); a .npy / .npz file."""
    if str(source) == "fashion-mnist":
        return fashion_mnist(split, transform)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"data: {str(path)!r} does not exist (expected 'fashion-mnist', a folder, IDX or .npy/.npz)")
    if path.is_dir():
        if (path / "train").is_dir():
            sub = "train" if split == "train" else next((s for s in ("test", "val") if (path / s).is_dir()), None)
            if sub is None:
                raise FileNotFoundError(f"data: {str(path)!r} has train/ but no test/ or val/ folder")
            path = path / sub
        return ImageFolder(path, transform, channels)
    if "idx3-ubyte" in path.name:
        labels = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        return IDXDataset(path, labels if labels.is_file() else None, transform)
    return ArrayDataset(path, transform=transform)


__all__ = ["ArrayDataset", "FASHION_MNIST_CLASSES", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "IDXDataset",
           "IMAGENET_MEAN", "IMAGENET_STD", "ImageFolder",
           "fashion_mnist", "image_dataset", "read_idx"]  # fmt: skip
