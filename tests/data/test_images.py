"""Image datasets: real Fashion-MNIST, and folders / IDX / NumPy fixtures written here, read back
pixel for pixel; MAE's augmentation keeps shapes and ranges and repeats under a seed; bad input
raises errors that say what is wrong."""

import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from fastpretrain.data.images import (
    ArrayDataset, IDXDataset, ImageFolder, fashion_mnist, image_dataset, read_idx,
)  # fmt: skip
from fastpretrain.data.image_transforms import Resize


pytestmark = pytest.mark.usefixtures("one_thread")


def test_fashion_mnist_real_files(shared_data, monkeypatch):
    train, test = fashion_mnist("train", root=shared_data), fashion_mnist("test", root=shared_data)
    assert (len(train), len(test)) == (60000, 10000)
    img, label = train[0]
    assert img.shape == (1, 28, 28) and img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1
    assert label == 9  # the first training image is an ankle boot
    assert torch.equal(torch.bincount(train.labels), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(test.labels), torch.full((10,), 1000))
    assert 0.27 < train.images.float().mean().item() / 255 < 0.30  # the published mean, 0.286
    monkeypatch.setenv("FASTPRETRAIN_DATA", str(shared_data))
    assert len(image_dataset("fashion-mnist", "test")) == 10000


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_files_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    pixels, labels = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8), np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    _write_idx(tmp_path / "x-images-idx3-ubyte.gz", pixels)
    _write_idx(tmp_path / "x-labels-idx1-ubyte.gz", labels)
    assert np.array_equal(read_idx(tmp_path / "x-images-idx3-ubyte.gz"), pixels)
    ds = image_dataset(tmp_path / "x-images-idx3-ubyte.gz")  # labels found beside the images
    assert isinstance(ds, IDXDataset) and len(ds) == 5
    img, label = ds[2]
    assert label == 4 and torch.equal(img, torch.from_numpy(pixels[2]).float()[None] / 255)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04rest"))
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(tmp_path / "bad.gz")
    _write_idx(tmp_path / "short-labels", labels[:3])
    with pytest.raises(ValueError, match="5 images but 3 labels"):
        IDXDataset(tmp_path / "x-images-idx3-ubyte.gz", tmp_path / "short-labels")


def test_image_folder_reads_classes_and_pixels(tmp_path):
    rng = np.random.default_rng(1)
    written = {}
    for cls in ("dog", "cat"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            arr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / cls / f"{i}.png")
            written[(cls, i)] = arr
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and len(ds) == 4
    img, label = ds[2]  # dog/0.png
    assert label == 1 and img.shape == (3, 5, 7)
    assert torch.equal(img, torch.from_numpy(written[("dog", 0)]).permute(2, 0, 1).float() / 255)
    grey, _ = ImageFolder(tmp_path, channels=1)[0]
    assert grey.shape == (1, 5, 7)
    resized, _ = ImageFolder(tmp_path, transform=Resize(4, mean=[0.5] * 3, std=[0.25] * 3))[0]
    assert resized.shape == (3, 4, 4) and -2 <= resized.min() and resized.max() <= 2


def test_arrays_npy_and_npz(tmp_path):
    rng = np.random.default_rng(2)
    nhwc = rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", nhwc)
    ds = ArrayDataset(tmp_path / "x.npy")
    img, label = ds[1]
    assert label == 0 and torch.equal(img, torch.from_numpy(nhwc[1]).permute(2, 0, 1).float() / 255)
    nchw = rng.random((3, 1, 5, 5)).astype(np.float32)
    np.savez(tmp_path / "y.npz", x=nchw, y=np.array([2, 0, 1]))
    ds = image_dataset(tmp_path / "y.npz")
    img, label = ds[0]
    assert label == 2 and torch.equal(img, torch.from_numpy(nchw[0]))
    assert ArrayDataset(np.zeros((2, 3, 3), np.uint8), labels=np.array([0, 1]))[1][0].shape == (1, 3, 3)


def test_bad_input_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder .* does not exist"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="has no class subfolders"):
        ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no images"):
        ImageFolder(tmp_path)
    np.save(tmp_path / "flat.npy", np.zeros((4, 10), np.uint8))
    with pytest.raises(ValueError, match=r"images: expected \[N, H, W\].*got shape \(4, 10\)"):
        ArrayDataset(tmp_path / "flat.npy")
    with pytest.raises(ValueError, match="labels: expected a 1-d integer array"):
        ArrayDataset(np.zeros((2, 3, 3), np.uint8), labels=np.zeros((2, 2)))
    np.savez(tmp_path / "odd.npz", pixels=np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="has none of the entries"):
        ArrayDataset(tmp_path / "odd.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_dataset(tmp_path / "nothing.npy")
    with pytest.raises(FileNotFoundError, match="FASTPRETRAIN_DATA"):
        fashion_mnist("train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        fashion_mnist("valid")
