"""``fastpretrain clip train|eval``: CLIP on Fashion-MNIST images with captions generated from their
class and pixel attributes (:mod:`fastpretrain.data.captions` says what that data can and cannot
show); a WordPiece tokenizer from a BERT vocab.txt (default: the shared bert-uncased-vocab.txt).
eval: zero-shot accuracy from class prompts and caption retrieval recall on held-out test images,
next to a randomly initialised CLIP of the same size."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least
from fastpretrain.cli.errors import loading, renamed
from fastpretrain.cli.images import limit
from fastpretrain.cli.model_command import ModelCommand, TrainData
from fastpretrain.models import CLIP

VOCAB = "bert-uncased-vocab.txt"


def _tokenizer(path):
    from fastpretrain.data.datasets import find_data
    from fastpretrain.data.wordpiece import load_wordpiece

    with loading("--tokenizer", path or VOCAB, "path"):
        return load_wordpiece(path or find_data(VOCAB))


def _run_tokenizer(checkpoint: Path):
    """The tokenizer saved in the run folder of ``checkpoint`` (a run, its weights or a checkpoint)."""
    from fastpretrain.data.wordpiece import load_wordpiece

    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    for place in (folder / "tokenizer", folder.parent.parent / "tokenizer"):
        if place.is_dir():
            return load_wordpiece(place)
    raise FileNotFoundError(f"checkpoint: no tokenizer/ folder in the run of {str(checkpoint)!r}")


class CLIPCommand(ModelCommand):
    name, model_class, default_model = "clip", CLIP, "clip_vit_fashion_mnist"
    help = "pre-train and evaluate CLIP (image-text contrastive) on Fashion-MNIST with generated captions"
    train_help = ("pre-train CLIP on Fashion-MNIST images and captions generated from their class and pixels; "
                  "checkpoints through the Trainer, then model.safetensors, config.json and tokenizer/ in --out-dir")  # fmt: skip
    eval_help = ("zero-shot accuracy (class prompts) and caption retrieval recall on held-out test images, next to a "
                 "randomly initialised CLIP of the same size")  # fmt: skip
    recipe: ClassVar[dict] = {"out_dir": "runs/clip", "lr": 5e-4, "weight_decay": 0.2, "warmup_steps": 10,
                              "betas": (0.9, 0.98)}  # fmt: skip
    derived = ("vocab_size", "pad_token_id")
    model_help: ClassVar[dict] = {
        "img_size": "image side in pixels", "patch_size": "patch side in pixels", "in_chans": "image channels",
        "vision_width": "image tower width", "vision_depth": "image tower blocks", "vision_heads": "image tower heads",
        "context_length": "caption pieces, [CLS] and [SEP] included", "text_width": "text tower width",
        "text_depth": "text tower blocks", "text_heads": "text tower heads", "embed_dim": "joint embedding width",
        "mlp_ratio": "MLP hidden width over block width", "temperature": "initial temperature (learnt)",
        "max_scale": "cap of the learnt logit scale 1 / temperature",
    }  # fmt: skip

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        group = p.add_argument_group("data (Fashion-MNIST from the shared data folder or $FASTPRETRAIN_DATA)")
        group.add_argument("--tokenizer", default=None, help=f"a BERT vocab.txt, tokenizer.json or folder "
                           f"(default: the shared {VOCAB})")  # fmt: skip
        group.add_argument("--crop-scale", type=float, nargs=2, default=(0.5, 1.0), metavar=("LOW", "HIGH"),
                           help="random resized crop area range (default 0.5 1.0)")  # fmt: skip
        group.add_argument("--max-images", type=at_least(1), default=None,
                           help="train on a seeded random subset of N images (default all)")  # fmt: skip

    def data(self, args: argparse.Namespace, config) -> TrainData:
        from fastpretrain.data.captions import CaptionedImages
        from fastpretrain.data.image_transforms import RandomResizedCropFlip
        from fastpretrain.data.images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, fashion_mnist
        from fastpretrain.data.wordpiece import save_wordpiece

        if config.in_chans != 1:
            raise ValueError(f"--in-chans: Fashion-MNIST images have 1 channel, got {config.in_chans}")
        tokenizer = _tokenizer(args.tokenizer)
        mean, std = list(FASHION_MNIST_MEAN), list(FASHION_MNIST_STD)
        with renamed("--crop-scale", "scale"):
            transform = RandomResizedCropFlip(config.img_size, scale=tuple(args.crop_scale), mean=mean, std=std)
        images = limit(fashion_mnist("train"), args.max_images, args.seed)
        dataset = CaptionedImages(images, tokenizer, config.context_length, transform)
        line = (f"data         fashion-mnist: {len(dataset):,} images with generated captions, e.g. "
                f"{dataset.pair(0)[1]!r}; vocabulary {tokenizer.get_vocab_size():,}")  # fmt: skip
        fields = {"vocab_size": tokenizer.get_vocab_size(), "pad_token_id": tokenizer.token_to_id("[PAD]")}
        return TrainData(dataset, model_fields=fields, run={"mean": mean, "std": std, "data": "fashion-mnist"},
                         lines=(line,), save=lambda out: save_wordpiece(tokenizer, out / "tokenizer"))  # fmt: skip

    def describe(self, model: CLIP) -> str:
        c = model.config
        return (f": image ViT {c.vision_width}x{c.vision_depth} on {model.encoder.num_patches} patches, text "
                f"{c.text_width}x{c.text_depth} over {c.context_length} pieces, joint {c.embed_dim}")  # fmt: skip

    def load(self, checkpoint: Path) -> tuple[CLIP, dict]:
        model, run = super().load(checkpoint)
        with loading("checkpoint", checkpoint):
            run["tokenizer"] = _run_tokenizer(checkpoint)
        return model, run

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--max-test", type=at_least(1), default=2000,
                       help="score on a random N test images (default 2000)")  # fmt: skip
        p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                       help="also a randomly initialised CLIP of the same size (default on)")  # fmt: skip
        p.add_argument("--batch-size", type=at_least(1), default=256, help="items per forward (default 256)")
        p.add_argument("--seed", type=at_least(0), default=0, help="seed of the subset and the baseline (default 0)")
        p.add_argument("--json", default=None, help="also write the metrics to this JSON file")

    @torch.no_grad()
    def scores(self, model: CLIP, test, tokenizer, mean, std, batch_size: int, device) -> dict[str, float]:
        """Zero-shot accuracy and retrieval recall of ``model`` on the captioned ``test`` images."""
        from fastpretrain.data.captions import CLASS_WORDS, PROMPTS, tokenize
        from fastpretrain.data.image_transforms import Normalize
        from fastpretrain.eval.retrieval import retrieval_recall, zero_shot_accuracy

        model.eval()
        normalize, length = Normalize(mean, std), model.config.context_length
        images, texts, labels = [], [], []
        for i in range(len(test)):
            img, text = test.pair(i)
            images.append(normalize(img))
            texts.append(text)
            labels.append(int(test.images[i][1]))
        image_emb = torch.cat([model.encode_image(torch.stack(images[i : i + batch_size]).to(device))
                               for i in range(0, len(images), batch_size)])  # fmt: skip
        ids = tokenize(texts, tokenizer, length)
        text_emb = torch.cat([model.encode_text(ids[i : i + batch_size].to(device))
                              for i in range(0, len(ids), batch_size)])  # fmt: skip
        prompts = tokenize([p.format(name=n) for n in CLASS_WORDS for p in PROMPTS], tokenizer, length)
        classes = model.class_embeddings(prompts.view(len(CLASS_WORDS), len(PROMPTS), -1).to(device))
        labels = torch.tensor(labels)
        return {"zero_shot": zero_shot_accuracy(image_emb, classes, labels),
                **retrieval_recall(image_emb, text_emb, (1, 5), classes=labels)}  # fmt: skip

    def evaluate(self, args: argparse.Namespace, model: CLIP, run: dict, device: torch.device) -> None:
        import json

        from fastpretrain.atomic import atomic_write, check_writable
        from fastpretrain.data.captions import CaptionedImages
        from fastpretrain.data.images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, fashion_mnist

        if args.json:
            check_writable("--json", args.json)
        mean, std = run.get("mean", list(FASHION_MNIST_MEAN)), run.get("std", list(FASHION_MNIST_STD))
        test = CaptionedImages(limit(fashion_mnist("test"), args.max_test, args.seed + 1), run["tokenizer"],
                               model.config.context_length, random_template=False)  # fmt: skip
        print(f"data         fashion-mnist: {len(test):,} held-out test images with generated captions")
        models = [("clip", model)]
        if args.baselines:
            torch.manual_seed(args.seed)
            models.append(("random init", CLIP(model.config).to(device)))
        print(f"{'model':<12} {'zero-shot':>9} {'i->t R@1':>9} {'i->t R@5':>9} {'t->i R@1':>9} {'t->i R@5':>9} "
              f"{'i->t class@1':>12}")  # fmt: skip
        results = {}
        for name, m in models:
            s = results[name] = self.scores(m, test, run["tokenizer"], mean, std, args.batch_size, device)
            print(f"{name:<12} {s['zero_shot']:>9.2%} {s['image_to_text@1']:>9.2%} {s['image_to_text@5']:>9.2%} "
                  f"{s['text_to_image@1']:>9.2%} {s['text_to_image@5']:>9.2%} {s['image_to_text_class@1']:>12.2%}")  # fmt: skip
        print("retrieval: a caption is right only for its own image; many test images share a caption (class and "
              "two coarse attributes), so R@k is bounded well below 1: class@1 counts a caption of the same class")  # fmt: skip
        if args.json:
            with atomic_write(args.json, "w") as f:
                json.dump({"checkpoint": str(args.checkpoint), "test_images": len(test), "results": results}, f,
                          indent=2)  # fmt: skip


add_commands = CLIPCommand().add_commands
