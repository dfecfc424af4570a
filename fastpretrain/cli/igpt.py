"""``fastpretrain igpt train|eval``: image GPT on Fashion-MNIST (or another grey or RGB image set)
as palette-id sequences, on the shared model command skeleton: a k-means palette of the training
pixels, the autoregressive or BERT-style objective, then a linear probe and kNN on middle-block
features against the raw pixels, and (autoregressive) a PNG grid of samples."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least
from fastpretrain.cli.errors import loading
from fastpretrain.cli.images import DATA_HELP
from fastpretrain.cli.model_command import ModelCommand, TrainData, run_weights
from fastpretrain.models import ImageGPT
from fastpretrain.models.registry import WEIGHTS

PALETTE = "palette.json"


def _images(data: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images [N, C, H, W], labels [N]) of a split."""
    from fastpretrain.data import image_dataset

    with loading("--data", data, "data", "source"):
        ds = image_dataset(data, split, channels=1 if data == "fashion-mnist" else 3)
    if not hasattr(ds, "images"):
        raise ValueError(f"--data: {data!r} is an image folder; igpt reads in-memory image arrays (IDX, .npy/.npz)")
    return ds.images, ds.labels


def _probe(model: ImageGPT, palette: torch.Tensor, data: str, args: argparse.Namespace, device) -> dict:
    """Linear probe and kNN on the middle block's features vs on the raw (resized) pixels, printed."""
    from fastpretrain.data.palette import PaletteImages, to_unit
    from fastpretrain.eval import evaluate_features

    size, result = model.config.image_size, {}
    splits = {}
    for split, n in (("train", args.probe_train), ("test", args.probe_test)):
        images, labels = _images(data, split)
        splits[split] = (images[:n], labels[:n])
    feats = {"igpt": {}, "raw_pixels": {}}
    for split, (images, labels) in splits.items():
        tokens = PaletteImages(images, labels, palette, size).tokens.long()
        chunks = [model.features(tokens[i : i + 256].to(device)).float().cpu() for i in range(0, len(tokens), 256)]
        feats["igpt"][split] = (torch.cat(chunks), labels)
        feats["raw_pixels"][split] = (to_unit(images, size).flatten(1), labels)
    layer = model.config.probe_layer or max(1, model.config.num_layers // 2)
    for name, f in feats.items():
        scores = evaluate_features(f["train"], f["test"])
        result[name] = scores
        print(f"probe        {name:<10} linear {scores['linear']:.2%}  kNN {scores['knn']:.2%}"
              + (f"  (block {layer} of {model.config.num_layers})" if name == "igpt" else ""))  # fmt: skip
    return {
        **result,
        "probe_layer": layer,
        "probe_train": len(splits["train"][0]),
        "probe_test": len(splits["test"][0]),
    }


def _samples(model: ImageGPT, palette: torch.Tensor, path: Path, n: int, seed: int, device) -> Path:
    from fastpretrain.data.palette import dequantize
    from fastpretrain.eval.samples import save_image_grid

    generator = torch.Generator(device=device).manual_seed(seed)
    ids = model.generate(n, temperature=1.0, generator=generator)
    return save_image_grid(dequantize(ids, palette.to(device), model.config.image_size), path)


def _add_eval_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("evaluation")
    group.add_argument(
        "--probe-train", type=at_least(10), default=5000, help="train images of the probe (default 5000)"
    )
    group.add_argument("--probe-test", type=at_least(10), default=2000, help="test images of the probe (default 2000)")
    group.add_argument(
        "--samples", type=at_least(0), default=16, help="AR samples in samples.png (default 16, 0: none)"
    )


class IGPTCommand(ModelCommand):
    name, model_class, default_model = "igpt", ImageGPT, "igpt_tiny"
    help = "pre-train and evaluate image GPT (pixels as palette ids; autoregressive or BERT-style)"
    train_help = ("pre-train image GPT on palette-quantized images; linear probe on middle-block features vs raw "
                  "pixels; samples.png of an autoregressive model")  # fmt: skip
    eval_help = "linear probe and kNN of a run's middle-block features against raw pixels; samples of an AR model"
    recipe: ClassVar[dict] = {"out_dir": "runs/igpt", "lr": 1e-3, "betas": (0.9, 0.95), "weight_decay": 0.01,
                              "schedule": "cosine", "warmup_steps": 50, "steps": 2000, "batch_size": 64}  # fmt: skip
    model_help: ClassVar[dict] = {
        "image_size": "side of the token grid (images are area-resized to it)", "palette_size": "k-means colours",
        "num_layers": "layers", "num_heads": "attention heads", "hidden_size": "width",
        "intermediate_size": "MLP width (default 4 x width)", "objective": "ar (next pixel) or bert (masked pixels)",
        "mask_ratio": "share of pixels masked (bert)", "dropout": "dropout", "layer_norm_eps": "LayerNorm epsilon",
        "initializer_range": "std of the initial weights", "probe_layer": "block the probe reads (default the middle)",
    }  # fmt: skip

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        group = p.add_argument_group("data")
        group.add_argument("--data", default="fashion-mnist", help=DATA_HELP + " (default fashion-mnist)")
        group.add_argument("--palette-pixels", type=at_least(100), default=200_000,
                           help="training pixels k-means clusters (default 200000)")  # fmt: skip
        group.add_argument("--data-seed", type=at_least(0), default=0, help="seed of the k-means (default 0)")
        _add_eval_flags(p)

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.atomic import atomic_write
        from fastpretrain.data.palette import PaletteImages, kmeans_palette, sample_pixels

        images, labels = _images(args.data, "train")
        saved = Path(args.out_dir) / PALETTE
        if saved.is_file():  # a resumed run keeps its palette
            with loading("--out-dir", saved):
                palette = torch.tensor(json.loads(saved.read_text()))
        else:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            pixels = sample_pixels(images, config.image_size, args.palette_pixels, args.data_seed).to(device)
            palette = kmeans_palette(pixels, config.palette_size, seed=args.data_seed).cpu()
        dataset = PaletteImages(images, labels, palette, config.image_size)

        def save(out: Path) -> None:
            with atomic_write(out / PALETTE, "w") as f:
                json.dump(palette.tolist(), f)

        line = (f"data         {len(dataset):,} images as {config.image_size}x{config.image_size} = "
                f"{config.image_size**2} palette ids of {config.palette_size} colours, objective {config.objective}")  # fmt: skip
        return TrainData(dataset, run={"data": {"data": args.data}}, lines=(line,), save=save,
                         extras={"palette": palette})  # fmt: skip

    def flops_per_item(self, model: ImageGPT, data: TrainData) -> float:
        return model.flops_per_item()

    def after_training(self, args: argparse.Namespace, model, data: TrainData, trainer) -> None:
        from fastpretrain.atomic import atomic_write

        result = self._report(args, model, data.extras["palette"], args.data, trainer.device, Path(args.out_dir))
        with atomic_write(Path(args.out_dir) / "eval.json", "w") as f:
            json.dump(result, f, indent=1)

    def _report(self, args, model, palette, data: str, device, out: Path) -> dict:
        """The probe, printed, and for an AR model ``out/samples.png``; the probe's scores."""
        result = _probe(model, palette, data, args, device)
        if args.samples and model.config.objective == "ar":
            print(f"samples      {_samples(model, palette, out / 'samples.png', args.samples, 0, device)}")
        return result

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default=None, help="default: the run's")
        _add_eval_flags(p)

    def load(self, checkpoint: Path):
        model, run = super().load(checkpoint)
        weights = run_weights(checkpoint)
        folder = weights if weights.is_dir() else weights.parent
        for place in (folder / PALETTE, folder.parent.parent / PALETTE):
            if place.is_file():
                with loading("checkpoint", place):
                    return model, {**run, "palette": torch.tensor(json.loads(place.read_text())), "folder": folder}
        raise FileNotFoundError(f"checkpoint: no {PALETTE} beside {str(weights)!r} or in its run folder")

    def evaluate(self, args: argparse.Namespace, model, run: dict, device) -> None:
        data = args.data or run.get("data", {}).get("data", "fashion-mnist")
        folder = run["folder"] if (run["folder"] / WEIGHTS).is_file() else run["folder"].parent.parent
        self._report(args, model, run["palette"], data, device, folder)


add_commands = IGPTCommand().add_commands
