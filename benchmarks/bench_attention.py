"""Fused attention vs every PyTorch SDPA backend (flash, cuDNN, efficient), in one run, bf16,
forward and forward+backward, on the pre-training shapes of ../shared/BENCHMARKS.md.

    python benchmarks/bench_attention.py                  # GPU: the full shape table
    python benchmarks/bench_attention.py --smoke          # tiny shapes, any device (a correctness run)

TFLOP/s: fwd = 4 B H Sq Sk D (halved when causal), fwd+bwd = 3.5x fwd; the padded row counts
only real tokens (sum_b 4 H L_b^2 D), the work the user needs done, for every candidate. Each row
also reports ours vs the best SDPA backend and the max |ours - SDPA| of the forward. Writes
benchmarks/results/attention.json/.md (attention_<device>_smoke.* for --smoke).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import run_info, timed_ms, write_result
from torch.nn.attention import SDPBackend, sdpa_kernel

from fastpretrain.nn import unpad
from fastpretrain.ops import attention, attention_varlen

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}  # fmt: skip


@dataclass
class Case:
    name: str
    b: int
    h: int
    s: int
    d: int
    causal: bool = False
    padded: bool = False


CASES = [
    Case("BERT-base S512", 32, 12, 512, 64),
    Case("BERT-base padded", 32, 12, 512, 64, padded=True),
    Case("GPT-2 causal S1024", 16, 12, 1024, 64, causal=True),
    Case("MAE encoder S50", 256, 12, 50, 64),
    Case("MAE decoder S197 D32", 256, 16, 197, 32),
    Case("long S8192 D128", 4, 16, 8192, 128),
    Case("long causal S8192 D128", 4, 16, 8192, 128, causal=True),
]
SMOKE = [Case("smoke", 2, 2, 40, 32), Case("smoke causal", 2, 2, 40, 32, causal=True),
         Case("smoke padded", 3, 2, 40, 32, padded=True)]  # fmt: skip


def flops(case: Case, lengths: torch.Tensor) -> float:
    """Forward FLOPs of the useful work: real tokens only, causal halved."""
    per_row = (lengths.double() ** 2).sum().item() if case.padded else case.b * case.s**2
    return 4 * case.h * case.d * per_row / (2 if case.causal else 1)


def candidates(case: Case, q, k, v, mask):
    """name -> forward fn returning the [B, H, S, D] output (or packed, for varlen)."""
    sdpa_mask = mask[:, None, None, :] if mask is not None else None
    out = {"ours": lambda: attention(q, k, v, causal=case.causal, key_padding_mask=mask)}
    for name, backend in BACKENDS.items():

        def run(backend=backend):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask, is_causal=case.causal)

        out[f"sdpa {name}"] = run
    if mask is not None:
        packed = [unpad(t.transpose(1, 2).detach(), mask) for t in (q, k, v)]
        pq, pk, pv = (p.x.requires_grad_() for p in packed)
        cu, max_len = packed[0].cu_seqlens, packed[0].max_seqlen
        out["ours varlen"] = lambda: attention_varlen(pq, pk, pv, cu, max_len, causal=case.causal)
    return out


def bench_case(case: Case, device: torch.device, dtype: torch.dtype, repeats: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(case.b, case.h, case.s, case.d, generator=g).to(device, dtype).requires_grad_()
               for _ in range(3))  # fmt: skip
    lengths = torch.full((case.b,), case.s)
    mask = None
    if case.padded:
        lengths = torch.randint(case.s // 2, case.s + 1, (case.b,), generator=g)
        mask = (torch.arange(case.s)[None, :] < lengths[:, None]).to(device)
    fwd_flops = flops(case, lengths)
    reference = None
    rows = []
    for name, fn in candidates(case, q, k, v, mask).items():
        row = {"case": case.name, "candidate": name}
        try:
            out = fn()
            grad = torch.randn_like(out)
            fwd_ms = timed_ms(fn, device, repeats)
            fwd_bwd_ms = timed_ms(lambda fn=fn, grad=grad: fn().backward(grad), device, repeats)
        except (RuntimeError, NotImplementedError) as e:  # a backend that does not take this case
            rows.append({**row, "error": str(e).splitlines()[0][:160]})
            print(f"{case.name:<24} {name:<14} unsupported: {rows[-1]['error']}", file=sys.stderr)
            continue
        if reference is None and name.startswith("sdpa"):
            reference = out.detach()
        row["fwd_ms"], row["fwd_bwd_ms"] = fwd_ms, fwd_bwd_ms
        row["fwd_tflops"] = fwd_flops / fwd_ms / 1e9
        row["fwd_bwd_tflops"] = 3.5 * fwd_flops / fwd_bwd_ms / 1e9
        rows.append(row)
        print(f"{case.name:<24} {name:<14} fwd {fwd_ms:8.3f} ms {row['fwd_tflops']:7.1f} TF/s   "
              f"fwd+bwd {fwd_bwd_ms:8.3f} ms {row['fwd_bwd_tflops']:7.1f} TF/s", file=sys.stderr)  # fmt: skip
    ours = next((r for r in rows if r["candidate"] == "ours" and "error" not in r), None)
    if ours is not None and reference is not None:
        got = attention(q, k, v, causal=case.causal, key_padding_mask=mask)
        real = mask[:, None, :, None] if mask is not None else True
        ours["max_abs_diff_vs_sdpa"] = ((got - reference).abs() * real).max().item()
    sdpa = [r for r in rows if r["candidate"].startswith("sdpa") and "error" not in r]
    for r in rows:
        if "error" not in r and sdpa and r["candidate"].startswith("ours"):
            for p in ("fwd", "fwd_bwd"):
                r[f"{p}_vs_best_sdpa"] = r[f"{p}_tflops"] / max(s[f"{p}_tflops"] for s in sdpa)
    return rows


def markdown(result: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# Fused attention on {result['device']} ({versions}, {result['date']})",
             f"`{result['command']}`, {result['dtype']}; TFLOP/s of real-token work, fwd+bwd = 3.5x fwd.", "",
             "| case | candidate | fwd TF/s | fwd+bwd TF/s | fwd vs best SDPA | fwd+bwd vs best SDPA | max abs diff |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['candidate']} | unsupported | | | | |")
            continue
        ratio = [f"{r[k]:.2f}x" if k in r else "" for k in ("fwd_vs_best_sdpa", "fwd_bwd_vs_best_sdpa")]
        diff = f"{r['max_abs_diff_vs_sdpa']:.2g}" if "max_abs_diff_vs_sdpa" in r else ""
        lines.append(f"| {r['case']} | {r['candidate']} | {r['fwd_tflops']:.3g} | {r['fwd_bwd_tflops']:.3g} | "
                     f"{ratio[0]} | {ratio[1]} | {diff} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    p.add_argument("--smoke", action="store_true", help="tiny shapes: checks the script, measures nothing useful")
    p.add_argument("--cases", default="", help="comma-separated substrings of case names to run (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats off the GPU")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if device.type == "cuda" else torch.float32
    cases = SMOKE if args.smoke else CASES
    if args.cases:
        cases = [c for c in cases if any(s.strip() in c.name for s in args.cases.split(","))]
    rows = [row for case in cases for row in bench_case(case, device, dtype, args.repeats)]
    result = {**run_info(device), "dtype": str(dtype), "cases": [asdict(c) for c in cases], "rows": rows}
    write_result(args.out, f"attention_{device.type}_smoke" if args.smoke else "attention", result, markdown(result))


if __name__ == "__main__":
    main()
