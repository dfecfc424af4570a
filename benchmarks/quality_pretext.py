"""CNN pretext tasks on Fashion-MNIST: do a context encoder's (inpainting: L2, L2 + adversarial)
and the colorization-style bin predictor's frozen encoder features beat a randomly initialised
encoder of the same size and the raw pixels under a linear probe (and kNN), beside MAE's?

    python benchmarks/quality_pretext.py                                   # GPU when present: the full run, MAE included
    python benchmarks/quality_pretext.py --steps 160 --probe-train 5000 --probe-test 2000 --threads 1 --no-mae --tag _cpu
                                                                           # the CPU-budget run (MAE: quality_mae_cpu.md)
    python benchmarks/quality_pretext.py --smoke                           # seconds: every stage on a few images

Tasks: ``inpaint`` (``inpaint_cnn_fashion_mnist``: the central 14 x 14 square, L2), ``inpaint_adv``
(the same + the adversarial term, 0.999 / 0.001), ``colorize`` (``colorize_cnn_fashion_mnist``: 16
k-means intensity bins of blocks hiding 40% of the image, rebalanced cross-entropy); all on the
same conv encoder (3 stride-2 stages, 32-64-128 wide, 0.29M parameters; features: the last map
mean-pooled, 128-d). Each trains through the Trainer for ``--steps`` steps of ``--batch-size`` images
with MAE's augmentation (random resized crop 0.2-1, flip). With ``--mae`` (default) MAE
(``mae_vit_fashion_mnist``, as benchmarks/quality_mae.py) trains the same steps in the same run.
Held out: each task's own loss on the probe's test images (fixed masks) next to the trivial
answer (filling the mean; for the bins, the hidden pixels' own bin frequencies as a constant
prediction and, for accuracy, the training pixels' most frequent bin). Probes: ``--probe-train`` training images and
``--probe-test`` test images (the same subsets as quality_mae.py's for the same sizes and seed),
linear probe (L-BFGS logistic regression) and weighted kNN (k=20), the shared probe code.
Results: benchmarks/results/quality_pretext<tag>.json and .md, rewritten after every stage; a
stage that fails is an error row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from harness import Results, probe_table, report_head, run_info
from quality_mae import pretrain
from torch.utils.data import Subset

from fastpretrain.data.image_masking import MaskedImages
from fastpretrain.data.image_transforms import RandomResizedCropFlip, Resize
from fastpretrain.data.images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, fashion_mnist
from fastpretrain.eval.pretext import pretext_scores
from fastpretrain.eval.probe import evaluate_features, extract_features
from fastpretrain.models import create_model

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"inpaint": "inpaint_cnn_fashion_mnist", "inpaint_adv": "inpaint_cnn_adv_fashion_mnist",
         "colorize": "colorize_cnn_fashion_mnist"}  # fmt: skip


def markdown(result: dict) -> str:
    lines = report_head(result, "CNN pretext tasks on Fashion-MNIST")
    for r in result["rows"]:
        if r["stage"] != "pretrain":
            continue
        if "error" in r:
            lines.append(f"- {r['model']} pre-training failed: {r['error']}")
            continue
        line = (f"- {r['model']}: {r['steps']} steps x {r['batch_size']} images ({r['epochs']:.2f} epochs), lr {r['lr']}, "
                f"in {r['seconds']:.0f} s, loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}")  # fmt: skip
        if "heldout_loss" in r:
            what, trivial = (("rebalanced CE", "the bins' frequencies as a constant prediction") if "heldout_acc" in r
                             else ("region L2", "filling the mean"))  # fmt: skip
            line += f"; held-out {what} {r['heldout_loss']:.3f} vs {r['heldout_trivial']:.3f} ({trivial})"
        if "heldout_acc" in r:
            line += f", hidden-pixel bin accuracy {r['heldout_acc']:.1%} vs {r['heldout_majority_acc']:.1%} (the most frequent bin)"
        lines.append(line)
    probe = result["probe"]
    lines += ["", f"Probes: {probe['train_images']} train / {probe['test_images']} held-out test images (test split).",
              "", *probe_table(result["rows"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--steps", type=int, default=3000, help="pre-training steps of each model")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3, help="the CNNs' peak learning rate (AdamW)")
    p.add_argument("--mae", action=argparse.BooleanOptionalAction, default=True, help="also MAE, same steps")
    p.add_argument("--mae-lr", type=float, default=1.5e-3, help="MAE's (quality_mae.py's default)")
    p.add_argument("--warmup-steps", type=int, default=None, help="default: 5%% of the steps")
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
        args.steps, args.batch_size, args.probe_train, args.probe_test = 2, 16, 64, 32
        args.tag = args.tag or "_smoke"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    mean, std = list(FASHION_MNIST_MEAN), list(FASHION_MNIST_STD)
    g = torch.Generator().manual_seed(args.seed)
    plain = Resize(28, mean, std)
    train, test = fashion_mnist("train", plain), fashion_mnist("test", plain)
    probe_train = Subset(train, torch.randperm(len(train), generator=g)[: args.probe_train].tolist())
    probe_test = Subset(test, torch.randperm(len(test), generator=g)[: args.probe_test].tolist())
    augmented = fashion_mnist("train", RandomResizedCropFlip(28, mean=mean, std=std))
    if args.smoke:
        augmented = Subset(augmented, range(256))
    names = {**{t: TASKS[t] for t in args.tasks}, **({"mae": "mae_vit_fashion_mnist"} if args.mae else {})}
    models = {}
    for name, registered in names.items():
        torch.manual_seed(args.seed)
        models[name] = create_model(registered)
    torch.manual_seed(args.seed)
    random_init = create_model(TASKS["inpaint"]).to(device)  # the conv encoder all tasks share, never trained
    meta = {**run_info(device), "tag": args.tag, "what": "CNN pretext tasks (inpainting, colorization-style bins) "
            "on Fashion-MNIST, frozen-feature probes vs random init, raw pixels and MAE",
            "models": {n: {"name": names[n], **vars(m.config)} for n, m in models.items()},
            "encoder_params": random_init.encoder.num_params(),
            "probe": {"train_images": len(probe_train), "test_images": len(probe_test), "knn_k": 20}}  # fmt: skip
    results = Results(args.out, f"quality_pretext{args.tag}", meta, markdown)

    failed = set()
    for name, model in models.items():
        def stage(name=name, model=model) -> dict:
            if name == "mae":
                return pretrain(model, augmented, argparse.Namespace(**{**vars(args), "lr": args.mae_lr}), device)
            if name == "colorize":  # bins: k-means of 2,000 training images' pixels, on the device
                model.to(device).fit_bins_to(train, 200 if args.smoke else 2000)
            stats = pretrain(model, MaskedImages(augmented, model.config.masker()), args, device)
            return {**stats, **pretext_scores(model.to(device), probe_test, device=device, seed=args.seed)}

        row = results.attempt({"stage": "pretrain", "model": name}, stage)
        failed |= {name} if "error" in row else set()

    encoders = {**{n: m.encoder.to(device) for n, m in models.items()}, "random_init": random_init.encoder,
                "raw_pixels": None}  # fmt: skip
    for name, encoder in encoders.items():
        pools = ("pixels",) if encoder is None else ("cls", "mean") if name == "mae" else ("mean",)
        for pool in pools:
            row = {"stage": "probe", "features": name, "pool": pool}
            if name in failed:
                results.add({**row, "error": "not probed: pre-training failed"})
                continue
            kw = {"pool": "mean" if pool == "pixels" else pool, "device": device, "batch_size": 512}

            def measure(encoder=encoder, kw=kw):
                return evaluate_features(extract_features(encoder, probe_train, **kw),
                                         extract_features(encoder, probe_test, **kw), max_iter=20 if args.smoke else 300)  # fmt: skip

            print(results.attempt(row, measure), flush=True)
    results.finish()


if __name__ == "__main__":
    main()
