"""``fastpretrain mae train|eval``."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastpretrain.cli.args import at_least

_MAE_SIZES = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "decoder_embed_dim",
              "decoder_depth", "decoder_num_heads")  # fmt: skip


def _normalisation(data: str, in_chans: int, mean, std) -> tuple[list[float], list[float]]:
    """The per-channel mean/std given, else Fashion-MNIST's, ImageNet's (3 channels) or 0.5/0.5."""
    from fastpretrain.data.images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, IMAGENET_MEAN, IMAGENET_STD

    if mean is not None and std is not None:
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError(f"mean, std: expected {in_chans} values each (in_chans), got {len(mean)} and {len(std)}")
        return list(mean), list(std)
    if data == "fashion-mnist" and in_chans == 1:
        return list(FASHION_MNIST_MEAN), list(FASHION_MNIST_STD)
    if in_chans == 3:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    return [0.5] * in_chans, [0.5] * in_chans


def _limit(dataset, n: int | None, seed: int):
    """A seeded random subset of n items (all when n is None or too large)."""
    import torch
    from torch.utils.data import Subset

    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].tolist())


def _mae_train(args: argparse.Namespace) -> None:
    """Pre-train a masked autoencoder; checkpoints through the Trainer, then model.safetensors and
    config.json in --out-dir."""
    from dataclasses import asdict

    import torch

    from fastpretrain.data.images import RandomResizedCropFlip, Resize, image_dataset
    from fastpretrain.models import MAE, model_config
    from fastpretrain.models.registry import write_config
    from fastpretrain.train import TrainConfig, Trainer, cleanup, is_main, latest

    overrides = {k: getattr(args, k) for k in _MAE_SIZES if getattr(args, k) is not None}
    config = model_config(args.model, mask_ratio=args.mask_ratio, norm_pix_loss=args.norm_pix_loss, **overrides)
    train_config = TrainConfig.from_args(args)  # checks the flags before any data is read
    mean, std = _normalisation(args.data, config.in_chans, args.mean, args.std)
    transform = (RandomResizedCropFlip(config.img_size, scale=tuple(args.crop_scale), mean=mean, std=std)
                 if args.augment else Resize(config.img_size, mean, std))  # fmt: skip
    dataset = _limit(image_dataset(args.data, "train", transform, channels=config.in_chans), args.max_images, args.seed)
    torch.manual_seed(args.seed)
    model = MAE(config)
    if is_main():
        print(
            f"mae          {args.model}: {model.encoder.num_params() / 1e6:.2f} M encoder + "
            f"{(sum(p.numel() for p in model.parameters()) - model.encoder.num_params()) / 1e6:.2f} M decoder "
            f"parameters, {model.num_patches} patches of {config.patch_size}, mask ratio {config.mask_ratio}"
        )
        print(
            f"data         {args.data}: {len(dataset):,} images, {'augmented' if args.augment else 'resized'}, "
            f"mean {mean} std {std}"
        )
    try:
        trainer = Trainer(model, dataset, train_config, model_config=asdict(config))  # refuses a changed --resume
        if is_main():
            write_config(Path(args.out_dir) / "config.json", config, mean=mean, std=std, data=str(args.data))
        history = trainer.fit()
        if is_main():
            final = MAE(config)
            from safetensors.torch import load_file

            final.load_state_dict(load_file(latest(args.out_dir) / "model.safetensors"))
            path = final.save_pretrained(args.out_dir)
            loss = f"final loss {history[-1]['loss']:.4f}, " if history else ""
            print(f"trained      {loss}saved {path}")
    finally:
        cleanup()


def _eval_splits(data: str, transform, channels: int, test_fraction: float, seed: int):
    """(train, test): the source's own splits (fashion-mnist, folders with train/ and test/ or val/),
    else a seeded random split holding out ``test_fraction``."""
    import torch
    from torch.utils.data import Subset

    from fastpretrain.data.images import image_dataset

    path = Path(data)
    if data == "fashion-mnist" or (path.is_dir() and (path / "train").is_dir()):
        return image_dataset(data, "train", transform, channels), image_dataset(data, "test", transform, channels)
    full = image_dataset(data, "train", transform, channels)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed)).tolist()
    n_test = max(1, round(len(full) * test_fraction))
    if n_test >= len(full):
        raise ValueError(f"test_fraction: {test_fraction} leaves no training images of {len(full)}")
    return Subset(full, perm[n_test:]), Subset(full, perm[:n_test])


def _mae_eval(args: argparse.Namespace) -> None:
    """Linear-probe and kNN accuracy of a pre-trained MAE encoder on frozen features, next to a
    randomly initialised encoder of the same size and the raw pixels; optionally a reconstruction grid."""
    import json

    import torch

    from fastpretrain.data.images import Resize
    from fastpretrain.eval.probe import evaluate_features, extract_features
    from fastpretrain.eval.visualize import save_reconstruction_grid
    from fastpretrain.models import MAE

    model = MAE.from_pretrained(args.checkpoint)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    config = model.config
    saved = Path(args.checkpoint)
    saved = saved if saved.is_dir() else saved.parent
    extras = next((json.loads(p.read_text()) for p in (saved / "config.json", saved.parent.parent / "config.json")
                   if p.is_file()), {})  # fmt: skip
    mean, std = (args.mean, args.std) if args.mean is not None else (extras.get("mean"), extras.get("std"))
    mean, std = _normalisation(args.data, config.in_chans, mean, std)
    train, test = _eval_splits(
        args.data, Resize(config.img_size, mean, std), config.in_chans, args.test_fraction, args.seed
    )
    train, test = _limit(train, args.max_train, args.seed), _limit(test, args.max_test, args.seed + 1)
    print(
        f"data         {args.data}: probe on {len(train):,} train / {len(test):,} held-out test images, "
        f"{args.pool} pooling"
    )
    encoders = [("mae", model)]
    if args.baselines:
        torch.manual_seed(args.seed)
        encoders += [("random init", MAE(config).to(device)), ("raw pixels", None)]
    print(f"{'features':<14} {'linear probe':>12} {f'kNN k={args.k}':>10}")
    results = {}
    for name, encoder in encoders:
        kw = dict(pool=args.pool, batch_size=args.batch_size, device=device)
        scores = evaluate_features(extract_features(encoder, train, **kw), extract_features(encoder, test, **kw),
                                   k=args.k, max_iter=args.probe_iters)  # fmt: skip
        results[name] = scores
        print(f"{name:<14} {scores['linear']:>12.2%} {scores['knn']:>10.2%}")
    if args.reconstruction:
        images = torch.stack([test[i][0] for i in range(min(args.num_images, len(test)))])
        path = save_reconstruction_grid(model, images, args.reconstruction, mean=mean, std=std, seed=args.seed)
        print(f"reconstruction grid (original / masked / reconstruction): {path}")
    if args.json:
        from fastpretrain.atomic import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump(
                {"checkpoint": str(args.checkpoint), "data": args.data, "pool": args.pool, "results": results},
                f,
                indent=2,
            )


def add_commands(sub: argparse._SubParsersAction) -> None:
    from fastpretrain.models import list_models
    from fastpretrain.train.config import add_train_args

    mae = sub.add_parser("mae", help="pre-train and evaluate masked autoencoders (MAE)")
    actions = mae.add_subparsers(title="actions", metavar="<action>", required=True)
    data_help = (
        "'fashion-mnist' (../shared/data or $FASTPRETRAIN_DATA), an image folder, an IDX images file, or .npy/.npz"
    )
    p = actions.add_parser("train", help="pre-train an MAE on images", description=_mae_train.__doc__)
    p.add_argument("--data", default="fashion-mnist", help=data_help + " (default fashion-mnist)")
    p.add_argument(
        "--model", choices=list_models("mae_*"), default="mae_vit_fashion_mnist", help="size (default %(default)s)"
    )
    for name in _MAE_SIZES:
        p.add_argument(
            "--" + name.replace("_", "-"), type=at_least(1), default=None, help=f"override the size's {name}"
        )
    p.add_argument("--mask-ratio", type=float, default=0.75, help="fraction of patches masked (default 0.75)")
    p.add_argument(
        "--norm-pix-loss",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="regress per-patch normalised pixels (MAE's better-features option)",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="random resized crop + horizontal flip (default on)",
    )
    p.add_argument("--crop-scale", type=float, nargs=2, default=(0.2, 1.0), help="crop area range (default 0.2 1.0)")
    p.add_argument("--mean", type=float, nargs="+", default=None, help="per-channel normalisation mean")
    p.add_argument("--std", type=float, nargs="+", default=None, help="per-channel normalisation std")
    p.add_argument("--max-images", type=at_least(1), default=None, help="train on a seeded random subset of N images")
    add_train_args(p)
    p.set_defaults(run=_mae_train, out_dir="runs/mae", weight_decay=0.05, lr=1.5e-4, warmup_steps=0)
    p = actions.add_parser("eval", help="linear probe and kNN on frozen features", description=_mae_eval.__doc__)
    p.add_argument("checkpoint", help="a run folder (model.safetensors + config.json), the file, or checkpoints/step_N")
    p.add_argument("--data", default="fashion-mnist", help=data_help + " (default fashion-mnist)")
    p.add_argument("--pool", choices=("cls", "mean"), default="cls", help="features: the cls token or the patch mean")
    p.add_argument(
        "--max-train", type=at_least(1), default=10000, help="probe on a random N train images (default 10000)"
    )
    p.add_argument("--max-test", type=at_least(1), default=None, help="score on a random N test images (default all)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held out when the data has no test split")
    p.add_argument("--k", type=at_least(1), default=20, help="kNN neighbours (default 20)")
    p.add_argument("--probe-iters", type=at_least(1), default=300, help="L-BFGS iterations of the linear probe")
    p.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also a randomly initialised encoder and the raw pixels (default on)",
    )
    p.add_argument("--reconstruction", default=None, help="write a PNG grid of test reconstructions here")
    p.add_argument("--num-images", type=at_least(1), default=8, help="images in the reconstruction grid")
    p.add_argument("--mean", type=float, nargs="+", default=None, help="normalisation mean (default: the run's)")
    p.add_argument("--std", type=float, nargs="+", default=None, help="normalisation std (default: the run's)")
    p.add_argument("--batch-size", type=at_least(1), default=256)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the accuracies to this JSON file")
    p.set_defaults(run=_mae_eval)
