"""``fastpretrain bert train|eval``: BERT (masked LM + next sentence prediction) on a text corpus,
on the shared model command skeleton; a post-norm run is also exported for Hugging Face."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least, fraction
from fastpretrain.cli.errors import loading, renamed
from fastpretrain.cli.model_command import ModelCommand, TrainData
from fastpretrain.models import BertForPreTraining
from fastpretrain.models.registry import WEIGHTS

# How the examples are built: bert train's defaults, kept in the run's config.json as "data" for
# bert eval, which falls back to these for a directory that does not say (a Hugging Face export).
DATA_DEFAULTS = {"corpus": None, "max_len": 128, "heldout": 0.01, "data_seed": 0, "mlm_probability": 0.15,
                 "whole_word": False}  # fmt: skip
CORPUS_HELP = "text file (.xz/.bz2/.gz) or directory: a paragraph a line, a blank line between documents"


def _examples(settings: dict, tokenizer, split: str, cache_dir):
    from fastpretrain.data import BertExamples

    with renamed("--corpus", "source", "path"), renamed("--max-len", "max_len"), renamed("--heldout", "heldout"):
        return BertExamples.build(settings["corpus"], tokenizer, split=split, max_len=settings["max_len"],
                                  heldout=settings["heldout"], seed=settings["data_seed"],
                                  mlm_probability=settings["mlm_probability"], whole_word=settings["whole_word"],
                                  cache_dir=cache_dir)  # fmt: skip


def _report(model, dataset, args: argparse.Namespace, pad_id: int, device) -> dict:
    """Held-out MLM / NSP metrics and the [CLS] probe, printed."""
    from fastpretrain.data import collate_packed, collate_padded
    from fastpretrain.eval import evaluate_pretraining

    collate = partial(collate_padded, pad_id=pad_id) if args.padded else collate_packed
    result = evaluate_pretraining(model, dataset, batch_size=args.eval_batch_size, max_examples=args.eval_examples,
                                  collate_fn=collate, device=device)  # fmt: skip
    print(f"held-out     {result['examples']:,} examples, {result['mlm_tokens']:,} masked tokens")
    print(f"mlm          loss {result['mlm_loss']:.4f}  accuracy {result['mlm_accuracy']:.2%}")
    print(f"nsp          loss {result['nsp_loss']:.4f}  accuracy {result['nsp_accuracy']:.2%}")
    print(f"probe        [CLS] logistic regression on held-out NSP: accuracy {result['probe_accuracy']:.2%}")
    return result


def _tokenizer_of(files: Path):
    """The tokenizer saved with the weights ``files`` (a run's tokenizer/ folder, or the export's own files)."""
    from fastpretrain.data import load_wordpiece

    folder = files / WEIGHTS if files.is_dir() else files
    for place in (folder.parent / "tokenizer", folder.parent.parent.parent / "tokenizer", folder.parent):
        if (place / "tokenizer.json").is_file() or (place / "vocab.txt").is_file():
            with loading("checkpoint", place, "path"):
                return load_wordpiece(place)
    raise FileNotFoundError(f"checkpoint: no tokenizer (tokenizer.json or vocab.txt) beside {str(files)!r}")


def _add_eval_flags(p: argparse.ArgumentParser, padded: bool = True) -> None:
    group = p.add_argument_group("evaluation")
    group.add_argument("--eval-examples", type=at_least(4), default=2000,
                       help="held-out examples to evaluate (default 2000)")  # fmt: skip
    group.add_argument("--eval-batch-size", type=at_least(1), default=64, help="examples per batch (default 64)")
    if padded:
        group.add_argument("--padded", action="store_true", help="padded batches instead of packed ones (for comparison)")
    else:
        p.set_defaults(padded=False)


def _add_cache_flag(group) -> None:
    group.add_argument("--cache-dir", default=None, help="cache root of the built examples "
                       "(default $FASTPRETRAIN_CACHE or ~/.cache/fastpretrain)")  # fmt: skip


class BertCommand(ModelCommand):
    name, model_class, default_model = "bert", BertForPreTraining, "bert_mini"
    padded = True  # a --padded flag (ELECTRA runs packed batches only)
    help = "pre-train and evaluate BERT (masked LM + next sentence prediction)"
    train_help = ("pre-train BERT (MLM + NSP) on a corpus; evaluate on held-out documents; export post-norm "
                  "models for Hugging Face")  # fmt: skip
    eval_help = "held-out MLM / NSP metrics and a [CLS] probe of a run, a checkpoint or a Hugging Face export"
    checkpoint_help = ModelCommand.checkpoint_help + ", or a Hugging Face BERT directory (a run's hf/)"
    # BERT's recipe: AdamW (0.9, 0.999), decay 0.01, warm-up then linear decay
    recipe: ClassVar[dict] = {"out_dir": "runs/bert", "lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 0.01,
                              "schedule": "linear", "warmup_steps": 100, "steps": 10000, "batch_size": 32}  # fmt: skip
    derived = ("vocab_size", "pad_token_id", "max_position_embeddings")  # from the tokenizer and --max-len
    model_help: ClassVar[dict] = {
        "hidden_size": "width", "num_layers": "layers", "num_heads": "attention heads (default: hidden_size / 64)",
        "intermediate_size": "MLP hidden width (default: 4 x hidden_size)", "type_vocab_size": "token types (segments)",
        "hidden_dropout": "dropout of the embeddings and of each residual branch",
        "attention_dropout": "dropout of the attention probabilities, inside the attention op "
                             "(0 for CPU runs: the reference draws its bits slowly)",
        "layer_norm_eps": "LayerNorm epsilon", "initializer_range": "std of the initial weights",
        "pre_norm": "pre-norm layers with a final LayerNorm (no Hugging Face export); default post-norm",
    }  # fmt: skip

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        d = DATA_DEFAULTS
        group = p.add_argument_group("data")
        group.add_argument("--corpus", required=True, help=CORPUS_HELP)
        group.add_argument("--tokenizer", default=None, help="vocab.txt, tokenizer.json or a directory; "
                           "default: train WordPiece on the corpus")  # fmt: skip
        group.add_argument("--vocab-size", type=at_least(8), default=30522,
                           help="WordPiece vocabulary when training one (default 30522)")  # fmt: skip
        group.add_argument("--cased", action="store_true", help="keep case and accents (default: uncased, as "
                           "bert-base-uncased; applies to a vocab.txt and to a trained WordPiece)")  # fmt: skip
        group.add_argument("--max-len", type=at_least(8), default=d["max_len"],
                           help=f"tokens per example, [CLS] and [SEP]s included (default {d['max_len']})")  # fmt: skip
        group.add_argument("--heldout", type=fraction(), default=d["heldout"],
                           help=f"fraction of documents held out for eval (default {d['heldout']})")  # fmt: skip
        group.add_argument("--data-seed", type=at_least(0), default=d["data_seed"],
                           help=f"seed of the pairs, the split and the masks (default {d['data_seed']})")  # fmt: skip
        group.add_argument("--mlm-probability", type=fraction(low_open=True), default=d["mlm_probability"],
                           help=f"fraction of tokens selected for MLM (default {d['mlm_probability']})")  # fmt: skip
        group.add_argument("--whole-word", action="store_true", help="whole-word masking")
        _add_cache_flag(group)
        _add_eval_flags(p, self.padded)

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data import (
            collate_packed,
            collate_padded,
            load_wordpiece,
            read_documents,
            save_wordpiece,
            train_wordpiece,
        )

        corpus = Path(args.corpus)
        if not corpus.exists():
            raise FileNotFoundError(f"--corpus: {str(corpus)!r} does not exist")
        saved = Path(args.out_dir) / "tokenizer"
        if (saved / "tokenizer.json").is_file():  # a resumed run keeps its tokenizer
            with loading("--out-dir", saved, "path"):
                tokenizer = load_wordpiece(saved)
        elif args.tokenizer:
            with loading("--tokenizer", args.tokenizer, "path"):
                tokenizer = load_wordpiece(args.tokenizer, lowercase=not args.cased)
        else:
            with renamed("--corpus", "source", "path"):
                paragraphs = [p for doc in read_documents(corpus) for p in doc]
            tokenizer = train_wordpiece(paragraphs, vocab_size=args.vocab_size, lowercase=not args.cased)
        settings = {"corpus": str(corpus.resolve()), **{k: getattr(args, k) for k in DATA_DEFAULTS if k != "corpus"}}
        train = _examples(settings, tokenizer, "train", args.cache_dir)
        pad_id = tokenizer.token_to_id("[PAD]")
        vocab = tokenizer.get_vocab_size()
        line = f"data         {len(train):,} training examples of at most {args.max_len} tokens, vocabulary {vocab:,}"
        return TrainData(
            train, partial(collate_padded, pad_id=pad_id) if args.padded else collate_packed,
            model_fields={"vocab_size": vocab, "pad_token_id": pad_id,
                          "max_position_embeddings": max(512, args.max_len)},
            run={"data": settings}, lines=(line,), save=lambda out: save_wordpiece(tokenizer, out / "tokenizer"),
            extras={"tokenizer": tokenizer, "settings": settings, "pad_id": pad_id},
        )  # fmt: skip

    def flops_per_item(self, model: BertForPreTraining, data: TrainData) -> float:
        return model.flops_per_item(round(float(data.dataset.lengths().mean())))

    def summary(self, trainer, history: list[dict]) -> str:
        if not history:
            return f"{trainer.step} steps; "
        last = history[-1]
        mlm, nsp = last.get("mlm_loss", float("nan")), last.get("nsp_accuracy", float("nan"))
        return (f"{trainer.step} steps; last window: loss {last['loss']:.4f}, mlm {mlm:.4f}, nsp accuracy {nsp:.2%}, "
                f"{last['items_per_s']:,.0f} tokens/s; ")  # fmt: skip

    def report(self, model, dataset, args: argparse.Namespace, pad_id: int, device) -> dict:
        """The held-out metrics of train and eval, printed."""
        return _report(model, dataset, args, pad_id, device)

    def after_training(self, args: argparse.Namespace, model, data: TrainData, trainer) -> None:
        from fastpretrain.atomic import atomic_write

        out, tokenizer, settings = Path(args.out_dir), data.extras["tokenizer"], data.extras["settings"]
        if args.heldout > 0:
            heldout = _examples(settings, tokenizer, "heldout", args.cache_dir)
            result = self.report(model, heldout, args, data.extras["pad_id"], trainer.device)
            with atomic_write(out / "eval.json", "w") as f:
                json.dump(result, f, indent=1)
        self.export(model, out, tokenizer)

    def export(self, model, out: Path, tokenizer) -> None:
        """A post-norm model as a Hugging Face BERT directory out/hf."""
        from fastpretrain.interop.hf import save_hf_bert

        if not model.config.pre_norm:
            with torch.no_grad():
                export = save_hf_bert(model, out / "hf", tokenizer)
            print(f"exported     {export} (transformers.BertForPreTraining.from_pretrained loads it)")

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--corpus", default=None, help="default: the run's corpus")
        p.add_argument("--max-len", type=at_least(8), default=None, help="default: the run's")
        p.add_argument("--heldout", type=fraction(), default=None, help="default: the run's")
        p.add_argument("--data-seed", type=at_least(0), default=None, help="default: the run's")
        _add_cache_flag(p)
        _add_eval_flags(p, self.padded)

    def load(self, checkpoint: Path):
        """Ours (a run, its weights, a checkpoint), else a Hugging Face export; with its tokenizer."""
        from fastpretrain.interop.hf import load_hf_bert

        model, run, weights = self.load_or_hf(checkpoint, load_hf_bert)
        return model, {**run, "tokenizer": _tokenizer_of(weights)}

    def evaluate(self, args: argparse.Namespace, model, run: dict, device) -> None:
        settings = {**DATA_DEFAULTS, **run.get("data", {})}
        for key in ("corpus", "max_len", "heldout", "data_seed"):
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        if settings["corpus"] is None:
            raise ValueError("--corpus: needed here (the model directory does not say which corpus it was trained on)")
        tokenizer = run["tokenizer"]
        dataset = _examples(settings, tokenizer, "heldout", args.cache_dir)
        self.report(model, dataset, args, tokenizer.token_to_id("[PAD]"), device)


add_commands = BertCommand().add_commands
