"""ELMo's evaluations: held-out perplexity of each direction (full softmax), word similarity of
the context-free layer-0 vectors (any word has one: they are built from its characters), and
contextual vectors of sentences for probes and export."""

from __future__ import annotations

import math
import os

import torch
from torch.utils.data import DataLoader, Subset

from fastpretrain.eval.word_vectors import evaluate_word_pairs
from fastpretrain.models.keyed_vectors import KeyedVectors


@torch.no_grad()
def evaluate_bilm(model, dataset, batch_size: int = 32, max_items: int | None = None, device=None) -> dict:
    """{"forward_perplexity", "backward_perplexity", "perplexity" (of the mean loss), their
    losses, "tokens" per direction} over the first ``max_items`` blocks; eval mode, bf16 on CUDA."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    n = len(dataset) if max_items is None else min(max_items, len(dataset))
    was_training = model.training
    model.eval()
    sums, tokens = {"forward_loss": 0.0, "backward_loss": 0.0}, 0
    try:
        for batch in DataLoader(Subset(dataset, range(n)), batch_size=batch_size):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(batch.to(device))
            for key in sums:
                sums[key] += float(out[key]) * out["items"]
            tokens += out["items"]
    finally:
        model.train(was_training)
    if tokens == 0:
        raise ValueError("dataset: nothing to evaluate")
    f, b = sums["forward_loss"] / tokens, sums["backward_loss"] / tokens
    return {"forward_loss": f, "backward_loss": b, "forward_perplexity": math.exp(f),
            "backward_perplexity": math.exp(b), "nll": (f + b) / 2, "perplexity": math.exp((f + b) / 2),
            "tokens": tokens}  # fmt: skip


@torch.no_grad()
def token_keyed_vectors(model, words: list[str], batch_size: int = 4096) -> KeyedVectors:
    """Layer-0 (character CNN) vectors of ``words`` as KeyedVectors."""
    from fastpretrain.models.elmo import char_tensor

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        chunks = [model.token_vectors(char_tensor([words[i : i + batch_size]], model.config.max_chars).to(device))[0]
                  for i in range(0, len(words), batch_size)]  # fmt: skip
    finally:
        model.train(was_training)
    return KeyedVectors(words, torch.cat(chunks).float().cpu())


def word_similarity(model, path: str | os.PathLike) -> dict:
    """Spearman / Pearson of layer-0 cosine similarity against the human scores of a WordSim-353
    or SimLex-999 style file (word1, word2, score), every pair covered (no vocabulary to miss)."""
    words: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 3 and not line.startswith("#"):
                words.update(w.lower() for w in fields[:2])
    return evaluate_word_pairs(token_keyed_vectors(model, sorted(words)), path, restrict_vocab=None)


@torch.no_grad()
def sentence_layers(model, sentences: list[list[str]], batch_size: int = 64) -> list[torch.Tensor]:
    """Each tokenised sentence's [num_layers + 1, T, 2 P] float32 layers (:meth:`ELMo.layers`)."""
    from fastpretrain.models.elmo import char_tensor

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    try:
        for i in range(0, len(sentences), batch_size):
            batch = sentences[i : i + batch_size]
            layers = model.layers(char_tensor(batch, model.config.max_chars).to(device)).float().cpu()
            out.extend(layers[:, j, : max(len(s), 1)] for j, s in enumerate(batch))
    finally:
        model.train(was_training)
    return out
