"""Image-caption pairs built offline: Fashion-MNIST images with captions generated from their class
and from attributes read off their pixels (tone: dark / mid-grey / light; size: how much of the
frame the item fills), in varied templates, tokenised to fixed-length id rows for CLIP.

What such data can show: that CLIP's two towers, its symmetric loss and learnable temperature train
and align class words with images, and that zero-shot classification by class prompts and
caption retrieval work end to end. What it cannot: the captions hold nothing beyond the class and
two coarse pixel statistics, from a vocabulary of a few dozen words, so zero-shot accuracy here is
close to a supervised classifier's, and nothing about open-vocabulary transfer or real captions
follows from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from fastpretrain.data.images import FASHION_MNIST_CLASSES

CLASS_WORDS = tuple(c.lower().replace("/", " or ") for c in FASHION_MNIST_CLASSES)
TEMPLATES = ("a photo of a {tone} {name}.", "a {size} {name}.", "a {tone}, {size} {name}.",
             "a picture of a {name}, {tone} in tone.", "a {name} that fills {fill} of the frame.",
             "a {tone} {name} on a black background.")  # fmt: skip
PROMPTS = ("a photo of a {name}.", "a {name}.", "a picture of a {name}.")  # zero-shot: class names only


def attributes(img: torch.Tensor) -> dict[str, str]:
    """{"tone", "size", "fill"} of a [C, H, W] image in [0, 1] on a dark background: the mean of its
    lit pixels (> 0.1) and the fraction of the frame they cover, in words."""
    lit = img.mean(0) > 0.1
    share = lit.float().mean().item()
    level = img.mean(0)[lit].mean().item() if lit.any() else 0.0
    tone = "dark" if level < 0.35 else "light" if level > 0.6 else "mid-grey"
    size = "small" if share < 0.3 else "large" if share > 0.55 else "medium-sized"
    fill = "a quarter" if share < 0.35 else "half" if share < 0.6 else "most"
    return {"tone": tone, "size": size, "fill": fill}


def caption(label: int, img: torch.Tensor, template: int = 0, names: Sequence[str] = CLASS_WORDS) -> str:
    """The caption of an image of class ``label`` in template ``template`` (mod the number of templates)."""
    return TEMPLATES[template % len(TEMPLATES)].format(name=names[label], **attributes(img))


def tokenize(texts: Sequence[str], tokenizer, context_length: int) -> torch.Tensor:
    """int64 [N, context_length] ids of ``texts`` with the tokenizer's special tokens ([CLS] ... [SEP]),
    cut to ``context_length`` (the end token kept last) and padded with [PAD]."""
    pad, end = tokenizer.token_to_id("[PAD]"), tokenizer.token_to_id("[SEP]")
    out = torch.full((len(texts), context_length), pad, dtype=torch.int64)
    for i, encoding in enumerate(tokenizer.encode_batch(list(texts))):
        ids = encoding.ids[:context_length]
        if len(encoding.ids) > context_length:
            ids[-1] = end
        out[i, : len(ids)] = torch.tensor(ids)
    return out


class CaptionedImages(Dataset):
    """(transformed image, caption ids [context_length]) pairs over ``images``, a dataset of
    (image in [0, 1], class) items. ``random_template``: a template drawn per item and call (torch's
    global RNG, seeded per rank by the Trainer), else template ``i``, so evaluation captions repeat."""

    def __init__(self, images: Dataset, tokenizer, context_length: int, transform: Callable | None = None,
                 random_template: bool = True) -> None:  # fmt: skip
        self.images, self.tokenizer, self.context_length = images, tokenizer, context_length
        self.transform, self.random_template = transform, random_template

    def __len__(self) -> int:
        return len(self.images)

    def pair(self, i: int) -> tuple[torch.Tensor, str]:
        """Item ``i``'s image, untransformed, and its caption."""
        img, label = self.images[i]
        template = int(torch.randint(len(TEMPLATES), ())) if self.random_template else i
        return img, caption(int(label), img, template)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, text = self.pair(i)
        ids = tokenize([text], self.tokenizer, self.context_length)[0]
        return (self.transform(img) if self.transform else img), ids
