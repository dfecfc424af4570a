"""``fastpretrain nnlm train|eval``: Bengio's neural language model on a document corpus, trained
with the sampled softmax (``--num-sampled``, 0 for the full one) and scored with the full softmax:
held-out perplexity on documents the training never saw."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least, fraction
from fastpretrain.cli.errors import loading, renamed
from fastpretrain.cli.model_command import ModelCommand, TrainData, run_weights
from fastpretrain.models import NNLM
from fastpretrain.models.registry import WEIGHTS

# How the corpus is read: nnlm train's defaults, kept in the run's config.json as "data" for nnlm eval.
DATA_DEFAULTS = {"corpus": None, "heldout": 0.01, "data_seed": 0, "max_documents": None, "cased": False,
                 "sentences": False, "block_length": 64}  # fmt: skip
CORPUS_HELP = "text file (.xz/.bz2/.gz) or directory: a paragraph a line, a blank line between documents"


def word_corpus(settings: dict, vocab_size: int | None = None, vocab=None):
    """The corpus as word ids, from a run's data ``settings`` (its vocabulary given, or built)."""
    from fastpretrain.data.word_lm import WordCorpus

    with renamed("--corpus", "source", "path"), renamed("--heldout", "heldout"), renamed("--vocab-size", "vocab_size"):
        return WordCorpus.build(settings["corpus"], vocab_size=vocab_size or 50_000, heldout=settings["heldout"],
                                seed=settings["data_seed"], lowercase=not settings["cased"],
                                sentences=settings["sentences"], max_documents=settings["max_documents"],
                                vocab=vocab, progress=True)  # fmt: skip


def heldout_perplexity(model, corpus, settings: dict, args: argparse.Namespace, device) -> dict:
    """Full-softmax perplexity of ``model`` on the held-out documents, printed."""
    from fastpretrain.data.word_lm import TokenBlocks
    from fastpretrain.eval.perplexity import evaluate_perplexity

    if len(corpus.heldout) <= model.config.context + 1:
        raise ValueError("--heldout: no held-out text to score (give a fraction > 0 of documents)")
    blocks = TokenBlocks(corpus.heldout, min(settings["block_length"], len(corpus.heldout) - model.config.context),
                         overlap=model.config.context)  # fmt: skip
    result = evaluate_perplexity(model, blocks, lambda rows: {"tokens": torch.stack(rows)},
                                 batch_size=args.eval_batch_size, max_items=args.eval_blocks, device=device)  # fmt: skip
    print(f"held-out     {result['tokens']:,} words of {len(corpus.heldout):,}: full-softmax loss "
          f"{result['nll']:.4f}, perplexity {result['perplexity']:.2f}")  # fmt: skip
    return result


def _vocab_of(weights: Path):
    from fastpretrain.data.vocab import Vocab

    folder = (weights / WEIGHTS if weights.is_dir() else weights).parent
    for place in (folder, folder.parent.parent):
        if (place / "vocab.txt").is_file():
            with loading("checkpoint", place / "vocab.txt", "path"):
                return Vocab.load(place / "vocab.txt")
    raise FileNotFoundError(f"checkpoint: no vocab.txt beside {str(weights)!r} or in its run folder")


def _add_eval_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("evaluation")
    group.add_argument("--eval-blocks", type=at_least(1), default=None,
                       help="held-out blocks to score (default all)")  # fmt: skip
    group.add_argument("--eval-batch-size", type=at_least(1), default=32, help="blocks per batch (default 32)")


