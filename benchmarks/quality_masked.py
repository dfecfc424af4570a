"""Masked modeling beyond text and images: do the masked-groups encoder's frozen features beat the
same model randomly initialised and the raw input under a linear probe (and kNN), per modality?

    python benchmarks/quality_masked.py --threads 2 --tag _cpu      # the CPU-budget run (time series: minutes)
    python benchmarks/quality_masked.py --steps 3000 --seeds 0 1 2  # GPU when present: longer, more seeds
    python benchmarks/quality_masked.py --smoke                     # seconds: every stage on one dataset
    python benchmarks/quality_masked.py --stage .gpu-data/ucr        # copy the datasets for a machine without aeon
    python benchmarks/quality_masked.py --data-dir .gpu-data/ucr     # ... and read them there

Time series (``--series``): UCR / UEA datasets from aeon's wheel (fastpretrain.data.timeseries),
cut into about ``--patches`` patches (patch length round(T / patches), no overlap), standardised per
channel with the train split's statistics; ``masked_groups_tiny`` (4 blocks, 128 wide, 0.86M
parameters) with Ti-MAE's recipe (visible-only encoder, 75% random masking, raw-value MSE),
pre-trained through the Trainer on the train split only (``--steps`` x ``--batch-size`` series,
AdamW, cosine), one run per ``--seeds``. Probes: the mean of the encoder's group tokens, fit on
the train split and scored on the archive's test split (linear probe: L-BFGS logistic regression;
kNN: k=5, cosine), next to the same model at its random initialisation (same seed) and the
flattened standardised series. Results: benchmarks/results/quality_masked<tag>.json and .md,
rewritten after every row; a stage that fails is an error row.

Other modalities add a section: a function ``(args, results, device)`` in :data:`SECTIONS` that
adds rows ``{"modality", "dataset", "seed", "features", "linear", "knn", ...}``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from harness import Results, report_head, run_info

from fastpretrain.data.modalities import GroupsCollate, Labelled, get_modality
from fastpretrain.data.timeseries import INSTALL_HINT, channel_stats, load_dataset, shipped_files
from fastpretrain.eval.masked import probe_rows
from fastpretrain.models import create_model
from fastpretrain.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ("ours", "random init", "raw input")
# model config fields per --recipes name: Ti-MAE's (the registered defaults), and HuBERT / wav2vec 2.0's span
# masking on the full encoder (spans of 3 of the ~12 groups: about half of them masked)
RECIPES = {"mae": {}, "span": {"encoder": "full", "masking": "span", "span_length": 3}}


def pretrain(model, dataset, collate, args, seed: int, device) -> dict:
    """Pre-training through the Trainer: steps, items, epochs, seconds, first and last loss."""
    warmup = max(1, args.steps // 20)
    config = TrainConfig(out_dir=tempfile.mkdtemp(prefix="quality_masked-"), steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, min_lr=args.lr / 100, weight_decay=0.05, warmup_steps=warmup, seed=seed,
                         log_every=max(1, args.steps // 10), ckpt_every=args.steps, device=str(device))  # fmt: skip
    start = time.perf_counter()
    history = Trainer(model, dataset, config, collate_fn=collate).fit()
    return {"steps": args.steps, "batch_size": args.batch_size, "epochs": args.steps * args.batch_size / len(dataset),
            "seconds": round(time.perf_counter() - start, 1), "first_loss": history[0]["loss"] if history else None,
            "final_loss": history[-1]["loss"] if history else None}  # fmt: skip


def stage(names: list[str], directory: Path) -> None:
    """Copy each shipped dataset's TRAIN / TEST files into ``directory/<name>/`` (a folder load_dataset reads)."""
    shipped = shipped_files()
    for name in names:
        if name not in shipped:
            raise SystemExit(f"--stage: {name!r} is not shipped by an installed package ({INSTALL_HINT})")
        (directory / name).mkdir(parents=True, exist_ok=True)
        for split in ("TRAIN", "TEST"):
            shutil.copyfile(shipped[name].parent / f"{name}_{split}.ts", directory / name / f"{name}_{split}.ts")
    print(f"staged {', '.join(names)} into {directory}")


