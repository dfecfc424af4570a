"""ELECTRA evaluations on held-out BERT examples: the generator's masked-LM loss and accuracy, the
discriminator's replaced-token detection over every token (loss, accuracy, and the accuracy of
calling every token original, the baseline it must beat) on seeded draws, and BERT's [CLS] probe
(:func:`~fastpretrain.eval.evaluate_pretraining`: does B continue A?) on the discriminator exported
as a BERT encoder, fed the unmasked examples (the discriminator never sees [MASK] in training)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from fastpretrain.eval.bert import eval_loader, evaluate_pretraining


class UnmaskedExamples(Dataset):
    """BERT examples with the original ids put back at the MLM positions: the plain sentence pairs
    a downstream task (the probe) reads; the MLM fields are kept."""

    def __init__(self, examples: Dataset) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        item = dict(self.examples[i])
        ids = item["input_ids"].copy()
        ids[item["mlm_positions"]] = item["mlm_labels"]
        item["input_ids"] = ids
        return item


@torch.no_grad()
def evaluate_electra(model: nn.Module, dataset: Dataset, *, batch_size: int = 64, max_examples: int | None = None,
                     device: str | torch.device | None = None, seed: int = 0, probe: bool = True) -> dict:  # fmt: skip
    """{"mlm_loss", "mlm_accuracy" (generator, masked tokens), "rtd_loss", "rtd_accuracy",
    "all_original_accuracy" (discriminator and its baseline, every token), "examples", "tokens",
    "mlm_tokens", "probe_accuracy" (if ``probe``)} over the first ``max_examples`` examples (default
    all), in eval mode, the generator's samples drawn from ``seed``. The model's mode is restored."""
    device, loader = eval_loader(model, dataset, batch_size, max_examples, device)
    n = len(loader.dataset)
    draws = torch.Generator(device).manual_seed(seed)
    sums = dict.fromkeys(("mlm_loss", "mlm_accuracy", "mlm_tokens", "rtd_loss", "rtd_accuracy", "replaced", "tokens"), 0.0)
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(**batch, generator=draws)
            m, t = batch["mlm_labels"].numel(), batch["input_ids"].numel()
            for key, count in (("mlm_loss", m), ("mlm_accuracy", m), ("rtd_loss", t), ("rtd_accuracy", t)):
                sums[key] += out[key].item() * count
            sums["replaced"] += out["replaced_fraction"].item() * t
            sums["mlm_tokens"] += m
            sums["tokens"] += t
    finally:
        model.train(was_training)
    m, t = sums["mlm_tokens"], sums["tokens"]
    result = {"mlm_loss": sums["mlm_loss"] / m, "mlm_accuracy": sums["mlm_accuracy"] / m, "rtd_loss": sums["rtd_loss"] / t,
              "rtd_accuracy": sums["rtd_accuracy"] / t, "all_original_accuracy": 1 - sums["replaced"] / t, "examples": n,
              "tokens": int(t), "mlm_tokens": int(m)}  # fmt: skip
    if probe:
        encoder = model.discriminator_as_bert()
        result["probe_accuracy"] = evaluate_pretraining(encoder, UnmaskedExamples(dataset), batch_size=batch_size,
                                                        max_examples=n, device=device)["probe_accuracy"]  # fmt: skip
    return result
