"""Sampled softmax with log-Q correction: our fused op vs the eager reference (the same math in
plain torch, autograd) and vs the full softmax cross-entropy it approximates, in one run.

    python benchmarks/bench_sampled_logits.py                    # GPU, NNLM/ELMo-size shapes
    python benchmarks/bench_sampled_logits.py --device cpu --tokens 256 --vocab 5000 --sampled 512   # smoke run

Rows: forward and forward+backward, median ms and peak memory. Writes
benchmarks/results/sampled_logits_<device>.json/.md.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import write_result

from fastpretrain.ops import sampled_softmax_loss, sampled_softmax_loss_reference

ROOT = Path(__file__).resolve().parents[1]


def inputs(args, device, dtype):
    g = torch.Generator(device="cpu").manual_seed(0)
    hidden = torch.randn(args.tokens, args.dim, generator=g).to(device, dtype).requires_grad_()
    weight = (torch.randn(args.vocab, args.dim, generator=g) * 0.05).to(device, dtype).requires_grad_()
    targets = torch.randint(0, args.vocab, (args.tokens,), generator=g).to(device)
    sampled = torch.randint(0, args.vocab, (args.sampled,), generator=g).to(device)
    log_q = torch.full((args.vocab,), -float(torch.log(torch.tensor(float(args.vocab)))), device=device)
    return hidden, weight, targets, sampled, log_q[targets], log_q[sampled]


def measure(fn, device, backward, repeats):
    """Median ms and peak MiB of fn() (and its backward)."""

    def step():
        loss = fn()
        if backward:
            loss.sum().backward()

    step()
    if device.type == "cuda":
        import triton

        torch.cuda.reset_peak_memory_stats()
        ms = triton.testing.do_bench(step, warmup=20, rep=200, return_mode="median")
        return ms, torch.cuda.max_memory_allocated() / 2**20
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--vocab", type=int, default=100_000)
    p.add_argument("--sampled", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=5, help="timed repeats on CPU")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if device.type == "cuda" else torch.float32
    hidden, weight, targets, sampled, lq_t, lq_s = inputs(args, device, dtype)
    candidates = {
        "ours (fused op)": lambda: sampled_softmax_loss(hidden, weight, targets, sampled, lq_t, lq_s),
        "eager reference": lambda: sampled_softmax_loss_reference(hidden, weight, targets, sampled, lq_t, lq_s),
        "full softmax (F.cross_entropy)": lambda: F.cross_entropy((hidden @ weight.T).float(), targets,
                                                                  reduction="none"),  # fmt: skip
    }
    rows = []
    for name, fn in candidates.items():
        for backward in (False, True):
            ms, mib = measure(fn, device, backward, args.repeats)
            rows.append({"op": name, "pass": "fwd+bwd" if backward else "fwd", "ms": ms, "peak_mib": mib})
            print(f"{name:<32} {rows[-1]['pass']:<8} {ms:9.3f} ms  {mib:9.1f} MiB", file=sys.stderr)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    result = {
        "device": device_name,
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "config": {**vars(args), "dtype": str(dtype)},
        "rows": rows,
    }
    lines = [f"# sampled softmax loss on {device_name} (torch {torch.__version__}, {result['date']})",
             f"`{result['command']}`: N={args.tokens}, D={args.dim}, V={args.vocab}, S={args.sampled}, {dtype}", "",
             "| op | pass | ms | peak MiB |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['op']} | {r['pass']} | {r['ms']:.3f} | {r['peak_mib']:.0f} |" for r in rows]
    write_result(args.out, f"sampled_logits_{device.type}", result, "\n".join(lines))


if __name__ == "__main__":
    main()
