"""Frozen-feature probes of a masked-groups encoder (any modality): the mean of its group tokens,
fit with the linear probe and kNN of :mod:`fastpretrain.eval.probe`, beside the same model randomly
initialised and the modality's raw-input features."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fastpretrain.eval.probe import evaluate_features


@torch.no_grad()
def pooled_features(model: nn.Module, tokenizer: Callable, inputs: torch.Tensor, *, batch_size: int = 256,
                    device=None) -> torch.Tensor:  # fmt: skip
    """float32 [N, D]: ``model.forward_features`` on the tokenized ``inputs`` [N, ...], group tokens
    averaged (the cls token left out); the model runs in eval mode and is put back as it was."""
    device = device if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    feats = []
    try:
        for start in range(0, len(inputs), batch_size):
            values, positions = tokenizer(inputs[start : start + batch_size])
            tokens = model.forward_features(values.to(device), positions.to(device))
            feats.append(tokens[:, 1:].mean(dim=1).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(feats)


def probe_rows(model: nn.Module, modality, settings: dict, train, test, *, baselines: bool = True, k: int = 20,
               max_iter: int = 300, batch_size: int = 256, seed: int = 0, device=None) -> dict[str, dict]:  # fmt: skip
    """{"ours" | "random init" | "raw input": {"linear", "linear_train", "knn"}} on ``train`` / ``test``
    (:class:`~fastpretrain.data.modalities.Labelled`), the tokenizer the modality builds from ``settings``."""
    tokenizer = modality.tokenizer(settings)
    encoders = [("ours", model)]
    if baselines:
        torch.manual_seed(seed)
        device = device if device is not None else next(model.parameters()).device
        encoders += [("random init", type(model)(model.config).to(device)), ("raw input", None)]
    rows = {}
    for name, encoder in encoders:
        if encoder is None:
            feats = [modality.raw_features(split.inputs) for split in (train, test)]
        else:
            feats = [pooled_features(encoder, tokenizer, split.inputs, batch_size=batch_size, device=device)
                     for split in (train, test)]  # fmt: skip
        rows[name] = evaluate_features((feats[0], train.labels), (feats[1], test.labels), k=k, max_iter=max_iter)
    return rows


__all__ = ["pooled_features", "probe_rows"]
