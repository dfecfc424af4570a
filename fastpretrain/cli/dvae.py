"""``fastpretrain dvae train|eval``: the discrete VAE image tokenizer BEiT's targets come from, on
MAE's image data; eval reports the reconstruction error of the hard codes and codebook usage, and
draws originals over reconstructions."""

from __future__ import annotations

import argparse
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least
from fastpretrain.cli.errors import renamed
from fastpretrain.cli.images import DATA_HELP, eval_splits, limit, normalisation
from fastpretrain.cli.mae import MAECommand
from fastpretrain.models import DVAE


@torch.no_grad()
def codebook_stats(model: DVAE, data, batch_size: int, device) -> dict:
    """Mean squared error of the images rebuilt from their hard codes, the fraction of the codebook
    used, and the perplexity of the codes' histogram (``num_tokens`` if all codes were equally used)."""
    from torch.utils.data import DataLoader

    model.eval()
    counts = torch.zeros(model.config.num_tokens, dtype=torch.float64)
    sq_err, pixels = 0.0, 0
    for images, *_ in DataLoader(data, batch_size=batch_size, shuffle=False):
        images = images.to(device)
        tokens = model.tokenize(images)
        counts += torch.bincount(tokens.flatten().cpu(), minlength=len(counts)).double()
        sq_err += (model.decode_tokens(tokens).float() - images).square().sum().item()
        pixels += images.numel()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    return {"recon_mse": sq_err / pixels, "codes_used": int((counts > 0).sum()), "usage": (counts > 0).double().mean().item(),
            "perplexity": float(torch.tensor(entropy).exp())}  # fmt: skip


class DVAECommand(MAECommand):
    name, model_class, default_model = "dvae", DVAE, "dvae_fashion_mnist"
    help = "train and evaluate the discrete VAE image tokenizer (BEiT's visual tokens)"
    train_help = ("train a dVAE (Gumbel-softmax codes, annealed temperature, KL to the uniform prior); then "
                  "model.safetensors and config.json in --out-dir")  # fmt: skip
    eval_help = ("reconstruction error of the hard codes and codebook usage on held-out images; optionally a PNG of "
                 "originals over reconstructions")  # fmt: skip
    recipe: ClassVar[dict] = {"out_dir": "runs/dvae", "lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 0,
                              "betas": (0.9, 0.999), "clip_grad": 0.0}  # fmt: skip
    model_help: ClassVar[dict] = {
        "img_size": "image side in pixels", "in_chans": "image channels", "hidden_dim": "convolution channels",
        "num_downsample": "stride-2 convolutions (token grid = img_size / 2 ** N)", "num_tokens": "codebook size",
        "codebook_dim": "codebook vector width", "temperature_start": "Gumbel-softmax temperature at step 0",
        "temperature_end": "temperature after anneal_steps (cosine)", "anneal_steps": "temperature annealing steps",
        "kl_weight": "weight of a cell's KL to the uniform prior against its pixels' reconstruction error",
        "kl_warmup_steps": "steps raising the KL weight linearly from 0",
    }  # fmt: skip

    def describe(self, model: DVAE) -> str:
        c = model.config
        return f", {c.grid_size} x {c.grid_size} codes of {c.num_tokens}"

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default="fashion-mnist", help=DATA_HELP + " (default fashion-mnist)")
        p.add_argument("--max-test", type=at_least(1), default=None, help="score on a random N test images (default all)")
        p.add_argument("--test-fraction", type=at_least(0.0, float, high=1.0), default=0.2,
                       help="held out when the data has no test split (default 0.2)")  # fmt: skip
        p.add_argument("--reconstruction", default=None, help="write a PNG of originals over reconstructions here")
        p.add_argument("--num-images", type=at_least(1), default=8, help="images in the PNG (default 8)")
        p.add_argument("--batch-size", type=at_least(1), default=256, help="images per forward (default 256)")
        p.add_argument("--seed", type=at_least(0), default=0, help="seed of the test subset (default 0)")
        p.add_argument("--json", default=None, help="also write the figures to this JSON file")

    def evaluate(self, args: argparse.Namespace, model: DVAE, run: dict, device: torch.device) -> None:
        import json

        from fastpretrain.atomic import atomic_write, check_writable
        from fastpretrain.data.image_transforms import Resize
        from fastpretrain.eval.visualize import save_image_rows

        for name in ("reconstruction", "json"):
            if getattr(args, name):
                check_writable(f"--{name}", getattr(args, name))
        c = model.config
        mean, std = normalisation(args.data, c.in_chans, run.get("mean"), run.get("std"))
        with renamed("--data", "data", "path", "source"):
            _, test = eval_splits(args.data, Resize(c.img_size, mean, std), c.in_chans, args.test_fraction, args.seed)
        test = limit(test, args.max_test, args.seed + 1)
        stats = codebook_stats(model, test, args.batch_size, device)
        print(f"data         {args.data}: {len(test):,} held-out images, {c.grid_size} x {c.grid_size} codes of "
              f"{c.num_tokens}")  # fmt: skip
        print(f"recon mse    {stats['recon_mse']:.4f} (normalised pixels, from the hard codes)")
        print(f"codebook     {stats['codes_used']} of {c.num_tokens} codes used ({stats['usage']:.1%}), "
              f"perplexity {stats['perplexity']:.1f}")  # fmt: skip
        if args.reconstruction:
            images = torch.stack([test[i][0] for i in range(min(args.num_images, len(test)))]).to(device)
            with torch.no_grad():
                recon = model.decode_tokens(model.tokenize(images))
            path = save_image_rows(torch.stack([images, recon]), args.reconstruction, mean=mean, std=std)
            print(f"reconstruction (originals / from their codes): {path}")
        if args.json:
            with atomic_write(args.json, "w") as f:
                json.dump({"checkpoint": str(args.checkpoint), "data": args.data, **stats}, f, indent=2)


add_commands = DVAECommand().add_commands
