"""Synthetic point clouds: seeded and balanced, normalised into the unit sphere, each shape's
geometry (the sphere's radius, the plane's flatness, the torus's hole, the ellipsoid's axes)
through random rotation and scale; the rotations are uniform rotations; bad input."""

import pytest
import torch

from fastpretrain.data.points import SHAPES, SyntheticShapes, radial_profile, random_rotation, sample_shape
from fastpretrain.nn.point_groups import group_geometry


def test_seeded_balanced_and_normalised():
    a, b, c = SyntheticShapes(20, 64, seed=3), SyntheticShapes(20, 64, seed=3), SyntheticShapes(20, 64, seed=4)
    assert torch.equal(a.points, b.points) and not torch.equal(a.points, c.points)
    assert a.points.shape == (20, 64, 3) and a.points.dtype == torch.float32
    assert torch.bincount(a.labels).tolist() == [3, 3, 3, 3, 2, 2, 2, 2] and a[9][1] == SHAPES.index("cube")
    torch.testing.assert_close(a.points.mean(1), torch.zeros(20, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(a.points.norm(dim=2).amax(1), torch.ones(20))


def _pca(points):
    return torch.linalg.eigvalsh(torch.cov(points.double().T))


def test_shapes_keep_their_geometry():
    g = torch.Generator().manual_seed(0)
    sphere = sample_shape("sphere", 500, g, noise=0.0)
    radius = sphere.norm(dim=1)
    assert radius.max() == pytest.approx(1.0) and radius.min() > 0.9 / 1.1 - 1e-3  # at most the axis stretch
    plane = _pca(sample_shape("plane", 500, g, noise=0.0))
    assert plane[0] < 1e-10 * plane[2]
    assert group_geometry(sample_shape("plane", 500, g, noise=0.0)[None]).curvature[0] < 1e-6
    torus = sample_shape("torus", 2000, g, noise=0.0)
    assert torus.norm(dim=1).min() > 0.35  # the hole: no point near the centre
    w = _pca(sample_shape("ellipsoid", 2000, g, noise=0.0))
    assert w[2] > 2.5 * w[1]  # one long axis (1 vs 0.45, stretched by at most 1.1 / 0.9)
    cube = sample_shape("cube", 2000, g, noise=0.0)
    assert cube.norm(dim=1).min() > 0.5  # every point on a face, none inside
    clean, noisy = sample_shape("sphere", 500, torch.Generator().manual_seed(9), noise=0.0), sample_shape(
        "sphere", 500, torch.Generator().manual_seed(9), noise=0.05)
    assert 0.03 < (noisy - clean).norm(dim=1).mean() < 0.15  # 0.05 x sqrt(3) before the renormalisation


def test_random_rotations_are_rotations_and_uniform():
    g = torch.Generator().manual_seed(1)
    rs = torch.stack([random_rotation(g) for _ in range(300)])
    torch.testing.assert_close(rs @ rs.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(300, 3, 3))
    assert torch.allclose(torch.det(rs), torch.ones(300, dtype=torch.float64))
    ez = rs[:, :, 2]  # images of the z axis: uniform on the sphere, mean ~0, each coordinate's variance ~1/3
    assert ez.mean(0).abs().max() < 0.15 and (ez.var(0) - 1 / 3).abs().max() < 0.08


def test_radial_profile_is_sorted_and_rotation_invariant():
    g = torch.Generator().manual_seed(2)
    p = SyntheticShapes(4, 32, seed=5).points
    r = random_rotation(g).float()
    prof = radial_profile(p)
    assert prof.shape == (4, 32) and bool((prof.diff(dim=1) >= 0).all())
    torch.testing.assert_close(radial_profile(p @ r.T), prof, atol=1e-5, rtol=0)


def test_bad_input():
    with pytest.raises(ValueError, match="shape: expected one of sphere"):
        sample_shape("teapot", 10, torch.Generator())
    with pytest.raises(ValueError, match=r"noise: expected a number in \[0, 1\)"):
        SyntheticShapes(4, 10, noise=-0.1)
    with pytest.raises(ValueError, match="count: expected an int >= 1"):
        SyntheticShapes(0, 10)
