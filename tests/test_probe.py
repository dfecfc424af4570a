"""Frozen-feature evaluation: the linear probe and kNN reach ~100% on separable features and
chance on shuffled labels; kNN votes are similarity-weighted; features come from the encoder's
cls token or patch mean, or the raw pixels."""

import pytest
import torch
from torch.utils.data import TensorDataset

from fastpretrain.eval.probe import evaluate_features, extract_features, knn_accuracy, linear_probe
from fastpretrain.models import VisionTransformer


pytestmark = pytest.mark.usefixtures("one_thread")


def _clusters(n_per_class: int, classes: int = 10, dim: int = 32, spread: float = 0.5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g) * 3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = centers[y] + spread * torch.randn(len(y), dim, generator=g)
    perm = torch.randperm(len(y), generator=g)
    return x[perm], y[perm]


def test_separable_features_are_solved():
    x, y = _clusters(60)
    train, test = (x[:400], y[:400]), (x[400:], y[400:])
    scores = evaluate_features(train, test)
    assert scores["linear"] == 1.0 and scores["linear_train"] == 1.0 and scores["knn"] == 1.0


def test_shuffled_labels_give_chance():
    x, y = _clusters(60)
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    probe = linear_probe(x[:400], y[:400], x[400:], y[400:])
    assert probe["test_acc"] < 0.25  # chance is 0.1
    assert knn_accuracy(x[:400], y[:400], x[400:], y[400:]) < 0.25


def test_knn_votes_are_weighted_by_similarity():
    """One very close neighbour of class 0 outvotes two distant ones of class 1 (a plain
    majority vote would say 1); with a high temperature the weights even out and 1 wins."""
    train_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0], [-1.0, 0.0]])
    train_y = torch.tensor([0, 1, 1, 2])
    test_x, test_y = torch.tensor([[1.0, 0.05]]), torch.tensor([0])
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=3) == 1.0
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=3, temperature=100.0) == 0.0
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        knn_accuracy(train_x, train_y, test_x, test_y, k=0)


def test_extract_features_pools_and_pixels():
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=8, patch_size=4, in_chans=1, embed_dim=32, depth=1, num_heads=2, num_classes=0)
    vit.train()
    images, labels = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 1, 0])
    data = TensorDataset(images, labels)
    with torch.no_grad():
        tokens = vit.eval().forward_features(images)
    vit.train()
    cls, y = extract_features(vit, data, pool="cls", batch_size=2)
    assert torch.equal(y, labels) and torch.allclose(cls, tokens[:, 0], atol=1e-6)
    assert vit.training  # put back as it was
    mean, _ = extract_features(vit, data, pool="mean", batch_size=3)
    assert torch.allclose(mean, tokens[:, 1:].mean(1), atol=1e-6)
    pixels, _ = extract_features(None, data, max_items=3)
    assert torch.equal(pixels, images[:3].flatten(1))
    with pytest.raises(ValueError, match="pool"):
        extract_features(vit, data, pool="max")
    with pytest.raises(ValueError, match="expected 32 features like train_x"):
        linear_probe(torch.zeros(4, 32), labels[:4], torch.zeros(2, 16), labels[:2])
