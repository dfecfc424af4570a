"""Fused linear + cross-entropy vs the eager head (logits materialised, then F.cross_entropy) and
vs torch.compile of it, in one run: forward and forward+backward, ms and peak memory.

    python benchmarks/bench_cross_entropy.py                 # GPU: BERT MLM and GPT-2 LM head shapes, bf16
    python benchmarks/bench_cross_entropy.py --smoke         # tiny shapes on any device

Writes benchmarks/results/cross_entropy.json/.md (cross_entropy_<device>_smoke.* for --smoke).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import run_info, timed_ms, write_result

from fastpretrain.ops import linear_cross_entropy

ROOT = Path(__file__).resolve().parents[1]
CASES = {  # name: (N rows, D, V)
    "BERT-base MLM B64 S512 (15%)": (4915, 768, 30522),
    "GPT-2 LM B16 S1024": (16384, 768, 50257),
}
SMOKE = {"smoke": (50, 32, 300)}


def eager(hidden, weight, targets, bias):
    return F.cross_entropy((hidden @ weight.T + bias).float(), targets)


def bench(name, n, d, v, device, dtype, repeats):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, d, generator=g).to(device, dtype).requires_grad_()
    weight = (torch.randn(v, d, generator=g) * 0.05).to(device, dtype).requires_grad_()
    bias = torch.zeros(v, device=device, dtype=dtype, requires_grad=True)
    targets = torch.randint(0, v, (n,), generator=g).to(device)
    fns = {"ours": linear_cross_entropy, "eager": eager, "eager + torch.compile": torch.compile(eager)}
    rows, want = [], eager(hidden, weight, targets, bias).item()
    for label, fn in fns.items():
        loss = fn(hidden, weight, targets, bias)
        row = {"case": name, "candidate": label, "loss_diff": abs(loss.item() - want)}
        for pass_, step in (("fwd", lambda fn=fn: fn(hidden, weight, targets, bias)),
                            ("fwd_bwd", lambda fn=fn: fn(hidden, weight, targets, bias).backward())):  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            row[f"{pass_}_ms"] = timed_ms(step, device, repeats)
            if device.type == "cuda":
                row[f"{pass_}_peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        rows.append(row)
        print(f"{name:<30} {label:<22} fwd {row['fwd_ms']:8.3f} ms  fwd+bwd {row['fwd_bwd_ms']:8.3f} ms  "
              f"peak {row.get('fwd_bwd_peak_mib', float('nan')):8.1f} MiB", file=sys.stderr)  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats off the GPU")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cases = SMOKE if args.smoke else CASES
    rows = [r for name, shape in cases.items() for r in bench(name, *shape, device, dtype, args.repeats)]
    result = {**run_info(device), "dtype": str(dtype), "rows": rows}
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# Fused linear + cross-entropy on {result['device']} ({versions}, {result['date']}, {dtype})", "",
             "| case | candidate | fwd ms | fwd+bwd ms | fwd+bwd peak MiB | |loss - eager| |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['case']} | {r['candidate']} | {r['fwd_ms']:.3f} | {r['fwd_bwd_ms']:.3f} | "
                     f"{r.get('fwd_bwd_peak_mib', float('nan')):.0f} | {r['loss_diff']:.2g} |")  # fmt: skip
    stem = f"cross_entropy_{device.type}_smoke" if args.smoke else "cross_entropy"
    write_result(args.out, stem, result, "\n".join(lines))


if __name__ == "__main__":
    main()
