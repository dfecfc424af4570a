"""CLIP's symmetric InfoNCE, fused (the [N, N] logits never whole) vs materialised
(``F.cross_entropy(scale * q @ k.T)`` both ways, as open_clip computes it) and vs torch.compile of
that, in one run: forward and forward+backward, ms and peak memory, at N = 64k ... 8k.

    python benchmarks/bench_infonce.py                 # GPU: N = 65536 ... 8192, D = 512, bf16
    python benchmarks/bench_infonce.py --smoke         # tiny shape on CPU (ours through the Triton
                                                       # interpreter when TRITON_INTERPRET=1), seconds

The goal (issue 21): peak memory linear in N (the materialised loss is quadratic: at N = 64k its
fp32 logits alone are 16 GiB) and at least the eager time. Before it is timed, every candidate's
loss and gradients (query, key, the learnable scale) are checked against a float32 reference: at
most 2x the materialised loss's own error in the run's dtype, + ATOL. The reference is the
materialised loss in float32 up to N = 32768 (32 in the smoke run); past it (where it needs tens of GiB) ours
in float32 on the same (rounded) inputs stands in, said in the row's ``reference``, and the
allowance is ULPS units in the last place of the run's dtype at each output's largest value. Rows that fail are kept with ``valid: false``;
a candidate that raises (out of memory) is an error row and the run goes on.

Writes benchmarks/results/infonce.json/.md (infonce_<device>_smoke.* for --smoke), after every row.
"""

from __future__ import annotations

import argparse
import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import Results, check, kernel_context, max_errors, peak_mib, run_info, shown, speedup, timed_ms

from fastpretrain.ops import infonce_loss

ROOT = Path(__file__).resolve().parents[1]
CASES = {f"CLIP N{n} D512": (n, 512) for n in (65536, 32768, 16384, 8192)}  # largest first: a cut run keeps them
SMOKE = {"smoke": (24, 24), "smoke large": (40, 24)}  # several interpreter blocks (16) of rows and features
PASSES = ("fwd", "fwd+bwd")
ATOL = 1e-5
REFERENCE_MAX_N = {"gpu": 32768, "smoke": 32}  # the smoke's "large" case takes the other reference
ULPS = 8  # past the materialised reference: ours vs ours in float32, a few rounding steps of the run's dtype
GRADS = ("d_query", "d_key", "d_scale")


def eager(q, k, scale):
    """open_clip's ClipLoss on one process: normalise, materialise the logits, cross-entropy both ways."""
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    z = (scale * (q @ k.T)).float()
    labels = torch.arange(q.shape[0], device=q.device)
    return (F.cross_entropy(z, labels) + F.cross_entropy(z.T, labels)) / 2


def ours(q, k, scale):
    return infonce_loss(q, k, scale, symmetric=True)


def inputs(n, d, device, dtype):
    """(query, key, scale) leaves, the same for every candidate; scale = 1 / 0.07 as CLIP starts."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    return [q.to(device, dtype).requires_grad_(), k.to(device, dtype).requires_grad_(),
            torch.tensor(1 / 0.07, device=device).requires_grad_()]  # fmt: skip


def step(fn, leaves, backward):
    """One call: {"loss"} and, with ``backward``, the leaves' gradients for an upstream gradient of 1."""
    loss = fn(*leaves)
    if not backward:
        return {"loss": loss}
    return {"loss": loss, **dict(zip(GRADS, torch.autograd.grad(loss, leaves, torch.ones_like(loss))))}


def within_ulps(got, want, dtype):
    """{"max_err", "valid"}: each output within ULPS eps(dtype) of its largest value (+ ATOL) of ``want``."""
    errors = max_errors(got, want)
    eps = torch.finfo(dtype).eps
    valid = all(not math.isnan(e) and e <= ULPS * eps * want[k].abs().max().item() + ATOL for k, e in errors.items())
    return {"max_err": errors, "valid": valid}


def measure(fn, leaves, backward, want, device, repeats):
    """The check against ``want`` = (float32 reference, baseline in the run's dtype or None), then ms and peak MiB."""

    def call():
        return step(fn, leaves, backward)

    got = call()
    verdict = check(got, *want, ATOL) if want[1] is not None else within_ulps(got, want[0], leaves[0].dtype)
    return {**verdict, "ms": timed_ms(call, device, repeats), "peak_mib": peak_mib(call, device)}


def bench(results, name, shape, device, dtype, repeats, max_n):
    """One row per candidate and pass for the case ``name``; the materialised reference up to ``max_n`` rows."""
    n = shape[0]
    leaves = inputs(*shape, device, dtype)
    fp32 = [t.detach().float().requires_grad_() for t in leaves]
    candidates = {"ours": ours, "eager": eager, "eager + torch.compile": torch.compile(eager)}
    reference, label = (eager, "eager fp32") if n <= max_n else (ours, "ours fp32")
    for pass_ in PASSES:
        backward = pass_ == "fwd+bwd"
        want = {k: t.detach() for k, t in step(reference, fp32, backward).items()}
        baseline = None  # the materialised loss in the run's dtype, when it fits
        if n <= max_n:
            baseline = {k: t.detach() for k, t in step(eager, leaves, backward).items()}
        for cand, fn in candidates.items():
            row = {"case": name, "N": n, "D": shape[1], "candidate": cand, "pass": pass_, "reference": label}
            results.attempt(row, functools.partial(measure, fn, leaves, backward, (want, baseline), device, repeats))
        if device.type == "cuda":
            torch.cuda.empty_cache()


def cells(row, rows):
    """The markdown cells after case | candidate | pass: a measurement, or why there is none."""
    if "error" in row:
        return "| " * 5 + f"| error: {row['error']} |"
    note = "" if row["valid"] else "INVALID: error > 2x eager + atol"
    per_row = None if row["peak_mib"] is None else row["peak_mib"] * 1024 / row["N"]
    values = [shown(row["ms"], ".3f"), shown(speedup(rows, row, "eager", "ms"), ".3g"), shown(row["peak_mib"], ".0f"),
              shown(per_row, ".1f"), shown(max(row["max_err"].values()), ".1e")]  # fmt: skip
    return "| " + " | ".join(values + [note]) + " |"


def markdown(result):
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# CLIP symmetric InfoNCE on {result['device']} ({versions}, {result['date']}, {result['dtype']})",
             f"`{result['command']}` (commit {result['commit']}); max err: loss and gradients vs the row's float32 "
             f"reference; KiB / row: peak memory over N (flat = linear in N)" +
             ("" if result["complete"] else "; **incomplete run**"), "",
             "| case | candidate | pass | ms | speedup vs eager | peak MiB | KiB / row | max err | note |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
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
    stem = f"infonce_{device.type}_smoke" if args.smoke else "infonce"
    results = Results(args.out, stem, {**run_info(device), "dtype": str(dtype), "atol": ATOL}, markdown)
    with kernel_context(device):
        for name, shape in (SMOKE if args.smoke else CASES).items():
            bench(results, name, shape, device, dtype, 1 if args.smoke else args.repeats,
                  REFERENCE_MAX_N["smoke" if args.smoke else "gpu"])  # fmt: skip
    for row in results.rows:
        row["speedup_vs_eager"] = speedup(results.rows, row, "eager", "ms")
    results.finish()


if __name__ == "__main__":
    main()
