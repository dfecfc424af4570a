"""The point-cloud parts of the masked-groups recipe (Point-MAE, GeoMAE), registered by name:

- embedder ``pointnet``: :class:`~fastpretrain.nn.point_groups.MiniPointNet` on each group's
  k x 3 offsets (width embed_dim // 3, at least 16: Point-MAE's 128 at 384).
- target ``chamfer`` (Point-MAE): a linear head predicts each masked group's k offsets, scored by
  the L2 Chamfer distance to the true ones (mean over groups and points, both directions).
- target ``geometry`` (GeoMAE): a linear head predicts each masked group's centroid, surface
  normal and curvature from a local PCA of its points (``group_geometry``). Loss, each term about
  1 for a zero guess: squared error to the centroid in units of the batch's RMS centroid (so the
  head predicts O(1) values whatever the group size), 1 - |cos| to the normal (its sign is
  arbitrary), and MSE of 3 x curvature (in [0, 1]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastpretrain.models.group_targets import Target, register_target
from fastpretrain.models.masked_groups import register_embedder
from fastpretrain.nn.point_groups import MiniPointNet, chamfer_distance, group_geometry

CENTROID_EPS = 1e-12


def _group_size(config) -> int:
    if config.group_dim % 3:
        raise ValueError(f"group_dim: point groups need k x 3 values per group, got {config.group_dim}")
    return config.group_dim // 3


register_embedder("pointnet", lambda c: MiniPointNet(_group_size(c), c.embed_dim, width=max(16, c.embed_dim // 3)))


@register_target
class Chamfer(Target):
    """Point-MAE: reconstruct each masked group's points, L2 Chamfer distance (order-free)."""

    name = "chamfer"

    def __init__(self, config) -> None:
        super().__init__()
        self.k = _group_size(config)
        self.head = nn.Linear(config.decoder_embed_dim, config.group_dim)

    def forward(self, hidden: torch.Tensor, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = self.head(hidden).float().view(-1, self.k, 3)
        return chamfer_distance(pred, rows["values"].float().view(-1, self.k, 3))


@register_target
class Geometry(Target):
    """GeoMAE: each masked group's centroid, normal and curvature (see the module docstring)."""

    name = "geometry"

    def __init__(self, config) -> None:
        super().__init__()
        self.k = _group_size(config)
        self.head = nn.Linear(config.decoder_embed_dim, 7)

    def forward(self, hidden: torch.Tensor, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        true = group_geometry(rows["values"].view(-1, self.k, 3))
        out = self.head(hidden).float()
        rms = true.centroid.pow(2).sum(1).mean().clamp(min=CENTROID_EPS).sqrt()
        centroid = (out[:, :3] - true.centroid / rms).pow(2).sum(1).mean()
        normal = 1.0 - F.cosine_similarity(out[:, 3:6], true.normal, dim=1).abs().mean()
        curvature = F.mse_loss(3.0 * out[:, 6], 3.0 * true.curvature)
        return centroid + normal + curvature


__all__ = ["Chamfer", "Geometry"]
