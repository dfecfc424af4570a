"""``fastpretrain beit train|eval``: BEiT on images tokenized by a trained dVAE (``fastpretrain dvae
train``). The tokenizer's codes of the training images are computed once and cached beside the
tokenizer; the images are resized, not augmented, so each keeps its cached codes. Evaluation is
SimMIM's: probes on an encoder block before the final norm, next to random init and raw pixels."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

from fastpretrain.cli.args import at_least
from fastpretrain.cli.errors import loading, renamed
from fastpretrain.cli.images import DATA_HELP, limit, normalisation
from fastpretrain.cli.model_command import TrainData, run_settings, run_weights
from fastpretrain.cli.simmim import SimMIMCommand
from fastpretrain.models import BEiT


class BEiTCommand(SimMIMCommand):
    name, model_class, default_model = "beit", BEiT, "beit_fashion_mnist"
    help = "pre-train and evaluate BEiT (masked image modeling on dVAE visual tokens)"
    train_help = ("pre-train BEiT on the codes of a trained dVAE (--tokenizer); checkpoints through the Trainer, then "
                  "model.safetensors and config.json in --out-dir")  # fmt: skip
    eval_help = ("linear-probe and kNN accuracy of an encoder block's frozen features (before the final norm), next "
                 "to a randomly initialised encoder of the same size and the raw pixels")  # fmt: skip
    reconstructs = False
    derived = ("vocab_size",)  # the tokenizer's codebook size
    recipe: ClassVar[dict] = {"out_dir": "runs/beit", "lr": 1.5e-3, "weight_decay": 0.05, "warmup_steps": 0,
                              "betas": (0.9, 0.999)}  # fmt: skip
    model_help: ClassVar[dict] = {
        "img_size": "image side in pixels (the tokenizer's too)", "patch_size": "patch side in pixels",
        "in_chans": "image channels", "embed_dim": "encoder width", "depth": "encoder blocks",
        "num_heads": "encoder attention heads", "mlp_ratio": "MLP hidden width over block width",
        "mlp_hidden": "the MLP hidden width exactly (default: embed_dim x mlp_ratio)",
        "qkv_bias": "biases in the q, k, v projections",
        "rel_pos_bias": "relative position bias: shared (one for all blocks), layer (one per block) or none",
        "abs_pos_embed": "learned absolute positions as well", "init_values": "LayerScale's initial value",
        "drop_path_rate": "stochastic depth", "layer_norm_eps": "LayerNorm epsilon",
        "mask_ratio": "fraction of the patches masked, in blocks", "min_block": "patches in the smallest masked block",
    }  # fmt: skip

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        group = p.add_argument_group("data")
        group.add_argument("--tokenizer", required=True, help="a dVAE run folder or checkpoint (fastpretrain dvae train)")
        group.add_argument("--data", default="fashion-mnist", help=DATA_HELP + " (default fashion-mnist)")
        group.add_argument("--max-images", type=at_least(1), default=None,
                           help="train on a seeded random subset of N images (default all)")  # fmt: skip
        group.add_argument("--token-cache", default=None,
                           help="folder of cached codes (default: <tokenizer folder>/tokens)")  # fmt: skip

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data.image_transforms import Resize
        from fastpretrain.data.images import image_dataset
        from fastpretrain.data.visual_tokens import TokenizedImages, cached_tokens
        from fastpretrain.models import DVAE

        weights = run_weights(Path(args.tokenizer))
        with loading("--tokenizer", weights):
            tokenizer = DVAE.from_pretrained(weights).eval()
            settings = run_settings(weights)
        t = tokenizer.config
        if (t.img_size, t.in_chans, t.grid_size) != (config.img_size, config.in_chans, config.grid_size):
            raise ValueError(f"--tokenizer: its {t.img_size} px, {t.in_chans}-channel images and {t.grid_size} x "
                             f"{t.grid_size} codes do not fit the model's {config.img_size} px, {config.in_chans} "
                             f"channels and {config.grid_size} x {config.grid_size} patches")  # fmt: skip
        mean, std = normalisation(args.data, t.in_chans, settings.get("mean"), settings.get("std"))
        with renamed("--data", "data", "path", "source"):
            images = limit(image_dataset(args.data, "train", Resize(t.img_size, mean, std), channels=t.in_chans),
                            args.max_images, args.seed)  # fmt: skip
        file = weights / "model.safetensors" if weights.is_dir() else weights
        stat = file.stat()
        key = {"tokenizer": str(file.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns, "data": str(args.data),
               "mean": mean, "std": std, "max_images": args.max_images, "seed": args.seed}  # fmt: skip
        cache = Path(args.token_cache) if args.token_cache else (weights if weights.is_dir() else weights.parent) / "tokens"
        tokens = cached_tokens(tokenizer.tokenize, images, cache, key)
        masker = config.masker()
        lines = (f"data         {args.data}: {len(images):,} images, resized, mean {mean} std {std}",
                 f"tokens       {t.grid_size} x {t.grid_size} codes of {t.num_tokens} from {weights} (cached in {cache})",
                 f"masks        {masker.num_masked} of {config.num_patches} patches, blocks of >= {config.min_block}")  # fmt: skip
        return TrainData(TokenizedImages(images, tokens, masker), model_fields={"vocab_size": t.num_tokens},
                         run={"mean": mean, "std": std, "data": str(args.data)}, lines=lines)  # fmt: skip

    def describe(self, model: BEiT) -> str:
        c = model.config
        return f", {model.num_patches} patches of {c.patch_size}, {c.rel_pos_bias} relative position bias"


add_commands = BEiTCommand().add_commands
