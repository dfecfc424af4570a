"""Visual tokens for BEiT: an image set's tokenizer codes computed once and cached on disk, and the
dataset BEiT trains on (image, its codes, a fresh mask).

The cache is one ``.npy`` of codes [N, L] per (tokenizer, images) key, written atomically, so the
tokenizer (a dVAE) runs over the image set once however many BEiT runs read it. The key is the
caller's description of both (the tokenizer's weights file and its size and modification time, the
data source, the transform); any change makes another file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fastpretrain.atomic import atomic_write


def _key_hash(key: dict) -> str:
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


@torch.no_grad()
def cached_tokens(tokenize: Callable[[torch.Tensor], torch.Tensor], dataset: Dataset, cache_dir: str | os.PathLike,
                  key: dict, *, batch_size: int = 256, device=None) -> torch.Tensor:  # fmt: skip
    """The codes int64 [N, L] of every image of ``dataset`` (items ``(image, ...)``) under
    ``tokenize`` (images [B, C, H, W] -> codes [B, L]): read from ``cache_dir`` when a file for
    ``key`` is there, else computed in order and saved there."""
    path = Path(cache_dir) / f"tokens-{_key_hash({**key, 'items': len(dataset)})}.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path).astype(np.int64))
    codes = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        codes.append(tokenize(images.to(device) if device is not None else images).cpu())
    tokens = torch.cat(codes)
    if len(tokens) != len(dataset) or tokens.dim() != 2:
        raise ValueError(f"tokenize: expected codes [N, L] for {len(dataset)} images, got {tuple(tokens.shape)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.int16 if int(tokens.max()) < 2**15 else np.int32
    with atomic_write(path) as f:
        np.save(f, tokens.numpy().astype(dtype))
    return tokens


class TokenizedImages(Dataset):
    """Items ``(image, codes [L], mask [L])``: an image dataset's images with their cached codes
    and a fresh mask from ``masker`` (BEiT's block-wise mask)."""

    def __init__(self, dataset: Dataset, tokens: torch.Tensor, masker) -> None:
        if len(tokens) != len(dataset):
            raise ValueError(f"tokens: {len(tokens)} rows for {len(dataset)} images")
        self.dataset, self.tokens, self.masker = dataset, tokens, masker

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.dataset[i][0], self.tokens[i], self.masker()


__all__ = ["TokenizedImages", "cached_tokens"]
