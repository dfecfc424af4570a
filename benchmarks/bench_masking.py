"""MAE masking: our fused ops vs MAE's eager code (facebookresearch/mae ``models_mae.py``) and, on
the GPU, that code under torch.compile, in one run.

    python benchmarks/bench_masking.py                 # GPU: B=256, L=196 (14x14 patches), keep 49, bf16
    python benchmarks/bench_masking.py --smoke         # tiny CPU shape (ours through the Triton
                                                       # interpreter when TRITON_INTERPRET=1), seconds

Rows, each forward and forward+backward (gradients by torch.autograd.grad of a fixed upstream
gradient, so no .grad accumulation or loss reduction is timed):
- encoder: the per-sample random draw + the gather of the visible tokens with the positional
  embedding added (ours: ``random_masking`` + ``gather_visible``; MAE: ``x + pos_embed`` then
  ``random_masking``'s two argsorts, gather and mask), D=768; pos_embed trainable or frozen.
- decoder: mask tokens, unshuffle, cls token, decoder positional embedding (ours:
  ``unshuffle_tokens``; MAE: repeat + cat + gather + cat + add), Dd=512, ids_restore drawn outside
  the timing; mask_token and pos trainable, or pos frozen (MAE's fixed sin-cos).

Before it is timed, each candidate's outputs and gradients are checked against MAE's code in
float32: off by at most 2x MAE's eager code in the run's dtypes, + ATOL. Each candidate draws its own
masking (compiled code draws other random numbers), so the encoder is checked for the draw it made
(its ids_restore); that the draw is uniform is tested in tests/ops/test_masking.py. Rows that fail are
kept with ``valid: false`` and get no speedup; a candidate that raises is an error row.

GB/s counts the bytes the op must move at the least (each input row read once, each output row
written once, indices, positional embedding once per position), for every candidate alike, and
``floor x`` is the time over that traffic at the device copy bandwidth measured at the start of
the run (or ``--copy-gbs``). Writes benchmarks/results/masking_<device>.json/.md
(masking_<device>_smoke.* for --smoke), rewritten after every row.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from harness import Results, check, copy_gbs, kernel_context, peak_mib, run_info, shown, speedup, timed_ms

from fastpretrain.ops import gather_visible, random_masking, unshuffle_tokens

ROOT = Path(__file__).resolve().parents[1]
# One rounding of values up to ~8 in the activation dtype (ours returns x's dtype where MAE's
# x + pos_embed stays float32 with float32 parameters), and float32 sums over the batch.
ATOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 5e-2}
ENCODER_OUTPUTS = ("x_masked", "mask", "ids_restore")


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


def mae_masking_for(ids_restore, keep):
    """MAE's encoder code for a given draw (``ids_restore``): what a candidate that drew it must return."""

    def encoder(x, pos_embed):
        x = x + pos_embed
        ids_keep = torch.argsort(ids_restore, dim=1)[:, :keep]
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        return {"x_masked": x_masked, "mask": (ids_restore >= keep).float()}

    return encoder


def ours_masking(x, pos_embed, mask_ratio):
    m = random_masking(x.shape[0], x.shape[1], mask_ratio, device=x.device)
    return gather_visible(x, pos_embed, m.ids_keep), m.mask, m.ids_restore


# --- cases and measurement --------------------------------------------------------------------------


@dataclass
class Case:
    """One row group: named inputs, the upstream gradient of the first output, the candidates
    (each ``fn(**tensors)`` -> named outputs), ``reference(got)`` (MAE's code for what ``got``
    must be, on any dtype) and ``traffic(backward)``, the least bytes moved."""

    name: str
    tensors: dict[str, torch.Tensor]
    grad: torch.Tensor
    candidates: dict[str, Callable]
    reference: Callable
    traffic: Callable


def run(fn, tensors, grad, backward):
    """``fn(**tensors)`` and, with ``backward``, ``d_<name>`` of every input that requires grad for the
    upstream ``grad`` of the first output (torch.autograd.grad: nothing accumulates in .grad)."""
    out = fn(**tensors)
    if backward:
        leaves = {f"d_{k}": t for k, t in tensors.items() if t.requires_grad}
        first = next(iter(out.values()))
        out.update(zip(leaves, torch.autograd.grad(first, list(leaves.values()), grad.to(first.dtype))))
    return out


