"""Point clouds for masked modeling (Point-MAE / GeoMAE) — synthetic: no mesh dataset is
obtainable offline here, so every cloud is sampled from a primitive surface we generate, with a
fixed seed: sphere, cube surface, cylinder, cone, torus, plane patch, ellipsoid (a sphere stretched
along one axis) and helix tube, each with a random size, a random stretch of each axis (0.9 - 1.1),
a uniformly random rotation and Gaussian noise, then centred and scaled into the unit sphere (as
Point-MAE's ``pc_normalize``). Points are area-uniform on each surface. The class of the shape is
the probe's label.

The modality ``points`` of ``fastpretrain masked``: the point-group tokenizer (FPS centres + kNN
groups) and Point-MAE's defaults (mini-PointNet embedder, MLP positions on the centres, visible-only
encoder, 60% random masking, Chamfer target). Its raw-input baseline is each cloud's sorted
distances from its centre (a rotation-invariant radial profile; the raw xyz in random order and
orientation tell a linear probe nothing).
"""

from __future__ import annotations

import argparse
import math

import torch

from fastpretrain.checks import check_int
from fastpretrain.data.modalities import GroupsCollate, Labelled, Modality, ModalityData
from fastpretrain.nn.point_groups import PointGroupTokenizer

SHAPES = ("sphere", "cube", "cylinder", "cone", "torus", "plane", "ellipsoid", "helix")
PROBE_CLOUDS = 800  # train clouds of the probe (and half as many test clouds), seeds seed + 1 and seed + 2


def _uniform(g: torch.Generator, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)


def _pick(g: torch.Generator, n: int, areas: list[float]) -> torch.Tensor:
    """Which part of a surface each of n points lies on, with probability proportional to its area."""
    return torch.multinomial(torch.tensor(areas, dtype=torch.float64), n, replacement=True, generator=g)


def _sphere(g, n):
    v = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return v / v.norm(dim=1, keepdim=True)


def _cube(g, n):
    face = _pick(g, n, [1.0] * 6)
    p = _uniform(g, n, 3, low=-1.0, high=1.0)
    axis = face % 3
    p[torch.arange(n), axis] = torch.where(face < 3, -1.0, 1.0).double()
    return p


def _disk(g, n, radius):
    r, t = radius * _uniform(g, n).sqrt(), _uniform(g, n, high=2 * math.pi)
    return r * t.cos(), r * t.sin()


def _cylinder(g, n, r=0.5, h=1.0):
    part = _pick(g, n, [2 * math.pi * r * h, math.pi * r * r, math.pi * r * r])
    t = _uniform(g, n, high=2 * math.pi)
    side = torch.stack([r * t.cos(), r * t.sin(), _uniform(g, n, low=-h / 2, high=h / 2)], 1)
    x, y = _disk(g, n, r)
    cap = torch.stack([x, y, torch.where(part == 1, -h / 2, h / 2).double()], 1)
    return torch.where((part == 0)[:, None], side, cap)


def _cone(g, n, r=0.6, h=1.2):
    part = _pick(g, n, [math.pi * r * math.hypot(r, h), math.pi * r * r])
    s, t = _uniform(g, n).sqrt(), _uniform(g, n, high=2 * math.pi)  # s: distance from the apex, area-uniform
    side = torch.stack([r * s * t.cos(), r * s * t.sin(), h / 2 - h * s], 1)
    x, y = _disk(g, n, r)
    return torch.where((part == 0)[:, None], side, torch.stack([x, y, torch.full_like(x, -h / 2)], 1))


def _torus(g, n, big=0.7, small=0.25):
    out = torch.empty(0, 3, dtype=torch.float64)
    while len(out) < n:  # the tube angle by rejection: the area element is (big + small cos(phi))
        phi, theta = _uniform(g, 2 * n, high=2 * math.pi), _uniform(g, 2 * n, high=2 * math.pi)
        keep = _uniform(g, 2 * n) < (big + small * phi.cos()) / (big + small)
        ring = big + small * phi.cos()
        p = torch.stack([ring * theta.cos(), ring * theta.sin(), small * phi.sin()], 1)
        out = torch.cat([out, p[keep]])
    return out[:n]


