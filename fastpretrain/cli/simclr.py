"""``fastpretrain simclr train|eval``: SimCLR on images: MAE's data sources and probe evaluation,
with SimCLR's augmentation pair (crop, flip, colour jitter, blur) drawn in the data loader."""

from __future__ import annotations

import argparse
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least
from fastpretrain.cli.errors import renamed
from fastpretrain.cli.images import add_image_flags, normalisation, train_images
from fastpretrain.cli.mae import MAECommand
from fastpretrain.cli.model_command import TrainData
from fastpretrain.models import SimCLR


class SimCLRCommand(MAECommand):
    name, model_class, default_model = "simclr", SimCLR, "simclr_vit_fashion_mnist"
    help = "pre-train and evaluate SimCLR (contrastive learning of two augmented views)"
    train_help = ("pre-train SimCLR; checkpoints through the Trainer, then model.safetensors and config.json in "
                  "--out-dir")  # fmt: skip
    eval_help = ("linear-probe and kNN accuracy of the encoder's frozen features, next to a randomly initialised "
                 "encoder of the same size and the raw pixels")  # fmt: skip
    recipe: ClassVar[dict] = {"out_dir": "runs/simclr", "lr": 1e-3, "weight_decay": 0.1, "warmup_steps": 10}
    model_help: ClassVar[dict] = {
        "img_size": "image side in pixels (views are cropped and resized to it)", "patch_size": "patch side in pixels",
        "in_chans": "image channels", "embed_dim": "encoder width", "depth": "encoder blocks",
        "num_heads": "encoder attention heads", "mlp_ratio": "MLP hidden width over block width",
        "qkv_bias": "biases in the q, k, v projections", "pos_embed": "absolute positions: learn or sincos",
        "layer_norm_eps": "LayerNorm epsilon", "pool": "the representation: cls token or patch mean",
        "proj_hidden": "projection head hidden width", "proj_dim": "projection (loss) dimension",
        "temperature": "NT-Xent temperature",
    }  # fmt: skip

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        group = p.add_argument_group("data")
        add_image_flags(group)
        group.add_argument("--crop-scale", type=float, nargs=2, default=(0.08, 1.0), metavar=("LOW", "HIGH"),
                           help="crop area range (default 0.08 1.0, SimCLR's)")  # fmt: skip
        group.add_argument("--jitter", type=at_least(0.0, float), default=0.5,
                           help="colour jitter strength (SimCLR's s: 1.0 on ImageNet, 0.5 on CIFAR; default 0.5)")  # fmt: skip
        group.add_argument("--blur", type=at_least(0.0, float, high=1.0), default=0.5,
                           help="probability of the Gaussian blur (default 0.5)")  # fmt: skip

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data.views import SimCLRAugment, TwoViews

        mean, std = normalisation(args.data, config.in_chans, args.mean, args.std)
        with renamed("--crop-scale", "scale"):
            augment = SimCLRAugment(config.img_size, scale=tuple(args.crop_scale), strength=args.jitter,
                                    blur=args.blur, mean=mean, std=std)  # fmt: skip
        dataset = train_images(args, config.in_chans, TwoViews(augment))
        line = (f"data         {args.data}: {len(dataset):,} images, two SimCLR views each (crop {args.crop_scale[0]}"
                f"-{args.crop_scale[1]}, jitter {args.jitter}, blur p {args.blur}), mean {mean} std {std}")  # fmt: skip
        return TrainData(dataset, run={"mean": mean, "std": std, "data": str(args.data)}, lines=(line,))

    def describe(self, model: SimCLR) -> str:
        c = model.config
        return (f" ({model.encoder.num_params() / 1e6:.2f}M in the encoder), {model.encoder.num_patches} patches of "
                f"{c.patch_size}, head {c.embed_dim}-{c.proj_hidden}-{c.proj_dim}, temperature {c.temperature}")  # fmt: skip

    def evaluate(self, args: argparse.Namespace, model: SimCLR, run: dict, device: torch.device) -> None:
        if args.reconstruction:
            raise ValueError("--reconstruction: SimCLR has no decoder to reconstruct images with")
        super().evaluate(args, model, run, device)


add_commands = SimCLRCommand().add_commands
