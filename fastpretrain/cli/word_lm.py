"""The word language models' commands (nnlm, elmo): a document corpus read as words, a held-out
fraction of its documents, the training text cut into blocks, the vocabulary kept in the run as
``vocab.txt``, full-softmax perplexity on the held-out documents after training and in eval."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least, fraction
from fastpretrain.cli.errors import loading, renamed
from fastpretrain.cli.model_command import ModelCommand, TrainData, run_weights
from fastpretrain.models.registry import WEIGHTS

CORPUS_HELP = "text file (.xz/.bz2/.gz) or directory: a paragraph a line, a blank line between documents"


def word_corpus(settings: dict, vocab_size: int | None = None, vocab=None):
    """The corpus as word ids, from a run's data ``settings`` (its vocabulary given, or built)."""
    from fastpretrain.data.word_lm import WordCorpus

    with renamed("--corpus", "source", "path"), renamed("--heldout", "heldout"), renamed("--vocab-size", "vocab_size"):
        return WordCorpus.build(settings["corpus"], vocab_size=vocab_size or 50_000, heldout=settings["heldout"],
                                seed=settings["data_seed"], lowercase=not settings["cased"],
                                sentences=settings["sentences"], max_documents=settings["max_documents"],
                                vocab=vocab, progress=True)  # fmt: skip


def vocab_of(weights: Path):
    """The vocab.txt beside ``weights`` or in its run folder."""
    from fastpretrain.data.vocab import Vocab

    folder = (weights / WEIGHTS if weights.is_dir() else weights).parent
    for place in (folder, folder.parent.parent):
        if (place / "vocab.txt").is_file():
            with loading("checkpoint", place / "vocab.txt", "path"):
                return Vocab.load(place / "vocab.txt")
    raise FileNotFoundError(f"checkpoint: no vocab.txt beside {str(weights)!r} or in its run folder")


