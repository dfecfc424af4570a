"""Fused linear + cross-entropy vs the eager head (logits materialised, then F.cross_entropy) and
vs torch.compile of it, in one run: forward and forward+backward, ms and peak memory.

    python benchmarks/bench_cross_entropy.py                 # GPU: BERT MLM and GPT-2 LM head shapes, bf16
    python benchmarks/bench_cross_entropy.py --smoke         # tiny shape on CPU (ours through the Triton
                                                             # interpreter when TRITON_INTERPRET=1), seconds

Before it is timed, every candidate's loss (and, for forward+backward, its gradients of hidden,
weight and bias) is checked against the eager head in float32: it may be off by at most 2x the
eager head's own error in the run's dtype, + ATOL. Rows that fail are kept with ``valid: false``
and get no speedup; a candidate that raises is an error row. Gradients come from
torch.autograd.grad with a fixed upstream gradient, so no .grad accumulation is timed.

Writes benchmarks/results/cross_entropy.json/.md (cross_entropy_<device>_smoke.* for --smoke),
rewritten after every row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import Results, check, kernel_context, peak_mib, run_info, shown, speedup, timed_ms

from fastpretrain.ops import linear_cross_entropy

ROOT = Path(__file__).resolve().parents[1]
CASES = {  # name: (N rows, D, V)
    "BERT-base MLM B64 S512 (15%)": (4915, 768, 30522),
    "GPT-2 LM B16 S1024": (16384, 768, 50257),
}
SMOKE = {"smoke": (24, 24, 40)}  # spans several interpreter blocks (16) of rows, features and vocabulary
PASSES = ("fwd", "fwd+bwd")
ATOL = 1e-5  # float32 summation order; lower precisions are bounded by the eager head's own error
GRADS = ("d_hidden", "d_weight", "d_bias")


def eager(hidden, weight, targets, bias):
    return F.cross_entropy((hidden @ weight.T + bias).float(), targets)


def inputs(n, d, v, device, dtype):
    """(hidden, weight, bias) leaves in ``dtype`` and the targets, the same for every candidate."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, d, generator=g)
    weight = torch.randn(v, d, generator=g) * 0.05
    bias = torch.randn(v, generator=g) * 0.05
    targets = torch.randint(0, v, (n,), generator=g).to(device)
    return [t.to(device, dtype).requires_grad_() for t in (hidden, weight, bias)], targets


def step(fn, leaves, targets, backward):
    """One call of ``fn``: {"loss"} and, with ``backward``, the leaves' gradients for an upstream gradient of 1."""
    hidden, weight, bias = leaves
    loss = fn(hidden, weight, targets, bias)
    if not backward:
        return {"loss": loss}
    return {"loss": loss, **dict(zip(GRADS, torch.autograd.grad(loss, leaves, torch.ones_like(loss))))}


def measure(fn, leaves, targets, backward, want, device, repeats):
    """The check against ``want`` = (float32 reference, eager baseline), then ms and peak MiB of one call."""

    def call():
        return step(fn, leaves, targets, backward)

    verdict = check(call(), *want, ATOL)
    return {**verdict, "ms": timed_ms(call, device, repeats), "peak_mib": peak_mib(call, device)}


def bench(results, name, shape, device, dtype, repeats):
    """One row per candidate and pass for the case ``name``."""
    leaves, targets = inputs(*shape, device, dtype)
    fp32 = [t.detach().float().requires_grad_() for t in leaves]
    candidates = {"ours": linear_cross_entropy, "eager": eager, "eager + torch.compile": torch.compile(eager)}
    for pass_ in PASSES:
        backward = pass_ == "fwd+bwd"
        want = [{k: t.detach() for k, t in step(eager, x, targets, backward).items()} for x in (fp32, leaves)]
        for label, fn in candidates.items():
            row = {"case": name, "N": shape[0], "D": shape[1], "V": shape[2], "candidate": label, "pass": pass_}
            results.attempt(row, lambda: measure(fn, leaves, targets, backward, want, device, repeats))






def cells(row, rows):
    """The markdown cells after case | candidate | pass: a measurement, or why there is none."""
    if "error" in row:
        return "| " * 4 + f"| error: {row['error']} |"
    note = "" if row["valid"] else "INVALID: error > 2x eager + atol"
    values = [shown(row["ms"], ".3f"), shown(speedup(rows, row, "eager", "ms"), ".3g"), shown(row["peak_mib"], ".0f"),
              shown(max(row["max_err"].values()), ".1e")]  # fmt: skip
    return "| " + " | ".join(values + [note]) + " |"


def markdown(result):
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# Fused linear + cross-entropy on {result['device']} ({versions}, {result['date']}, {result['dtype']})",
             f"`{result['command']}` (commit {result['commit']}); max err: loss and gradients vs the float32 "
             f"eager head" + ("" if result["complete"] else "; **incomplete run**"), "",
             "| case | candidate | pass | ms | speedup vs eager | peak MiB | max err | note |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['case']} | {r['candidate']} | {r['pass']} {cells(r, result['rows'])}" for r in result["rows"]]
    return "\n".join(lines)




def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda when present, cpu for --smoke")
    p.add_argument("--smoke", action="store_true", help="tiny shape, one repeat, seconds: checks the script and ours")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats off the GPU")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    stem = f"cross_entropy_{device.type}_smoke" if args.smoke else "cross_entropy"
    results = Results(args.out, stem, {**run_info(device), "dtype": str(dtype), "atol": ATOL}, markdown)
    with kernel_context(device):
        for name, shape in (SMOKE if args.smoke else CASES).items():
            bench(results, name, shape, device, dtype, 1 if args.smoke else args.repeats)
    for row in results.rows:
        row["speedup_vs_eager"] = speedup(results.rows, row, "eager", "ms")
    results.finish()


if __name__ == "__main__":
    main()
