"""MAE masking: our fused ops vs MAE's eager code (facebookresearch/mae ``models_mae.py``) and, on
the GPU, that code under torch.compile, in one run.

    python benchmarks/bench_masking.py                 # GPU: B=256, L=196 (14x14 patches), keep 49, bf16
    python benchmarks/bench_masking.py --smoke         # tiny CPU shape (through the Triton interpreter
                                                       # when TRITON_INTERPRET=1), just to run the script

Rows, each forward and forward+backward (gradients by torch.autograd.grad of a fixed upstream
gradient, so no .grad accumulation or loss reduction is timed):
- encoder: the per-sample random draw + the gather of the visible tokens with the positional
  embedding added (ours: ``random_masking`` + ``gather_visible``; MAE: ``x + pos_embed`` then
  ``random_masking``'s two argsorts, gather and mask), D=768; pos_embed trainable or frozen.
- decoder: mask tokens, unshuffle, cls token, decoder positional embedding (ours:
  ``unshuffle_tokens``; MAE: repeat + cat + gather + cat + add), Dd=512, ids_restore drawn outside
  the timing; mask_token and pos trainable, or pos frozen (MAE's fixed sin-cos).

GB/s counts the bytes the op must move at the least (each input row read once, each output row
written once, indices, positional embedding once per position), for every candidate alike, and
``floor x`` is the time over that traffic at ``--copy-gbs`` (the H100's measured ~3.0 TB/s copy
bandwidth). Writes benchmarks/results/masking_<device>.json/.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from harness import run_info, write_result

from fastpretrain.ops import gather_visible, random_masking, unshuffle_tokens

ROOT = Path(__file__).resolve().parents[1]


# --- MAE's code (models_mae.py), the eager baseline ------------------------------------------------


def mae_masking(x, pos_embed, mask_ratio):
    """``forward_encoder``'s ``x + pos_embed`` and ``random_masking``."""
    x = x + pos_embed
    N, L, D = x.shape
    len_keep = int(L * (1 - mask_ratio))
    noise = torch.rand(N, L, device=x.device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
    mask = torch.ones([N, L], device=x.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return x_masked, mask, ids_restore


def mae_decoder_input(x, mask_token, decoder_pos_embed, ids_restore):
    """``forward_decoder`` from the mask tokens to the positional embedding."""
    mask_tokens = mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
    x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
    x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
    x = torch.cat([x[:, :1, :], x_], dim=1)
    return x + decoder_pos_embed


def ours_masking(x, pos_embed, mask_ratio):
    m = random_masking(x.shape[0], x.shape[1], mask_ratio, device=x.device)
    return gather_visible(x, pos_embed, m.ids_keep), m.mask, m.ids_restore


# --- measurement ------------------------------------------------------------------------------------


def measure(fn, leaves, grad, device, backward, repeats):
    """Median ms and peak MiB of fn() (with the gradients of ``leaves`` for ``grad``)."""

    def step():
        out = fn()
        if backward:
            torch.autograd.grad(out, leaves, grad)

    step()
    if device.type == "cuda":
        import triton

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        ms = triton.testing.do_bench(step, warmup=25, rep=200, return_mode="median")
        return ms, torch.cuda.max_memory_allocated() / 2**20
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), float("nan")


def encoder_bytes(b, length, d, keep, act, pos, pos_grad, backward):
    """Least traffic of draw + gather (+ backward): rows, ids, positional embedding, mask."""
    ids = b * length * (4 + 8 + 8 + 4)  # noise, ids_restore, mask written; ids_keep ~ once more
    fwd = 2 * b * keep * d * act + length * d * pos + ids
    if not backward:
        return fwd
    return fwd + b * keep * d * act + b * length * d * act + (length * d * pos if pos_grad else 0) + b * length * 8


def decoder_bytes(b, length, d, keep, act, par, par_grad, backward):
    """Least traffic of the unshuffle (+ backward): x and out rows, ids, pos and mask token."""
    fwd = b * (1 + keep) * d * act + b * (1 + length) * d * act + b * length * 8 + (2 + length) * d * par
    if not backward:
        return fwd
    grads = (2 + length) * d * par if par_grad else d * par  # dmask_token is always asked for
    return fwd + b * (1 + length) * d * act + b * (1 + keep) * d * act + b * length * 8 + grads


def cases(args, device, dtype, pdtype):
    """(row name, candidates {name: fn}, leaves, upstream grad, bytes(backward))."""
    g = torch.Generator(device="cpu").manual_seed(0)
    b, length, d, dd = args.batch, args.length, args.dim, args.decoder_dim
    keep = int(length * (1 - args.mask_ratio))
    act, par = torch.finfo(dtype).bits // 8, torch.finfo(pdtype).bits // 8
    x = torch.randn(b, length, d, generator=g).to(device, dtype).requires_grad_()
    for pos_grad in (True, False):
        pos = (torch.randn(1, length, d, generator=g) * 0.02).to(device, pdtype).requires_grad_(pos_grad)
        leaves = [x, pos] if pos_grad else [x]
        grad = torch.randn(b, keep, d, generator=g).to(device, dtype)
        fns = {"ours": lambda pos=pos: ours_masking(x, pos, args.mask_ratio)[0],
               "MAE eager": lambda pos=pos: mae_masking(x, pos, args.mask_ratio)[0]}  # fmt: skip
        if args.compile:
            compiled = torch.compile(mae_masking)
            fns["MAE torch.compile"] = lambda pos=pos, c=compiled: c(x, pos, args.mask_ratio)[0]
        name = f"encoder draw+gather D={d} ({'pos trainable' if pos_grad else 'pos frozen'})"
        yield name, fns, leaves, grad, lambda bw, pg=pos_grad: encoder_bytes(b, length, d, keep, act, par, pg, bw)
    ids_restore = random_masking(b, length, args.mask_ratio, generator=torch.Generator().manual_seed(1)).ids_restore
    ids_restore = ids_restore.to(device)
    y = torch.randn(b, 1 + keep, dd, generator=g).to(device, dtype).requires_grad_()
    token = (torch.randn(1, 1, dd, generator=g) * 0.02).to(device, pdtype).requires_grad_()
    for pos_grad in (True, False):
        dpos = (torch.randn(1, 1 + length, dd, generator=g) * 0.02).to(device, pdtype).requires_grad_(pos_grad)
        leaves = [y, token, dpos] if pos_grad else [y, token]
        grad = torch.randn(b, 1 + length, dd, generator=g).to(device, dtype)
        fns = {"ours": lambda p=dpos: unshuffle_tokens(y, token, p, ids_restore),
               "MAE eager": lambda p=dpos: mae_decoder_input(y, token, p, ids_restore)}  # fmt: skip
        if args.compile:
            compiled = torch.compile(mae_decoder_input)
            fns["MAE torch.compile"] = lambda p=dpos, c=compiled: c(y, token, p, ids_restore)
        name = f"decoder unshuffle Dd={dd} ({'mask token + pos trainable' if pos_grad else 'pos frozen'})"
        yield name, fns, leaves, grad, lambda bw, pg=pos_grad: decoder_bytes(b, length, dd, keep, act, par, pg, bw)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="bfloat16",
                   help="activations (x); on CPU float32")  # fmt: skip
    p.add_argument("--param-dtype", choices=("same", "float32"), default="same",
                   help="pos_embed / mask_token dtype: as x, or float32 (as under bf16 autocast)")  # fmt: skip
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--length", type=int, default=196, help="patches L (the decoder sees 1 + L tokens)")
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--decoder-dim", type=int, default=512)
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--compile", type=int, choices=(0, 1), default=None, help="add MAE's code under torch.compile "
                   "(default: on the GPU only)")  # fmt: skip
    p.add_argument("--copy-gbs", type=float, default=3000.0, help="copy bandwidth for the floor (H100: ~3000)")
    p.add_argument("--smoke", action="store_true", help="tiny CPU shape, a few repeats: checks the script runs")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats on CPU")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if args.smoke:
        args.device, args.batch, args.length, args.dim, args.decoder_dim, args.repeats = "cpu", 3, 16, 40, 24, 1
    device = torch.device(args.device)
    args.compile = bool(device.type == "cuda" if args.compile is None else args.compile)
    dtype = getattr(torch, args.dtype) if device.type == "cuda" else torch.float32
    pdtype = dtype if args.param_dtype == "same" else torch.float32
    # On CPU with TRITON_INTERPRET=1 ours runs the Triton kernels in the interpreter; else the reference.
    kernels = contextlib.nullcontext()
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        from fastpretrain.ops import kernels_on_cpu

        kernels = kernels_on_cpu()
    rows = []
    with kernels:
        for case, fns, leaves, grad, traffic in cases(args, device, dtype, pdtype):
            for name, fn in fns.items():
                for backward in (False, True):
                    ms, mib = measure(fn, leaves, grad, device, backward, args.repeats)
                    nbytes = traffic(backward)
                    floor_ms = nbytes / (args.copy_gbs * 1e9) * 1e3
                    rows.append({"case": case, "op": name, "pass": "fwd+bwd" if backward else "fwd", "us": ms * 1e3,
                                 "gb_per_s": nbytes / (ms * 1e-3) / 1e9, "bytes": nbytes, "floor_us": floor_ms * 1e3,
                                 "x_floor": ms / floor_ms, "peak_mib": mib})  # fmt: skip
                    r = rows[-1]
                    print(f"{case:<58} {name:<18} {r['pass']:<8} {r['us']:10.1f} us {r['gb_per_s']:8.1f} GB/s "
                          f"{r['x_floor']:6.2f} x floor", file=sys.stderr)  # fmt: skip
    for r in rows:  # same-run ratios against MAE's eager code
        base = next(b for b in rows if b["case"] == r["case"] and b["pass"] == r["pass"] and b["op"] == "MAE eager")
        r["speedup_vs_eager"] = base["us"] / r["us"]
    keep = int(args.length * (1 - args.mask_ratio))
    result = {**run_info(device), "config": {**vars(args), "dtype": str(dtype), "param_dtype": str(pdtype), "keep": keep},
              "rows": rows}  # fmt: skip
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# MAE masking on {result['device']} ({versions}, {result['date']})",
             f"`{result['command']}`: B={args.batch}, L={args.length}, keep={keep}, D={args.dim}, "
             f"Dd={args.decoder_dim}, activations {dtype}, params {pdtype}; floor = least bytes / "
             f"{args.copy_gbs:.0f} GB/s", "",
             "| case | op | pass | µs | GB/s | x floor | vs eager | peak MiB |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['case']} | {r['op']} | {r['pass']} | {r['us']:.1f} | {r['gb_per_s']:.1f} | {r['x_floor']:.2f} | "
              f"{r['speedup_vs_eager']:.2f}x | {r['peak_mib']:.0f} |" for r in rows]  # fmt: skip
    write_result(args.out, f"masking_{device.type}", result, "\n".join(lines))


if __name__ == "__main__":
    main()
