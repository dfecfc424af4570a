"""Point-cloud ops: our Triton kernels (farthest-point sampling, kNN, Chamfer distance) vs the eager
torch references (``fastpretrain.ops.points.*_reference``: FPS as a loop of M vectorised steps,
kNN as a full distance matrix and a stable sort, Chamfer as the distance matrix's two minima with
autograd), in one run. No other peer is installed here (pytorch3d / Point-MAE's pointnet2 and
chamfer CUDA extensions are not).

    python benchmarks/bench_points.py            # GPU: Point-MAE's shapes, fp32
    python benchmarks/bench_points.py --smoke    # tiny CPU shapes (ours through the Triton
                                                 # interpreter when TRITON_INTERPRET=1), seconds

Cases: Point-MAE's grouping of 1024-point clouds (B=32, 64 FPS centres, k=32 nearest of each),
FPS of 512 centres from 8192 points, and the Chamfer loss on Point-MAE's reconstruction (32 clouds
x 38 masked groups, 32 predicted vs 32 true points each) and between whole 2048-point clouds,
forward and forward+backward. Before it is timed each candidate is checked against the
reference: FPS and kNN indices (and kNN distances) equal, as they are by design; Chamfer loss and
gradients within ATOL of the float32 reference's autograd (harness.check). Inputs are float32. Writes benchmarks/results/points_<device>.json/.md
(points_<device>_smoke.* for --smoke), rewritten after every row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from harness import Results, check, kernel_context, peak_mib, run_info, shown, speedup, timed_ms

from fastpretrain.ops import (
    chamfer_distance,
    chamfer_distance_reference,
    farthest_point_sample,
    farthest_point_sample_reference,
    knn_points,
    knn_points_reference,
)

ROOT = Path(__file__).resolve().parents[1]
ATOL = 1e-5
# name: (op, B, N, M, k) -- fps: M centres of N points; knn: M queries, k of N points; chamfer: N vs M points.
CASES = {
    "FPS Point-MAE B32 N1024 M64": ("fps", 32, 1024, 64, 0),
    "FPS B8 N8192 M512": ("fps", 8, 8192, 512, 0),
    "kNN Point-MAE B32 M64 N1024 k32": ("knn", 32, 1024, 64, 32),
    "Chamfer Point-MAE groups 1216 x 32 vs 32": ("chamfer", 1216, 32, 32, 0),
    "Chamfer clouds B16 2048 vs 2048": ("chamfer", 16, 2048, 2048, 0),
}
SMOKE = {
    "FPS smoke B2 N37 M9": ("fps", 2, 37, 9, 0),
    "kNN smoke B1 M5 N11 k3": ("knn", 1, 11, 5, 3),
    "Chamfer smoke B2 13 vs 9": ("chamfer", 2, 13, 9, 0),
}
CANDIDATES = ("eager", "ours")


def measure(name, op, b, n, m, k, candidate, backward, device, repeats) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, n, 3, generator=g).to(device)
    if op == "fps":
        fn = farthest_point_sample if candidate == "ours" else farthest_point_sample_reference
        with kernel_context(device) if candidate == "ours" else torch.no_grad():
            got, want = fn(x, m), farthest_point_sample_reference(x, m)
            ms = timed_ms(lambda: fn(x, m), device, repeats)
        return {"ms": ms, "valid": bool(torch.equal(got, want)), "peak_mib": peak_mib(lambda: fn(x, m), device)}
    if op == "knn":
        q = torch.randn(b, m, 3, generator=g).to(device)
        fn = knn_points if candidate == "ours" else knn_points_reference
        with kernel_context(device) if candidate == "ours" else torch.no_grad():
            got, want = fn(q, x, k), knn_points_reference(q, x, k)
            ms = timed_ms(lambda: fn(q, x, k), device, repeats)
        valid = bool(torch.equal(got.indices, want.indices) and torch.equal(got.sq_dists, want.sq_dists))
        return {"ms": ms, "valid": valid, "peak_mib": peak_mib(lambda: fn(q, x, k), device)}
    y = torch.randn(b, m, 3, generator=g).to(device)
    leaves = [x.requires_grad_(), y.requires_grad_()]
    fn = chamfer_distance if candidate == "ours" else chamfer_distance_reference

    def call():
        loss = fn(*leaves)
        return [loss, *torch.autograd.grad(loss, leaves)] if backward else [loss.detach()]

    def outputs(values):
        return dict(zip(("loss", "d x", "d y")[: len(values)], [v.detach().float() for v in values]))

    with kernel_context(device) if candidate == "ours" else torch.enable_grad():
        got = outputs(call())
        ms = timed_ms(call, device, repeats)
        peak = peak_mib(call, device)
    ref = outputs([chamfer_distance_reference(*leaves), *torch.autograd.grad(chamfer_distance_reference(*leaves),
                                                                                   leaves)][: len(got)])  # fmt: skip
    return {"ms": ms, **check(got, ref, ref, ATOL), "peak_mib": peak}


def markdown(result: dict) -> str:
    lines = [f"# Point-cloud ops ({result['device']}, torch {result['versions']['torch']}, "
             f"triton {result['versions'].get('triton')}, {result['date']})", f"`{result['command']}`"
             + ("" if result["complete"] else " (INCOMPLETE)"), "",
             "| case | pass | candidate | ms | speedup vs eager | peak MiB | check |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        head = f"| {r['case']} | {r['pass']} | {r['candidate']} |"
        if "error" in r:
            lines.append(f"{head} | | | error: {r['error'][:120]} |")
            continue
        ok = "ok" if r["valid"] else "MISMATCH"
        lines.append(f"{head} {r['ms']:.3f} | {shown(r.get('speedup_vs_eager'), '.1f')} | {shown(r['peak_mib'], '.1f')} | {ok} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda when present, cpu for --smoke")
    p.add_argument("--repeats", type=int, default=10, help="timed calls off CUDA (CUDA: triton's do_bench)")
    p.add_argument("--only", default="", help="only cases whose name contains this")
    p.add_argument("--smoke", action="store_true", help="tiny shapes, one repeat, seconds: checks the script and ours")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args()
    if args.smoke:
        args.repeats = 1
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    stem = f"points_{device.type}_smoke" if args.smoke else f"points_{device.type}"
    results = Results(args.out, stem, {**run_info(device), "what": "point-cloud ops, ours vs the eager references"},
                      markdown)  # fmt: skip
    for name, (op, b, n, m, k) in (SMOKE if args.smoke else CASES).items():
        if args.only not in name:
            continue
        for backward in (False, True) if op == "chamfer" else (False,):
            for candidate in CANDIDATES:
                row = {"case": name, "pass": "fwd+bwd" if backward else "fwd", "candidate": candidate}
                results.attempt(row, lambda: measure(name, op, b, n, m, k, candidate, backward, device, args.repeats))
                row["speedup_vs_eager"] = speedup(results.rows, row, "eager", "ms")
                results.write()
    results.finish()


if __name__ == "__main__":
    main()
