"""Held-out perplexity of a language model: the token-weighted mean next-token cross-entropy over
batches, and its exp. The model is called as ``model(**batch)`` with the batch's labels and must
return {"nll" (mean over its labelled tokens), "items" (their count)}, as
:class:`fastpretrain.models.GPT` does."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from fastpretrain.checks import check_int


@torch.no_grad()
def evaluate_perplexity(model: nn.Module, dataset: Dataset, collate_fn: Callable, *, batch_size: int = 16,
                        max_items: int | None = None, device: str | torch.device | None = None) -> dict:  # fmt: skip
    """{"nll", "perplexity", "tokens", "rows"} over the first ``max_items`` items of ``dataset``
    (default all), in eval mode (bf16 autocast on CUDA); the model's mode is restored afterwards."""
    if len(dataset) == 0:
        raise ValueError("dataset: nothing to evaluate")
    check_int("batch_size", batch_size, 1)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    n = len(dataset) if max_items is None else min(check_int("max_items", max_items, 1), len(dataset))
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    try:
        for batch in DataLoader(Subset(dataset, range(n)), batch_size=batch_size, collate_fn=collate_fn):
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(**batch)
            items = int(out["items"])
            total, tokens = total + float(out["nll"]) * items, tokens + items
    finally:
        model.train(was_training)
    nll = total / tokens
    return {"nll": nll, "perplexity": math.exp(nll), "tokens": tokens, "rows": n}
