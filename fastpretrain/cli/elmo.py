"""``fastpretrain elmo train|eval|embed``: ELMo's bidirectional language model on a document corpus
(sentences packed into BPTT blocks, sampled softmax over the words), evaluated by each
direction's held-out perplexity and the word similarity of its character-built layer 0; embed
writes contextual vectors of a file's sentences (.npy or .safetensors)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least
from fastpretrain.cli.device import pick_device
from fastpretrain.cli.errors import loading
from fastpretrain.cli.model_command import TrainData, run_settings, run_weights
from fastpretrain.cli.word_lm import WordLMCommand
from fastpretrain.models import ELMo

SIMILARITY = ("wordsim353.tsv", "simlex999.txt")
OUTPUTS = (".npy", ".safetensors")


def _similarity_files(given: list[str] | None) -> list[Path]:
    """The files given, else the shared data's WordSim-353 and SimLex-999 where they are found."""
    if given is not None:
        for f in given:
            if not Path(f).is_file():
                raise FileNotFoundError(f"--similarity: {f!r} does not exist")
        return [Path(f) for f in given]
    from fastpretrain.data import find_data

    try:
        return [find_data(f"eval/{name}") for name in SIMILARITY]
    except FileNotFoundError:
        return []


class ELMoCommand(WordLMCommand):
    name, model_class, default_model = "elmo", ELMo, "elmo_small"
    help = "train and evaluate ELMo (character CNN + bidirectional LSTM LM, sampled softmax); embed sentences"
    train_help = ("train ELMo's biLM on a corpus (sampled softmax); held-out perplexity of each direction and "
                  "layer-0 word similarity at the end")  # fmt: skip
    eval_help = "held-out perplexity of each direction and word similarity of the layer-0 vectors"
    # bilm-tf's recipe, Adam in place of Adagrad: unroll 20, dropout 0.1, clip 10
    recipe: ClassVar[dict] = {"out_dir": "runs/elmo", "lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.0,
                              "steps": 5000, "batch_size": 64, "clip_grad": 10.0, "ckpt_every": 1000}  # fmt: skip
    # cased words, </s> after each sentence, 20-word BPTT blocks
    data_defaults: ClassVar[dict] = {"corpus": None, "heldout": 0.01, "data_seed": 0, "max_documents": None,
                                     "cased": True, "sentences": True, "block_length": 20}  # fmt: skip
    vocab_default = 50_000
    model_help: ClassVar[dict] = {
        "max_chars": "characters a word is cut or padded to (its marks included)", "char_dim": "character embedding width",
        "filter_widths": "character CNN filter widths", "filter_counts": "filters of each width",
        "highway": "highway layers after the CNN", "lstm_dim": "LSTM cell width",
        "projection_dim": "LSTM projection and word vector width", "num_layers": "LSTM layers per direction",
        "residual": "residual connection around each LSTM layer after the first",
        "dropout": "dropout between layers and before the softmax",
        "num_sampled": "candidates of the sampled softmax (0: train with the full softmax)",
        "unique": "distinct candidates (TF's unique=True, expected counts 1 - (1 - Q)^tries)",
    }  # fmt: skip

    def build(self, config, data: TrainData) -> ELMo:
        return ELMo(config).set_vocabulary(data.extras["corpus"].vocab.words)

    def describe(self, model: ELMo) -> str:
        c = model.config
        how = f"sampled softmax, {c.num_sampled} candidates" if c.num_sampled else "full softmax"
        return f", {c.num_layers} x {c.lstm_dim} LSTM -> {c.projection_dim} per direction, {how}"

    def add_eval_options(self, p: argparse.ArgumentParser) -> None:
        super().add_eval_options(p)
        p.add_argument("--similarity", nargs="*", default=None, metavar="FILE",
                       help="word-pair files for layer-0 similarity (default: WordSim-353 and SimLex-999 from the "
                            "shared data, when found)")  # fmt: skip

    def report(self, args: argparse.Namespace, model, corpus, settings: dict, device) -> dict:
        from fastpretrain.eval.elmo import evaluate_bilm, word_similarity

        files = _similarity_files(args.similarity)
        result = evaluate_bilm(model, self.heldout_blocks(model, corpus, settings), batch_size=args.eval_batch_size,
                               max_items=args.eval_blocks, device=device)  # fmt: skip
        print(f"held-out     {result['tokens']:,} words of {len(corpus.heldout):,} per direction: perplexity "
              f"forward {result['forward_perplexity']:.2f}, backward {result['backward_perplexity']:.2f}")  # fmt: skip
        for f in files:
            score = word_similarity(model, f)
            result[f"similarity_{f.stem}"] = score
            print(f"similarity   {f.name}: layer 0 spearman {score['spearman']:.3f} ({score['pairs']} pairs)")
        return result

    def add_actions(self, actions: argparse._SubParsersAction) -> None:
        help = "contextual vectors of the sentences of a text file (one sentence a line), to .npy or .safetensors"
        p = actions.add_parser("embed", help=help, description=help)
        p.add_argument("checkpoint", help=self.checkpoint_help)
        p.add_argument("--input", required=True, help="text file, one sentence a line (tokenised as in training)")
        p.add_argument("--out", required=True, help="vectors file: .npy ([words, layers, 2 x projection_dim]; "
                       "the sentence offsets beside it as <out>.offsets.npy) or .safetensors (vectors, offsets)")  # fmt: skip
        p.add_argument("--layer", default="all", help="all (every layer), mean (their average, ELMo's untrained "
                       "mix), or a layer number 0..num_layers (default all)")  # fmt: skip
        p.add_argument("--batch-size", type=at_least(1), default=64, help="sentences per forward (default 64)")
        p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available)")
        p.set_defaults(run=self.embed, parser=p)

    def embed(self, args: argparse.Namespace) -> None:
        import numpy as np

        from fastpretrain.atomic import atomic_path, check_writable
        from fastpretrain.data.word_lm import tokenize
        from fastpretrain.eval.elmo import sentence_layers

        out = Path(args.out)
        if out.suffix not in OUTPUTS:
            raise ValueError(f"--out: expected a .npy or .safetensors file, got {args.out!r}")
        check_writable("--out", out)
        if not Path(args.input).is_file():
            raise FileNotFoundError(f"--input: {args.input!r} does not exist")
        device = pick_device(args.device)
        model, _ = self.load(Path(args.checkpoint))
        model = model.to(device)
        layers = model.config.num_layers + 1
        if args.layer not in ("all", "mean") and not (args.layer.isdigit() and int(args.layer) < layers):
            raise ValueError(f"--layer: expected all, mean or a layer in 0..{layers - 1}, got {args.layer!r}")
        cased = run_settings(run_weights(Path(args.checkpoint))).get("data", {}).get("cased", True)
        with loading("--input", args.input, "path"), open(args.input, encoding="utf-8") as f:
            sentences = [tokenize(line, lowercase=not cased) for line in f if line.strip()]
        if not sentences:
            raise ValueError(f"--input: {args.input!r} holds no sentence")
        per_sentence = sentence_layers(model, sentences, args.batch_size)
        vectors = torch.cat([v.transpose(0, 1) for v in per_sentence])  # [words, layers, 2P]
        if args.layer == "mean":
            vectors = vectors.mean(1)
        elif args.layer != "all":
            vectors = vectors[:, int(args.layer)]
        offsets = np.cumsum([0] + [len(s) for s in sentences]).astype(np.int64)
        if out.suffix == ".npy":
            for path, array in ((out, vectors.numpy()), (out.with_suffix(".offsets.npy"), offsets)):
                with atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.save(f, array)
        else:
            from safetensors.torch import save_file

            with atomic_path(out) as tmp:
                save_file({"vectors": vectors.contiguous(), "offsets": torch.from_numpy(offsets)}, tmp)
        print(f"embedded     {len(sentences):,} sentences, {len(vectors):,} words, vectors "
              f"{tuple(vectors.shape)} -> {out}")  # fmt: skip


add_commands = ELMoCommand().add_commands