def as_float32(tensors):
    """Float32 copies of the float inputs (the same requires_grad), for the reference."""
    return {k: t.detach().float().requires_grad_(t.requires_grad) if t.is_floating_point() else t
            for k, t in tensors.items()}  # fmt: skip


def measure(case, fn, backward, device, repeats, gbs, atol):
    """The check against MAE's code (float32 and the run's dtypes), then µs, GB/s, x floor and peak MiB."""

    def call():
        return run(fn, case.tensors, case.grad, backward)

    got = call()
    mae = case.reference(got)
    verdict = check(got, run(mae, as_float32(case.tensors), case.grad, backward),
                    run(mae, case.tensors, case.grad, backward), atol)  # fmt: skip
    ms, nbytes = timed_ms(call, device, repeats), case.traffic(backward)
    floor_ms = nbytes / (gbs * 1e9) * 1e3
    return {**verdict, "us": ms * 1e3, "gb_per_s": nbytes / (ms * 1e-3) / 1e9, "bytes": nbytes,
            "floor_us": floor_ms * 1e3, "x_floor": ms / floor_ms, "peak_mib": peak_mib(call, device)}  # fmt: skip


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


def encoder_candidates(mask_ratio, compile_):
    """ours, MAE eager (and MAE torch.compile), each ``fn(x, pos_embed)`` -> named outputs."""
    fns = {"ours": ours_masking, "MAE eager": mae_masking}
    if compile_:
        fns["MAE torch.compile"] = torch.compile(mae_masking)
    return {name: lambda x, pos_embed, f=f: dict(zip(ENCODER_OUTPUTS, f(x, pos_embed, mask_ratio)))
            for name, f in fns.items()}  # fmt: skip


def decoder_candidates(compile_):
    """ours, MAE eager (and MAE torch.compile), each ``fn(x, mask_token, pos_embed, ids_restore)`` -> {"out"}."""
    fns = {"ours": unshuffle_tokens, "MAE eager": mae_decoder_input}
    if compile_:
        fns["MAE torch.compile"] = torch.compile(mae_decoder_input)
    return {name: lambda x, mask_token, pos_embed, ids_restore, f=f: {"out": f(x, mask_token, pos_embed, ids_restore)}
            for name, f in fns.items()}  # fmt: skip


def cases(args, device, dtype, pdtype):
    """The encoder (pos trainable, frozen) and decoder (mask token + pos trainable, pos frozen) cases."""
    g = torch.Generator(device="cpu").manual_seed(0)
    b, length, d, dd = args.batch, args.length, args.dim, args.decoder_dim
    keep = int(length * (1 - args.mask_ratio))
    act, par = torch.finfo(dtype).bits // 8, torch.finfo(pdtype).bits // 8
    x = torch.randn(b, length, d, generator=g).to(device, dtype).requires_grad_()
    encoder = encoder_candidates(args.mask_ratio, args.compile)
    for pos_grad in (True, False):
        pos = (torch.randn(1, length, d, generator=g) * 0.02).to(device, pdtype).requires_grad_(pos_grad)
        yield Case(f"encoder draw+gather D={d} ({'pos trainable' if pos_grad else 'pos frozen'})",
                   {"x": x, "pos_embed": pos}, torch.randn(b, keep, d, generator=g).to(device, dtype), encoder,
                   lambda got: mae_masking_for(got["ids_restore"], keep),
                   lambda bw, pg=pos_grad: encoder_bytes(b, length, d, keep, act, par, pg, bw))  # fmt: skip
    ids_restore = random_masking(b, length, args.mask_ratio, generator=torch.Generator().manual_seed(1)).ids_restore
    y = torch.randn(b, 1 + keep, dd, generator=g).to(device, dtype).requires_grad_()
    token = (torch.randn(1, 1, dd, generator=g) * 0.02).to(device, pdtype).requires_grad_()
    decoder = decoder_candidates(args.compile)
    for pos_grad in (True, False):
        dpos = (torch.randn(1, 1 + length, dd, generator=g) * 0.02).to(device, pdtype).requires_grad_(pos_grad)
        yield Case(f"decoder unshuffle Dd={dd} ({'mask token + pos trainable' if pos_grad else 'pos frozen'})",
                   {"x": y, "mask_token": token, "pos_embed": dpos, "ids_restore": ids_restore.to(device)},
                   torch.randn(b, 1 + length, dd, generator=g).to(device, dtype), decoder,
                   lambda got: decoder["MAE eager"],
                   lambda bw, pg=pos_grad: decoder_bytes(b, length, dd, keep, act, par, pg, bw))  # fmt: skip


