"""``fastpretrain simmim train|eval``: SimMIM on images, MAE's data and evaluation with SimMIM's
masks drawn in the data loader and its probe on an intermediate block."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import ClassVar

from fastpretrain.cli.args import at_least
from fastpretrain.cli.mae import MAECommand
from fastpretrain.cli.model_command import TrainData
from fastpretrain.models import SimMIM


class SimMIMCommand(MAECommand):
    name, model_class, default_model = "simmim", SimMIM, "simmim_vit_fashion_mnist"
    help = "pre-train and evaluate SimMIM (masked image modeling on raw pixels)"
    train_help = ("pre-train SimMIM; checkpoints through the Trainer, then model.safetensors and config.json in "
                  "--out-dir")  # fmt: skip
    eval_help = ("linear-probe and kNN accuracy of an encoder block's frozen features (before the final norm), next "
                 "to a randomly initialised encoder of the same size and the raw pixels; optionally a reconstruction "
                 "grid")  # fmt: skip
    recipe: ClassVar[dict] = {"out_dir": "runs/simmim", "lr": 5e-4, "weight_decay": 0.05, "warmup_steps": 0,
                              "betas": (0.9, 0.999)}  # fmt: skip
    model_help: ClassVar[dict] = {
        "img_size": "image side in pixels (images are cropped or resized to it)", "patch_size": "patch side in pixels",
        "in_chans": "image channels", "embed_dim": "encoder width", "depth": "encoder blocks",
        "num_heads": "encoder attention heads", "mlp_ratio": "MLP hidden width over block width",
        "qkv_bias": "biases in the q, k, v projections", "pos_embed": "absolute positions: learn or sincos",
        "init_values": "LayerScale's initial value (none: no LayerScale)", "drop_path_rate": "stochastic depth",
        "layer_norm_eps": "LayerNorm epsilon", "mask_ratio": "fraction of mask groups masked, in (0, 1)",
        "mask_patch_size": "side in pixels of a masked group of patches",
    }  # fmt: skip

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data.image_masking import MaskedImages

        data = super().data(args, config)
        masker = config.masker()
        line = f"masks        {masker.num_masked} of {config.num_patches} patches, groups of {config.mask_patch_size} px"
        return replace(data, dataset=MaskedImages(data.dataset, masker), lines=(*data.lines, line))

    def describe(self, model: SimMIM) -> str:
        c = model.config
        return f", {model.num_patches} patches of {c.patch_size}, mask ratio {c.mask_ratio}"

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        super().add_eval_flags(p)
        p.add_argument("--probe-layer", type=at_least(0), default=None,
                       help="probe the tokens out of this block (1 .. depth) before the final norm; 0: the encoder's "
                            "normed output (default: the middle block, rounded up)")  # fmt: skip

    def probe_layer(self, args: argparse.Namespace, model: SimMIM) -> int | None:
        depth = len(model.encoder.blocks)
        if args.probe_layer is None:
            return (depth + 1) // 2
        if args.probe_layer > depth:
            raise ValueError(f"--probe-layer: expected 0 .. {depth} (the model's depth), got {args.probe_layer}")
        return args.probe_layer or None


add_commands = SimMIMCommand().add_commands
