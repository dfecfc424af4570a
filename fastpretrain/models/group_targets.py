"""What the masked-groups recipe predicts at the masked groups, and its loss: one small head + loss
per :class:`Target`, registered by name (:func:`register_target`), chosen by ``MaskedGroupsConfig.target``.

- ``values``: the groups' raw values, mean squared error per group (MAE, Ti-MAE, Point-MAE's
  coordinates without Chamfer); with ``norm_values`` each target group is first normalised by
  its own mean and variance (MAE's ``norm_pix_loss``).
- ``clusters``: each group's cluster id (HuBERT's k-means units, supplied with the batch as
  ``clusters`` int64 [B, L]), cross-entropy over ``num_clusters`` classes.

A new target is one class::

    @register_target
    class Centroid(Target):
        name = "centroid"
        needs = ()                       # per-group batch fields beyond values and positions
        def __init__(self, config):      # a MaskedGroupsConfig
            super().__init__()
            self.head = nn.Linear(config.decoder_embed_dim, 3)
        def forward(self, hidden, rows):  # hidden [N, decoder_embed_dim] at the N masked groups
            return F.mse_loss(self.head(hidden).float(), rows["values"].view(len(hidden), -1, 3).mean(1))

``rows`` holds the masked groups' ``values`` [N, G], ``positions`` [N, P] and every field named in
``needs`` (the batch's [B, L, ...] tensors, masked rows only); the recipe checks the batch has them.
The module defining it must be imported before a config names it (``fastpretrain/models/__init__.py``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

NORM_VALUES_EPS = 1e-6  # added to each target group's variance (a constant group has none)
TARGETS: dict[str, type[Target]] = {}


class Target(nn.Module):
    """A head on the decoder's output at the masked groups and its scalar loss (see the module docstring)."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()

    def forward(self, hidden: torch.Tensor, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


def register_target(cls: type[Target]) -> type[Target]:
    """Register a :class:`Target` subclass under its ``name`` (a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Target)) or not isinstance(getattr(cls, "name", None), str):
        raise TypeError(f"cls: expected a Target subclass with a name, got {cls!r}")
    if cls.name in TARGETS and TARGETS[cls.name] is not cls:
        raise ValueError(f"name: target {cls.name!r} is registered already")
    TARGETS[cls.name] = cls
    return cls


def check_target(name: str) -> str:
    """``name`` if a target is registered under it, else a ValueError listing the registered ones."""
    if name not in TARGETS:
        raise ValueError(f"target: expected one of {', '.join(sorted(TARGETS))}, got {name!r}")
    return name


def normalized(values: torch.Tensor) -> torch.Tensor:
    """Each row of float ``values`` [N, G] minus its mean, over its std (variance + NORM_VALUES_EPS)."""
    values = values.float()
    mean, var = values.mean(dim=-1, keepdim=True), values.var(dim=-1, keepdim=True)
    return (values - mean) / (var + NORM_VALUES_EPS) ** 0.5


@register_target
class Values(Target):
    """Regress the raw group values: mean over the masked groups of each group's mean squared error."""

    name = "values"

    def __init__(self, config) -> None:
        super().__init__()
        self.norm_values = config.norm_values
        self.head = nn.Linear(config.decoder_embed_dim, config.group_dim)

    def forward(self, hidden: torch.Tensor, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        target = normalized(rows["values"]) if self.norm_values else rows["values"].float()
        return ((self.head(hidden).float() - target) ** 2).mean()


@register_target
class Clusters(Target):
    """Classify each masked group's cluster id (HuBERT): mean cross-entropy over the masked groups."""

    name, needs = "clusters", ("clusters",)

    def __init__(self, config) -> None:
        super().__init__()
        self.num_clusters = config.num_clusters
        self.head = nn.Linear(config.decoder_embed_dim, config.num_clusters)

    def forward(self, hidden: torch.Tensor, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = rows["clusters"]
        if ids.is_floating_point() or ids.dim() != 1:
            raise ValueError(f"clusters: expected integer [B, L] cluster ids, got {ids.dtype} {tuple(ids.shape)} rows")
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_clusters):
            raise ValueError(f"clusters: expected ids in [0, {self.num_clusters}), got {int(ids.min())} .. "
                             f"{int(ids.max())}")  # fmt: skip
        return F.cross_entropy(self.head(hidden).float(), ids.long())


__all__ = ["NORM_VALUES_EPS", "TARGETS", "Clusters", "Target", "Values", "check_target", "normalized", "register_target"]
