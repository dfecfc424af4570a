"""Learning check: GPT trained on packed rows (attention cut at every document, positions
restarting) vs on the same rows unpacked (one causal sequence a row, attention across documents,
as nanoGPT trains), from the same initial weights, on the same rows in the same order, with the
same optimizer, schedule and token budget; then held-out perplexity of both, each evaluated both
ways (packed and unpacked held-out rows). The question: is packed training's held-out perplexity
lower at equal tokens? The table says what was measured, either way.

    python benchmarks/quality_gpt.py --size tiny --tokens 1.2e6 --threads 2 --label cpu   # a CPU budget
    python benchmarks/quality_gpt.py --size 124m --tokens 2e8 --seq-len 1024 --batch-size 32 --label gpu
    python benchmarks/quality_gpt.py --smoke                                # a few steps on a tiny corpus

Data: docs9m (a blank line between documents), a byte-level BPE trained on it (``--vocab-size``)
or GPT-2's (``--tokenizer gpt2``), documents tokenized once into the token cache, 1% held out by
document. Both runs go through the one Trainer (AdamW (0.9, 0.95), decay 0.1, warm-up then cosine
to lr / 10, clipping at 1.0, bf16 autocast on CUDA). Writes benchmarks/results/quality_gpt_<label>.json/.md,
rewritten after each run; a run that fails is an error row.
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

from fastpretrain.data import LMRows, TokenCache, collate_lm_rows, find_data, load_bpe, read_documents, train_bpe
from fastpretrain.eval import evaluate_perplexity
from fastpretrain.models import create_model, model_config
from fastpretrain.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
SMOKE_DOCS = 40


def smoke_corpus(folder: Path) -> Path:
    """A tiny document corpus for --smoke: numbered documents of a few repeated sentences."""
    path = folder / "smoke_docs.txt"
    words = ["the", "cat", "dog", "sat", "ran", "on", "in", "a", "mat", "park", "home", "and", "then"]
    docs = [" ".join(words[(d + i) % len(words)] for i in range(40 + d % 17)) for d in range(SMOKE_DOCS)]
    path.write_text("\n\n".join(docs) + "\n")
    return path


def train_and_evaluate(config, rows, heldout, packed: bool, steps: int, args) -> dict:
    """Train a fresh model (seeded: the same initial weights every run) through the Trainer, then
    its held-out perplexity on packed and on unpacked rows."""
    torch.manual_seed(args.seed)
    model = create_model(f"gpt_{args.size}", **config)
    collate = partial(collate_lm_rows, eot_id=rows.eot_id if packed else None)
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = TrainConfig(out_dir=out_dir, steps=steps, batch_size=args.batch_size, lr=args.lr, min_lr=args.lr / 10,
                          warmup_steps=max(1, round(0.05 * steps)), schedule="cosine", betas=(0.9, 0.95),
                          weight_decay=0.1, clip_grad=1.0, seed=args.seed, device=args.device,
                          log_every=max(1, steps // 10), ckpt_every=10**9, keep_checkpoints=1)  # fmt: skip
        trainer = Trainer(model, rows, cfg, collate_fn=collate)
        start = time.perf_counter()
        history = trainer.fit()
        seconds = time.perf_counter() - start
    out = {"train_loss_last": history[-1]["loss"], "train_seconds": seconds, "train_tokens": steps * args.batch_size *
           rows.seq_len, "tokens_per_s": sum(r["items_per_s"] for r in history) / len(history)}  # fmt: skip
    for mode, eot in (("packed", rows.eot_id), ("unpacked", None)):
        result = evaluate_perplexity(model, heldout, partial(collate_lm_rows, eot_id=eot), batch_size=args.batch_size,
                                     max_items=args.eval_rows, device=trainer.device)  # fmt: skip
        out[f"heldout_ppl_{mode}"], out["heldout_tokens"] = result["perplexity"], result["tokens"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=None, help="default: docs9m from the shared data folder")
    p.add_argument("--tokenizer", default=None, help="'gpt2', a tokenizer.json or folder (default: train a BPE)")
    p.add_argument("--vocab-size", type=int, default=8192, help="when training a BPE")
    p.add_argument("--size", default="tiny", help="gpt_<size>: tiny, mini, 124m, 350m")
    p.add_argument("--positions", default="learned", choices=("learned", "rope"))
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--tokens", type=float, default=1.2e6, help="training budget in tokens (each run)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-rows", type=int, default=400)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--label", default="", help="suffix of the result files, e.g. cpu")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--smoke", action="store_true", help="a few steps on a tiny corpus the script writes")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = tempfile.TemporaryDirectory()
    if args.smoke:
        args.corpus, args.vocab_size, args.seq_len, args.batch_size = smoke_corpus(Path(scratch.name)), 300, 32, 4
        args.tokens, args.eval_rows, args.label = 4 * 4 * 32, 4, args.label or "smoke"
        args.cache_dir = args.cache_dir or scratch.name
    corpus = Path(args.corpus) if args.corpus else find_data("docs9m.txt.xz")
    if args.tokenizer:
        tokenizer, vocab_source = load_bpe(args.tokenizer), args.tokenizer
    else:
        texts = ("\n".join(doc) for doc in read_documents(corpus))
        tokenizer, vocab_source = train_bpe(texts, vocab_size=args.vocab_size), "BPE trained on the corpus"
    build = partial(TokenCache.build, corpus, tokenizer, heldout=0.2 if args.smoke else 0.01, seed=args.seed,
                    cache_dir=args.cache_dir)  # fmt: skip
    rows, heldout = LMRows(build(split="train"), args.seq_len), LMRows(build(split="heldout"), args.seq_len)
    steps = math.ceil(args.tokens / (args.batch_size * args.seq_len))
    block_size = max(args.seq_len, model_config(f"gpt_{args.size}").block_size)
    config = {"vocab_size": tokenizer.get_vocab_size(), "block_size": block_size, "positions": args.positions}
    device = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if args.device == "auto"
        else torch.device(args.device)
    )
    settings = {**{k: v for k, v in vars(args).items() if k not in ("out", "cache_dir", "corpus")}, "corpus": str(corpus),
                "vocab": vocab_source, "vocab_size": config["vocab_size"], "steps": steps, "train_rows": len(rows),
                "train_documents": len(rows.cache), "heldout_rows": len(heldout), "heldout_documents": len(heldout.cache)}  # fmt: skip
    meta = {**run_info(device), "label": args.label or "full budget", "settings": settings}
    results = Results(args.out, "quality_gpt" + (f"_{args.label}" if args.label else ""), meta, markdown)
    for packed in (True, False):
        run = lambda packed=packed: train_and_evaluate(config, rows, heldout, packed, steps, args)
        print(results.attempt({"training": "packed" if packed else "unpacked"}, run), flush=True)
    if all("error" not in r for r in results.rows):
        packed, unpacked = results.rows
        results.result.update(packed_lower_on_packed_eval=packed["heldout_ppl_packed"] < unpacked["heldout_ppl_packed"],
                              packed_lower_on_unpacked_eval=packed["heldout_ppl_unpacked"] < unpacked["heldout_ppl_unpacked"])  # fmt: skip
    results.finish()
    scratch.cleanup()


def markdown(result: dict) -> str:
    s = result["settings"]
    head = (
        f"# GPT learning check: packed vs unpacked rows ({result['label']}) on {result['device']}, "
        f"{result['date']}, commit {result['commit']}"
    )
    setup = (
        f"gpt_{s['size']} ({s['positions']} positions), {s['steps']} steps of {s['batch_size']} x {s['seq_len']} "
        f"tokens (~{s['steps'] * s['batch_size'] * s['seq_len']:,} tokens each run), lr {s['lr']}, seed {s['seed']}; "
        f"vocabulary {s['vocab_size']:,} ({s['vocab']}); train {s['train_documents']:,} documents, held-out "
        f"{s['heldout_documents']:,} documents ({min(s['eval_rows'], s['heldout_rows'])} rows evaluated)."
    )
    lines = [head, f"`{result['command']}`", "", setup, "",
             "| training | held-out ppl, packed eval | held-out ppl, unpacked eval | last train loss | tokens/s |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['training']} | error: {r['error']} | | | |")
            continue
        lines.append(f"| {r['training']} | {r['heldout_ppl_packed']:.2f} | {r['heldout_ppl_unpacked']:.2f} | "
                     f"{r['train_loss_last']:.3f} | {r['tokens_per_s']:,.0f} |")  # fmt: skip
    if "packed_lower_on_packed_eval" in result:
        packed, unpacked = result["rows"]
        gaps = [100 * (packed[f"heldout_ppl_{m}"] / unpacked[f"heldout_ppl_{m}"] - 1) for m in ("packed", "unpacked")]
        verdict = (
            f"Packed training's held-out perplexity relative to unpacked training's, at equal training tokens: "
            f"{gaps[0]:+.2f}% on packed held-out rows, {gaps[1]:+.2f}% on unpacked ones (negative: packed "
            f"is lower); one seed, no spread measured"
        ) + (": a gap under 1% does not show that packing helps." if max(map(abs, gaps)) < 1 else ".")
        lines += ["", verdict]
    elif not result["complete"]:
        lines += ["", "INCOMPLETE (run stopped early)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
