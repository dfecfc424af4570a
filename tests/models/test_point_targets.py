"""Point-MAE's Chamfer target and GeoMAE's geometry target through the masked-groups recipe: each
loss equals the formula on its head's output, the pointnet embedder is selectable, a tiny model
learns on synthetic shapes (loss well below its start), bad group widths are refused."""

import pytest
import torch
import torch.nn.functional as F

from fastpretrain.data.points import SyntheticShapes
from fastpretrain.models import create_model
from fastpretrain.models.point_targets import Chamfer, Geometry
from fastpretrain.nn.point_groups import PointGroupTokenizer, group_geometry
from fastpretrain.ops import chamfer_distance_reference

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"embed_dim": 32, "num_heads": 2, "depth": 1, "decoder_embed_dim": 32, "decoder_num_heads": 2,
        "group_dim": 24, "pos_dim": 3, "position": "mlp", "embedder": "pointnet", "mask_ratio": 0.6}  # fmt: skip


def _rows(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 32, generator=g), {"values": torch.randn(n, 24, generator=g), "positions": torch.randn(n, 3)}


def test_chamfer_target_is_the_chamfer_distance_of_its_prediction():
    target = Chamfer(create_model("masked_groups_tiny", target="chamfer", **TINY).config)
    hidden, rows = _rows()
    want = chamfer_distance_reference(target.head(hidden).view(5, 8, 3), rows["values"].view(5, 8, 3))
    torch.testing.assert_close(target(hidden, rows), want)


def test_geometry_target_formula():
    target = Geometry(create_model("masked_groups_tiny", target="geometry", **TINY).config)
    hidden, rows = _rows(seed=1)
    out, true = target.head(hidden), group_geometry(rows["values"].view(5, 8, 3))
    rms = (true.centroid**2).sum(1).mean().sqrt()
    want = ((out[:, :3] - true.centroid / rms) ** 2).sum(1).mean()
    want = want + 1 - F.cosine_similarity(out[:, 3:6], true.normal).abs().mean()
    want = want + ((3 * out[:, 6] - 3 * true.curvature) ** 2).mean()
    torch.testing.assert_close(target(hidden, rows), want)


@pytest.mark.parametrize("target", ["chamfer", "geometry"])
def test_tiny_model_learns_on_synthetic_shapes(target):
    torch.manual_seed(0)
    data = SyntheticShapes(32, 64, seed=1)
    groups = PointGroupTokenizer(8, 8)(data.points)
    model = create_model("masked_groups_tiny", target=target, **TINY)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(40):
        loss = model(groups.values, groups.positions, generator=g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)


def test_group_dim_must_hold_xyz_triples():
    with pytest.raises(ValueError, match="group_dim: point groups need k x 3 values per group, got 25"):
        create_model("masked_groups_tiny", target="chamfer", **{**TINY, "group_dim": 25})