# --- result -----------------------------------------------------------------------------------------






def cells(row, rows):
    """The markdown cells after case | candidate | pass: a measurement, or why there is none."""
    if "error" in row:
        return "| " * 6 + f"| error: {row['error']} |"
    note = "" if row["valid"] else "INVALID: error > 2x MAE eager + atol"
    values = [shown(row["us"], ".1f"), shown(row["gb_per_s"], ".3g"), shown(row["x_floor"], ".3g"),
              shown(speedup(rows, row, "MAE eager", "us"), ".3g"), shown(row["peak_mib"], ".0f"),
              shown(max(row["max_err"].values()), ".1e")]  # fmt: skip
    return "| " + " | ".join(values + [note]) + " |"


def markdown(result):
    c = result["config"]
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# MAE masking on {result['device']} ({versions}, {result['date']})",
             f"`{result['command']}` (commit {result['commit']}): B={c['batch']}, L={c['length']}, keep={c['keep']}, "
             f"D={c['dim']}, Dd={c['decoder_dim']}, activations {c['dtype']}, params {c['param_dtype']}; floor = "
             f"least bytes / {result['copy_gbs']:.0f} GB/s ({result['copy_gbs_source']}); max err: outputs and "
             f"gradients vs MAE's code in float32" + ("" if result["complete"] else "; **incomplete run**"), "",
             "| case | candidate | pass | µs | GB/s | x floor | speedup vs eager | peak MiB | max err | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['case']} | {r['candidate']} | {r['pass']} {cells(r, result['rows'])}" for r in result["rows"]]
    return "\n".join(lines)




def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda when present, cpu for --smoke")
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
    p.add_argument("--copy-gbs", type=float, default=None, help="copy bandwidth for the floor (default: measured now)")
    p.add_argument("--smoke", action="store_true", help="tiny shape, one repeat, seconds: checks the script and ours")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats on CPU")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if args.smoke:
        args.batch, args.length, args.dim, args.decoder_dim, args.repeats = 3, 16, 40, 24, 1
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    args.compile = bool(device.type == "cuda" if args.compile is None else args.compile)
    dtype = getattr(torch, args.dtype) if device.type == "cuda" else torch.float32
    pdtype = dtype if args.param_dtype == "same" else torch.float32
    gbs = args.copy_gbs or copy_gbs(device)
    keep = int(args.length * (1 - args.mask_ratio))
    config = {**vars(args), "dtype": str(dtype), "param_dtype": str(pdtype), "keep": keep}
    meta = {**run_info(device), "config": config, "copy_gbs": gbs, "atol": ATOL[dtype],
            "copy_gbs_source": "measured" if args.copy_gbs is None else "--copy-gbs"}  # fmt: skip
    stem = f"masking_{device.type}_smoke" if args.smoke else f"masking_{device.type}"
    results = Results(args.out, stem, meta, markdown)
    with kernel_context(device):
        for case in cases(args, device, dtype, pdtype):
            for backward in (False, True):
                for name, fn in case.candidates.items():
                    row = {"case": case.name, "candidate": name, "pass": "fwd+bwd" if backward else "fwd"}
                    results.attempt(row, lambda: measure(case, fn, backward, device, args.repeats, gbs, ATOL[dtype]))
    for row in results.rows:
        row["speedup_vs_eager"] = speedup(results.rows, row, "MAE eager", "us")
    results.finish()


if __name__ == "__main__":
    main()