class NNLMCommand(ModelCommand):
    name, model_class, default_model = "nnlm", NNLM, "nnlm_small"
    help = "train and evaluate Bengio's neural language model (NNLM) with a sampled softmax"
    train_help = "train an NNLM on a corpus (sampled softmax); held-out full-softmax perplexity at the end"
    eval_help = "held-out full-softmax perplexity of a run or a checkpoint"
    recipe: ClassVar[dict] = {"out_dir": "runs/nnlm", "lr": 2e-3, "betas": (0.9, 0.99), "weight_decay": 0.0,
                              "steps": 2000, "batch_size": 32, "ckpt_every": 1000}  # fmt: skip
    derived = ("vocab_size",)  # --vocab-size: the corpus's most frequent words
    model_help: ClassVar[dict] = {
        "context": "words of context (n - 1 of an n-gram model)", "embed_dim": "word embedding width (m)",
        "hidden_dim": "tanh hidden layer width (h)", "direct": "direct connections from the embeddings to the output",
        "dropout": "dropout of the embeddings and the output features",
        "num_sampled": "candidates of the sampled softmax (0: train with the full softmax)",
        "sampler": "candidate distribution (log_uniform: Zipf over the frequency-sorted ids)",
        "unique": "distinct candidates (TF's unique=True, expected counts 1 - (1 - Q)^tries)",
    }  # fmt: skip

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        d = DATA_DEFAULTS
        group = p.add_argument_group("data")
        group.add_argument("--corpus", required=True, help=CORPUS_HELP)
        group.add_argument("--vocab-size", type=at_least(3), default=20_000,
                           help="most frequent words kept, <unk> and </s> included (default 20000)")  # fmt: skip
        group.add_argument("--heldout", type=fraction(), default=d["heldout"],
                           help=f"fraction of documents held out for perplexity (default {d['heldout']})")  # fmt: skip
        group.add_argument("--data-seed", type=at_least(0), default=d["data_seed"],
                           help="seed of the held-out documents (default 0)")  # fmt: skip
        group.add_argument("--max-documents", type=at_least(2), default=None,
                           help="read only the first N documents (default all)")  # fmt: skip
        group.add_argument("--cased", action="store_true", help="keep case (default: lower-case words)")
        group.add_argument("--sentences", action="store_true", help="</s> after each sentence (default: paragraph)")
        group.add_argument("--block-length", type=at_least(1), default=d["block_length"],
                           help=f"targets per training block (default {d['block_length']})")  # fmt: skip
        _add_eval_flags(p)

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data.vocab import Vocab
        from fastpretrain.data.word_lm import TokenBlocks

        if not Path(args.corpus).exists():
            raise FileNotFoundError(f"--corpus: {args.corpus!r} does not exist")
        settings = {"corpus": str(Path(args.corpus).resolve()), **{k: getattr(args, k) for k in DATA_DEFAULTS
                                                                   if k != "corpus"}}  # fmt: skip
        saved = Path(args.out_dir) / "vocab.txt"
        vocab = None
        if saved.is_file():  # a resumed run keeps its vocabulary
            with loading("--out-dir", saved, "path"):
                vocab = Vocab.load(saved)
        corpus = word_corpus(settings, args.vocab_size, vocab)
        with renamed("--block-length", "length"):
            train = TokenBlocks(corpus.train, args.block_length, overlap=config.context)
        line = (f"data         {len(corpus.train):,} training words in {len(train):,} blocks of {args.block_length}, "
                f"{len(corpus.heldout):,} held out; vocabulary {len(corpus.vocab):,}")  # fmt: skip
        return TrainData(train, model_fields={"vocab_size": len(corpus.vocab)}, run={"data": settings}, lines=(line,),
                         save=lambda out: corpus.vocab.save(out / "vocab.txt"),
                         extras={"corpus": corpus, "settings": settings})  # fmt: skip

    def describe(self, model: NNLM) -> str:
        c = model.config
        how = f"sampled softmax, {c.num_sampled} {c.sampler} candidates" if c.num_sampled else "full softmax"
        return f", {c.context + 1}-gram, {how}"

    def summary(self, trainer, history: list[dict]) -> str:
        if not history:
            return f"{trainer.step} steps; "
        last = history[-1]
        return f"{trainer.step} steps; last window: loss {last['loss']:.4f}, {last['items_per_s']:,.0f} words/s; "

    def after_training(self, args: argparse.Namespace, model, data: TrainData, trainer) -> None:
        from fastpretrain.atomic import atomic_write

        if args.heldout > 0:
            result = heldout_perplexity(model, data.extras["corpus"], data.extras["settings"], args, trainer.device)
            with atomic_write(Path(args.out_dir) / "eval.json", "w") as f:
                json.dump(result, f, indent=1)

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--corpus", default=None, help="default: the run's")
        p.add_argument("--heldout", type=fraction(), default=None, help="default: the run's")
        p.add_argument("--data-seed", type=at_least(0), default=None, help="default: the run's")
        _add_eval_flags(p)

    def load(self, checkpoint: Path):
        model, run = super().load(checkpoint)
        return model, {**run, "vocab": _vocab_of(run_weights(checkpoint))}

    def evaluate(self, args: argparse.Namespace, model, run: dict, device) -> None:
        settings = {**DATA_DEFAULTS, **run.get("data", {})}
        for key in ("corpus", "heldout", "data_seed"):
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        if settings["corpus"] is None:
            raise ValueError("--corpus: needed here (the run does not say which corpus it was trained on)")
        heldout_perplexity(model, word_corpus(settings, vocab=run["vocab"]), settings, args, device)


add_commands = NNLMCommand().add_commands
