"""Fused attention vs PyTorch's own, in one run: every SDPA backend (flash, cuDNN, efficient),
FlexAttention (torch.compile'd, with block masks) and, on padded batches, torch's varlen flash
attention; forward and forward+backward, TFLOP/s and peak memory, on the pre-training shapes of
../shared/BENCHMARKS.md.

    python benchmarks/bench_attention.py                  # GPU: the full shape table, bf16
    python benchmarks/bench_attention.py --smoke          # tiny shapes on CPU (ours through the Triton
                                                          # interpreter when TRITON_INTERPRET=1), seconds

Candidates: ours (dense, key padding as a mask), ours varlen (the real tokens packed, padded cases),
sdpa flash / cudnn / efficient, flex (causal or key padding as a block mask) and flex varlen (the
packed real tokens as one sequence with a document mask), torch varlen
(torch.nn.attention.varlen.varlen_attn, CUDA only). A candidate that raises (unsupported backend,
compile error, out of memory) is an error row and the run goes on.

Before it is timed, each candidate's output and dq, dk, dv are checked against the reference, plain
torch in float32 (float64 when the run is float32) on the same inputs: each may be off by at most 2x
what plain torch in the run's dtype is, + atol (harness.check). Padded cases compare real tokens only
(the output gradient is zero at padded query rows, as a loss that ignores them gives). Rows that fail
keep ``valid: false`` and take no part in the "vs best peer" ratios. Gradients come from
torch.autograd.grad with a fixed output gradient, so no .grad accumulation is timed; peak memory (MiB
above what was allocated before, one forward+backward) is measured outside the timing. FlexAttention's
block masks are built before the timing; their build time is the row's ``block_mask_ms``.

TFLOP/s: fwd = 4 B H Sq Sk D (halved when causal), fwd+bwd = 3.5x fwd; the padded row counts
only real tokens (sum_b 4 H L_b^2 D), the work the user needs done, for every candidate. Each ours
row reports its ratio to the fastest valid peer of its case. Writes benchmarks/results/attention.json/.md
(attention_<device>_smoke.* for --smoke), rewritten after every row.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import Results, check, kernel_context, max_errors, peak_mib, run_info, timed_ms
from torch.nn.attention import SDPBackend, sdpa_kernel

from fastpretrain.nn import unpad
from fastpretrain.ops import attention, attention_varlen

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = {"sdpa flash": SDPBackend.FLASH_ATTENTION, "sdpa cudnn": SDPBackend.CUDNN_ATTENTION,
            "sdpa efficient": SDPBackend.EFFICIENT_ATTENTION}  # fmt: skip
GRADS = ("dq", "dk", "dv")
REFERENCE_ELEMENTS = 2**28  # scores per chunk of the plain-torch reference: 1 GiB in float32
ATOL = 1e-5  # float32 summation order (blocked vs one-shot sums); lower precisions are bounded by plain torch's error


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
# Three interpreter blocks (16) of queries and keys, the last one partial; one head keeps the interpreter quick.
SMOKE = [Case("smoke", 2, 1, 40, 32), Case("smoke causal", 2, 1, 40, 32, causal=True),
         Case("smoke padded", 3, 1, 40, 32, padded=True)]  # fmt: skip


def select(cases: list[Case], spec: str) -> list[Case]:
    """The cases whose names contain one of the comma-separated substrings of ``spec`` (all if it is empty)."""
    wanted = [w.strip() for w in spec.split(",") if w.strip()]
    return [c for c in cases if not wanted or any(w in c.name for w in wanted)]


def flops(case: Case, lengths: torch.Tensor) -> float:
    """Forward FLOPs of the useful work: real tokens only, causal halved."""
    per_row = (lengths.double() ** 2).sum().item() if case.padded else case.b * case.s**2
    return 4 * case.h * case.d * per_row / (2 if case.causal else 1)


def reference_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32, or float64 for a float32 run, so the reference is always more precise than the run."""
    return torch.float64 if dtype == torch.float32 else torch.float32


