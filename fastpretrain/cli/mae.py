"""``fastpretrain mae train|eval``: MAE on images, on the shared model command skeleton."""

from __future__ import annotations

import argparse
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least
from fastpretrain.cli.errors import renamed
from fastpretrain.cli.images import DATA_HELP, add_image_flags, eval_splits, limit, normalisation, train_images
from fastpretrain.cli.model_command import ModelCommand, TrainData
from fastpretrain.models import MAE

POOL_HELP = {"cls": "the cls token", "mean": "the patch mean (a CNN: its feature map's mean)"}


class MAECommand(ModelCommand):
    name, model_class, default_model = "mae", MAE, "mae_vit_fashion_mnist"
    help = "pre-train and evaluate masked autoencoders (MAE)"
    train_help = ("pre-train a masked autoencoder; checkpoints through the Trainer, then model.safetensors and "
                  "config.json in --out-dir")  # fmt: skip
    eval_help = ("linear-probe and kNN accuracy of the encoder's frozen features, next to a randomly initialised "
                 "encoder of the same size and the raw pixels; optionally a reconstruction grid")  # fmt: skip
    reconstructs = True  # eval draws a reconstruction grid (--reconstruction)
    pools: ClassVar[tuple[str, ...]] = ("cls", "mean")  # eval's --pool choices, the first the default
    recipe: ClassVar[dict] = {"out_dir": "runs/mae", "lr": 1.5e-4, "weight_decay": 0.05, "warmup_steps": 0}
    model_help: ClassVar[dict] = {
        "img_size": "image side in pixels (images are cropped or resized to it)", "patch_size": "patch side in pixels",
        "in_chans": "image channels", "embed_dim": "encoder width", "depth": "encoder blocks",
        "num_heads": "encoder attention heads", "decoder_embed_dim": "decoder width", "decoder_depth": "decoder blocks",
        "decoder_num_heads": "decoder attention heads", "mlp_ratio": "MLP hidden width over block width",
        "mlp_hidden": "the encoder's MLP hidden width exactly (default: embed_dim x mlp_ratio)",
        "decoder_mlp_hidden": "the decoder's MLP hidden width exactly (default: decoder_embed_dim x mlp_ratio)",
        "qkv_bias": "biases in the q, k, v projections", "layer_norm_eps": "LayerNorm epsilon",
        "mask_ratio": "fraction of patches masked, in [0, 1)",
        "norm_pix_loss": "regress per-patch normalised pixels (MAE's better-features option)",
    }  # fmt: skip

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        group = p.add_argument_group("data")
        add_image_flags(group)
        group.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                           help="random resized crop + horizontal flip (default on)")  # fmt: skip
        group.add_argument("--crop-scale", type=float, nargs=2, default=(0.2, 1.0), metavar=("LOW", "HIGH"),
                           help="crop area range (default 0.2 1.0)")  # fmt: skip

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data.image_transforms import RandomResizedCropFlip, Resize

        mean, std = normalisation(args.data, config.in_chans, args.mean, args.std)
        with renamed("--crop-scale", "scale"):
            transform = (RandomResizedCropFlip(config.img_size, scale=tuple(args.crop_scale), mean=mean, std=std)
                         if args.augment else Resize(config.img_size, mean, std))  # fmt: skip
        dataset = train_images(args, config.in_chans, transform)
        line = (f"data         {args.data}: {len(dataset):,} images, {'augmented' if args.augment else 'resized'}, "
                f"mean {mean} std {std}")  # fmt: skip
        return TrainData(dataset, run={"mean": mean, "std": std, "data": str(args.data)}, lines=(line,))

    def describe(self, model: MAE) -> str:
        c = model.config
        return (f" ({model.encoder.num_params() / 1e6:.2f}M in the encoder), {model.num_patches} patches of "
                f"{c.patch_size}, mask ratio {c.mask_ratio}")  # fmt: skip

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default="fashion-mnist", help=DATA_HELP + " (default fashion-mnist)")
        p.add_argument("--pool", choices=self.pools, default=self.pools[0],
                       help=f"features: {' or '.join(POOL_HELP[k] for k in self.pools)} (default %(default)s)")  # fmt: skip
        p.add_argument("--max-train", type=at_least(1), default=10000,
                       help="probe on a random N train images (default 10000)")  # fmt: skip
        p.add_argument("--max-test", type=at_least(1), default=None,
                       help="score on a random N test images (default all)")  # fmt: skip
        p.add_argument("--test-fraction", type=at_least(0.0, float, high=1.0), default=0.2,
                       help="held out when the data has no test split (default 0.2)")  # fmt: skip
        p.add_argument("--k", type=at_least(1), default=20, help="kNN neighbours (default 20)")
        p.add_argument("--probe-iters", type=at_least(1), default=300,
                       help="L-BFGS iterations of the linear probe (default 300)")  # fmt: skip
        p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                       help="also a randomly initialised encoder and the raw pixels (default on)")  # fmt: skip
        if self.reconstructs:
            p.add_argument("--reconstruction", default=None, help="write a PNG grid of test reconstructions here")
        p.add_argument("--num-images", type=at_least(1), default=8,
                       help="images in the reconstruction grid (default 8)")  # fmt: skip
        p.add_argument("--mean", type=float, nargs="+", default=None, help="normalisation mean (default: the run's)")
        p.add_argument("--std", type=float, nargs="+", default=None, help="normalisation std (default: the run's)")
        p.add_argument("--batch-size", type=at_least(1), default=256, help="images per forward (default 256)")
        p.add_argument("--seed", type=at_least(0), default=0, help="seed of the subsets and the baseline (default 0)")
        p.add_argument("--json", default=None, help="also write the accuracies to this JSON file")

    def probe_layer(self, args: argparse.Namespace, model) -> int | None:
        """The encoder block whose tokens the probes read before the final norm; None: the encoder's output."""
        return None

    def held_out(self, args: argparse.Namespace, model, test, device: torch.device) -> dict:
        """The model's own held-out metrics on the test images (printed here; kept in --json)."""
        return {}

    def evaluate(self, args: argparse.Namespace, model: MAE, run: dict, device: torch.device) -> None:
        import json

        from fastpretrain.atomic import atomic_write, check_writable
        from fastpretrain.data.image_transforms import Resize
        from fastpretrain.eval.probe import evaluate_features, extract_features
        from fastpretrain.eval.visualize import save_reconstruction_grid

        for name in ("reconstruction", "json"):  # before the long part, not after it
            if getattr(args, name, None):
                check_writable(f"--{name}", getattr(args, name))
        config = model.config
        given = args.mean is not None or args.std is not None
        mean, std = (args.mean, args.std) if given else (run.get("mean"), run.get("std"))
        mean, std = normalisation(args.data, config.in_chans, mean, std)
        with renamed("--data", "data", "path", "source"):
            train, test = eval_splits(args.data, Resize(config.img_size, mean, std), config.in_chans,
                                       args.test_fraction, args.seed)  # fmt: skip
        train, test = limit(train, args.max_train, args.seed), limit(test, args.max_test, args.seed + 1)
        print(f"data         {args.data}: probe on {len(train):,} train / {len(test):,} held-out test images, "
              f"{args.pool} pooling")  # fmt: skip
        layer = self.probe_layer(args, model)
        if layer is not None:
            print(f"features     block {layer} of {len(model.encoder.blocks)}, before the final norm")
        encoders = [(self.name, model)]
        if args.baselines:
            torch.manual_seed(args.seed)
            encoders += [("random init", self.model_class(config).to(device)), ("raw pixels", None)]
        print(f"{'features':<14} {'linear probe':>12} {f'kNN k={args.k}':>10}")
        results = {}
        for name, encoder in encoders:
            kw = {"pool": args.pool, "batch_size": args.batch_size, "device": device,
                  "layer": None if encoder is None else layer}  # fmt: skip
            scores = evaluate_features(extract_features(encoder, train, **kw), extract_features(encoder, test, **kw),
                                       k=args.k, max_iter=args.probe_iters)  # fmt: skip
            results[name] = scores
            print(f"{name:<14} {scores['linear']:>12.2%} {scores['knn']:>10.2%}")
        results.update(self.held_out(args, model, test, device))
        if getattr(args, "reconstruction", None):
            images = torch.stack([test[i][0] for i in range(min(args.num_images, len(test)))])
            path = save_reconstruction_grid(model, images, args.reconstruction, mean=mean, std=std, seed=args.seed)
            print(f"reconstruction grid (original / masked / reconstruction): {path}")
        if args.json:
            with atomic_write(args.json, "w") as f:
                summary = {"checkpoint": str(args.checkpoint), "data": args.data, "pool": args.pool, "layer": layer,
                           "results": results}  # fmt: skip
                json.dump(summary, f, indent=2)


add_commands = MAECommand().add_commands
