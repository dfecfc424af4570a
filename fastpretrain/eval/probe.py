"""Frozen-feature evaluations of an image encoder: a linear probe (multinomial logistic
regression, trained with L-BFGS on standardised features) and weighted kNN (cosine, k=20, votes
weighted by exp(similarity / 0.07), as in InstDisc and DINO), each fit on a train split and scored
on a held-out test split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

POOLS = ("cls", "mean")


@torch.no_grad()
def extract_features(encoder: nn.Module | None, data: Dataset, *, pool: str = "cls", batch_size: int = 256,
                     device=None, max_items: int | None = None,
                     layer: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(features float32 [N, D], labels int64 [N]) of a dataset of (image, label) items.

    ``encoder``: a ViT (``forward_features`` -> [B, 1 + L, D]) or a CNN (-> a feature map [B, C, h, w]),
    anything with an ``.encoder`` that is one (an MAE, a context encoder), or None for the raw
    pixels, flattened. ``pool``: see :func:`pool_features`. ``layer``: None for the encoder's output (final norm applied),
    or a block number to read that block's tokens without the final norm (``forward_intermediate``;
    SimMIM's and BEiT's probes). The encoder runs in eval mode and is put back as it was.
    """
    if pool not in POOLS:
        raise ValueError(f"pool: expected one of {POOLS}, got {pool!r}")
    if max_items is not None and max_items < len(data):
        data = Subset(data, range(max_items))
    if encoder is not None and not hasattr(encoder, "forward_features"):
        encoder = getattr(encoder, "encoder", None)
        if encoder is None or not hasattr(encoder, "forward_features"):
            raise TypeError("encoder: expected a ViT with forward_features, a model with such an .encoder, or None")
    if encoder is None and layer is not None:
        raise ValueError(f"layer: the raw pixels (encoder None) have no layers, got layer={layer!r}")
    if device is None:
        device = next(encoder.parameters()).device if encoder is not None else torch.device("cpu")
    was_training = encoder.training if encoder is not None else False
    if encoder is not None:
        encoder.eval()
    feats, labels = [], []
    try:
        for images, y in DataLoader(data, batch_size=batch_size, shuffle=False):
            images = images.to(device)
            if encoder is None:
                f = images.flatten(1)
            else:
                tokens = encoder.forward_features(images) if layer is None else encoder.forward_intermediate(images, layer)
                f = pool_features(tokens, pool)
            feats.append(f.float().cpu())
            labels.append(torch.as_tensor(y).long())
    finally:
        if encoder is not None:
            encoder.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def pool_features(features: torch.Tensor, pool: str) -> torch.Tensor:
    """[B, D] from an encoder's ``forward_features``: a ViT's tokens [B, 1 + L, D] (``"cls"``: the
    cls token, ``"mean"``: the patch tokens' mean) or a CNN's feature map [B, C, h, w] (``"mean"``:
    global average pooling; it has no cls token)."""
    if features.dim() == 4:
        if pool != "mean":
            raise ValueError(f"pool: a CNN's feature map has no cls token; expected 'mean', got {pool!r}")
        return features.mean(dim=(2, 3))
    return features[:, 0] if pool == "cls" else features[:, 1:].mean(dim=1)


def _check(train_x, train_y, test_x, test_y) -> int:
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.dim() != 2 or y.dim() != 1 or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"{name}_x, {name}_y: expected [N, D] features and [N] labels with N >= 1, "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")  # fmt: skip
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"test_x: expected {train_x.shape[1]} features like train_x, got {test_x.shape[1]}")
    return int(max(train_y.max(), test_y.max())) + 1


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == y).float().mean().item()


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                 weight_decay: float = 1e-4, max_iter: int = 300, num_classes: int | None = None) -> dict:  # fmt: skip
    """Logistic regression on features standardised with the train split's mean and std (MAE's
    probe puts a non-affine BatchNorm before its linear layer, the same thing), full-batch L-BFGS
    on cross-entropy + ``weight_decay`` * ||W||^2. Returns {"train_acc", "test_acc"}."""
    num_classes = num_classes or _check(train_x, train_y, test_x, test_y)
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay: expected a float >= 0, got {weight_decay!r}")
    train_x, test_x = train_x.double(), test_x.double()
    mean, std = train_x.mean(dim=0), train_x.std(dim=0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    linear = nn.Linear(train_x.shape[1], num_classes, dtype=torch.float64)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)  # fmt: skip

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(linear(train_x), train_y) + weight_decay * linear.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():  # callers often evaluate under no_grad
        opt.step(closure)
    with torch.no_grad():
        return {"train_acc": _accuracy(linear(train_x), train_y), "test_acc": _accuracy(linear(test_x), test_y)}


@torch.no_grad()
def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                 k: int = 20, temperature: float = 0.07, num_classes: int | None = None, chunk: int = 1024) -> float:  # fmt: skip
    """Weighted kNN on cosine similarity: each test item's ``k`` nearest train items vote for
    their labels with weight exp(similarity / temperature); accuracy of the top vote."""
    num_classes = num_classes or _check(train_x, train_y, test_x, test_y)
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k: expected an int >= 1, got {k!r}")
    k = min(k, len(train_x))
    train = F.normalize(train_x.float(), dim=1)
    correct = 0
    for lo in range(0, len(test_x), chunk):
        sim, idx = (F.normalize(test_x[lo : lo + chunk].float(), dim=1) @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(idx), num_classes).scatter_add_(1, train_y[idx], (sim / temperature).exp())
        correct += (votes.argmax(dim=1) == test_y[lo : lo + chunk]).sum().item()
    return correct / len(test_x)


def evaluate_features(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], *,
                      k: int = 20, max_iter: int = 300, weight_decay: float = 1e-4) -> dict:  # fmt: skip
    """{"linear": test accuracy of the linear probe, "linear_train": its train accuracy, "knn": kNN accuracy}."""
    num_classes = _check(*train, *test)
    probe = linear_probe(*train, *test, weight_decay=weight_decay, max_iter=max_iter, num_classes=num_classes)
    return {"linear": probe["test_acc"], "linear_train": probe["train_acc"],
            "knn": knn_accuracy(*train, *test, k=k, num_classes=num_classes)}  # fmt: skip


__all__ = ["evaluate_features", "extract_features", "knn_accuracy", "linear_probe", "pool_features"]
