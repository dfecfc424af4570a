"""Block-size sweep for the attention kernels: every (BLOCK_M, BLOCK_N, num_warps, num_stages) in
a small grid, forward and backward separately, on each case of bench_attention's shape table;
prints the best next to the current default and checks each config's output against the default.

    python benchmarks/tune_attention.py                  # GPU
    python benchmarks/tune_attention.py --smoke          # interpreter-free CPU check of the script

Writes benchmarks/results/attention_tuning.json/.md; the winners then go into
kernels/attention.py's ``_config`` by hand (with the measurement cited in the commit).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch
from bench_attention import CASES, SMOKE
from fastpretrain.kernels.attention import attention_backward, attention_forward
from harness import run_info, timed_ms, write_result

ROOT = Path(__file__).resolve().parents[1]
GRID = {"BLOCK_M": (64, 128), "BLOCK_N": (32, 64, 128), "num_warps": (4, 8), "num_stages": (2, 3)}


def configs(smoke: bool):
    if smoke:
        return [{"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 4, "num_stages": 1}]
    return [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]


def tune_case(case, device, dtype, smoke: bool, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    q, k, v, grad = (torch.randn(case.b, case.h, case.s, case.d, generator=g).to(device, dtype) for _ in range(4))
    mask = None
    if case.padded:
        lengths = torch.randint(case.s // 2, case.s + 1, (case.b,), generator=g)
        mask = (torch.arange(case.s)[None, :] < lengths[:, None]).to(device)
    scale = case.d**-0.5
    common = (None, case.s, mask, case.causal, scale, 0.0, None)
    out, lse = attention_forward(q, k, v, *common)
    want = attention_backward(grad, q, k, v, out, lse, *common)
    results = {"fwd": [], "bwd": []}
    for cfg in configs(smoke):
        try:
            o, _ = attention_forward(q, k, v, *common, config=cfg)
            grads = attention_backward(grad, q, k, v, out, lse, *common, config=cfg)
            err = max((o - out).abs().max().item(), *((a - b).abs().max().item() for a, b in zip(grads, want)))
            fwd = timed_ms(lambda cfg=cfg: attention_forward(q, k, v, *common, config=cfg), device, repeats)
            bwd = timed_ms(lambda cfg=cfg: attention_backward(grad, q, k, v, out, lse, *common, config=cfg), device,
                           repeats)  # fmt: skip
        except Exception as e:  # noqa: BLE001 - out of shared memory / registers: skip the config
            print(f"{case.name}: {cfg} failed: {str(e).splitlines()[0][:100]}", file=sys.stderr)
            continue
        results["fwd"].append({**cfg, "ms": fwd, "max_abs_diff": err})
        results["bwd"].append({**cfg, "ms": bwd, "max_abs_diff": err})
    default_fwd = timed_ms(lambda: attention_forward(q, k, v, *common), device, repeats)
    default_bwd = timed_ms(lambda: attention_backward(grad, q, k, v, out, lse, *common), device, repeats)
    best = {p: min(results[p], key=lambda r: r["ms"]) for p in results if results[p]}
    print(f"{case.name:<24} fwd default {default_fwd:.3f} ms, best {best['fwd']['ms']:.3f} {best['fwd']}; "
          f"bwd default {default_bwd:.3f} ms, best {best['bwd']['ms']:.3f} {best['bwd']}", file=sys.stderr)  # fmt: skip
    return {"case": case.name, "default_fwd_ms": default_fwd, "default_bwd_ms": default_bwd, "best": best,
            "all": results}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=("bfloat16", "float16"), default="bfloat16")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--cases", default="", help="comma-separated substrings of case names (default: all)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type != "cuda" and not args.smoke:
        p.error("the sweep needs a GPU (or --smoke with TRITON_INTERPRET=1)")
    dtype = getattr(torch, args.dtype) if device.type == "cuda" else torch.float32
    cases = SMOKE if args.smoke else CASES
    if args.cases:
        cases = [c for c in cases if any(s.strip() in c.name for s in args.cases.split(","))]
    rows = [tune_case(c, device, dtype, args.smoke, args.repeats) for c in cases]
    result = {**run_info(device), "dtype": str(dtype), "rows": rows}
    lines = [f"# Attention block sizes on {result['device']} ({result['date']}, {dtype})", "",
             "| case | pass | default ms | best ms | best config |", "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        for pss in ("fwd", "bwd"):
            b = r["best"][pss]
            cfg = ", ".join(f"{k}={b[k]}" for k in GRID)
            lines.append(f"| {r['case']} | {pss} | {r[f'default_{pss}_ms']:.3f} | {b['ms']:.3f} | {cfg} |")
    write_result(args.out, "attention_tuning_smoke" if args.smoke else "attention_tuning", result, "\n".join(lines))


if __name__ == "__main__":
    main()
