"""BERT pre-training evaluations on held-out examples: masked-LM loss and accuracy, NSP accuracy,
and a probe: logistic regression on frozen [CLS] states, fitted on one half of the examples and
scored on the other, telling whether B continues A (a tiny sentence-pair classification task
whose representation quality does not depend on the NSP head).

The model is called as ``model(**batch)`` without labels and must return {"mlm_logits" [M, V] at
the batch's ``mlm_positions``, "nsp_logits" [B, 2], "cls_hidden" [B, E]}, as
:class:`fastpretrain.models.BertForPreTraining` does (an adapter gives other models the same face).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from fastpretrain.data import collate_packed
from fastpretrain.eval.probe import linear_probe

_LABEL_KEYS = ("mlm_labels", "nsp_labels")


def eval_loader(model: nn.Module, dataset: Dataset, batch_size: int, max_examples: int | None,
                device: str | torch.device | None, collate_fn: Callable = collate_packed) -> tuple[torch.device, DataLoader]:  # fmt: skip
    """The device to evaluate on (the model's unless given) and a loader over the first
    ``max_examples`` examples (default all); refuses an empty dataset and a batch_size below 1."""
    if len(dataset) == 0:
        raise ValueError("dataset: no example to evaluate")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    n = len(dataset) if max_examples is None else min(max_examples, len(dataset))
    return device, DataLoader(Subset(dataset, range(n)), batch_size=batch_size, collate_fn=collate_fn)


@torch.no_grad()
def evaluate_pretraining(model: nn.Module, dataset: Dataset, *, batch_size: int = 64, max_examples: int | None = None,
                         collate_fn: Callable = collate_packed, device: str | torch.device | None = None,
                         probe: bool = True) -> dict:  # fmt: skip
    """{"mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy", "probe_accuracy" (if ``probe``),
    "examples", "mlm_tokens"} over the first ``max_examples`` examples (default all), in eval mode
    (bf16 autocast on CUDA). The model's train/eval mode is restored afterwards."""
    device, loader = eval_loader(model, dataset, batch_size, max_examples, device, collate_fn)
    n = len(loader.dataset)
    was_training = model.training
    model.eval()
    sums = {"mlm_loss": 0.0, "mlm_correct": 0, "mlm_tokens": 0, "nsp_loss": 0.0, "nsp_correct": 0}
    features, labels = [], []
    try:
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            mlm_labels, nsp_labels = (batch.pop(k) for k in _LABEL_KEYS)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(**batch)
            mlm, nsp = out["mlm_logits"].float(), out["nsp_logits"].float()
            sums["mlm_loss"] += F.cross_entropy(mlm, mlm_labels, reduction="sum").item()
            sums["mlm_correct"] += (mlm.argmax(-1) == mlm_labels).sum().item()
            sums["mlm_tokens"] += mlm_labels.numel()
            sums["nsp_loss"] += F.cross_entropy(nsp, nsp_labels, reduction="sum").item()
            sums["nsp_correct"] += (nsp.argmax(-1) == nsp_labels).sum().item()
            features.append(out["cls_hidden"].float().cpu())
            labels.append(nsp_labels.cpu())
    finally:
        model.train(was_training)
    result = {"mlm_loss": sums["mlm_loss"] / sums["mlm_tokens"], "mlm_accuracy": sums["mlm_correct"] / sums["mlm_tokens"],
              "nsp_loss": sums["nsp_loss"] / n, "nsp_accuracy": sums["nsp_correct"] / n, "examples": n,
              "mlm_tokens": sums["mlm_tokens"]}  # fmt: skip
    if probe:
        x, y = torch.cat(features), torch.cat(labels)
        if len(x) < 4:
            raise ValueError(f"probe: needs at least 4 held-out examples, got {len(x)}")
        half = len(x) // 2  # fit on the first half of the held-out examples, score on the second
        result["probe_accuracy"] = linear_probe(x[:half], y[:half], x[half:], y[half:], num_classes=2)["test_acc"]
    return result
