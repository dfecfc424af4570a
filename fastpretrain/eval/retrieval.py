"""Image-text evaluations of paired embeddings (CLIP's): zero-shot classification (each image's most
similar class embedding) and retrieval recall@k in both directions (item i's pair is item i), by
cosine similarity."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _check(name: str, x: torch.Tensor, other: torch.Tensor | None = None) -> None:
    if x.dim() != 2 or len(x) == 0:
        raise ValueError(f"{name}: expected a non-empty [N, D] tensor, got shape {tuple(x.shape)}")
    if other is not None and x.shape[1] != other.shape[1]:
        raise ValueError(f"{name}: expected {other.shape[1]} features like the images, got {x.shape[1]}")


def zero_shot_accuracy(image_emb: torch.Tensor, class_emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images [N, D] whose most similar class embedding [K, D] is their label [N]."""
    _check("image_emb", image_emb)
    _check("class_emb", class_emb, image_emb)
    if labels.shape != (len(image_emb),):
        raise ValueError(f"labels: expected shape ({len(image_emb)},), got {tuple(labels.shape)}")
    sims = F.normalize(image_emb.float(), dim=-1) @ F.normalize(class_emb.float(), dim=-1).T
    return (sims.argmax(1) == labels.to(sims.device)).float().mean().item()


def retrieval_recall(image_emb: torch.Tensor, text_emb: torch.Tensor, ks: Sequence[int] = (1, 5),
                     classes: torch.Tensor | None = None) -> dict[str, float]:  # fmt: skip
    """{"image_to_text@k", "text_to_image@k"}: the fraction of queries whose own pair is among their k
    most similar items of the other side (ties counted against the query: its pair must score
    strictly above all but k - 1 others). With ``classes`` [N], also "image_to_text_class@1": the
    fraction whose most similar caption belongs to an image of the same class."""
    _check("image_emb", image_emb)
    _check("text_emb", text_emb, image_emb)
    if len(text_emb) != len(image_emb):
        raise ValueError(f"text_emb: expected one caption per image ({len(image_emb)}), got {len(text_emb)}")
    sims = F.normalize(image_emb.float(), dim=-1) @ F.normalize(text_emb.float(), dim=-1).T
    out = {}
    for direction, s in (("image_to_text", sims), ("text_to_image", sims.T)):
        own = s.diagonal()[:, None]
        rank = (s >= own).sum(1) - 1  # others scoring at least as high as the pair
        for k in ks:
            out[f"{direction}@{k}"] = (rank < k).float().mean().item()
    if classes is not None:
        classes = classes.to(sims.device)
        out["image_to_text_class@1"] = (classes[sims.argmax(1)] == classes).float().mean().item()
    return out
