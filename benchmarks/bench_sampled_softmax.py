"""Sampled softmax with log-Q correction: our fused op vs the eager reference (the same math in
plain torch, autograd) and vs the full softmax cross-entropy it approximates, in one run.

    python benchmarks/bench_sampled_softmax.py             # GPU, NNLM/ELMo-size shapes, bf16
    python benchmarks/bench_sampled_softmax.py --smoke     # tiny shape on CPU (ours through the Triton
                                                          # interpreter when TRITON_INTERPRET=1), seconds

Rows: forward and forward+backward, median ms and peak memory. Before it is timed, every
candidate's per-row loss (and, for forward+backward, its gradients of hidden and weight) is
checked against its own math in float32 (the sampled loss for ours and eager, the full softmax
for the full softmax): off by at most 2x the eager code in the run's dtype, + ATOL. Rows that fail
are kept with ``valid: false`` and get no speedup; a candidate that raises is an error row.
Gradients come from torch.autograd.grad with a fixed upstream gradient (ones, as ``loss.sum()``),
so no .grad accumulation is timed.

Writes benchmarks/results/sampled_softmax_<device>.json/.md (sampled_softmax_<device>_smoke.* for
--smoke), rewritten after every row.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import Results, check, kernel_context, peak_mib, run_info, shown, speedup, timed_ms

from fastpretrain.ops import sampled_softmax_loss, sampled_softmax_loss_reference

ROOT = Path(__file__).resolve().parents[1]
PASSES = ("fwd", "fwd+bwd")
ATOL = 1e-5  # float32 summation order; lower precisions are bounded by the eager code's own error
# --smoke: several interpreter blocks (16 rows, 16 sampled, 32 features) and some accidental hits
SMOKE = {"tokens": 24, "dim": 40, "vocab": 200, "sampled": 40, "repeats": 1}


def full_softmax(hidden, weight, targets, sampled, log_q_targets, log_q_sampled):
    """The loss the sampled one approximates: every row against all V classes."""
    return F.cross_entropy((hidden @ weight.T).float(), targets, reduction="none")


CANDIDATES = {  # name: (fn, the eager code it must agree with)
    "ours": (sampled_softmax_loss, sampled_softmax_loss_reference),
    "eager": (sampled_softmax_loss_reference, sampled_softmax_loss_reference),
    "full softmax (F.cross_entropy)": (full_softmax, full_softmax),
}


def inputs(args, device, dtype):
    """(hidden, weight) leaves in ``dtype`` and (targets, sampled, log q of each), the same for every candidate."""
    g = torch.Generator(device="cpu").manual_seed(0)
    hidden = torch.randn(args.tokens, args.dim, generator=g).to(device, dtype).requires_grad_()
    weight = (torch.randn(args.vocab, args.dim, generator=g) * 0.05).to(device, dtype).requires_grad_()
    targets = torch.randint(0, args.vocab, (args.tokens,), generator=g).to(device)
    sampled = torch.randint(0, args.vocab, (args.sampled,), generator=g).to(device)
    log_q = torch.full((args.vocab,), -math.log(args.vocab), device=device)
    return [hidden, weight], (targets, sampled, log_q[targets], log_q[sampled])


def step(fn, leaves, ids, backward):
    """One call of ``fn``: {"loss"} [N] and, with ``backward``, d_hidden and d_weight for upstream gradients of 1."""
    loss = fn(*leaves, *ids)
    if not backward:
        return {"loss": loss}
    grads = torch.autograd.grad(loss, leaves, torch.ones_like(loss))
    return {"loss": loss, "d_hidden": grads[0], "d_weight": grads[1]}


def measure(fn, spec, leaves, ids, backward, device, repeats):
    """The check against ``spec`` (float32 reference, and in the run's dtype the baseline), then ms and peak MiB."""

    def call():
        return step(fn, leaves, ids, backward)

    fp32 = [t.detach().float().requires_grad_() for t in leaves]
    verdict = check(call(), step(spec, fp32, ids, backward), step(spec, leaves, ids, backward), ATOL)
    return {**verdict, "ms": timed_ms(call, device, repeats), "peak_mib": peak_mib(call, device)}






def cells(row, rows):
    """The markdown cells after candidate | pass: a measurement, or why there is none."""
    if "error" in row:
        return "| " * 4 + f"| error: {row['error']} |"
    note = "" if row["valid"] else "INVALID: error > 2x eager + atol"
    values = [shown(row["ms"], ".3f"), shown(speedup(rows, row, "eager", "ms", same=("pass",)), ".3g"), shown(row["peak_mib"], ".0f"),
              shown(max(row["max_err"].values()), ".1e")]  # fmt: skip
    return "| " + " | ".join(values + [note]) + " |"


def markdown(result):
    c = result["config"]
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# Sampled softmax loss on {result['device']} ({versions}, {result['date']})",
             f"`{result['command']}` (commit {result['commit']}): N={c['tokens']}, D={c['dim']}, V={c['vocab']}, "
             f"S={c['sampled']}, {c['dtype']}; max err: loss and gradients vs the candidate's math in float32"
             + ("" if result["complete"] else "; **incomplete run**"), "",
             "| candidate | pass | ms | speedup vs eager | peak MiB | max err | note |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['candidate']} | {r['pass']} {cells(r, result['rows'])}" for r in result["rows"]]
    return "\n".join(lines)




def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda when present, cpu for --smoke")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16", help="on CPU float32")
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--vocab", type=int, default=100_000)
    p.add_argument("--sampled", type=int, default=8192)
    p.add_argument("--smoke", action="store_true", help="tiny shape, one repeat, seconds: checks the script and ours")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats on CPU")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    dtype = getattr(torch, args.dtype) if device.type == "cuda" else torch.float32
    meta = {**run_info(device), "config": {**vars(args), "dtype": str(dtype)}, "atol": ATOL}
    stem = f"sampled_softmax_{device.type}_smoke" if args.smoke else f"sampled_softmax_{device.type}"
    results = Results(args.out, stem, meta, markdown)
    leaves, ids = inputs(args, device, dtype)
    with kernel_context(device):
        for pass_ in PASSES:
            for name, (fn, spec) in CANDIDATES.items():
                row = {"candidate": name, "pass": pass_}
                results.attempt(row, lambda: measure(fn, spec, leaves, ids, pass_ == "fwd+bwd", device, args.repeats))
    for row in results.rows:
        row["speedup_vs_eager"] = speedup(results.rows, row, "eager", "ms", same=("pass",))
    results.finish()


if __name__ == "__main__":
    main()