class WordLMCommand(ModelCommand):
    """A word LM's train and eval; subclasses set ``data_defaults`` and may add evaluations."""

    data_defaults: ClassVar[dict]  # corpus, heldout, data_seed, max_documents, cased, sentences, block_length
    vocab_default = 20_000
    derived = ("vocab_size",)  # --vocab-size: the corpus's most frequent words

    def overlap(self, config) -> int:
        """Tokens of context a block carries beyond its targets."""
        return 1

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        d = self.data_defaults
        group = p.add_argument_group("data")
        group.add_argument("--corpus", required=True, help=CORPUS_HELP)
        group.add_argument("--vocab-size", type=at_least(3), default=self.vocab_default,
                           help=f"most frequent words kept, <unk> and </s> included (default {self.vocab_default})")  # fmt: skip
        group.add_argument("--heldout", type=fraction(), default=d["heldout"],
                           help=f"fraction of documents held out for perplexity (default {d['heldout']})")  # fmt: skip
        group.add_argument("--data-seed", type=at_least(0), default=d["data_seed"],
                           help="seed of the held-out documents (default 0)")  # fmt: skip
        group.add_argument("--max-documents", type=at_least(2), default=None,
                           help="read only the first N documents (default all)")  # fmt: skip
        group.add_argument("--cased", action=argparse.BooleanOptionalAction, default=d["cased"],
                           help=f"keep case (default {'on' if d['cased'] else 'off: lower-case words'})")  # fmt: skip
        group.add_argument("--sentences", action=argparse.BooleanOptionalAction, default=d["sentences"],
                           help=f"</s> after each sentence, else after each paragraph (default "
                                f"{'on' if d['sentences'] else 'off'})")  # fmt: skip
        group.add_argument("--block-length", type=at_least(1), default=d["block_length"],
                           help=f"targets per training block (default {d['block_length']})")  # fmt: skip
        self.add_eval_options(p)

    def add_eval_options(self, p: argparse.ArgumentParser) -> None:
        group = p.add_argument_group("evaluation")
        group.add_argument("--eval-blocks", type=at_least(1), default=None,
                           help="held-out blocks to score (default all)")  # fmt: skip
        group.add_argument("--eval-batch-size", type=at_least(1), default=32, help="blocks per batch (default 32)")

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data.vocab import Vocab
        from fastpretrain.data.word_lm import TokenBlocks

        if not Path(args.corpus).exists():
            raise FileNotFoundError(f"--corpus: {args.corpus!r} does not exist")
        settings = {"corpus": str(Path(args.corpus).resolve()),
                    **{k: getattr(args, k) for k in self.data_defaults if k != "corpus"}}  # fmt: skip
        saved = Path(args.out_dir) / "vocab.txt"
        vocab = None
        if saved.is_file():  # a resumed run keeps its vocabulary
            with loading("--out-dir", saved, "path"):
                vocab = Vocab.load(saved)
        corpus = word_corpus(settings, args.vocab_size, vocab)
        with renamed("--block-length", "length"):
            train = TokenBlocks(corpus.train, args.block_length, overlap=self.overlap(config))
        line = (f"data         {len(corpus.train):,} training words in {len(train):,} blocks of {args.block_length}, "
                f"{len(corpus.heldout):,} held out; vocabulary {len(corpus.vocab):,}")  # fmt: skip
        return TrainData(train, model_fields={"vocab_size": len(corpus.vocab)}, run={"data": settings}, lines=(line,),
                         save=lambda out: corpus.vocab.save(out / "vocab.txt"),
                         extras={"corpus": corpus, "settings": settings})  # fmt: skip

    def summary(self, trainer, history: list[dict]) -> str:
        if not history:
            return f"{trainer.step} steps; "
        last = history[-1]
        return f"{trainer.step} steps; last window: loss {last['loss']:.4f}, {last['items_per_s']:,.0f} words/s; "

    def heldout_blocks(self, model, corpus, settings: dict):
        from fastpretrain.data.word_lm import TokenBlocks

        overlap = self.overlap(model.config)
        if len(corpus.heldout) <= overlap + 1:
            raise ValueError("--heldout: no held-out text to score (give a fraction > 0 of documents)")
        return TokenBlocks(corpus.heldout, min(settings["block_length"], len(corpus.heldout) - overlap), overlap)

    def report(self, args: argparse.Namespace, model, corpus, settings: dict, device) -> dict:
        """Full-softmax perplexity on the held-out documents, printed; the model's own metrics may follow."""
        from fastpretrain.eval.perplexity import evaluate_perplexity

        result = evaluate_perplexity(model, self.heldout_blocks(model, corpus, settings),
                                     lambda rows: {"tokens": torch.stack(rows)}, batch_size=args.eval_batch_size,
                                     max_items=args.eval_blocks, device=device)  # fmt: skip
        print(f"held-out     {result['tokens']:,} words of {len(corpus.heldout):,}: full-softmax loss "
              f"{result['nll']:.4f}, perplexity {result['perplexity']:.2f}")  # fmt: skip
        return result

    def after_training(self, args: argparse.Namespace, model, data: TrainData, trainer) -> None:
        from fastpretrain.atomic import atomic_write

        if args.heldout > 0:
            result = self.report(args, model, data.extras["corpus"], data.extras["settings"], trainer.device)
            with atomic_write(Path(args.out_dir) / "eval.json", "w") as f:
                json.dump(result, f, indent=1)

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--corpus", default=None, help="default: the run's")
        p.add_argument("--heldout", type=fraction(), default=None, help="default: the run's")
        p.add_argument("--data-seed", type=at_least(0), default=None, help="default: the run's")
        self.add_eval_options(p)

    def load(self, checkpoint: Path):
        model, run = super().load(checkpoint)
        return model, {**run, "vocab": vocab_of(run_weights(checkpoint))}

    def evaluate(self, args: argparse.Namespace, model, run: dict, device) -> None:
        settings = {**self.data_defaults, **run.get("data", {})}
        for key in ("corpus", "heldout", "data_seed"):
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        if settings["corpus"] is None:
            raise ValueError("--corpus: needed here (the run does not say which corpus it was trained on)")
        self.report(args, model, word_corpus(settings, vocab=run["vocab"]), settings, device)
