"""NNLM trained with our sampled softmax vs the same model trained with the full softmax, at equal
steps on the same batches from the same initial weights: held-out perplexity (always scored with
the full softmax) and training tokens/s, in one run.

    python benchmarks/bench_nnlm.py --corpus ../shared/data/docs9m.txt.xz            # CPU-sized defaults
    python benchmarks/bench_nnlm.py --corpus .gpu-data/docs9m.txt.xz --gpu           # GPU sizes (run_gpu.sh lm)
    python benchmarks/bench_nnlm.py --smoke --device cpu                              # seconds, a shipped text

Candidates: the full softmax (F.cross_entropy over all V through the fused linear cross-entropy),
the sampled softmax with S unique candidates (TF's default, expected counts 1 - (1 - Q)^tries) and
with S candidates drawn with replacement; all log-uniform over the frequency-sorted vocabulary, on
the training device. Steps are AdamW, bf16 autocast on CUDA; tokens/s is timed after warm-up steps
with the device synchronised. Writes benchmarks/results/nnlm_<device>.json/.md, rewritten per row.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from harness import Results, run_info, shown

from fastpretrain.data.word_lm import TokenBlocks, WordCorpus
from fastpretrain.eval.perplexity import evaluate_perplexity
from fastpretrain.models import create_model

ROOT = Path(__file__).resolve().parents[1]
CPU = {"max_documents": 1500, "vocab_size": 10_000, "steps": 300, "batch_size": 8, "block_length": 64,
       "embed_dim": 64, "hidden_dim": 128, "num_sampled": 256, "eval_blocks": 300}  # fmt: skip
GPU = {"max_documents": None, "vocab_size": 100_000, "steps": 600, "batch_size": 64, "block_length": 128,
       "embed_dim": 128, "hidden_dim": 512, "num_sampled": 4096, "eval_blocks": 2000}  # fmt: skip
SMOKE = {"max_documents": 40, "vocab_size": 800, "steps": 6, "batch_size": 2, "block_length": 16, "embed_dim": 8,
         "hidden_dim": 16, "num_sampled": 32, "eval_blocks": 8}  # fmt: skip


def train(corpus: WordCorpus, args, num_sampled: int, unique: bool, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = create_model("nnlm_small", vocab_size=len(corpus.vocab), embed_dim=args.embed_dim,
                         hidden_dim=args.hidden_dim, num_sampled=num_sampled, unique=unique).to(device)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.99), weight_decay=0.0,
                            fused=device.type == "cuda")  # fmt: skip
    blocks = TokenBlocks(corpus.train, args.block_length, overlap=model.config.context)
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(0))
    warmup, losses, tokens, start = min(3, args.steps - 1), [], 0, None
    for step in range(args.steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, tokens = time.perf_counter(), 0
        idx = order[(torch.arange(args.batch_size) + step * args.batch_size) % len(blocks)]
        batch = torch.stack([blocks[int(i)] for i in idx]).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += out["items"]
        losses.append(out["loss"].detach())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    heldout = TokenBlocks(corpus.heldout, args.block_length, overlap=model.config.context)
    result = evaluate_perplexity(model, heldout, lambda rows: {"tokens": torch.stack(rows)}, batch_size=32,
                                 max_items=args.eval_blocks, device=device)  # fmt: skip
    return {"tokens_per_s": tokens / seconds, "train_loss": float(torch.stack(losses[-10:]).mean()),
            "heldout_perplexity": result["perplexity"], "heldout_tokens": result["tokens"],
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}  # fmt: skip


def markdown(result: dict) -> str:
    lines = [f"NNLM, {result['device']}: {result['setup']}", "",
             "| candidate | held-out perplexity (full softmax) | train loss | tokens/s | vs full softmax |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['candidate']} | error: {r['error']} | | | |")
            continue
        lines.append(f"| {r['candidate']} | {shown(r['heldout_perplexity'], '.1f')} | {shown(r['train_loss'], '.3f')} "
                     f"| {shown(r['tokens_per_s'], ',.0f')} | {shown(r.get('speedup_vs_full'), '.2f')}x |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=None, help="document corpus (docs9m); default for --smoke: the README")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    p.add_argument("--gpu", action="store_true", help="GPU sizes (vocabulary 100k, 4096 candidates)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: shared machines time steadily)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    known, _ = p.parse_known_args()
    sizes = SMOKE if known.smoke else GPU if known.gpu else CPU
    for name, value in sizes.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    corpus_path = args.corpus or (ROOT / "README.md" if args.smoke else None)  # --smoke: real prose we ship
    if corpus_path is None:
        p.error("--corpus: needed (e.g. ../shared/data/docs9m.txt.xz) unless --smoke")
    corpus = WordCorpus.build(corpus_path, vocab_size=args.vocab_size, heldout=0.05 if args.smoke else 0.01,
                              max_documents=args.max_documents)  # fmt: skip
    setup = (f"{len(corpus.train):,} training words of {corpus_path}, vocabulary {len(corpus.vocab):,}, 5-gram, "
             f"m {args.embed_dim}, h {args.hidden_dim}, direct connections, {args.steps} steps of {args.batch_size} x "
             f"{args.block_length} targets, AdamW 2e-3")  # fmt: skip
    stem = f"nnlm_{'cpu' if device.type == 'cpu' else 'gpu'}{'_smoke' if args.smoke else ''}"
    results = Results(args.out, stem, {**run_info(device), "setup": setup, "sizes": {k: getattr(args, k) for k in sizes}},
                      markdown)  # fmt: skip
    s = args.num_sampled
    for name, num_sampled, unique in (("full softmax", 0, False), (f"sampled softmax, {s} unique", s, True),
                                      (f"sampled softmax, {s} with replacement", s, False)):  # fmt: skip
        print(f"== {name}", flush=True)
        results.attempt({"candidate": name, "num_sampled": num_sampled, "unique": unique},
                        lambda n=num_sampled, u=unique: train(corpus, args, n, u, device))  # fmt: skip
    full = next((r for r in results.rows if r["candidate"] == "full softmax" and "error" not in r), None)
    for r in results.rows:
        r["speedup_vs_full"] = r["tokens_per_s"] / full["tokens_per_s"] if full and "error" not in r else None
    results.finish()


if __name__ == "__main__":
    main()
