"""Point clouds as groups (Point-MAE): farthest-point-sampled centres, each with its k nearest
points, handed to the masked-groups recipe as :class:`~fastpretrain.nn.Groups`; the mini-PointNet
that embeds a group; the Chamfer loss and the local geometry (GeoMAE's targets) of a group.

A group's values are its k points as offsets from the centre (flattened k x 3, nearest first),
its position the centre's xyz (P = 3), so the embedder sees the local shape and the position
embedding where it sits.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.nn.groups import Groups
from fastpretrain.ops import chamfer_distance, farthest_point_sample, knn_points

__all__ = ["GroupGeometry", "MiniPointNet", "PointGroupTokenizer", "chamfer_distance", "group_geometry"]


class PointGroupTokenizer:
    """[B, N, 3] clouds -> :class:`Groups`: ``values`` [B, L, k * 3] the k nearest points of each of
    L farthest-point-sampled centres (FPS from point 0, in FPS order), as offsets from the centre,
    nearest first (ties to the lower point index); ``positions`` [B, L, 3] the centres."""

    def __init__(self, num_groups: int, group_size: int) -> None:
        self.num_groups = check_int("num_groups", num_groups, 1)
        self.group_size = check_int("group_size", group_size, 1)

    def _check(self, points) -> None:
        if not isinstance(points, torch.Tensor) or points.dim() != 3 or points.shape[2] != 3 or not points.is_floating_point():
            got = f"{points.dtype} {tuple(points.shape)}" if isinstance(points, torch.Tensor) else type(points).__name__
            raise ValueError(f"points: expected a float [B, N, 3] tensor, got {got}")
        if points.shape[1] < max(self.num_groups, self.group_size):
            raise ValueError(f"points: clouds of {points.shape[1]} points cannot give {self.num_groups} groups of "
                             f"{self.group_size} (num_groups and group_size are at most N)")  # fmt: skip

    def group(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(centres [B, L, 3], neighbourhoods [B, L, k, 3] as offsets from their centre)."""
        self._check(points)
        points = points.float()
        rows = torch.arange(points.shape[0], device=points.device)[:, None]
        centres = points[rows, farthest_point_sample(points, self.num_groups)]
        idx = knn_points(centres, points, self.group_size).indices  # [B, L, k]
        return centres, points[rows[..., None], idx] - centres[:, :, None]

    def __call__(self, points: torch.Tensor) -> Groups:
        centres, offsets = self.group(points)
        return Groups(offsets.flatten(2).contiguous(), centres.contiguous())


class MiniPointNet(nn.Module):
    """Point-MAE's group encoder: a shared per-point MLP (3 -> width -> 2 width), the group's max
    concatenated to every point, a second MLP (4 width -> 4 width -> out_dim), max over the points.
    [B, L, k * 3] offsets -> [B, L, out_dim]; invariant to the order of a group's points. LayerNorm
    stands in for Point-MAE's BatchNorm1d, so a group's embedding does not depend on the rest of the batch."""

    def __init__(self, group_size: int, out_dim: int, width: int = 128) -> None:
        super().__init__()
        self.group_size = check_int("group_size", group_size, 1)
        check_int("out_dim", out_dim, 1)
        check_int("width", width, 1)
        self.first = nn.Sequential(nn.Linear(3, width), nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, 2 * width))
        self.second = nn.Sequential(nn.Linear(4 * width, 4 * width), nn.LayerNorm(4 * width), nn.ReLU(),
                                    nn.Linear(4 * width, out_dim))  # fmt: skip

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        b, length, width = values.shape
        if width != 3 * self.group_size:
            raise ValueError(f"values: expected [B, L, {3 * self.group_size}] (groups of {self.group_size} xyz "
                             f"offsets), got {tuple(values.shape)}")  # fmt: skip
        h = self.first(values.reshape(b, length, self.group_size, 3))
        h = torch.cat([h, h.amax(2, keepdim=True).expand_as(h)], dim=-1)
        return self.second(h).amax(2)


class GroupGeometry(NamedTuple):
    """GeoMAE's per-group targets from a local PCA: ``centroid`` [N, 3] (mean offset from the
    centre), ``normal`` [N, 3] (unit eigenvector of the smallest covariance eigenvalue, sign
    undetermined) and ``curvature`` [N] (surface variation: smallest eigenvalue / their sum, 0 on
    a plane, 1/3 for an isotropic blob)."""

    centroid: torch.Tensor
    normal: torch.Tensor
    curvature: torch.Tensor


def group_geometry(offsets: torch.Tensor, eps: float = 1e-12) -> GroupGeometry:
    """:class:`GroupGeometry` of groups ``offsets`` [N, k, 3] (float64 PCA, float32 results)."""
    if offsets.dim() != 3 or offsets.shape[2] != 3:
        raise ValueError(f"offsets: expected [N, k, 3] point groups, got {tuple(offsets.shape)}")
    p = offsets.detach().double()
    centroid = p.mean(1)
    centred = p - centroid[:, None]
    cov = centred.transpose(1, 2) @ centred / p.shape[1]
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    curvature = eigenvalues[:, 0].clamp(min=0) / eigenvalues.clamp(min=0).sum(1).clamp(min=eps)
    return GroupGeometry(centroid.float(), eigenvectors[:, :, 0].float(), curvature.float())
