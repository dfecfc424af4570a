"""Masked modeling of speech frames (issue 22 part B): do a masked-groups encoder's frozen features,
pre-trained on spoken words, tell the words apart on voices it never heard, better than the same
model at random init and the raw log-mel statistics?

    python benchmarks/quality_masked_audio.py --threads 2 --tag _cpu        # the CPU-budget run
    python benchmarks/quality_masked_audio.py --steps 3000 --seeds 0 1 2    # GPU when present
    python benchmarks/quality_masked_audio.py --smoke                       # seconds: every stage
    python benchmarks/quality_masked_audio.py --stage .gpu-data/spoken-words  # the sets, for a machine without eSpeak

Data: :mod:`fastpretrain.data.spoken_words` (20 words synthesised by eSpeak NG, 6 accents x 8 train
voice variants, ``--takes`` renditions each: 1,920 train clips; 4 other variants: 960 test clips),
0.8 s clips as 40-mel log-mel frames (10 ms hop) standardised per band, groups of 2 frames (40 per
clip). Model: ``masked_groups_tiny`` (4 blocks, 128 wide), the full sequence with mask tokens and
wav2vec 2.0 span masking (p 0.65, span 10), pre-trained through the Trainer on the train split, one
row per target (``--targets``): HuBERT's k-means cluster ids of the spans (k 100, fit once on the
train spans; log-mel in place of HuBERT's MFCC) or the raw span values (MSE). Probes: the mean of
the encoder's group tokens (linear probe: L-BFGS logistic regression; kNN k=20, cosine), fit on the
train split, scored on the held-out voices, beside the same model at its random init (same seed)
and the raw input (each band's mean and std over time). Results:
benchmarks/results/quality_masked_audio<tag>.json and .md, rewritten after every row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from harness import Results, report_head, run_info

from fastpretrain.data import spoken_words
from fastpretrain.data.audio import NUM_CLUSTERS, AudioTokenizer, ClusterCollate
from fastpretrain.data.audio_targets import ClusterTargets
from fastpretrain.data.log_mel import LogMelConfig
from fastpretrain.data.modalities import Labelled, get_modality
from fastpretrain.data.spoken_words import SpokenWords, SpokenWordsConfig
from fastpretrain.eval.masked import probe_rows
from fastpretrain.models import create_model
from fastpretrain.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ("ours", "random init", "raw input")


def pretrain(model, dataset, collate, args, seed: int, device) -> dict:
    config = TrainConfig(out_dir=tempfile.mkdtemp(prefix="quality_masked_audio-"), steps=args.steps,
                         batch_size=args.batch_size, lr=args.lr, min_lr=args.lr / 100, weight_decay=0.05,
                         warmup_steps=max(1, args.steps // 20), seed=seed, log_every=max(1, args.steps // 10),
                         ckpt_every=args.steps, device=str(device))  # fmt: skip
    start = time.perf_counter()
    history = Trainer(model, dataset, config, collate_fn=collate).fit()
    return {"steps": args.steps, "batch_size": args.batch_size, "epochs": args.steps * args.batch_size / len(dataset),
            "seconds": round(time.perf_counter() - start, 1), "first_loss": history[0]["loss"] if history else None,
            "final_loss": history[-1]["loss"] if history else None}  # fmt: skip


def run(args, results: Results, device) -> None:
    words, log_mel = SpokenWordsConfig(takes=args.takes), LogMelConfig(n_mels=args.mels)
    start = time.perf_counter()
    train, test = SpokenWords("train", words, log_mel), SpokenWords("test", words, log_mel)
    flat = train.frames.reshape(-1, args.mels).double()
    settings = {"takes": args.takes, "seed": 0, "n_mels": args.mels, "span": args.span,
                "mean": flat.mean(0).tolist(), "std": (flat.std(0) + 1e-6).tolist()}  # fmt: skip
    tokenizer = AudioTokenizer(args.span, settings["mean"], settings["std"])
    values = tokenizer(train.frames).values
    start_kmeans = time.perf_counter()
    targets = ClusterTargets.fit(values.to(device), args.clusters, seed=0).cpu()
    info = {"train": len(train), "test": len(test), "voices_train": len(set(train.voices)),
            "voices_test": len(set(test.voices)), "groups": values.shape[1], "group_dim": values.shape[2],
            "data_seconds": round(start_kmeans - start, 1), "kmeans_seconds": round(time.perf_counter() - start_kmeans, 1)}  # fmt: skip
    collate = ClusterCollate(tokenizer, targets)
    modality = get_modality("audio")
    for target in args.targets:
        for seed in args.seeds:
            torch.manual_seed(seed)
            overrides = {"group_dim": values.shape[2], "encoder": "full", "masking": "span", "target": target}
            if target == "clusters":
                overrides["num_clusters"] = args.clusters
            model = create_model(args.model, **overrides).to(device)
            key = {**info, "target": target, "seed": seed}
            row = results.attempt({**key, "stage": "pretrain"}, lambda m=model, s=seed: pretrain(m, train, collate, args, s, device))
            if "error" in row:
                continue

            def probe(model=model, seed=seed) -> dict:
                rows = probe_rows(model, modality, settings, Labelled(train.frames, train.labels),
                                  Labelled(test.frames, test.labels), k=20, max_iter=20 if args.smoke else 300,
                                  seed=seed, device=device)  # fmt: skip
                return {"scores": rows}

            scored = results.attempt({**key, "stage": "probe"}, probe)
            for features, scores in scored.pop("scores", {}).items():
                results.add({**key, "stage": "row", "features": features, **scores})


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.1%}" if len(values) == 1 else f"{mean:.1%} ({min(values):.1%}-{max(values):.1%})"


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = report_head(result, "Masked modeling of speech frames")
    rows = result["rows"]
    for r in rows:
        if "error" in r:
            lines.append(f"- {r.get('target')} {r.get('stage')} (seed {r.get('seed', '-')}) failed: {r['error']}")
        elif r["stage"] == "pretrain":
            lines.append(f"- target {r['target']}, seed {r['seed']}: {r['train']} train clips ({r['voices_train']} voices) / "
                         f"{r['test']} test ({r['voices_test']} unseen voices), {r['groups']} groups of {r['group_dim']} "
                         f"values; {r['steps']} steps x {r['batch_size']} ({r['epochs']:.0f} epochs) in {r['seconds']:.0f} s, "
                         f"loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}; set built in {r['data_seconds']} s, "
                         f"k-means (k {s['clusters']}) in {r['kmeans_seconds']} s")  # fmt: skip
    lines += ["", ("Word accuracy on unseen voices (20 classes, chance 5%), mean over seeds (range); linear probe / "
                   "kNN (k=20) on mean-pooled group tokens."), "",
              "| target | features | linear probe | kNN |", "|---|---|---|---|"]  # fmt: skip
    for target in dict.fromkeys(r["target"] for r in rows if r.get("stage") == "row"):
        for features in FEATURES:
            got = [r for r in rows if r.get("stage") == "row" and r["target"] == target and r["features"] == features]
            if got:
                lines.append(f"| {target} | {features} | {_spread([r['linear'] for r in got])} | "
                             f"{_spread([r['knn'] for r in got])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", choices=["clusters", "values"], default=["clusters", "values"])
    p.add_argument("--takes", type=int, default=2, help="renditions per word x accent x voice")
    p.add_argument("--mels", type=int, default=40)
    p.add_argument("--span", type=int, default=2, help="frames per group")
    p.add_argument("--clusters", type=int, default=NUM_CLUSTERS, help="k of the k-means targets")
    p.add_argument("--model", default="masked_groups_tiny")
    p.add_argument("--steps", type=int, default=400, help="pre-training steps per run")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--device", default=None)
    p.add_argument("--smoke", action="store_true", help="a few steps on a 60-clip set: every stage runs")
    p.add_argument("--tag", default="", help="suffix of the result files, e.g. _cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--stage", default=None, metavar="DIR",
                   help="only synthesise the train / test sets into the cache folder DIR (for a machine without "
                        "eSpeak: run there with FASTPRETRAIN_CACHE=DIR), then exit")  # fmt: skip
    args = p.parse_args()
    if args.stage:
        os.environ["FASTPRETRAIN_CACHE"] = args.stage
        for split in ("train", "test"):
            print(f"staged {len(SpokenWords(split, SpokenWordsConfig(takes=args.takes), LogMelConfig(n_mels=args.mels)))} "
                  f"{split} clips into {args.stage}")  # fmt: skip
        return
    if args.smoke:  # one accent, two train voices and one test voice: 40 + 20 clips
        spoken_words.ACCENTS, spoken_words.VARIANTS = ("en-us",), {"train": ("m1", "f1"), "test": ("m5",)}
        args.steps, args.batch_size, args.seeds, args.takes, args.clusters = 2, 8, [0], 1, 8
        args.tag = args.tag or "_smoke"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    meta = {**run_info(device), "tag": args.tag, "what": "masked-groups pre-training on synthesised spoken words, "
            "frozen-feature word probes on unseen voices vs random init and raw log-mel statistics",
            "settings": {k: v for k, v in vars(args).items() if k != "out"}}  # fmt: skip
    results = Results(args.out, f"quality_masked_audio{args.tag}", meta, markdown)
    run(args, results, device)
    results.finish()


if __name__ == "__main__":
    main()