def timeseries(args, results: Results, device) -> None:
    modality = get_modality("timeseries")
    for name in args.series:
        try:
            train, test = load_dataset(str(Path(args.data_dir) / name) if args.data_dir else name)
        except (OSError, ValueError) as e:
            results.add({"modality": "timeseries", "dataset": name, "stage": "data", "error": str(e)[:300]})
            continue
        channels, steps = train.series.shape[1:]
        mean, std = channel_stats(train.series)
        patch = max(2, round(steps / args.patches))
        settings = {"patch_len": patch, "stride": patch, "mean": mean, "std": std}
        tokenizer = modality.tokenizer(settings)
        info = {"modality": "timeseries", "dataset": name, "train": len(train), "test": len(test), "channels": channels,
                "steps_per_series": steps, "classes": len(train.classes), "patch_len": patch,
                "groups": tokenizer.num_patches(steps)}  # fmt: skip
        splits = Labelled(train.series, train.labels), Labelled(test.series, test.labels)
        collate = GroupsCollate(tokenizer)
        for recipe, seed in [(r, s) for r in args.recipes for s in args.seeds]:
            torch.manual_seed(seed)
            model = create_model(args.model, group_dim=channels * patch, **RECIPES[recipe]).to(device)
            row = {**info, "recipe": recipe, "seed": seed}
            trained = results.attempt({**row, "stage": "pretrain"}, partial(pretrain, model, train, collate, args, seed,
                                                                            device))  # fmt: skip
            if "error" in trained:
                continue
            # the random-init baseline is the same architecture at torch.manual_seed(seed), as the run started
            probe = partial(probe_rows, model, modality, settings, *splits, k=5, max_iter=20 if args.smoke else 300,
                            seed=seed, device=device)  # fmt: skip
            scored = results.attempt({**row, "stage": "probe"}, lambda probe=probe: {"scores": probe()})
            for features, scores in scored.pop("scores", {}).items():
                results.add({**row, "stage": "row", "features": features, **scores})

SECTIONS = {"timeseries": timeseries}


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.1%}"
    return f"{mean:.1%} ({min(values):.1%}-{max(values):.1%})"


def markdown(result: dict) -> str:
    lines = report_head(result, "Masked modeling beyond text and images")
    rows = result["rows"]
    for r in rows:
        if "error" in r:
            lines.append(f"- {r['modality']} {r['dataset']} {r.get('stage')} (seed {r.get('seed', '-')}) failed: {r['error']}")
        elif r["stage"] == "pretrain":
            lines.append(f"- {r['modality']} {r['dataset']} {r.get('recipe', '')} seed {r['seed']}: {r['train']} train / {r['test']} test, "
                         f"{r['channels']} x {r['steps_per_series']} -> {r['groups']} groups of {r['patch_len']} steps; "
                         f"{r['steps']} steps x {r['batch_size']} ({r['epochs']:.0f} epochs) in {r['seconds']:.0f} s, "
                         f"loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}")  # fmt: skip
    lines += ["", "Test accuracy, mean over seeds (range); linear probe / kNN (k=5) on mean-pooled group tokens.", "",
              "| modality | dataset | classes | recipe | features | linear probe | kNN |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    keys = list(dict.fromkeys((r["modality"], r["dataset"], r.get("recipe", "")) for r in rows if r["stage"] == "row"))
    for modality, dataset, recipe in keys:
        for features in FEATURES:
            got = [r for r in rows if r["stage"] == "row" and (r["modality"], r["dataset"], r.get("recipe", ""),
                   r["features"]) == (modality, dataset, recipe, features)]  # fmt: skip
            if got:
                lines.append(f"| {modality} | {dataset} | {got[0]['classes']} | {recipe} | {features} | "
                             f"{_spread([r['linear'] for r in got])} | {_spread([r['knn'] for r in got])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    p.add_argument("--series", nargs="+", default=["BasicMotions", "JapaneseVowels_eq", "GunPoint", "ArrowHead"],
                   help="UCR / UEA datasets (timeseries section)")  # fmt: skip
    p.add_argument("--data-dir", default=None, help="read each dataset from DIR/<name>/ (see --stage)")
    p.add_argument("--stage", default=None, metavar="DIR", help="only copy the --series datasets into DIR, then exit")
    p.add_argument("--patches", type=int, default=12, help="about this many patches per series")
    p.add_argument("--model", default="masked_groups_tiny")
    p.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=["mae"], help="timeseries: " + "; ".join(
        f"{k}: {v or 'the registered defaults'}" for k, v in RECIPES.items()))  # fmt: skip
    p.add_argument("--steps", type=int, default=600, help="pre-training steps per run")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--device", default=None)
    p.add_argument("--smoke", action="store_true", help="a few steps on one dataset: every stage runs")
    p.add_argument("--tag", default="", help="suffix of the result files, e.g. _cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args()
    if args.stage:
        stage(args.series, Path(args.stage))
        return
    if args.smoke:
        args.steps, args.batch_size, args.seeds, args.series, args.recipes = 2, 8, [0], args.series[:1], list(RECIPES)
        args.tag = args.tag or "_smoke"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    meta = {**run_info(device), "tag": args.tag, "what": "masked-groups pre-training per modality, frozen-feature "
            "probes vs random init and the raw input", "settings": {k: v for k, v in vars(args).items() if k != "out"}}  # fmt: skip
    results = Results(args.out, f"quality_masked{args.tag}", meta, markdown)
    for section in args.sections:
        SECTIONS[section](args, results, device)
    results.finish()


if __name__ == "__main__":
    main()
