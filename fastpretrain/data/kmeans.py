"""k-means in torch, on the data's device (so on the GPU when there is one): k-means++ seeding, then
Lloyd steps. One implementation for every discrete target built by clustering: image GPT's colour
palette (:mod:`fastpretrain.data.palette`) and HuBERT's frame-span cluster ids
(:mod:`fastpretrain.data.audio_targets`)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from fastpretrain.checks import check_int

CHUNK = 65_536  # rows per distance block: N x k distances never exceed CHUNK x k floats


class KMeans(NamedTuple):
    """centres float32 [k, D]; assign int64 [N] (each point's centre, for the returned centres);
    inertia: the sum of squared distances to them; steps: the Lloyd steps run."""

    centres: torch.Tensor
    assign: torch.Tensor
    inertia: float
    steps: int


def _check_points(x: torch.Tensor, k: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected float points [N, D], got {got}")
    if len(x) < k:
        raise ValueError(f"k: {k} clusters need at least {k} points, got {len(x)}")
    return x.float()


def min_distances(x: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of each point of ``x`` [N, D] to its nearest row of ``centres`` [k, D]
    (Euclidean, ties to the lower index), in blocks of :data:`CHUNK` rows."""
    dist, idx = [], []
    for i in range(0, len(x), CHUNK):
        d = torch.cdist(x[i : i + CHUNK], centres).min(1)
        dist.append(d.values)
        idx.append(d.indices)
    return torch.cat(dist), torch.cat(idx)


def nearest(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """int64 [N]: the index of each point's nearest centre."""
    if x.dim() != 2 or centres.dim() != 2 or x.shape[1] != centres.shape[1]:
        raise ValueError(f"x: expected [N, {centres.shape[-1]}] points for centres {tuple(centres.shape)}, "
                         f"got {tuple(x.shape)}")  # fmt: skip
    return min_distances(x.float(), centres.float().to(x.device))[1]


def kmeans_plusplus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """[k, D] seeds (Arthur & Vassilvitskii 2007): the first a uniform pick, each next one a point drawn
    with probability proportional to its squared distance to the nearest seed so far (kept up to date
    seed by seed, one distance per point each)."""
    centres = x[torch.randint(len(x), (1,), generator=generator, device=x.device)]
    d2 = (x - centres).square().sum(1)
    for _ in range(1, k):
        if d2.sum() > 0:
            pick = torch.multinomial(d2 / d2.sum(), 1, generator=generator)
        else:  # every point sits on a seed already
            pick = torch.randint(len(x), (1,), generator=generator, device=x.device)
        centres = torch.cat([centres, x[pick]])
        d2 = torch.minimum(d2, (x - x[pick]).square().sum(1))  # only the new seed can be nearer
    return centres


def kmeans(x: torch.Tensor, k: int, *, iters: int = 30, seed: int = 0, init: torch.Tensor | None = None) -> KMeans:
    """k-means of the points ``x`` [N, D] into ``k`` clusters.

    Seeds: ``init`` [k, D] if given, else k-means++ drawn with ``seed``. Then Lloyd steps (assign
    each point to its nearest centre, move each centre to its points' mean) until no assignment
    changes or ``iters`` steps; a cluster left empty is moved to the point farthest from its centre.
    """
    check_int("k", k, 1)
    check_int("iters", iters, 1)
    x = _check_points(x, k)
    if init is not None:
        if init.shape != (k, x.shape[1]):
            raise ValueError(f"init: expected [k, D] = [{k}, {x.shape[1]}] seeds, got {tuple(init.shape)}")
        centres = init.float().to(x.device).clone()
    else:
        centres = kmeans_plusplus(x, k, torch.Generator(device=x.device).manual_seed(seed))
    assign, steps = None, 0
    for steps in range(1, iters + 1):
        new = min_distances(x, centres)[1]
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
        for empty in (counts == 0).nonzero().flatten().tolist():
            centres[empty] = x[min_distances(x, centres)[0].argmax()]
    dist, assign = min_distances(x, centres)
    return KMeans(centres, assign, float(dist.double().square().sum()), steps)


__all__ = ["CHUNK", "KMeans", "kmeans", "kmeans_plusplus", "min_distances", "nearest"]
