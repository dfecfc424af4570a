"""MAE quality check on Fashion-MNIST: do the pre-trained encoder's frozen features beat a
randomly initialised encoder of the same size and the raw pixels under a linear probe (and kNN)?

    python benchmarks/quality_mae.py                                   # GPU when present: the full run
    python benchmarks/quality_mae.py --steps 150 --probe-train 5000 --probe-test 2000 --threads 1 --tag _cpu
                                                                       # the CPU-budget run (~10 min, 2 cores)

The model is ``mae_vit_fashion_mnist`` (28 x 28 grey, 4 x 4 patches -> 49 tokens; encoder 128 wide,
4 blocks, 4 heads; decoder 128 wide, 2 blocks), pre-trained with MAE's augmentation (random resized
crop 0.2-1, flip) and mask ratio 0.75 through the Trainer for ``--steps`` steps. Then features of
``--probe-train`` training images and ``--probe-test`` held-out test images (both pools: cls token,
patch mean) go through the linear probe (L-BFGS logistic regression) and weighted kNN (k=20).
Results: benchmarks/results/quality_mae<tag>.json and .md, rewritten after pre-training and after
every probe row (``complete: false`` until the last); a stage that fails is an error row.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import torch
from harness import Results, probe_table, report_head, run_info
from torch.utils.data import DataLoader, Subset

from fastpretrain.data.image_transforms import RandomResizedCropFlip, Resize
from fastpretrain.data.images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, fashion_mnist
from fastpretrain.eval.probe import evaluate_features
from fastpretrain.models import create_model
from fastpretrain.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def features(encoder, data, device, batch_size: int = 512) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"cls": (X, y), "mean": (X, y)} for a ViT encoder, {"pixels": (X, y)} for None (one pass)."""
    out: dict[str, list] = {}
    labels = []
    if encoder is not None:
        encoder.eval()
    for images, y in DataLoader(data, batch_size=batch_size):
        images = images.to(device)
        labels.append(y)
        if encoder is None:
            out.setdefault("pixels", []).append(images.flatten(1).cpu())
            continue
        tokens = encoder.forward_features(images).float()
        out.setdefault("cls", []).append(tokens[:, 0].cpu())
        out.setdefault("mean", []).append(tokens[:, 1:].mean(1).cpu())
    y = torch.cat(labels)
    return {k: (torch.cat(v), y) for k, v in out.items()}


def pretrain(model, train_aug, args, device) -> dict:
    """MAE pre-training through the Trainer: steps, images, epochs, seconds, first and last loss."""
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, args.steps // 20)
    config = TrainConfig(out_dir=tempfile.mkdtemp(prefix="quality_mae-"), steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, min_lr=args.lr / 100, weight_decay=0.05, warmup_steps=warmup, seed=args.seed,
                         log_every=max(1, args.steps // 20), ckpt_every=args.steps, device=str(device))  # fmt: skip
    start = time.perf_counter()
    history = Trainer(model, train_aug, config).fit()
    return {"steps": args.steps, "batch_size": args.batch_size, "images_seen": args.steps * args.batch_size,
            "epochs": args.steps * args.batch_size / len(train_aug), "lr": args.lr, "warmup_steps": warmup,
            "seconds": round(time.perf_counter() - start, 1), "first_loss": history[0]["loss"] if history else None,
            "final_loss": history[-1]["loss"] if history else None}  # fmt: skip


def markdown(result: dict) -> str:
    pre = next((r for r in result["rows"] if r["stage"] == "pretrain"), None)
    if pre is None:
        pretrained = "Pre-training: not finished."
    elif "error" in pre:
        pretrained = f"Pre-training failed: {pre['error']}."
    else:
        pretrained = (f"Pre-training: {pre['steps']} steps x {pre['batch_size']} images ({pre['epochs']:.2f} "
                      f"epochs) in {pre['seconds']:.0f} s, loss {pre['first_loss']:.3f} -> {pre['final_loss']:.3f}.")
    probe = result["probe"]
    lines = [*report_head(result, "MAE quality on Fashion-MNIST"),
             f"{pretrained} Probes: {probe['train_images']} train / {probe['test_images']} held-out test images "
             "(test split).", "", *probe_table(result["rows"])]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5000, help="pre-training steps")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--warmup-steps", type=int, default=None, help="default: 5%% of the steps")
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--norm-pix-loss", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--probe-train", type=int, default=60000, help="training images for the probes (random subset)")
    p.add_argument("--probe-test", type=int, default=10000, help="held-out test images scored")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="suffix of the result files, e.g. _cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    mean, std = list(FASHION_MNIST_MEAN), list(FASHION_MNIST_STD)

    torch.manual_seed(args.seed)
    model = create_model("mae_vit_fashion_mnist", mask_ratio=args.mask_ratio, norm_pix_loss=args.norm_pix_loss)
    torch.manual_seed(args.seed)
    random_init = create_model("mae_vit_fashion_mnist", mask_ratio=args.mask_ratio).to(device)  # same size, never trained
    train_aug = fashion_mnist("train", RandomResizedCropFlip(28, mean=mean, std=std))
    g = torch.Generator().manual_seed(args.seed)
    plain = Resize(28, mean, std)
    train, test = fashion_mnist("train", plain), fashion_mnist("test", plain)
    train = Subset(train, torch.randperm(len(train), generator=g)[: args.probe_train].tolist())
    test = Subset(test, torch.randperm(len(test), generator=g)[: args.probe_test].tolist())
    what = "MAE pre-training on Fashion-MNIST, then frozen-feature linear probe / kNN vs random init and raw pixels"
    meta = {**run_info(device), "tag": args.tag, "what": what,
            "model": {"name": "mae_vit_fashion_mnist", **vars(model.config)},
            "encoder_params": model.encoder.num_params(),
            "probe": {"train_images": len(train), "test_images": len(test), "knn_k": 20}}  # fmt: skip
    results = Results(args.out, f"quality_mae{args.tag}", meta, markdown)

    pretrained = results.attempt({"stage": "pretrain"}, lambda: pretrain(model, train_aug, args, device))
    encoders = {"mae": model.encoder.to(device), "random_init": random_init.encoder, "raw_pixels": None}
    pools = {"mae": ("cls", "mean"), "random_init": ("cls", "mean"), "raw_pixels": ("pixels",)}

    @functools.lru_cache(maxsize=1)  # one encoder's features at a time: its pools are probed in a row
    def features_of(name: str) -> tuple[dict, dict]:
        return features(encoders[name], train, device), features(encoders[name], test, device)

    for name in encoders:
        for pool in pools[name]:
            row = {"stage": "probe", "features": name, "pool": pool}
            if name == "mae" and "error" in pretrained:
                results.add({**row, "error": "not probed: pre-training failed"})
                continue
            measure = lambda name=name, pool=pool: evaluate_features(*(f[pool] for f in features_of(name)))
            print(results.attempt(row, measure), flush=True)
    results.finish()


if __name__ == "__main__":
    main()
