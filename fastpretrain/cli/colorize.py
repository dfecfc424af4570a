"""``fastpretrain colorize train|eval``: colorization-style bin prediction on (greyscale) images:
the inpainting command's data and evaluation, the bins fitted by k-means to training pixels before
the first step, and the held-out bin accuracy in eval."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least
from fastpretrain.cli.inpaint import CONV_HELP, InpaintCommand
from fastpretrain.cli.model_command import TrainData
from fastpretrain.models import IntensityColorizer


class ColorizeCommand(InpaintCommand):
    name, model_class, default_model = "colorize", IntensityColorizer, "colorize_cnn_fashion_mnist"
    help = "pre-train and evaluate colorization-style prediction (intensity bins of hidden regions)"
    train_help = ("pre-train a bin predictor (bins: k-means of training pixels); checkpoints through the Trainer, "
                  "then model.safetensors and config.json in --out-dir")  # fmt: skip
    recipe: ClassVar[dict] = {"out_dir": "runs/colorize", "lr": 1e-3, "weight_decay": 0.05, "warmup_steps": 10}
    model_help: ClassVar[dict] = {
        **CONV_HELP, "num_bins": "intensity bins (classes; k-means centres of training pixels)",
        "rebalance": "Zhang et al.'s lambda: class weights 1 / ((1 - lambda) p + lambda / bins); 1 = none",
        "temperature": "annealed-mean temperature when decoding bins to intensities",
    }  # fmt: skip
    trivial = "the bins' frequencies"

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        super().add_data_flags(p)
        p.add_argument("--bin-images", type=at_least(1), default=2000,
                       help="un-augmented training images whose pixels fit the bins (default 2000)")  # fmt: skip

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.cli.images import normalisation, train_images
        from fastpretrain.data.image_transforms import Resize

        data = super().data(args, config)
        mean, std = normalisation(args.data, config.in_chans, args.mean, args.std)
        plain = train_images(args, config.in_chans, Resize(config.img_size, mean, std))
        n = min(args.bin_images, len(plain))
        line = (f"bins         {config.num_bins} k-means intensity bins of {n:,} training images' pixels, "
                f"rebalance lambda {config.rebalance}")  # fmt: skip
        return replace(data, lines=(*data.lines, line), extras={**data.extras, "bin_images": (plain, n)})

    def build(self, config, data: TrainData) -> IntensityColorizer:
        """The model with its bins fitted (a resumed run's checkpoint then loads its own)."""
        return IntensityColorizer(config).fit_bins_to(*data.extras["bin_images"])

    def held_out(self, args: argparse.Namespace, model, test, device: torch.device) -> dict:
        scores = super().held_out(args, model, test, device)
        s = scores["held_out"]
        print(f"held-out     hidden-pixel bin accuracy {s['heldout_acc']:.2%} vs {s['heldout_majority_acc']:.2%} "
              "(the most frequent bin)")  # fmt: skip
        return scores


add_commands = ColorizeCommand().add_commands
