"""``fastpretrain nnlm train|eval``: Bengio's neural language model on a document corpus, trained
with the sampled softmax (``--num-sampled``, 0 for the full one) and scored with the full softmax:
held-out perplexity on documents the training never saw."""

from __future__ import annotations

from typing import ClassVar

from fastpretrain.cli.word_lm import WordLMCommand
from fastpretrain.models import NNLM


class NNLMCommand(WordLMCommand):
    name, model_class, default_model = "nnlm", NNLM, "nnlm_small"
    help = "train and evaluate Bengio's neural language model (NNLM) with a sampled softmax"
    train_help = "train an NNLM on a corpus (sampled softmax); held-out full-softmax perplexity at the end"
    eval_help = "held-out full-softmax perplexity of a run or a checkpoint"
    recipe: ClassVar[dict] = {"out_dir": "runs/nnlm", "lr": 2e-3, "betas": (0.9, 0.99), "weight_decay": 0.0,
                              "steps": 2000, "batch_size": 32, "ckpt_every": 1000}  # fmt: skip
    # lower-case words, </s> after each paragraph, 64 targets a block
    data_defaults: ClassVar[dict] = {"corpus": None, "heldout": 0.01, "data_seed": 0, "max_documents": None,
                                     "cased": False, "sentences": False, "block_length": 64}  # fmt: skip
    model_help: ClassVar[dict] = {
        "context": "words of context (n - 1 of an n-gram model)", "embed_dim": "word embedding width (m)",
        "hidden_dim": "tanh hidden layer width (h)", "direct": "direct connections from the embeddings to the output",
        "dropout": "dropout of the embeddings and the output features",
        "num_sampled": "candidates of the sampled softmax (0: train with the full softmax)",
        "sampler": "candidate distribution (log_uniform: Zipf over the frequency-sorted ids)",
        "unique": "distinct candidates (TF's unique=True, expected counts 1 - (1 - Q)^tries)",
    }  # fmt: skip

    def overlap(self, config) -> int:
        return config.context

    def describe(self, model: NNLM) -> str:
        c = model.config
        how = f"sampled softmax, {c.num_sampled} {c.sampler} candidates" if c.num_sampled else "full softmax"
        return f", {c.context + 1}-gram, {how}"


add_commands = NNLMCommand().add_commands
