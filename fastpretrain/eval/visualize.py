"""Pictures of what a model learned: the reconstruction grid of MAE and SimMIM."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from fastpretrain.atomic import atomic_path


@torch.no_grad()
def save_reconstruction_grid(model, images: torch.Tensor, path: str | os.PathLike, *, mask_ratio: float | None = None,
                             mean=None, std=None, seed: int = 0, scale: int | None = None) -> Path:  # fmt: skip
    """A PNG of three rows: the images, the images with the masked patches greyed out, and the
    reconstruction (predicted pixels in the masked patches, the visible ones pasted back).

    ``model``: an :class:`~fastpretrain.models.MAE` or :class:`~fastpretrain.models.SimMIM` (its own mask
    ratio; ``mask_ratio`` is MAE's). ``mean``/``std``: the per-channel
    normalisation the images carry (undone for display). Predictions of a ``norm_pix_loss`` model
    are mapped back with each patch's own mean and std (:meth:`MAE.pixels`). Written atomically
    with PIL; ``scale`` (default: so a cell is >= 96 pixels) enlarges small images.
    """
    if images.dim() != 4 or images.shape[0] < 1:
        raise ValueError(f"images: expected a batch [B, C, H, W], got shape {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    images = images.to(device, torch.float32)
    generator = torch.Generator(device=device).manual_seed(seed)
    ratio = {} if mask_ratio is None else {"mask_ratio": mask_ratio}
    out = model(images, generator=generator, return_outputs=True, **ratio)
    model.train(was_training)
    pred = model.pixels(images, out["pred"])
    mask = model.unpatchify(out["mask"].float().unsqueeze(-1).expand(-1, -1, pred.shape[-1]))
    recon = images * (1 - mask) + model.unpatchify(pred) * mask
    masked = images * (1 - mask)
    rows = torch.stack([images, masked, recon])  # [3, B, C, H, W]
    grey = torch.stack([torch.zeros_like(mask), mask, torch.zeros_like(mask)]).bool()
    return save_image_rows(rows, path, mean=mean, std=std, scale=scale, grey=grey)


def save_image_rows(rows: torch.Tensor, path: str | os.PathLike, *, mean=None, std=None, scale: int | None = None,
                    grey: torch.Tensor | None = None) -> Path:  # fmt: skip
    """A PNG grid of images ``rows`` [R, B, C, H, W] (normalised with ``mean``/``std``, undone here):
    RGB, or the first channel in grey; pixels where ``grey`` (bool, broadcastable) is True in mid
    grey. Written atomically with PIL; ``scale`` (default: so a cell is >= 96 pixels) enlarges."""
    from PIL import Image

    if rows.dim() != 5:
        raise ValueError(f"rows: expected [R, B, C, H, W], got shape {tuple(rows.shape)}")
    rows = rows.detach().float()
    mean_t = torch.as_tensor(0.0 if mean is None else mean, dtype=torch.float32, device=rows.device).reshape(-1, 1, 1)
    std_t = torch.as_tensor(1.0 if std is None else std, dtype=torch.float32, device=rows.device).reshape(-1, 1, 1)
    rows = rows * std_t + mean_t
    if grey is not None:
        rows = torch.where(grey, torch.full_like(rows, 0.5), rows)
    pixels = (rows.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    r_count, n, c, h, w = rows.shape
    scale = scale or max(1, math.ceil(96 / max(h, w)))
    pad = 2
    shown = 3 if c >= 3 else 1  # RGB, or the first channel in grey
    canvas = torch.full((shown, r_count * (h * scale + pad) + pad, n * (w * scale + pad) + pad), 255, dtype=torch.uint8)
    for r in range(r_count):
        for i in range(n):
            cell = pixels[r, i].repeat_interleave(scale, 1).repeat_interleave(scale, 2)
            y, x = pad + r * (h * scale + pad), pad + i * (w * scale + pad)
            canvas[:, y : y + h * scale, x : x + w * scale] = cell[:shown]
    array = canvas.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if shown == 1 else array)
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


__all__ = ["save_image_rows", "save_reconstruction_grid"]