def _plane(g, n):
    return torch.cat([_uniform(g, n, 2, low=-1.0, high=1.0), torch.zeros(n, 1, dtype=torch.float64)], 1)


def _ellipsoid(g, n):
    return _sphere(g, n) * torch.tensor([1.0, 0.45, 0.45], dtype=torch.float64)


def _helix(g, n, turns=2.0, radius=0.6, tube=0.12, pitch=0.5):
    """A tube around a helix (area-uniform up to the tube's small curvature correction)."""
    s, phi = _uniform(g, n, high=2 * math.pi * turns), _uniform(g, n, high=2 * math.pi)
    centre = torch.stack([radius * s.cos(), radius * s.sin(), pitch * s / (2 * math.pi) - pitch * turns / 2], 1)
    radial = torch.stack([s.cos(), s.sin(), torch.zeros_like(s)], 1)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(n, 3)
    return centre + tube * (phi.cos()[:, None] * radial + phi.sin()[:, None] * up)


_SAMPLERS = {"sphere": _sphere, "cube": _cube, "cylinder": _cylinder, "cone": _cone, "torus": _torus,
             "plane": _plane, "ellipsoid": _ellipsoid, "helix": _helix}  # fmt: skip


def random_rotation(g: torch.Generator) -> torch.Tensor:
    """A uniformly random 3-D rotation (QR of a Gaussian matrix, signs fixed, determinant +1)."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def normalize_cloud(points: torch.Tensor) -> torch.Tensor:
    """[N, 3] -> centred at the mean, the farthest point at distance 1 (Point-MAE's pc_normalize)."""
    centred = points - points.mean(0)
    return centred / centred.norm(dim=1).max().clamp(min=1e-12)


def sample_shape(shape: str, num_points: int, g: torch.Generator, noise: float = 0.01) -> torch.Tensor:
    """One float32 [num_points, 3] cloud of ``shape`` (one of :data:`SHAPES`): random size, axis
    stretch, rotation and noise (``noise`` x the unit sphere's radius, after normalising), normalised."""
    if shape not in _SAMPLERS:
        raise ValueError(f"shape: expected one of {', '.join(SHAPES)}, got {shape!r}")
    p = _SAMPLERS[shape](g, num_points) * _uniform(g, 1, low=0.5, high=2.0) * _uniform(g, 3, low=0.9, high=1.1)
    p = normalize_cloud(p @ random_rotation(g).T)
    return normalize_cloud(p + noise * torch.randn(p.shape, generator=g, dtype=torch.float64)).float()


class SyntheticShapes:
    """``count`` clouds [count, num_points, 3] float32 cycling through :data:`SHAPES` (balanced),
    ``labels`` int64 [count] their shape's index; the same ``seed`` gives the same clouds. Items are
    ``(points [num_points, 3], label)``."""

    classes = SHAPES

    def __init__(self, count: int, num_points: int, seed: int = 0, noise: float = 0.01) -> None:
        check_int("count", count, 1)
        check_int("num_points", num_points, 1)
        check_int("seed", seed, 0)
        if not (isinstance(noise, (int, float)) and 0 <= noise < 1):
            raise ValueError(f"noise: expected a number in [0, 1), got {noise!r}")
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(count) % len(SHAPES)
        self.points = torch.stack([sample_shape(SHAPES[c], num_points, g, noise) for c in self.labels.tolist()])

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.points[i], int(self.labels[i])


def radial_profile(points: torch.Tensor) -> torch.Tensor:
    """[B, N, 3] -> [B, N] each cloud's sorted distances from its mean: the raw-input baseline."""
    return (points - points.mean(1, keepdim=True)).norm(dim=2).sort(dim=1).values.float()


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return int(text)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


class Points(Modality):
    """Synthetic shape clouds, FPS + kNN point groups, a shape-class probe (see the module docstring)."""

    name = "points"
    help = "synthetic point clouds of 8 primitive shapes, FPS + kNN point groups (Point-MAE)"
    defaults = {"position": "mlp", "embedder": "pointnet", "encoder": "visible", "masking": "random",
                "mask_ratio": 0.6, "target": "chamfer"}  # fmt: skip
    flags = {"count": "--points-clouds", "num_points": "--points-num", "num_groups": "--points-groups",
             "group_size": "--points-group-size", "seed": "--points-seed", "noise": "--points-noise"}  # fmt: skip

    def add_flags(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--points-clouds", type=_positive, default=2048,
                           help="points: synthetic clouds to pre-train on (default 2048)")  # fmt: skip
        group.add_argument("--points-num", type=_positive, default=256, help="points: points per cloud (default 256)")
        group.add_argument("--points-groups", type=_positive, default=16,
                           help="points: FPS centres (groups) per cloud (default 16)")  # fmt: skip
        group.add_argument("--points-group-size", type=_positive, default=16,
                           help="points: nearest points per group (default 16)")  # fmt: skip
        group.add_argument("--points-seed", type=int, default=0, help="points: seed of the synthetic clouds (default 0)")
        group.add_argument("--points-noise", type=_fraction, default=0.01,
                           help="points: Gaussian noise, in unit-sphere radii (default 0.01)")  # fmt: skip

    def add_eval_flags(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--points-probe", type=_positive, default=PROBE_CLOUDS,
                           help=f"points: labelled clouds to probe on, and half as many to test (default {PROBE_CLOUDS})")

    def settings(self, args: argparse.Namespace) -> dict:
        tokenizer = PointGroupTokenizer(args.points_groups, args.points_group_size)
        if args.points_num < max(tokenizer.num_groups, tokenizer.group_size):
            raise ValueError(f"num_points: clouds of {args.points_num} points cannot give {tokenizer.num_groups} "
                             f"groups of {tokenizer.group_size}")  # fmt: skip
        check_int("seed", args.points_seed, 0)
        # the clouds' seed and noise too: eval draws its probe clouds like the training ones
        return {"num_groups": tokenizer.num_groups, "group_size": tokenizer.group_size, "num_points": args.points_num,
                "seed": args.points_seed, "noise": args.points_noise}

    def tokenizer(self, settings: dict) -> PointGroupTokenizer:
        return PointGroupTokenizer(settings["num_groups"], settings["group_size"])

    def train_data(self, args: argparse.Namespace, settings: dict) -> ModalityData:
        data = SyntheticShapes(args.points_clouds, settings["num_points"], settings["seed"], settings["noise"])
        line = (f"data         synthetic point clouds: {len(data):,} clouds of {settings['num_points']} points "
                f"({len(SHAPES)} shapes, seed {settings['seed']}), {settings['num_groups']} groups of "
                f"{settings['group_size']}")  # fmt: skip
        return ModalityData(data, GroupsCollate(self.tokenizer(settings)), 3 * settings["group_size"], 3, (line,),
                            {"data": "synthetic shapes"})  # fmt: skip

    def probe_data(self, args: argparse.Namespace, settings: dict, run: dict) -> tuple[Labelled, Labelled]:
        seed, noise = settings["seed"], settings["noise"]
        count = getattr(args, "points_probe", PROBE_CLOUDS)
        splits = [SyntheticShapes(n, settings["num_points"], seed + 1 + i, noise) for i, n in enumerate((count, max(1, count // 2)))]
        return tuple(Labelled(s.points, s.labels) for s in splits)

    def raw_features(self, inputs: torch.Tensor) -> torch.Tensor:
        return radial_profile(inputs)


__all__ = ["PROBE_CLOUDS", "SHAPES", "Points", "SyntheticShapes", "normalize_cloud", "radial_profile",
           "random_rotation", "sample_shape"]  # fmt: skip
