"""GPT-2 causal LM training step: ours (fused causal attention, the fused linear cross-entropy: no
[B*S, V] logits) vs Hugging Face ``GPT2LMHeadModel`` with sdpa attention, eager and torch.compile'd,
in one run, bf16 autocast, fused AdamW, same weights, same rows.

    python benchmarks/bench_gpt.py                 # GPU: GPT-2 124M, B=16, S=1024
    python benchmarks/bench_gpt.py --smoke         # gpt_tiny, B=2, S=64 on any device (checks the script)

Rows are random GPT-2 token ids (throughput does not depend on content) with an
``<|endoftext|>`` every ~``--doc-len`` tokens. Every candidate but "ours packed" trains on dense
rows (one causal sequence a row: what HF computes); "ours packed" trains on the same rows cut at
each document (varlen causal attention, positions restarting): the same tokens, less attention
work. Before timing, each candidate's eval-mode loss on the dense rows, in the timed dtype, is
checked against HF's (``valid``, see ``harness.LOSS_RTOL``; the packed row's loss differs by
design and is checked on the dense rows through the same model). Peak memory is
``torch.cuda.max_memory_allocated`` over the timed steps with only that candidate on the GPU.
Writes benchmarks/results/gpt_step.json/.md (gpt_step_<device>_smoke.* for --smoke), rewritten
after every row; a candidate that fails (out of memory, a compile error) is an error row.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import LOSS_RTOL, Results, add_ratios, loss_check, run_info, step_dtype, time_steps
from torch import nn

from fastpretrain.data import collate_lm_rows
from fastpretrain.interop.hf_gpt import gpt_to_hf_model
from fastpretrain.models import create_model

ROOT = Path(__file__).resolve().parents[1]
EOT = 50256
ANCHOR = ("HF sdpa 130,351 and HF sdpa + torch.compile 293,047 tok/s at B=16 S=1024 (../shared/BENCHMARKS.md, "
          "H100, torch 2.11); goal: ours >= 1.5x HF + compile")  # fmt: skip
CANDIDATES = ("hf sdpa", "hf sdpa + compile", "ours", "ours + compile", "ours packed")


class HFCausalLM(nn.Module):
    """``model(input_ids, labels)`` -> {"loss"} for a ``transformers.GPT2LMHeadModel``: the
    cross-entropy of its (materialised, upcast) logits, as HF's own causal-LM loss computes it."""

    def __init__(self, hf) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, input_ids, labels):
        logits = self.hf(input_ids=input_ids).logits
        return {"loss": F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())}


def rows(args, generator: torch.Generator) -> torch.Tensor:
    """[B, S + 1] random ids in [0, V - 1) with the separator at ~1 / doc_len of the positions."""
    ids = torch.randint(0, args.vocab_size - 1, (args.batch, args.seq + 1), generator=generator)
    ends = torch.rand(ids.shape, generator=generator) < 1.0 / args.doc_len
    return ids.masked_fill(ends, EOT if args.vocab_size > EOT else args.vocab_size - 1)


def measure(name: str, args, dense: dict, packed: dict, device: torch.device) -> dict:
    """Check one candidate's loss against HF's (same weights, eval mode), then time its training step."""
    torch.manual_seed(args.seed)
    ours = create_model(f"gpt_{args.size}", vocab_size=args.vocab_size, block_size=max(args.seq, 64))
    hf = HFCausalLM(gpt_to_hf_model(copy.deepcopy(ours)))
    dtype = step_dtype(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        loss_hf = hf.to(device).eval()(**dense)["loss"].item()
        if name.startswith("ours"):
            hf.cpu()  # off the GPU before timing, so peak memory is the candidate's alone
        model = (ours if name.startswith("ours") else hf).to(device)
        loss = model.eval()(**dense)["loss"].item()
    del ours, hf
    batch = packed if name == "ours packed" else dense
    forward = torch.compile(model) if name.endswith("compile") else model
    timing = time_steps(model, lambda: forward(**batch)["loss"], device, args.steps, args.warmup)
    tokens = int(dense["labels"].numel())
    out = {"tokens": tokens, "check_dtype": str(dtype).removeprefix("torch."), **loss_check(loss, loss_hf, dtype),
           **timing, "tokens_per_s": tokens / timing["step_ms"] * 1e3}  # fmt: skip
    if name == "ours packed":
        out["documents"] = len(packed["cu_seqlens"]) - 1
    return out


def markdown(result: dict) -> str:
    head = (f"# GPT-{result['size']} causal LM training step on {result['device']} ({result['date']}, "
            f"commit {result['commit']})")
    about = (f"`{result['command']}`; {', '.join(f'{k} {v}' for k, v in result['versions'].items())}; "
             f"B={result['batch']} S={result['seq']} V={result['vocab_size']:,}, a document every ~{result['doc_len']} "
             f"tokens; anchor: {ANCHOR}." + ("" if result["complete"] else " INCOMPLETE (run stopped early)."))
    lines = [head, about, "",
             "| candidate | step ms | tokens/s | vs HF sdpa | vs HF + compile | peak GiB | memory vs HF | loss diff vs HF |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['candidate']} | error: {r['error']} | | | | | | |")
            continue
        ratio = {k: f"{r[k]:.2f}x" if k in r else "-" for k in ("vs_hf_sdpa", "vs_hf_sdpa_+_compile", "memory_vs_hf_sdpa")}
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        diff = f"{r['max_err']['loss']:.2g}" + ("" if r["valid"] else " INVALID")
        lines.append(f"| {r['candidate']} | {r['step_ms']:.1f} | {r['tokens_per_s']:,.0f} | {ratio['vs_hf_sdpa']} | "
                     f"{ratio['vs_hf_sdpa_+_compile']} | {peak} | {ratio['memory_vs_hf_sdpa']} | {diff} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", default="124m", help="gpt_<size>: tiny, mini, 124m, 350m")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--doc-len", type=int, default=400, help="mean document length in tokens (for 'ours packed')")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="add torch.compile rows (default on CUDA)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="gpt_tiny, B=2, S=64, a vocabulary of 500: checks the script")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device)
    args.compile = device.type == "cuda" if args.compile is None else args.compile
    args.vocab_size = 50257
    if args.smoke:
        args.size, args.batch, args.seq, args.doc_len, args.steps, args.warmup, args.vocab_size = "tiny", 2, 64, 20, 2, 1, 500
    batch = rows(args, torch.Generator().manual_seed(args.seed))
    eot = EOT if args.vocab_size > EOT else args.vocab_size - 1
    dense = {k: v.to(device) for k, v in collate_lm_rows(list(batch)).items()}
    packed = {k: v.to(device) if torch.is_tensor(v) else v for k, v in collate_lm_rows(list(batch), eot).items()}
    meta = {**run_info(device), "size": args.size, "batch": args.batch, "seq": args.seq, "doc_len": args.doc_len,
            "vocab_size": args.vocab_size, "loss_rtol": LOSS_RTOL[step_dtype(device)]}  # fmt: skip
    results = Results(args.out, f"gpt_step_{device.type}_smoke" if args.smoke else "gpt_step", meta, markdown)
    for name in (c for c in CANDIDATES if args.compile or not c.endswith("compile")):
        results.attempt({"candidate": name}, lambda name=name: measure(name, args, dense, packed, device))
        add_ratios(results.rows, "tokens_per_s")
        add_ratios(results.rows, "tokens_per_s", base="hf sdpa + compile")
        results.write()
    results.finish()


if __name__ == "__main__":
    main()
