"""``fastpretrain bert train|eval``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastpretrain.cli.args import at_least

BERT_RUN = "bert_run.json"  # in a training run's out_dir: the model config and the data settings


def _bert_data(args: argparse.Namespace, tokenizer, split: str, settings: dict):
    from fastpretrain.data import BertExamples

    return BertExamples.build(settings["corpus"], tokenizer, split=split, max_len=settings["max_len"],
                              heldout=settings["heldout"], seed=settings["data_seed"],
                              mlm_probability=settings["mlm_probability"], whole_word=settings["whole_word"],
                              cache_dir=args.cache_dir)  # fmt: skip


def _bert_report(model, dataset, args: argparse.Namespace, pad_id: int, device) -> dict:
    from functools import partial

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


def _bert_train(args: argparse.Namespace) -> None:
    """Pre-train BERT (MLM + NSP) on a corpus; evaluate on held-out documents; export for HF."""
    import json
    from dataclasses import asdict
    from functools import partial

    import torch

    from fastpretrain.atomic import atomic_write
    from fastpretrain.data import (
        collate_packed,
        collate_padded,
        load_wordpiece,
        read_documents,
        save_wordpiece,
        train_wordpiece,
    )
    from fastpretrain.interop.hf import save_hf_bert
    from fastpretrain.models import BertForPreTraining, model_config
    from fastpretrain.train import TrainConfig, Trainer, is_main

    config = TrainConfig.from_args(args)
    out = Path(config.out_dir)
    corpus = Path(args.corpus)
    if not corpus.exists():
        raise FileNotFoundError(f"corpus: {str(corpus)!r} does not exist")
    saved = out / "tokenizer"
    if (saved / "tokenizer.json").is_file():  # a resumed run keeps its tokenizer
        tokenizer = load_wordpiece(saved)
    elif args.tokenizer:
        tokenizer = load_wordpiece(args.tokenizer, lowercase=not args.cased)
    else:
        paragraphs = (p for doc in read_documents(corpus) for p in doc)
        tokenizer = train_wordpiece(paragraphs, vocab_size=args.vocab_size, lowercase=not args.cased)
    settings = {"corpus": str(corpus.resolve()), "max_len": args.max_len, "heldout": args.heldout,
                "data_seed": args.data_seed, "mlm_probability": args.mlm_probability, "whole_word": args.whole_word}  # fmt: skip
    train = _bert_data(args, tokenizer, "train", settings)
    pad_id = tokenizer.token_to_id("[PAD]")
    bert = model_config(f"bert_{args.size}", vocab_size=tokenizer.get_vocab_size(), pad_token_id=pad_id,
                        max_position_embeddings=max(512, args.max_len), pre_norm=args.pre_norm,
                        hidden_dropout=args.dropout, attention_dropout=args.attention_dropout)  # fmt: skip
    model = BertForPreTraining(bert)
    print(f"bert-{args.size}  {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, vocabulary "
          f"{bert.vocab_size:,}, {len(train):,} training examples of at most {args.max_len} tokens", file=sys.stderr)  # fmt: skip
    collate = partial(collate_padded, pad_id=pad_id) if args.padded else collate_packed
    mean_len = float(train.lengths().mean())
    trainer = Trainer(model, train, config, collate_fn=collate, flops_per_item=model.flops_per_item(round(mean_len)),
                      model_config=asdict(bert))  # refuses a --resume with other model flags, before the writes below
    if is_main():
        save_wordpiece(tokenizer, saved)
        with atomic_write(out / BERT_RUN, "w") as f:
            json.dump({"model": asdict(bert), "data": settings}, f, indent=1)
    history = trainer.fit()
    if not is_main():
        return
    if history:
        last = history[-1]
        print(f"trained      {trainer.step} steps; last window: loss {last['loss']:.4f}, mlm {last.get('mlm_loss', float('nan')):.4f}, "
              f"nsp accuracy {last.get('nsp_accuracy', float('nan')):.2%}, {last['items_per_s']:,.0f} tokens/s")  # fmt: skip
    raw = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    if args.heldout > 0:
        result = _bert_report(raw, _bert_data(args, tokenizer, "heldout", settings), args, pad_id, trainer.device)
        with atomic_write(out / "eval.json", "w") as f:
            json.dump(result, f, indent=1)
    if not bert.pre_norm:
        with torch.no_grad():
            export = save_hf_bert(raw, out / "hf", tokenizer)
        print(f"exported     {export} (transformers.BertForPreTraining.from_pretrained loads it)")


def _bert_eval(args: argparse.Namespace) -> None:
    """Evaluate a BERT run (its latest checkpoint) or a save_pretrained directory on held-out documents."""
    import json

    import torch
    from safetensors.torch import load_file

    from fastpretrain.data import load_wordpiece
    from fastpretrain.interop.hf import load_hf_bert
    from fastpretrain.models import BertConfig, BertForPreTraining
    from fastpretrain.train import latest

    path = Path(args.model)
    run_file = path / BERT_RUN
    settings = {
        "corpus": None,
        "max_len": 128,
        "heldout": 0.01,
        "data_seed": 0,
        "mlm_probability": 0.15,
        "whole_word": False,
    }
    if run_file.is_file():
        run = json.loads(run_file.read_text())
        settings.update(run["data"])
        checkpoint = latest(path)
        if checkpoint is None:
            raise FileNotFoundError(f"model: run {str(path)!r} has no checkpoint yet")
        model = BertForPreTraining(BertConfig(**run["model"]))
        model.load_state_dict(load_file(checkpoint / "model.safetensors"))
        tokenizer = load_wordpiece(path / "tokenizer")
        print(f"model        {checkpoint}")
    elif (path / "config.json").is_file():
        model = load_hf_bert(path)
        tokenizer = load_wordpiece(path)
        print(f"model        {path}")
    else:
        raise FileNotFoundError(
            f"model: {str(path)!r} is neither a bert train run ({BERT_RUN}) nor a save_pretrained directory"
        )
    for key in ("corpus", "max_len", "heldout", "data_seed"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if settings["corpus"] is None:
        raise ValueError("corpus: pass --corpus (the model directory does not say which corpus it was trained on)")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dataset = _bert_data(args, tokenizer, "heldout", settings)
    _bert_report(model.to(device), dataset, args, tokenizer.token_to_id("[PAD]"), device)


def _add_bert_eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--eval-examples", type=at_least(4), default=2000, help="held-out examples to evaluate (default 2000)"
    )
    p.add_argument("--eval-batch-size", type=at_least(1), default=64)
    p.add_argument("--padded", action="store_true", help="padded batches instead of packed ones (for comparison)")
    p.add_argument("--cache-dir", default=None, help="cache root of the built examples (default $FASTPRETRAIN_CACHE)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    from fastpretrain.models import list_models
    from fastpretrain.train import add_train_args

    bert = sub.add_parser("bert", help="pre-train and evaluate BERT (masked LM + next sentence prediction)")
    actions = bert.add_subparsers(title="actions", metavar="<action>", required=True)
    p = actions.add_parser("train", help="pre-train on a corpus", description=_bert_train.__doc__)
    p.add_argument("--corpus", required=True, help="text file (.xz/.bz2/.gz) or directory: a paragraph a line, "
                   "a blank line between documents")  # fmt: skip
    p.add_argument(
        "--tokenizer",
        default=None,
        help="vocab.txt, tokenizer.json or a directory; default: train WordPiece on the corpus",
    )
    p.add_argument("--vocab-size", type=at_least(8), default=30522, help="WordPiece vocabulary when training one")
    p.add_argument(
        "--cased", action="store_true", help="keep case and accents (default: uncased, as bert-base-uncased)"
    )
    p.add_argument("--size", choices=[name.removeprefix("bert_") for name in list_models("bert_*")], default="mini")
    p.add_argument("--max-len", type=at_least(8), default=128, help="tokens per example, [CLS] and [SEP]s included")
    p.add_argument("--heldout", type=at_least(0.0, float), default=0.01, help="fraction of documents held out for eval")
    p.add_argument("--data-seed", type=at_least(0), default=0, help="seed of the pairs, the split and the masks")
    p.add_argument("--mlm-probability", type=float, default=0.15)
    p.add_argument("--whole-word", action="store_true", help="whole-word masking")
    p.add_argument("--pre-norm", action="store_true", help="pre-norm layers with a final LayerNorm (default post-norm)")
    p.add_argument("--dropout", type=at_least(0.0, float), default=0.1, help="hidden dropout")
    p.add_argument(
        "--attention-dropout", type=at_least(0.0, float), default=0.1, help="dropout inside the attention op"
    )
    _add_bert_eval_flags(p)
    add_train_args(p)
    # BERT's recipe: AdamW (0.9, 0.999), decay 0.01, warm-up then linear decay
    p.set_defaults(run=_bert_train, out_dir="runs/bert", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01,
                   schedule="linear", warmup_steps=100, steps=10000, batch_size=32, precision="auto")  # fmt: skip
    p = actions.add_parser("eval", help="held-out MLM / NSP metrics and a [CLS] probe", description=_bert_eval.__doc__)
    p.add_argument(
        "model", help="a bert train --out-dir, or a save_pretrained directory (config.json + model.safetensors)"
    )
    p.add_argument("--corpus", default=None, help="default: the run's corpus")
    p.add_argument("--max-len", type=at_least(8), default=None)
    p.add_argument("--heldout", type=at_least(0.0, float), default=None)
    p.add_argument("--data-seed", type=at_least(0), default=None)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    _add_bert_eval_flags(p)
    p.set_defaults(run=_bert_eval)
