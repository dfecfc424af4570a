"""CPC's evaluation on held-out documents: its own loss (next to chance, log of the keys per query)
and a next-sentence probe: is sentence B the one that follows A in its document, or one drawn from
another held-out document? Features [u, v, u * v, |u - v|] of the two sentences' encoder outputs z,
a logistic regression trained on 70% of the pairs and scored on the rest (balanced: chance 50%)."""

from __future__ import annotations

import math

import numpy as np
import torch

from fastpretrain.data.sentence_windows import SentenceWindows, sentence_bytes
from fastpretrain.eval.probe import linear_probe


@torch.no_grad()
def heldout_loss(model, windows: SentenceWindows, batch_size: int = 64, device=None) -> dict:
    """{"loss": the mean CPC loss over consecutive batches of ``windows`` (fixed batches: fixed
    negatives), "chance": log(batch keys), its value for a model that scores every key alike, "windows"}."""
    model.eval()
    device = device or next(model.parameters()).device
    total, weight, n = 0.0, 0, len(windows)
    for lo in range(0, n, batch_size):
        batch = windows.windows[lo : lo + batch_size].to(device)
        total += model(batch)["loss"].item() * len(batch)
        weight += len(batch)
    keys = min(batch_size, n) * model.config.window
    return {"loss": total / weight, "chance": math.log(keys), "windows": n}


def sentence_pairs(documents: list[list[str]], pairs: int, seed: int = 0) -> tuple[list[str], list[str], np.ndarray]:
    """(firsts, seconds, labels): per draw, a sentence with its successor (label 1) and with a
    sentence of another document (label 0); seeded."""
    docs = [d for d in documents if len(d) >= 2]
    if len(docs) < 2:
        raise ValueError("documents: the probe needs two documents of two sentences or more")
    rng = np.random.default_rng(seed)
    firsts, seconds, labels = [], [], []
    for _ in range(pairs):
        d = int(rng.integers(len(docs)))
        i = int(rng.integers(len(docs[d]) - 1))
        other = int(rng.integers(len(docs) - 1))
        other += other >= d
        for label, second in ((1, docs[d][i + 1]), (0, docs[other][int(rng.integers(len(docs[other])))])):
            firsts.append(docs[d][i])
            seconds.append(second)
            labels.append(label)
    return firsts, seconds, np.array(labels)


@torch.no_grad()
def sentence_features(model, sentences: list[str], batch_size: int = 256) -> torch.Tensor:
    """z [N, z_dim] of each sentence, float64 on CPU."""
    model.eval()
    device = next(model.parameters()).device
    rows = np.stack([sentence_bytes(s, model.config.sentence_len) for s in sentences])
    out = [model.encode(torch.from_numpy(rows[lo : lo + batch_size]).to(device)).double().cpu()
           for lo in range(0, len(rows), batch_size)]  # fmt: skip
    return torch.cat(out)


def next_sentence_probe(model, firsts: list[str], seconds: list[str], labels: np.ndarray, max_iter: int = 200) -> dict:
    """{"train_acc", "test_acc"} of the logistic regression on [u, v, u * v, |u - v|]."""
    u, v = sentence_features(model, firsts), sentence_features(model, seconds)
    x, y = torch.cat([u, v, u * v, (u - v).abs()], 1), torch.from_numpy(labels)
    n = int(0.7 * len(y))
    return linear_probe(x[:n], y[:n], x[n:], y[n:], weight_decay=1e-3, max_iter=max_iter, num_classes=2)


__all__ = ["heldout_loss", "next_sentence_probe", "sentence_features", "sentence_pairs"]
