"""SimCLR quality on Fashion-MNIST: do the encoder's frozen features, after contrastive pre-training,
beat MAE's (same encoder, same steps and batch, same run), a randomly initialised encoder and the
raw pixels under a linear probe (and kNN)?

    python benchmarks/quality_simclr.py                                    # GPU when present: the full run
    python benchmarks/quality_simclr.py --steps 160 --probe-train 5000 --probe-test 2000 --threads 1 --tag _cpu
                                                                           # the CPU-budget run (~15 min, 2 cores)

Models: ``simclr_vit_fashion_mnist`` and ``mae_vit_fashion_mnist``, whose encoders are the same (28 x 28
grey, 4 x 4 patches -> 49 tokens; 128 wide, 4 blocks, 4 heads). SimCLR trains on two SimCLR views per
image (crop 0.08-1, flip, brightness / contrast jitter, blur; its step encodes 2 x batch images), MAE
on its own augmentation (crop 0.2-1, flip) with mask ratio 0.75, both through the Trainer for
``--steps`` steps of ``--batch-size`` images. Then ``--probe-train`` training images and ``--probe-test``
held-out test images (cls token and patch mean) go through the linear probe (L-BFGS logistic
regression) and weighted kNN (k=20). Results: benchmarks/results/quality_simclr<tag>.json and .md,
rewritten after every stage; a stage that fails is an error row.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch
from harness import Results, probe_table, report_head, run_info
from quality_mae import features, pretrain
from torch.utils.data import Subset

from fastpretrain.data.image_transforms import RandomResizedCropFlip, Resize
from fastpretrain.data.images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, fashion_mnist
from fastpretrain.data.views import SimCLRAugment, TwoViews
from fastpretrain.eval.probe import evaluate_features
from fastpretrain.models import create_model

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"simclr": "simclr_vit_fashion_mnist", "mae": "mae_vit_fashion_mnist"}


def markdown(result: dict) -> str:
    lines = report_head(result, "SimCLR vs MAE quality on Fashion-MNIST")
    for r in result["rows"]:
        if r["stage"] != "pretrain":
            continue
        if "error" in r:
            lines.append(f"- {r['model']} pre-training failed: {r['error']}")
        else:
            lines.append(f"- {r['model']}: {r['steps']} steps x {r['batch_size']} images ({r['epochs']:.2f} epochs), "
                         f"lr {r['lr']}, in {r['seconds']:.0f} s, loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}")  # fmt: skip
    probe = result["probe"]
    lines += ["", f"Probes: {probe['train_images']} train / {probe['test_images']} held-out test images (test split).",
              "", *probe_table(result["rows"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000, help="pre-training steps of each model")
    p.add_argument("--batch-size", type=int, default=256, help="images per step (SimCLR: two views of each)")
    p.add_argument("--lr", type=float, default=1e-3, help="SimCLR's peak learning rate")
    p.add_argument("--mae-lr", type=float, default=1.5e-3, help="MAE's (quality_mae.py's default)")
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--warmup-steps", type=int, default=None, help="default: 5%% of the steps")
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

    models, random_init = {}, None
    for name, registered in MODELS.items():
        torch.manual_seed(args.seed)
        extra = {"temperature": args.temperature} if name == "simclr" else {}
        models[name] = create_model(registered, **extra)
    torch.manual_seed(args.seed)
    random_init = create_model(MODELS["simclr"]).to(device)  # the same encoder, never trained
    augmented = {"simclr": fashion_mnist("train", TwoViews(SimCLRAugment(28, mean=mean, std=std))),
                 "mae": fashion_mnist("train", RandomResizedCropFlip(28, mean=mean, std=std))}  # fmt: skip
    g = torch.Generator().manual_seed(args.seed)
    plain = Resize(28, mean, std)
    train, test = fashion_mnist("train", plain), fashion_mnist("test", plain)
    train = Subset(train, torch.randperm(len(train), generator=g)[: args.probe_train].tolist())
    test = Subset(test, torch.randperm(len(test), generator=g)[: args.probe_test].tolist())
    what = "SimCLR and MAE pre-training on Fashion-MNIST, then frozen-feature linear probe / kNN vs random init and raw pixels"
    meta = {**run_info(device), "tag": args.tag, "what": what,
            "models": {name: {"name": MODELS[name], **vars(m.config)} for name, m in models.items()},
            "encoder_params": models["simclr"].encoder.num_params(),
            "probe": {"train_images": len(train), "test_images": len(test), "knn_k": 20}}  # fmt: skip
    results = Results(args.out, f"quality_simclr{args.tag}", meta, markdown)

    failed = set()
    for name, model in models.items():
        run = argparse.Namespace(**{**vars(args), "lr": args.lr if name == "simclr" else args.mae_lr})
        row = results.attempt({"stage": "pretrain", "model": name}, lambda m=model, n=name, r=run: pretrain(
            m, augmented[n], r, device))  # fmt: skip
        if "error" in row:
            failed.add(name)
    encoders = {"simclr": models["simclr"].encoder.to(device), "mae": models["mae"].encoder.to(device),
                "random_init": random_init.encoder, "raw_pixels": None}  # fmt: skip

    @functools.lru_cache(maxsize=1)  # one encoder's features at a time: its pools are probed in a row
    def features_of(name: str) -> tuple[dict, dict]:
        return features(encoders[name], train, device), features(encoders[name], test, device)

    for name in encoders:
        for pool in ("pixels",) if name == "raw_pixels" else ("cls", "mean"):
            row = {"stage": "probe", "features": name, "pool": pool}
            if name in failed:
                results.add({**row, "error": "not probed: pre-training failed"})
                continue
            measure = lambda name=name, pool=pool: evaluate_features(*(f[pool] for f in features_of(name)))
            print(results.attempt(row, measure), flush=True)
    results.finish()


if __name__ == "__main__":
    main()
