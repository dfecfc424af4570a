"""Point-MAE / GeoMAE on synthetic point clouds: do the masked-groups encoder's frozen features
classify the shape better than the same model at random init and the raw input?

    python benchmarks/quality_masked_points.py --threads 2 --tag _cpu   # the CPU-budget run (minutes)
    python benchmarks/quality_masked_points.py --steps 3000 --seeds 0 1 2 --tag _gpu
    python benchmarks/quality_masked_points.py --smoke                  # seconds: every stage runs

Data (fastpretrain.data.points, synthetic, say so): ``--clouds`` pre-training clouds of
``--num-points`` points from 8 primitive shapes (random size, stretch, rotation, noise; seed 0),
tokenized into ``--groups`` FPS centres x ``--group-size`` nearest points. Model:
``masked_groups_tiny`` (4 blocks, 128 wide) with the points modality's defaults (mini-PointNet
embedder, MLP positions on the centres, visible-only encoder, 60% random masking), one run per
``--targets`` x ``--seeds``: ``chamfer`` (Point-MAE) or ``geometry`` (GeoMAE), through the Trainer
(quality_masked.pretrain). Probes on fresh clouds (seeds 1 and 2: ``--probe`` train, half as many
test): linear (L-BFGS logistic regression) and kNN (k=5) on the mean-pooled group tokens, next to
the same model at its random initialisation and the raw input (each cloud's sorted radii).
Results: benchmarks/results/quality_masked_points<tag>.json and .md, rewritten after every row.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from types import SimpleNamespace

import torch
from harness import Results, report_head, run_info
from quality_masked import pretrain

from fastpretrain.data.modalities import GroupsCollate, get_modality
from fastpretrain.data.points import SyntheticShapes
from fastpretrain.eval.masked import probe_rows
from fastpretrain.models import create_model

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ("ours", "random init", "raw input")


def run_target(args, results: Results, device, target: str) -> None:
    modality = get_modality("points")
    settings = {"num_groups": args.groups, "group_size": args.group_size, "num_points": args.num_points, "seed": 0,
                "noise": 0.01}  # fmt: skip
    train = SyntheticShapes(args.clouds, args.num_points, seed=0)
    probe_train, probe_test = modality.probe_data(SimpleNamespace(points_probe=args.probe), settings, {})
    info = {"target": target, "clouds": args.clouds, "points": args.num_points, "groups": args.groups,
            "group_size": args.group_size, "probe_train": len(probe_train.labels), "probe_test": len(probe_test.labels)}  # fmt: skip
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = create_model(args.model, group_dim=3 * args.group_size, pos_dim=3,
                             **{**modality.defaults, "target": target}).to(device)  # fmt: skip
        collate = GroupsCollate(modality.tokenizer(settings))
        row = results.attempt({**info, "seed": seed, "stage": "pretrain"},
                              lambda m=model, s=seed: pretrain(m, train, collate, args, s, device))  # fmt: skip
        if "error" in row:
            continue
        scored = results.attempt({**info, "seed": seed, "stage": "probe"}, lambda m=model, s=seed: {"scores": probe_rows(
            m, modality, settings, probe_train, probe_test, k=5, max_iter=20 if args.smoke else 300, seed=s,
            device=device)})  # fmt: skip
        for features, scores in scored.pop("scores", {}).items():
            results.add({**info, "seed": seed, "stage": "row", "features": features, **scores})


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.1%}" if len(values) == 1 else f"{mean:.1%} ({min(values):.1%}-{max(values):.1%})"


def markdown(result: dict) -> str:
    lines = report_head(result, "Point-MAE / GeoMAE on synthetic point clouds")
    rows = result["rows"]
    for r in rows:
        if "error" in r:
            lines.append(f"- {r['target']} {r.get('stage')} (seed {r.get('seed', '-')}) failed: {r['error']}")
        elif r["stage"] == "pretrain":
            lines.append(f"- {r['target']} seed {r['seed']}: {r['clouds']} clouds x {r['points']} points -> "
                         f"{r['groups']} groups of {r['group_size']}; {r['steps']} steps x {r['batch_size']} "
                         f"({r['epochs']:.0f} epochs) in {r['seconds']:.0f} s, loss {r['first_loss']:.4f} -> "
                         f"{r['final_loss']:.4f}")  # fmt: skip
    lines += ["", "Shape-class test accuracy (8 classes, chance 12.5%), mean over seeds (range); linear probe / kNN "
              "(k=5) on mean-pooled group tokens.", "",
              "| target | features | probe train / test | linear probe | kNN |", "|---|---|---|---|---|"]  # fmt: skip
    for target in dict.fromkeys(r["target"] for r in rows if r["stage"] == "row"):
        for features in FEATURES:
            got = [r for r in rows if r["stage"] == "row" and (r["target"], r["features"]) == (target, features)]
            if got:
                lines.append(f"| {target} | {features} | {got[0]['probe_train']} / {got[0]['probe_test']} | "
                             f"{_spread([r['linear'] for r in got])} | {_spread([r['knn'] for r in got])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", choices=["chamfer", "geometry"], default=["chamfer", "geometry"])
    p.add_argument("--clouds", type=int, default=2048, help="pre-training clouds")
    p.add_argument("--num-points", type=int, default=256)
    p.add_argument("--groups", type=int, default=16)
    p.add_argument("--group-size", type=int, default=16)
    p.add_argument("--probe", type=int, default=800, help="probe train clouds (test: half as many)")
    p.add_argument("--model", default="masked_groups_tiny")
    p.add_argument("--steps", type=int, default=600, help="pre-training steps per run")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--device", default=None)
    p.add_argument("--smoke", action="store_true", help="a few steps on a few clouds: every stage runs")
    p.add_argument("--tag", default="", help="suffix of the result files, e.g. _cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args()
    if args.smoke:
        args.steps, args.batch_size, args.seeds, args.clouds, args.probe = 2, 8, [0], 16, 16
        args.num_points, args.groups, args.group_size = 48, 6, 8
        args.tag = args.tag or "_smoke"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    meta = {**run_info(device), "tag": args.tag, "what": "Point-MAE / GeoMAE masked-groups pre-training on synthetic "
            "point clouds, shape-class probes vs random init and the raw input",
            "settings": {k: v for k, v in vars(args).items() if k != "out"}}  # fmt: skip
    results = Results(args.out, f"quality_masked_points{args.tag}", meta, markdown)
    for target in args.targets:
        run_target(args, results, device, target)
    results.finish()


if __name__ == "__main__":
    main()
