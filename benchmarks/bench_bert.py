"""BERT MLM + NSP training step: ours (packed, varlen attention, MLM head on the selected tokens
only) vs Hugging Face ``BertForPreTraining`` with sdpa attention, eager and torch.compile'd, in one
run, bf16 autocast, fused AdamW, at equal batch, on a real length distribution.

    python benchmarks/bench_bert.py                           # GPU: BERT-base, S=512 and S=128, B=64
    python benchmarks/bench_bert.py --corpus docs9m.txt.xz    # lengths of real examples built from a corpus
    python benchmarks/bench_bert.py --smoke                   # tiny sizes, any device (checks the script)

Lengths: the examples our builder makes from ``--corpus`` (Google's recipe: mostly near max_len,
10% shorter targets, document ends), else uniform in [S/2, S]. Tokens/s counts real tokens only;
peak memory is ``torch.cuda.max_memory_allocated`` over the timed steps, with only that candidate
on the GPU. Every model starts from the same weights; before timing, each one's eval-mode loss on
the batch, in the timed dtype, is checked against HF's (``valid``; see ``harness.LOSS_RTOL``); invalid rows
keep their timing but get no vs-HF ratio. A compiled candidate is checked on its eager model.
Writes benchmarks/results/bert_step.json/.md (bert_step_<device>_smoke.* for --smoke), rewritten
after every row; a candidate that fails (out of memory, a compile error) is an error row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from harness import LOSS_RTOL, Results, add_ratios, loss_check, run_info, step_dtype, time_steps
from hf_bert import twin_models

from fastpretrain.data import BertExamples, MlmMasking, collate_packed, collate_padded, load_wordpiece
from fastpretrain.models import BertConfig, model_config

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






def measure(name: str, config: BertConfig, packed: dict, padded: dict, device: torch.device, args) -> dict:
    """Check one candidate's loss against HF's (same weights, eval mode), then time its training step."""
    ours, hf = twin_models(config, args.seed)
    batch = packed if name.startswith("ours") else padded
    dtype = step_dtype(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        loss_hf = hf.to(device).eval()(**padded)["loss"].item()
        if name.startswith("ours"):
            hf.cpu()  # off the GPU before timing, so peak memory is the candidate's alone
        model = (ours if name.startswith("ours") else hf).to(device)
        loss = model.eval()(**batch)["loss"].item()
    del ours, hf
    forward = torch.compile(model) if name.endswith("compile") else model
    timing = time_steps(model, lambda: forward(**batch)["loss"], device, args.steps, args.warmup)
    tokens = int(packed["input_ids"].numel())
    return {"real_tokens": tokens, "padded_tokens": int(padded["input_ids"].numel()),
            "check_dtype": str(dtype).removeprefix("torch."), **loss_check(loss, loss_hf, dtype), **timing,
            "tokens_per_s": tokens / timing["step_ms"] * 1e3}  # fmt: skip




def bench_seq(args, seq: int, device: torch.device, results: Results) -> None:
    """One row per candidate at length ``seq``, written as it is measured."""
    items = examples(args, seq, np.random.default_rng(args.seed))
    packed = {k: v.to(device) if torch.is_tensor(v) else v for k, v in collate_packed(items).items()}
    padded = {k: v.to(device) for k, v in collate_padded(items).items()}
    config = model_config(f"bert_{args.size}", vocab_size=args.vocab_size)
    names = ["ours", "hf sdpa"] + (["ours + compile", "hf sdpa + compile"] if args.compile else [])
    for name in names:
        results.attempt({"seq": seq, "batch": args.batch, "candidate": name},
                        lambda name=name: measure(name, config, packed, padded, device, args))  # fmt: skip
        add_ratios([r for r in results.rows if r["seq"] == seq], "tokens_per_s")
        results.write()


def markdown(result: dict) -> str:
    lines = [f"# BERT-{result['size']} MLM + NSP training step on {result['device']} ({result['date']}, "
             f"commit {result['commit']})",
             f"`{result['command']}`; {', '.join(f'{k} {v}' for k, v in result['versions'].items())}; "
             f"lengths: {result['lengths']}; anchor: {ANCHOR}."
             + ("" if result["complete"] else " INCOMPLETE (run stopped early)."), "",
             "| S | B | candidate | real tokens (padded) | step ms | tokens/s | vs HF sdpa | peak GiB | memory vs HF | loss diff vs HF |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['seq']} | {r['batch']} | {r['candidate']} | error: {r['error']} | | | | | | |")
            continue
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        ratio = f"{r['vs_hf_sdpa']:.2f}x" if "vs_hf_sdpa" in r else "-"
        mem = f"{r['memory_vs_hf_sdpa']:.2f}x" if "memory_vs_hf_sdpa" in r else "-"
        diff = f"{r['max_err']['loss']:.2g}" + ("" if r["valid"] else " INVALID")
        tokens = f"{r['real_tokens']:,} ({r['padded_tokens']:,})"
        lines.append(f"| {r['seq']} | {r['batch']} | {r['candidate']} | {tokens} | {r['step_ms']:.1f} | "
                     f"{r['tokens_per_s']:,.0f} | {ratio} | {peak} | {mem} | {diff} |")  # fmt: skip
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
    lengths = f"examples built from {args.corpus}" if args.corpus else "uniform in [S/2, S]"
    meta = {**run_info(device), "size": args.size, "lengths": lengths, "vocab_size": args.vocab_size,
            "loss_rtol": LOSS_RTOL[step_dtype(device)]}  # fmt: skip
    results = Results(args.out, f"bert_step_{device.type}_smoke" if args.smoke else "bert_step", meta, markdown)
    for seq in (int(s) for s in args.seqs.split(",")):
        bench_seq(args, seq, device, results)
    results.finish()


if __name__ == "__main__":
    main()