@dataclass
class Packed:
    """The real tokens of a padded batch as [total, H, D] leaves (and output gradient) with their bounds."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    grad: torch.Tensor
    cu_seqlens: torch.Tensor
    max_seqlen: int


@dataclass
class Inputs:
    """One case's tensors, the same for every candidate: dense [B, H, S, D] leaves, the output gradient
    (zero at padded query rows), the key padding mask and the real-token lengths; ``packed`` for padded cases."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    grad: torch.Tensor
    mask: torch.Tensor | None
    lengths: torch.Tensor
    packed: Packed | None

    def common(self, t: torch.Tensor) -> torch.Tensor:
        """A dense [B, H, S, D] tensor in the layout candidates are compared in: packed real tokens
        [total, H, D] (the order of ``unpad``) for padded cases, else as it is."""
        return t if self.mask is None else t.transpose(1, 2)[self.mask]


def make_inputs(case: Case, device: torch.device, dtype: torch.dtype) -> Inputs:
    g = torch.Generator().manual_seed(0)
    q, k, v, grad = (torch.randn(case.b, case.h, case.s, case.d, generator=g).to(device, dtype) for _ in range(4))
    lengths, mask, packed = torch.full((case.b,), case.s), None, None
    if case.padded:
        lengths = torch.randint(case.s // 2, case.s + 1, (case.b,), generator=g)
        mask = (torch.arange(case.s)[None, :] < lengths[:, None]).to(device)
        grad = grad * mask[:, None, :, None]
        pq, pk, pv, pg = (unpad(t.transpose(1, 2), mask) for t in (q, k, v, grad))
        packed = Packed(pq.x.requires_grad_(), pk.x.requires_grad_(), pv.x.requires_grad_(), pg.x, pq.cu_seqlens,
                        pq.max_seqlen)  # fmt: skip
    return Inputs(q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), grad, mask, lengths, packed)


def plain_attention(q, k, v, causal: bool, key_mask: torch.Tensor | None):
    """softmax(q k^T / sqrt(D)) v in plain torch, in q's dtype, on [N, S, D]; ``key_mask`` [N, S] keeps
    real keys. Returns (out, lse in log2 units, as the kernels save it)."""
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    allowed = torch.ones(s.shape[-2:], dtype=torch.bool, device=q.device)
    if causal:
        allowed = allowed.tril()
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, :]
    s = s.masked_fill(~allowed, float("-inf"))
    return torch.softmax(s, -1) @ v, torch.logsumexp(s, -1) / math.log(2)


