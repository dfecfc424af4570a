"""``fastpretrain inpaint train|eval``: context-encoder inpainting on images: MAE's data sources,
augmentation and probe evaluation, with the regions drawn in the data loader and the encoder's
feature map mean-pooled for the probes; eval adds the held-out region L2."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import ClassVar

import torch

from fastpretrain.cli.mae import MAECommand
from fastpretrain.cli.model_command import TrainData
from fastpretrain.models import ContextEncoder

CONV_HELP: dict = {
    "img_size": "image side in pixels (images are cropped or resized to it)", "in_chans": "image channels",
    "widths": "encoder stage widths (stride 2 each; the decoder mirrors them)",
    "channel_fc": "Pathak et al.'s channel-wise fully connected bottleneck",
    "mask": "the hidden region: center (a square), block (BEiT's blocks) or random (cells)",
    "mask_ratio": "fraction of the image hidden", "mask_cell": "side in pixels of a mask cell",
}  # fmt: skip


class InpaintCommand(MAECommand):
    name, model_class, default_model = "inpaint", ContextEncoder, "inpaint_cnn_fashion_mnist"
    help = "pre-train and evaluate context encoders (inpainting a hidden region)"
    train_help = ("pre-train a context encoder; checkpoints through the Trainer, then model.safetensors and "
                  "config.json in --out-dir")  # fmt: skip
    eval_help = ("linear-probe and kNN accuracy of the encoder's frozen, mean-pooled features, next to a randomly "
                 "initialised encoder of the same size and the raw pixels; then the held-out task loss")  # fmt: skip
    reconstructs = False
    trivial = "filling the mean"  # the held-out loss's trivial answer
    pools: ClassVar[tuple[str, ...]] = ("mean",)
    recipe: ClassVar[dict] = {"out_dir": "runs/inpaint", "lr": 1e-3, "weight_decay": 0.05, "warmup_steps": 10}
    model_help: ClassVar[dict] = {
        **CONV_HELP, "overlap": "pixels of the region's border left visible and predicted",
        "overlap_weight": "loss weight of that border band", "adversarial": "add the discriminator's term",
        "rec_weight": "weight of the L2 term (lambda_rec)", "adv_weight": "weight of the adversarial term (lambda_adv)",
        "disc_widths": "discriminator stage widths",
    }  # fmt: skip

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data.image_masking import MaskedImages

        data = super().data(args, config)
        masker = config.masker()
        line = (f"masks        {config.mask}, {masker.num_masked} of {config.grid * config.grid} cells of "
                f"{config.mask_cell} px")  # fmt: skip
        return replace(data, dataset=MaskedImages(data.dataset, masker), lines=(*data.lines, line))

    def describe(self, model) -> str:
        c = model.config
        more = f", adversarial {c.rec_weight} / {c.adv_weight}" if getattr(c, "adversarial", False) else ""
        return f" ({model.encoder.num_params() / 1e6:.2f}M in the encoder), widths {list(c.widths)}{more}"

    def held_out(self, args: argparse.Namespace, model, test, device: torch.device) -> dict:
        from fastpretrain.eval.pretext import pretext_scores

        scores = pretext_scores(model, test, device=device, seed=args.seed, batch_size=args.batch_size)
        print(f"held-out     task loss {scores['heldout_loss']:.4f} vs {scores['heldout_trivial']:.4f} (trivial: "
              f"{self.trivial})")  # fmt: skip
        return {"held_out": scores}


add_commands = InpaintCommand().add_commands
