"""``fastpretrain cpc train|eval``: CPC on a document corpus (docs9m's format: a paragraph a line, a
blank line between documents), windows of consecutive sentences as bytes; every tenth document is
held out for the evaluation (its CPC loss and a next-sentence probe, next to a random-init model)."""

from __future__ import annotations

import argparse
import json
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least
from fastpretrain.cli.errors import renamed
from fastpretrain.cli.model_command import ModelCommand, TrainData
from fastpretrain.models.cpc import CPC


class CPCCommand(ModelCommand):
    name, model_class, default_model = "cpc", CPC, "cpc_text_small"
    help = "pre-train and evaluate CPC on text (contrastive prediction of the next sentences)"
    train_help = ("pre-train CPC on windows of consecutive sentences; checkpoints through the Trainer, then "
                  "model.safetensors and config.json in --out-dir, then the held-out CPC loss")  # fmt: skip
    eval_help = ("held-out CPC loss and a next-sentence linear probe on the encoder's sentence vectors, next to a "
                 "randomly initialised CPC of the same size")  # fmt: skip
    recipe: ClassVar[dict] = {"out_dir": "runs/cpc", "lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 10}
    model_help: ClassVar[dict] = {
        "sentence_len": "bytes per sentence (cut or 0-padded)", "window": "consecutive sentences per item",
        "embed_dim": "byte embedding width", "conv_dim": "convolution width",
        "conv_layers": "strided convolutions (kernel 4, stride 2)", "z_dim": "sentence representation width",
        "context_dim": "GRU hidden size", "prediction_steps": "sentences predicted ahead (K)",
    }  # fmt: skip

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        group = p.add_argument_group("data")
        group.add_argument("--corpus", required=True, help="a text file (.xz/.bz2/.gz too) or folder of them, one "
                           "paragraph a line, a blank line between documents (docs9m)")  # fmt: skip
        group.add_argument("--max-documents", type=at_least(1), default=None,
                           help="read only the first N documents (default all; every tenth is held out)")  # fmt: skip

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data.sentence_windows import SentenceWindows, document_sentences

        with renamed("--corpus", "source"), renamed("--max-documents", "max_documents"):
            docs = document_sentences(args.corpus, "train", args.max_documents)
        with renamed("--corpus", "documents"):
            dataset = SentenceWindows(docs, config.window, config.sentence_len)
        line = (f"data         {args.corpus}: {len(docs):,} training documents, {len(dataset):,} windows of "
                f"{config.window} sentences x {config.sentence_len} bytes")  # fmt: skip
        return TrainData(dataset, run={"data": str(args.corpus)}, lines=(line,),
                         extras={"max_documents": args.max_documents})  # fmt: skip

    def describe(self, model: CPC) -> str:
        c = model.config
        return (f", {c.conv_layers} convolutions of {c.conv_dim}, z {c.z_dim}, GRU {c.context_dim}, "
                f"{c.prediction_steps} steps ahead")  # fmt: skip

    def after_training(self, args, model: CPC, data: TrainData, trainer) -> None:
        result = self.heldout(model, args.corpus, data.extras["max_documents"], args.batch_size)
        print(self.loss_line(result))

    @staticmethod
    def heldout(model: CPC, corpus, max_documents, batch_size: int) -> dict:
        from fastpretrain.data.sentence_windows import SentenceWindows, document_sentences
        from fastpretrain.eval.cpc import heldout_loss

        with renamed("--corpus", "source"):
            docs = document_sentences(corpus, "heldout", max_documents)
        with renamed("--corpus", "documents"):
            windows = SentenceWindows(docs, model.config.window, model.config.sentence_len)
        return {**heldout_loss(model, windows, batch_size), "documents": docs}

    @staticmethod
    def loss_line(result: dict) -> str:
        return (f"held-out     CPC loss {result['loss']:.4f} over {result['windows']:,} windows "
                f"(chance {result['chance']:.4f})")  # fmt: skip

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--corpus", default=None, help="the corpus (default: the run's; its held-out documents)")
        p.add_argument("--max-documents", type=at_least(1), default=None,
                       help="as in training: the held-out documents among the first N")  # fmt: skip
        p.add_argument("--batch-size", type=at_least(2), default=32,
                       help="windows per loss batch (the negatives; default 32, the training default)")  # fmt: skip
        p.add_argument("--pairs", type=at_least(2), default=1000, help="next-sentence probe draws (2 pairs each)")
        p.add_argument("--probe-iters", type=at_least(1), default=200, help="L-BFGS iterations of the probe")
        p.add_argument("--json", default=None, help="also write the metrics to this JSON file")

    def evaluate(self, args: argparse.Namespace, model: CPC, run: dict, device: torch.device) -> None:
        from fastpretrain.atomic import atomic_write, check_writable
        from fastpretrain.eval.cpc import next_sentence_probe, sentence_pairs

        if args.json:
            check_writable("--json", args.json)
        corpus = args.corpus or run.get("data")
        if corpus is None:
            raise ValueError("--corpus: the run's config.json names no corpus; give one")
        result = self.heldout(model, corpus, args.max_documents, args.batch_size)
        print(self.loss_line(result))
        firsts, seconds, labels = sentence_pairs(result.pop("documents"), args.pairs)
        torch.manual_seed(0)
        random_init = CPC(model.config).to(device)
        summary = {"heldout_loss": result["loss"], "chance_loss": result["chance"],
                   "heldout_windows": result["windows"]}  # fmt: skip
        for name, m in (("cpc", model), ("random_init", random_init)):
            probe = next_sentence_probe(m, firsts, seconds, labels, max_iter=args.probe_iters)
            summary[f"next_sentence_{name}"] = probe["test_acc"]
            print(f"next sentence {name:<12} probe accuracy {probe['test_acc']:.1%} (train {probe['train_acc']:.1%}) "
                  f"on {len(labels) - int(0.7 * len(labels)):,} held-out pairs, chance 50%")  # fmt: skip
        if args.json:
            with atomic_write(args.json, "w") as f:
                json.dump(summary, f, indent=2)


add_commands = CPCCommand().add_commands
