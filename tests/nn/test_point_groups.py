"""Point groups: the tokenizer's centres are FPS picks and its groups the k nearest points as
offsets (against float64 brute force), the mini-PointNet is order-free within a group and
groups do not see each other, the local-PCA geometry on shapes whose answer is known."""

import math

import numpy as np
import pytest
import torch

from fastpretrain.nn.point_groups import MiniPointNet, PointGroupTokenizer, group_geometry
from fastpretrain.ops import farthest_point_sample_reference

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tokenizer_groups_are_the_nearest_points_of_fps_centres():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(2, 50, 3, generator=g)
    groups = PointGroupTokenizer(7, 5)(points)
    assert groups.values.shape == (2, 7, 15) and groups.positions.shape == (2, 7, 3)
    fps = farthest_point_sample_reference(points, 7)
    for b in range(2):
        assert torch.equal(groups.positions[b], points[b, fps[b]])
        p = points[b].double().numpy()
        for i, c in enumerate(fps[b].tolist()):
            nearest = np.argsort(((p - p[c]) ** 2).sum(1), kind="stable")[:5]
            want = points[b, nearest] - points[b, c]
            torch.testing.assert_close(groups.values[b, i].view(5, 3), want)
            assert groups.values[b, i, :3].abs().max() == 0  # the centre is its own nearest point


@pytest.mark.parametrize("points, match", [
    (torch.randn(2, 50, 2), r"points: expected a float \[B, N, 3\]"),
    (torch.zeros(2, 50, 3, dtype=torch.int64), r"points: expected a float \[B, N, 3\]"),
    (torch.randn(2, 6, 3), "points: clouds of 6 points cannot give 7 groups"),
])  # fmt: skip
def test_tokenizer_bad_input(points, match):
    with pytest.raises(ValueError, match=match):
        PointGroupTokenizer(7, 5)(points)
    with pytest.raises(ValueError, match="group_size: expected an int >= 1"):
        PointGroupTokenizer(7, 0)


def test_minipointnet_is_order_free_and_groups_independent():
    torch.manual_seed(0)
    net = MiniPointNet(group_size=6, out_dim=10, width=8)
    values = torch.randn(3, 4, 18)
    out = net(values)
    assert out.shape == (3, 4, 10)
    shuffled = values.view(3, 4, 6, 3)[:, :, torch.randperm(6)].reshape(3, 4, 18)
    torch.testing.assert_close(net(shuffled), out)
    moved = values.clone()
    moved[1, 2, :3] += 1.0
    diff = (net(moved) - out).abs().amax(-1)
    assert diff[1, 2] > 1e-3 and diff.sum() == diff[1, 2]  # only the group that changed
    with pytest.raises(ValueError, match=r"values: expected \[B, L, 18\]"):
        net(torch.randn(3, 4, 17))


def test_geometry_of_a_rotated_plane_a_line_and_a_symmetric_blob():
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    plane = torch.cat([torch.randn(20, 2, generator=g), torch.zeros(20, 1)], 1) @ q.T + 0.3
    line = torch.linspace(-1, 1, 9)[:, None] * q[:, 0] - 0.2
    blob = torch.cat([torch.eye(3), -torch.eye(3)])  # the 6 axis points: isotropic
    geo = group_geometry(torch.stack([plane[:9], line]))
    torch.testing.assert_close(geo.centroid[0], plane[:9].mean(0))
    assert abs(float(geo.normal[0] @ q[:, 2])) == pytest.approx(1.0, abs=1e-5)
    assert geo.curvature[0] == pytest.approx(0.0, abs=1e-6) and geo.curvature[1] == pytest.approx(0.0, abs=1e-6)
    assert group_geometry(blob[None]).curvature[0] == pytest.approx(1 / 3, abs=1e-6)
    torch.testing.assert_close(geo.normal.norm(dim=1), torch.ones(2))


def test_geometry_matches_numpy_pca():
    g = torch.Generator().manual_seed(2)
    offsets = torch.randn(5, 11, 3, generator=g) * torch.tensor([1.0, 0.5, 0.1])
    geo = group_geometry(offsets)
    for i, p in enumerate(offsets.double().numpy()):
        w, v = np.linalg.eigh(np.cov(p.T, bias=True))
        assert abs(float(np.dot(geo.normal[i].double().numpy(), v[:, 0]))) == pytest.approx(1.0, abs=1e-5)
        assert float(geo.curvature[i]) == pytest.approx(w[0] / w.sum(), rel=1e-5)
    assert math.isclose(float(geo.centroid[0, 0]), float(offsets[0, :, 0].mean()), abs_tol=1e-6)
    with pytest.raises(ValueError, match=r"offsets: expected \[N, k, 3\]"):
        group_geometry(torch.randn(5, 11))