def plain_outputs(q, k, v, grad, causal: bool, mask: torch.Tensor | None, dtype: torch.dtype) -> dict:
    """out, lse, dq, dk, dv of :func:`plain_attention` in ``dtype`` on the values of the dense q, k, v
    (output gradient ``grad``), computed in chunks of (batch, head) rows that keep the scores within
    REFERENCE_ELEMENTS, so the long cases fit beside the candidates."""
    b, h, s, d = q.shape
    flat = [t.detach().reshape(b * h, s, d) for t in (q, k, v, grad)]
    key_mask = mask.repeat_interleave(h, 0) if mask is not None else None
    rows = max(1, REFERENCE_ELEMENTS // (s * s))
    parts = []
    for lo in range(0, b * h, rows):
        leaves = [t[lo : lo + rows].to(dtype).requires_grad_() for t in flat[:3]]
        out, lse = plain_attention(*leaves, causal, key_mask[lo : lo + rows] if key_mask is not None else None)
        grads = torch.autograd.grad(out, leaves, flat[3][lo : lo + rows].to(dtype))
        parts.append((out.detach(), lse.detach(), *grads))
    shapes = {"out": (b, h, s, d), "lse": (b, h, s), **{n: (b, h, s, d) for n in GRADS}}
    return {n: torch.cat([p[i] for p in parts]).view(shape) for i, (n, shape) in enumerate(shapes.items())}


@dataclass
class Candidate:
    """One way to compute a case: ``forward()`` on ``leaves`` (dense or packed, its output in the same
    layout), the output gradient in that layout, and figures measured while building it."""

    leaves: tuple[torch.Tensor, ...]
    forward: Callable[[], torch.Tensor]
    grad: torch.Tensor
    packed: bool
    extra: dict = field(default_factory=dict)

    def forward_backward(self) -> tuple[torch.Tensor, ...]:
        out = self.forward()
        return (out, *torch.autograd.grad(out, self.leaves, self.grad))


def dense_candidate(inputs: Inputs, forward: Callable, extra: dict | None = None) -> Candidate:
    return Candidate((inputs.q, inputs.k, inputs.v), forward, inputs.grad, False, extra or {})


def packed_candidate(inputs: Inputs, forward: Callable, extra: dict | None = None) -> Candidate:
    p = inputs.packed
    return Candidate((p.q, p.k, p.v), forward, p.grad, True, extra or {})


def ours(case: Case, inputs: Inputs, device, repeats) -> Candidate:
    return dense_candidate(inputs, lambda: attention(inputs.q, inputs.k, inputs.v, causal=case.causal,
                                                     key_padding_mask=inputs.mask))  # fmt: skip


def ours_varlen(case: Case, inputs: Inputs, device, repeats) -> Candidate:
    p = inputs.packed
    return packed_candidate(inputs, lambda: attention_varlen(p.q, p.k, p.v, p.cu_seqlens, p.max_seqlen,
                                                             causal=case.causal))  # fmt: skip


def sdpa(backend: SDPBackend) -> Callable[..., Candidate]:
    def build(case: Case, inputs: Inputs, device, repeats) -> Candidate:
        sdpa_mask = inputs.mask[:, None, None, :] if inputs.mask is not None else None

        def forward():
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(inputs.q, inputs.k, inputs.v, attn_mask=sdpa_mask,
                                                      is_causal=case.causal)  # fmt: skip

        return dense_candidate(inputs, forward)

    return build


def compiled_flex(device, mask_mods: list, batch: int | None, length: int, repeats: int):
    """(torch.compile'd flex_attention, its block mask of the ``mask_mods`` ANDed (None if none), the
    block-mask build ms). Dynamo is reset first, so that no earlier case's compile counts towards its
    recompile limit (past it, flex falls back to the slow eager path)."""
    from torch.nn.attention.flex_attention import and_masks, create_block_mask, flex_attention

    torch._dynamo.reset()
    flex = torch.compile(flex_attention, dynamic=False)
    if not mask_mods:
        return flex, None, None

    def build():
        return create_block_mask(and_masks(*mask_mods), batch, None, length, length, device=device)

    block_mask = build()
    return flex, block_mask, timed_ms(build, device, repeats)


def causal_mod(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def flex(case: Case, inputs: Inputs, device, repeats) -> Candidate:
    """Causal and key padding (a mask_mod reading the [B, S] mask) as a block mask."""
    mask = inputs.mask
    mods = [causal_mod] if case.causal else []
    if case.padded:
        mods.append(lambda b, h, q_idx, kv_idx: mask[b, kv_idx])
    fn, block_mask, mask_ms = compiled_flex(device, mods, case.b if case.padded else None, case.s, repeats)
    return dense_candidate(inputs, lambda: fn(inputs.q, inputs.k, inputs.v, block_mask=block_mask),
                           {"block_mask_ms": mask_ms})  # fmt: skip


def flex_varlen(case: Case, inputs: Inputs, device, repeats) -> Candidate:
    """The packed real tokens as one [1, H, total, D] sequence, each token attending to its own
    document (a document-id mask_mod), causally if the case is causal."""
    p = inputs.packed
    total = p.q.shape[0]
    document = torch.repeat_interleave(torch.arange(case.b, device=device), p.cu_seqlens.diff(), output_size=total)
    mods = [lambda b, h, q_idx, kv_idx: document[q_idx] == document[kv_idx]] + ([causal_mod] if case.causal else [])
    fn, block_mask, mask_ms = compiled_flex(device, mods, None, total, repeats)

    def forward():
        q, k, v = (t.transpose(0, 1)[None] for t in (p.q, p.k, p.v))
        return fn(q, k, v, block_mask=block_mask)[0].transpose(0, 1)

    return packed_candidate(inputs, forward, {"block_mask_ms": mask_ms})


def torch_varlen(case: Case, inputs: Inputs, device, repeats) -> Candidate:
    """torch.nn.attention.varlen.varlen_attn (torch >= 2.10) on the packed real tokens; causal is
    ``is_causal=True`` in torch 2.10 and ``window_size=(-1, 0)`` after."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError as e:
        raise RuntimeError(f"torch {torch.__version__} has no torch.nn.attention.varlen.varlen_attn "
                           "(added in torch 2.10)") from e  # fmt: skip
    if device.type != "cuda":
        raise NotImplementedError(f"torch's varlen_attn runs only on CUDA (its flash-attention kernels), not on "
                                  f"{device.type}")  # fmt: skip
    causal = {}
    if case.causal and "window_size" in inspect.signature(varlen_attn).parameters:
        causal = {"window_size": (-1, 0)}
    elif case.causal:
        causal = {"is_causal": True}
    p = inputs.packed
    n = p.max_seqlen
    return packed_candidate(inputs, lambda: varlen_attn(p.q, p.k, p.v, p.cu_seqlens, p.cu_seqlens, n, n, **causal))


def candidates(case: Case) -> dict[str, Callable[..., Candidate]]:
    """name -> builder(case, inputs, device, repeats) -> Candidate; the packed ones for padded cases only."""
    out = {"ours": ours, **{name: sdpa(backend) for name, backend in BACKENDS.items()}, "flex": flex}
    if case.padded:
        out.update({"ours varlen": ours_varlen, "flex varlen": flex_varlen, "torch varlen": torch_varlen})
    return out


class Checker:
    """A case's reference (``reference_dtype``) and baseline (plain torch in the run's dtype) in the
    compared layout, computed on first use, so that a failure there is an error row, not the end of
    the run."""

    def __init__(self, case: Case, inputs: Inputs, dtype: torch.dtype):
        self.case, self.inputs, self.dtype = case, inputs, dtype
        self.want = None

    def expected(self, dtype: torch.dtype) -> dict:
        i = self.inputs
        got = plain_outputs(i.q, i.k, i.v, i.grad, self.case.causal, i.mask, dtype)
        return {n: i.common(got[n]) for n in ("out", *GRADS)}

    def check(self, got: dict) -> dict:
        if self.want is None:
            self.want = self.expected(reference_dtype(self.dtype)), self.expected(self.dtype)
        reference, baseline = self.want
        return {**check(got, reference, baseline, ATOL), "baseline_err": max_errors(baseline, reference)}


def measure(build: Callable[..., Candidate], case: Case, inputs: Inputs, checker: Checker, device, repeats) -> dict:
    """Build the candidate, check its output and gradients, then time the forward and forward+backward
    and measure the peak memory of one forward+backward."""
    cand = build(case, inputs, device, repeats)
    got = dict(zip(("out", *GRADS), cand.forward_backward()))
    verdict = checker.check(got if cand.packed else {n: inputs.common(t) for n, t in got.items()})
    fwd_flops = flops(case, inputs.lengths)
    fwd_ms = timed_ms(cand.forward, device, repeats)
    fwd_bwd_ms = timed_ms(cand.forward_backward, device, repeats)
    return {**verdict, **cand.extra, "fwd_ms": fwd_ms, "fwd_bwd_ms": fwd_bwd_ms, "fwd_tflops": fwd_flops / fwd_ms / 1e9,
            "fwd_bwd_tflops": 3.5 * fwd_flops / fwd_bwd_ms / 1e9,
            "peak_mib": peak_mib(cand.forward_backward, device)}  # fmt: skip


def add_ratios(rows: list[dict]) -> None:
    """Each valid ours row of one case vs the fastest valid peer (fwd and fwd+bwd), naming that peer."""
    valid = [r for r in rows if r.get("valid")]
    peers = [r for r in valid if not r["candidate"].startswith("ours")]
    for p in ("fwd", "fwd_bwd") if peers else ():
        best = max(peers, key=lambda r: r[f"{p}_tflops"])
        for r in valid:
            if r["candidate"].startswith("ours"):
                r[f"{p}_vs_best_peer"] = r[f"{p}_tflops"] / best[f"{p}_tflops"]
                r[f"best_peer_{p}"] = best["candidate"]


def bench_case(results: Results, case: Case, device, dtype, repeats, names: list[str]) -> None:
    """One row per candidate of ``case`` in ``names``, then the ratios of its ours rows (against
    every valid peer measured so far)."""
    inputs = make_inputs(case, device, dtype)
    checker = Checker(case, inputs, dtype)
    for name, build in candidates(case).items():
        if name in names:
            row = {"case": case.name, "candidate": name}
            results.attempt(row, lambda build=build: measure(build, case, inputs, checker, device, repeats))
    add_ratios([r for r in results.rows if r["case"] == case.name])
    results.write()


def cells(r: dict) -> str:
    """The markdown cells after case | candidate: the check, the figures, or why there are none."""
    if "error" in r:
        return f"| error: {r['error'].replace('|', '/')} | | | | | | |"
    worst = max(r["max_err"], key=r["max_err"].get)
    check_cell = f"{'ok' if r['valid'] else '**INVALID**'} ({worst} {r['max_err'][worst]:.1e})"
    mib, mask_ms = r["peak_mib"], r.get("block_mask_ms")
    ratios = [f"{r[f'{p}_vs_best_peer']:.2f}x vs {r[f'best_peer_{p}']}" if f"{p}_vs_best_peer" in r else ""
              for p in ("fwd", "fwd_bwd")]  # fmt: skip
    mib_cell, mask_cell = f"{mib:.0f}" if mib is not None else "–", f"{mask_ms:.2f}" if mask_ms is not None else ""
    return (f"| {check_cell} | {r['fwd_tflops']:.3g} | {r['fwd_bwd_tflops']:.3g} | {mib_cell} | {mask_cell} "
            f"| {ratios[0]} | {ratios[1]} |")  # fmt: skip


def markdown(result: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# Fused attention on {result['device']} ({versions}, {result['date']})",
             f"`{result['command']}` (commit {result['commit']}), {result['dtype']}, ours via {result['ours_path']}; "
             "TFLOP/s of real-token work, fwd+bwd = 3.5x fwd. Check: out, dq, dk, dv vs the "
             f"{result['reference_dtype']} reference, each within 2x plain torch's error in {result['dtype']} "
             f"+ {result['atol']:.1e} (the largest error shown); invalid rows take no part in the ratios."
             + ("" if result["complete"] else " **Incomplete run.**"), "",
             "| case | candidate | check | fwd TF/s | fwd+bwd TF/s | peak MiB | block mask ms | fwd vs best peer | "
             + "fwd+bwd vs best peer |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    order = {c["name"]: i for i, c in enumerate(result["cases"])}
    rows = sorted(result["rows"], key=lambda r: order.get(r["case"], len(order)))  # flex rows come last in a run
    lines += [f"| {r['case']} | {r['candidate']} {cells(r)}" for r in rows]
    return "\n".join(lines) + "\n"


def ours_path(device: torch.device) -> str:
    """How ours runs: the Triton kernels on CUDA; on CPU their interpreter when TRITON_INTERPRET=1,
    else the pure-torch reference the ops dispatch to (see harness.kernel_context)."""
    if device.type == "cuda":
        return "Triton"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "the Triton interpreter"
    return "the pure-torch reference (set TRITON_INTERPRET=1 for the kernels)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda when present, cpu for --smoke")
    p.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None,
                   help="default: bfloat16 on CUDA, float32 elsewhere")  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="tiny shapes, seconds: checks the script and ours")
    p.add_argument("--cases", default="", help="comma-separated substrings of case names to run (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats off the GPU")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    table = SMOKE if args.smoke else CASES
    cases = select(table, args.cases)
    if not cases:
        p.error(f"--cases {args.cases!r} matches none of {[c.name for c in table]}")
    meta = {**run_info(device), "dtype": str(dtype), "reference_dtype": str(reference_dtype(dtype)),
            "atol": ATOL, "ours_path": ours_path(device), "cases": [asdict(c) for c in cases]}  # fmt: skip
    results = Results(args.out, f"attention_{device.type}_smoke" if args.smoke else "attention", meta, markdown)
    with kernel_context(device):
        # FlexAttention compiles for tens of seconds a case: every other row first, so a GPU call cut
        # at its time budget loses only flex rows.
        for flex_pass in (False, True):
            for case in cases:
                names = [n for n in candidates(case) if n.startswith("flex") == flex_pass]
                bench_case(results, case, device, dtype, args.repeats, names)
    results.finish()


if __name__ == "__main__":
    main()
