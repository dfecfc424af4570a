"""Learning check: image GPT on Fashion-MNIST, the autoregressive and the BERT-style objective on
the same stack, from the same initial weights, same palette, images, order and steps; then a
linear probe and kNN on the middle block's features against the raw pixels (image-gpt probes the
middle, not the last block). MAE's row at the CPU budget is in quality_mae_cpu.md (same probe code).

    python benchmarks/quality_igpt.py --steps 60 --batch-size 16 --threads 2 --label cpu      # a CPU budget
    python benchmarks/quality_igpt.py --model igpt_mini --image-size 28 --steps 3000 --batch-size 128 --label gpu
    python benchmarks/quality_igpt.py --smoke                                                 # checks the script

Writes benchmarks/results/quality_igpt_<label>.json/.md, rewritten after each row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from harness import Results, run_info

from fastpretrain.data import fashion_mnist
from fastpretrain.data.palette import PaletteImages, kmeans_palette, sample_pixels, to_unit
from fastpretrain.eval import evaluate_features
from fastpretrain.models import create_model
from fastpretrain.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]


def features(model, tokens: torch.Tensor, device) -> torch.Tensor:
    return torch.cat(
        [model.features(tokens[i : i + 256].long().to(device)).float().cpu() for i in range(0, len(tokens), 256)]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="igpt_tiny")
    p.add_argument("--image-size", type=int, default=14)
    p.add_argument("--palette-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--probe-train", type=int, default=5000)
    p.add_argument("--probe-test", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--label", default="")
    p.add_argument(
        "--smoke", action="store_true", help="8x8 grid, 2,000 training images, 3 steps, a 200 / 100 image probe"
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.image_size, args.steps, args.batch_size, args.probe_train, args.probe_test = 8, 3, 4, 200, 100
        args.label = args.label or "smoke"
    device = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if args.device == "auto"
        else torch.device(args.device)
    )
    train, test = fashion_mnist("train"), fashion_mnist("test")
    images, labels = (train.images[:2000], train.labels[:2000]) if args.smoke else (train.images, train.labels)
    pixels = sample_pixels(images, args.image_size, 200_000, args.seed).to(device)
    palette = kmeans_palette(pixels, args.palette_size, seed=args.seed).cpu()
    data = PaletteImages(images, labels, palette, args.image_size)
    probe = {"train": (train.images[: args.probe_train], train.labels[: args.probe_train]),
             "test": (test.images[: args.probe_test], test.labels[: args.probe_test])}  # fmt: skip
    tokens = {k: PaletteImages(x, y, palette, args.image_size).tokens for k, (x, y) in probe.items()}
    meta = {**run_info(device), "label": args.label or "full budget", "settings": vars(args).copy()}
    results = Results(args.out, "quality_igpt" + (f"_{args.label}" if args.label else ""), meta, markdown)
    raw = {k: (to_unit(x, args.image_size).flatten(1), y) for k, (x, y) in probe.items()}
    scores = evaluate_features(raw["train"], raw["test"])
    results.add(
        {
            "features": f"raw pixels ({args.image_size}x{args.image_size})",
            "linear": scores["linear"],
            "knn": scores["knn"],
        }
    )
    for objective in ("ar", "bert"):

        def run(objective=objective) -> dict:
            torch.manual_seed(args.seed)
            model = create_model(
                args.model, image_size=args.image_size, palette_size=args.palette_size, objective=objective
            )
            with tempfile.TemporaryDirectory() as out_dir:
                cfg = TrainConfig(out_dir=out_dir, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                  warmup_steps=max(1, args.steps // 20), betas=(0.9, 0.95), weight_decay=0.01,
                                  seed=args.seed, device=args.device, log_every=max(1, args.steps // 10),
                                  ckpt_every=10**9, keep_checkpoints=1)  # fmt: skip
                trainer = Trainer(model, data, cfg)
                start = time.perf_counter()
                history = trainer.fit()
                seconds = time.perf_counter() - start
            f = {k: (features(model, tokens[k], trainer.device), probe[k][1]) for k in probe}
            s = evaluate_features(f["train"], f["test"])
            return {"linear": s["linear"], "knn": s["knn"], "train_loss_first": history[0]["loss"],
                    "train_loss_last": history[-1]["loss"], "train_seconds": seconds,
                    "probe_layer": model.config.probe_layer or model.config.num_layers // 2}  # fmt: skip

        print(results.attempt({"features": f"igpt {objective}"}, run), flush=True)
    results.finish()


def markdown(result: dict) -> str:
    s = result["settings"]
    head = (
        f"# iGPT learning check ({result['label']}) on {result['device']}, {result['date']}, commit {result['commit']}"
    )
    setup = (
        f"{s['model']}, {s['image_size']}x{s['image_size']} grid, {s['palette_size']} k-means colours, "
        f"{s['steps']} steps x {s['batch_size']} images, lr {s['lr']}, seed {s['seed']}; probe: "
        f"{s['probe_train']} train / {s['probe_test']} test images (Fashion-MNIST's splits), features of the "
        f"middle block, layer-normed and averaged."
    )
    lines = [head, f"`{result['command']}`", "", setup, "", "| features | linear probe | kNN (k=20) | train loss first -> last |",
             "|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['features']} | error: {r['error']} | | |")
            continue
        loss = f"{r['train_loss_first']:.3f} -> {r['train_loss_last']:.3f}" if "train_loss_last" in r else "-"
        lines.append(f"| {r['features']} | {r['linear']:.2%} | {r['knn']:.2%} | {loss} |")
    if not result["complete"]:
        lines += ["", "INCOMPLETE (run stopped early)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
