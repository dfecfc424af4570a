"""BERT MLM + NSP training step: ours (packed, varlen attention, MLM head on the selected tokens
only) vs Hugging Face ``BertForPreTraining`` with sdpa attention, eager and torch.compile'd, in one
run, bf16 autocast, fused AdamW, at equal batch, on a real length distribution.

    python benchmarks/bench_bert.py                           # GPU: BERT-base, S=512 and S=128, B=64
    python benchmarks/bench_bert.py --corpus docs9m.txt.xz    # lengths of real examples built from a corpus
    python benchmarks/bench_bert.py --smoke                   # tiny sizes, any device (checks the script)

Lengths: the examples our builder makes from ``--corpus`` (Google's recipe: mostly near max_len,
10% shorter targets, document ends), else uniform in [S/2, S]. Tokens/s counts real tokens only;
peak memory is ``torch.cuda.max_memory_allocated`` over the timed steps. Every model starts from
the same weights; before timing, each one's eval-mode loss on the batch is compared with HF's.
Writes benchmarks/results/bert_step.json/.md (bert_step_<device>_smoke.* for --smoke).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from harness import run_info, time_steps, write_result
from hf_bert import twin_models

from fastpretrain.data import BertExamples, MlmMasking, collate_packed, collate_padded, load_wordpiece
from fastpretrain.models import BertConfig

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 30522
ANCHOR = "HF sdpa 306,851 tok/s at B=64 S=512 full-length (../shared/BENCHMARKS.md, H100, torch 2.11)"


def examples(args, seq: int, rng: np.random.Generator) -> list[dict]:
    """B examples of at most ``seq`` tokens: built from the corpus, or random ids of lengths U[S/2, S]
    masked by BERT's rule (a synthetic vocabulary whose first 5 ids are the special tokens)."""
    if args.corpus:
        tokenizer = load_wordpiece(args.vocab)
        data = BertExamples.build(args.corpus, tokenizer, max_len=seq, seed=args.seed)
        return [data[int(i)] for i in rng.choice(len(data), size=args.batch, replace=False)]
    selectable = np.ones(args.vocab_size, dtype=bool)
    selectable[[0, 2, 3, 4]] = False
    masking = MlmMasking(4, selectable, np.zeros(args.vocab_size, dtype=bool), np.arange(5, args.vocab_size, dtype=np.int32))
    out = []
    for _ in range(args.batch):
        n = int(rng.integers(seq // 2, seq + 1))
        a_len = int(rng.integers(2, n - 2))
        ids = rng.integers(5, args.vocab_size, size=n)
        ids[[0, a_len - 1, n - 1]] = [2, 3, 3]
        input_ids, positions, labels = masking(ids, rng)
        out.append({"input_ids": input_ids, "token_type_ids": (np.arange(n) >= a_len).astype(np.int64),
                    "mlm_positions": positions, "mlm_labels": labels, "nsp_label": np.int64(rng.integers(0, 2))})  # fmt: skip
    return out


def bench_seq(args, seq: int, device: torch.device) -> list[dict]:
    rng = np.random.default_rng(args.seed)
    items = examples(args, seq, rng)
    packed = {k: v.to(device) if torch.is_tensor(v) else v for k, v in collate_packed(items).items()}
    padded = {k: v.to(device) for k, v in collate_padded(items).items()}
    tokens = int(packed["input_ids"].numel())
    config = BertConfig.from_size(args.size, vocab_size=args.vocab_size)
    candidates = [("ours", False, packed), ("hf sdpa", False, padded)]
    if args.compile:
        candidates += [("ours + compile", True, packed), ("hf sdpa + compile", True, padded)]
    rows = []
    for name, compiled, batch in candidates:
        ours, hf = twin_models(config, args.seed)
        with torch.no_grad():  # same weights, dropout off: the losses must agree
            loss_hf = hf.to(device).eval()(**padded)["loss"].item()
            if name.startswith("ours"):
                hf.cpu()  # off the GPU before timing, so peak memory is the candidate's alone
            model = (ours if name.startswith("ours") else hf).to(device)
            loss = model.eval()(**batch)["loss"].item()
        del ours, hf
        try:
            forward = torch.compile(model) if compiled else model
            timing = time_steps(model, lambda forward=forward, batch=batch: forward(**batch)["loss"], device, args.steps, args.warmup)
        except torch.cuda.OutOfMemoryError:
            timing = None
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if timing is None:
            rows.append({"seq": seq, "candidate": name, "error": "out of memory"})
            continue
        rows.append({"seq": seq, "batch": args.batch, "candidate": name, "real_tokens": tokens,
                     "padded_tokens": int(padded["input_ids"].numel()), **timing,
                     "tokens_per_s": tokens / timing["step_ms"] * 1e3, "loss_diff_vs_hf": abs(loss - loss_hf)})  # fmt: skip
    base = next((r for r in rows if r["candidate"] == "hf sdpa" and "error" not in r), None)
    for r in rows:
        if base is not None and "error" not in r:
            r["vs_hf_sdpa"] = r["tokens_per_s"] / base["tokens_per_s"]
            if r["peak_gib"] is not None:
                r["memory_vs_hf_sdpa"] = r["peak_gib"] / base["peak_gib"]
    return rows


def markdown(result: dict) -> str:
    lines = [f"# BERT-{result['size']} MLM + NSP training step on {result['device']} ({result['date']})",
             f"`{result['command']}`; {', '.join(f'{k} {v}' for k, v in result['versions'].items())}; lengths: {result['lengths']}; anchor: {ANCHOR}.", "",
             "| S | B | candidate | real tokens (padded) | step ms | tokens/s | vs HF sdpa | peak GiB | memory vs HF | loss diff vs HF |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['seq']} | | {r['candidate']} | {r['error']} | | | | | | |")
            continue
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        mem = f"{r['memory_vs_hf_sdpa']:.2f}x" if "memory_vs_hf_sdpa" in r else "-"
        lines.append(f"| {r['seq']} | {r['batch']} | {r['candidate']} | {r['real_tokens']:,} ({r['padded_tokens']:,}) | "
                     f"{r['step_ms']:.1f} | {r['tokens_per_s']:,.0f} | {r.get('vs_hf_sdpa', 0):.2f}x | {peak} | {mem} | "
                     f"{r['loss_diff_vs_hf']:.2g} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", default="base")
    p.add_argument("--seqs", default="512,128")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--corpus", default=None, help="build real examples from this corpus (needs --vocab)")
    p.add_argument("--vocab", default=None, help="BERT vocab.txt for --corpus")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="add torch.compile rows (default on CUDA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="BERT-tiny, S=32, B=4, a vocabulary of 500: checks the script")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device)
    args.compile = device.type == "cuda" if args.compile is None else args.compile
    args.vocab_size = VOCAB
    if args.corpus and not args.vocab:
        p.error("--corpus needs --vocab (a BERT vocab.txt)")
    if args.corpus:
        args.vocab_size = load_wordpiece(args.vocab).get_vocab_size()
    if args.smoke:
        args.size, args.seqs, args.batch, args.steps, args.warmup, args.vocab_size = "tiny", "32", 4, 2, 1, 500
    rows = [row for seq in (int(s) for s in args.seqs.split(",")) for row in bench_seq(args, seq, device)]
    info = run_info(device)
    lengths = f"examples built from {args.corpus}" if args.corpus else "uniform in [S/2, S]"
    result = {**info, "size": args.size, "lengths": lengths, "vocab_size": args.vocab_size, "rows": rows}
    write_result(args.out, f"bert_step_{device.type}_smoke" if args.smoke else "bert_step", result, markdown(result))


if __name__ == "__main__":
    main()
