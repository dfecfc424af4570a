"""Masked image modeling quality on Fashion-MNIST: MAE, SimMIM and BEiT pre-trained at the same
budget (same encoder, steps and batch, same run), their frozen features against a randomly
initialised encoder and the raw pixels under a linear probe and kNN.

    python benchmarks/quality_mim.py                                   # GPU when present: the full run
    python benchmarks/quality_mim.py --steps 150 --dvae-steps 150 --probe-train 5000 --probe-test 2000 \\
        --threads 2 --tag _cpu                                         # the CPU-budget run (~25 min, 2 cores)
    python benchmarks/quality_mim.py --smoke                           # seconds: every stage on a few images

Models: ``mae_vit_fashion_mnist``, ``simmim_vit_fashion_mnist`` and ``beit_fashion_mnist`` share the
encoder (28 x 28 grey, 4 x 4 patches -> 49 tokens; 128 wide, 4 blocks, 4 heads; SimMIM and BEiT add
LayerScale, BEiT a shared relative position bias instead of absolute positions). MAE trains on its
augmentation (crop 0.2-1, flip, mask 0.75), SimMIM on the same crops (random masks of 60% of the
patches), BEiT on the resized images (block masks of 40%) whose codes a ``dvae_fashion_mnist``
tokenizer, trained first for ``--dvae-steps`` (reported apart: BEiT's extra cost), gives. Every
model takes ``--steps`` steps of ``--batch-size`` images through the Trainer. Probes: features of
``--probe-train`` training and ``--probe-test`` held-out test images, the patch mean of the
encoder's normed output and of the middle block before the final norm (SimMIM's and BEiT's probe
layer), through the L-BFGS linear probe and weighted kNN (k=20). Results:
benchmarks/results/quality_mim<tag>.json and .md, rewritten after every stage.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from harness import Results, probe_table, report_head, run_info
from torch.utils.data import Subset

from fastpretrain.data.image_masking import MaskedImages
from fastpretrain.data.image_transforms import RandomResizedCropFlip, Resize
from fastpretrain.data.images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, fashion_mnist
from fastpretrain.data.visual_tokens import TokenizedImages, cached_tokens
from fastpretrain.eval.probe import evaluate_features, extract_features
from fastpretrain.models import create_model
from fastpretrain.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"mae": "mae_vit_fashion_mnist", "simmim": "simmim_vit_fashion_mnist", "beit": "beit_fashion_mnist"}
LR = {"mae": 1.5e-3, "simmim": 1e-3, "beit": 1.5e-3, "dvae": 1e-3}


def pretrain(model, data, steps: int, args, lr: float, device) -> dict:
    """Pre-training through the Trainer: steps, images, epochs, seconds, first and last loss."""
    warmup = max(1, steps // 20)
    config = TrainConfig(out_dir=tempfile.mkdtemp(prefix="quality_mim-"), steps=steps, batch_size=args.batch_size,
                         lr=lr, min_lr=lr / 100, weight_decay=0.05, warmup_steps=warmup, seed=args.seed,
                         betas=(0.9, 0.999), log_every=max(1, steps // 20), ckpt_every=steps,
                         device=str(device))  # fmt: skip
    start = time.perf_counter()
    history = Trainer(model, data, config).fit()
    return {"steps": steps, "batch_size": args.batch_size, "epochs": steps * args.batch_size / len(data), "lr": lr,
            "seconds": round(time.perf_counter() - start, 1), "first_loss": history[0]["loss"],
            "final_loss": history[-1]["loss"]}  # fmt: skip


def markdown(result: dict) -> str:
    lines = report_head(result, "Masked image modeling on Fashion-MNIST")
    for r in result["rows"]:
        if r["stage"] == "pretrain":
            lines.append(f"- {r['model']} pre-training failed: {r['error']}" if "error" in r else
                         f"- {r['model']}: {r['steps']} steps x {r['batch_size']} images ({r['epochs']:.2f} epochs), "
                         f"lr {r['lr']}, {r['seconds']:.0f} s, loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}")  # fmt: skip
        if "codes_used" in r:
            lines.append(f"- dVAE codes: {r['codes_used']} of {r['num_tokens']} used, perplexity {r['perplexity']:.0f}, "
                         f"reconstruction MSE {r['recon_mse']:.3f} (normalised pixels; the mean image gets 1.0)")  # fmt: skip
    probe = result["probe"]
    head = f"Probes: {probe['train_images']} train / {probe['test_images']} held-out test images, patch-mean features."
    lines += ["", head, "", *probe_table(result["rows"], "layer")]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000, help="pre-training steps of each model")
    p.add_argument("--dvae-steps", type=int, default=3000, help="the tokenizer's steps (BEiT's extra budget)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--probe-train", type=int, default=60000, help="training images for the probes (random subset)")
    p.add_argument("--probe-test", type=int, default=10000, help="held-out test images scored")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="a few steps on a few images: every stage runs")
    p.add_argument("--tag", default="", help="suffix of the result files, e.g. _cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args()
    if args.smoke:
        args.steps, args.dvae_steps, args.batch_size, args.probe_train, args.probe_test = 2, 2, 16, 64, 32
        args.tag = args.tag or "_smoke"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    mean, std = list(FASHION_MNIST_MEAN), list(FASHION_MNIST_STD)
    g = torch.Generator().manual_seed(args.seed)
    plain = Resize(28, mean, std)
    train, test = fashion_mnist("train", plain), fashion_mnist("test", plain)
    augmented = fashion_mnist("train", RandomResizedCropFlip(28, mean=mean, std=std))
    subset = torch.randperm(len(train), generator=g)[: 512 if args.smoke else len(train)].tolist()
    probe_train = Subset(train, torch.randperm(len(train), generator=g)[: args.probe_train].tolist())
    probe_test = Subset(test, torch.randperm(len(test), generator=g)[: args.probe_test].tolist())
    models = {}
    for name, registered in MODELS.items():
        torch.manual_seed(args.seed)
        models[name] = create_model(registered)
    torch.manual_seed(args.seed)
    random_init = create_model(MODELS["mae"]).to(device)
    meta = {**run_info(device), "tag": args.tag, "what": "MAE / SimMIM / BEiT on Fashion-MNIST at equal steps, probes",
            "models": {n: {"name": MODELS[n], **vars(m.config)} for n, m in models.items()},
            "probe": {"train_images": len(probe_train), "test_images": len(probe_test), "knn_k": 20}}  # fmt: skip
    results = Results(args.out, f"quality_mim{args.tag}", meta, markdown)

    failed = set()
    data = {"mae": Subset(augmented, subset), "simmim": MaskedImages(Subset(augmented, subset),
                                                                      models["simmim"].config.masker())}  # fmt: skip
    for name in ("mae", "simmim"):
        row = results.attempt({"stage": "pretrain", "model": name},
                              lambda n=name: pretrain(models[n], data[n], args.steps, args, LR[n], device))  # fmt: skip
        failed |= {name} if "error" in row else set()

    def tokenizer_stage() -> dict:
        from fastpretrain.cli.dvae import codebook_stats

        torch.manual_seed(args.seed)
        dvae = create_model("dvae_fashion_mnist")
        stats = pretrain(dvae, Subset(train, subset), args.dvae_steps, args, LR["dvae"], device)
        dvae.eval()
        tokens = cached_tokens(dvae.tokenize, Subset(train, subset), tempfile.mkdtemp(prefix="quality_mim-tokens-"),
                               {"run": "quality_mim"}, device=device)  # fmt: skip
        data["beit"] = TokenizedImages(Subset(train, subset), tokens, models["beit"].config.masker())
        usage = codebook_stats(dvae, probe_test, 512, device)
        return {**stats, **usage, "num_tokens": dvae.config.num_tokens}

    row = results.attempt({"stage": "pretrain", "model": "dvae tokenizer"}, tokenizer_stage)
    if "error" in row:
        failed.add("beit")
    else:
        row = results.attempt({"stage": "pretrain", "model": "beit"},
                              lambda: pretrain(models["beit"], data["beit"], args.steps, args, LR["beit"], device))  # fmt: skip
        failed |= {"beit"} if "error" in row else set()

    encoders = {**{n: models[n].encoder.to(device) for n in ("mae", "simmim")}, "beit": models["beit"].to(device),
                "random_init": random_init.encoder, "raw_pixels": None}  # fmt: skip
    for name, encoder in encoders.items():
        for layer in (None,) if encoder is None else (None, 2):
            row = {"stage": "probe", "features": name, "layer": "pixels" if encoder is None else
                   "output (normed)" if layer is None else f"block {layer} of 4"}  # fmt: skip
            if name in failed:
                results.add({**row, "error": "not probed: pre-training failed"})
                continue
            kw = {"pool": "mean", "device": device, "layer": layer, "batch_size": 512}

            def measure(encoder=encoder, kw=kw):
                return evaluate_features(extract_features(encoder, probe_train, **kw),
                                         extract_features(encoder, probe_test, **kw), max_iter=20 if args.smoke else 300)  # fmt: skip

            print(results.attempt(row, measure), flush=True)
    results.finish()


if __name__ == "__main__":
    main()
