"""Held-out scores of the CNN pretext tasks, each next to its trivial answer: a context encoder's
region L2 against filling the mean (0 after normalisation); a bin predictor's rebalanced
cross-entropy against the hidden pixels' own bin frequencies as a constant prediction, and its
hidden-pixel bin accuracy against always answering the training pixels' most frequent bin."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


@torch.no_grad()
def pretext_scores(model, data: Dataset, *, device=None, seed: int = 0, batch_size: int = 512) -> dict:
    """``{"heldout_loss", "heldout_trivial"}`` (+ ``"heldout_acc"``, ``"heldout_majority_acc"`` for a
    bin predictor) of a :class:`~fastpretrain.models.ContextEncoder` or
    :class:`~fastpretrain.models.IntensityColorizer` on the (image, label) items of ``data``, masks
    drawn from ``seed``; in eval mode, put back as it was."""
    if not hasattr(model, "random_mask"):
        raise TypeError(f"model: expected a ContextEncoder or an IntensityColorizer, got {type(model).__name__}")
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    colorize = hasattr(model, "bins")
    totals = dict.fromkeys(("loss", "trivial", "acc", "majority_acc"), 0.0)
    n = 0
    try:
        for images, _ in DataLoader(data, batch_size=batch_size):
            images = images.to(device)
            mask = model.random_mask(len(images), g, device)
            out = model(images, mask=mask, return_outputs=True)
            if colorize:
                t, hidden = out["targets"], out["hidden"]
                prior = torch.bincount(t[hidden], minlength=model.config.num_bins).float().clamp_min(1).log()
                trivial = model.forward_loss(prior.view(1, -1, 1, 1).expand(len(t), -1, *t.shape[1:]), t, hidden)
                totals["acc"] += out["acc"].item() * len(images)
                totals["majority_acc"] += (t[hidden] == int(model.class_weights.argmin())).float().mean().item() * len(images)
            else:
                trivial = model.forward_loss(images, torch.zeros_like(images), out["weights"])
            totals["trivial"] += trivial.item() * len(images)
            totals["loss"] += out["rec" if "rec" in out else "loss"].item() * len(images)
            n += len(images)
    finally:
        model.train(was_training)
    keys = ("loss", "trivial", "acc", "majority_acc") if colorize else ("loss", "trivial")
    return {f"heldout_{k}": totals[k] / max(n, 1) for k in keys}


__all__ = ["pretext_scores"]
