"""The masked-groups recipe against plain torch: the visible-only encoder and its decoder (fused
gather / unshuffle ops) against explicit gather, cat and unshuffle code, loss and every gradient;
the full encoder never sees the masked groups' values; targets score the masked groups only;
per-sample positions; the target and embedder registries; bad input."""

import pytest
import torch
import torch.nn.functional as F

from fastpretrain.models import MaskedGroups, create_model, group_targets, masked_groups
from fastpretrain.models.group_targets import Target, register_target
from fastpretrain.nn import Groups, sincos_pos_embed_1d

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"group_dim": 7, "embed_dim": 32, "depth": 2, "num_heads": 2, "decoder_embed_dim": 32, "decoder_depth": 1,
        "decoder_num_heads": 2}


def _model(**kw) -> MaskedGroups:
    torch.manual_seed(0)
    return MaskedGroups(**{**TINY, **kw})


def _batch(batch=3, length=11, group_dim=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(batch, length, group_dim, generator=g)
    positions = torch.stack([torch.randperm(length, generator=g).float() for _ in range(batch)])[..., None]
    return values, positions, torch.rand(batch, length, generator=g)


def reference_visible(model: MaskedGroups, values, positions, noise):
    """MAE's steps in plain torch: argsort the noise, gather the kept groups (positions per sample),
    cls, blocks, norm; decoder: append mask tokens, unshuffle by the inverse permutation, add positions."""
    c = model.config
    batch, length, _ = values.shape
    keep = int(length * (1 - c.mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    x = model.embedder(values) + masked_groups.sincos_positions(positions[..., 0], c.embed_dim)
    x = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, x.shape[-1]))
    x = torch.cat([model.cls_token.expand(batch, -1, -1), x], dim=1)
    for block in model.blocks:
        x = block(x)
    y = model.decoder_embed(model.norm(x))
    tokens = torch.cat([y[:, 1:], model.decoder_mask_token.expand(batch, length - keep, -1)], dim=1)
    tokens = torch.gather(tokens, 1, ids_restore[..., None].expand(-1, -1, y.shape[-1]))
    tokens = tokens + masked_groups.sincos_positions(positions[..., 0], c.decoder_embed_dim)
    y = torch.cat([y[:, :1], tokens], dim=1)
    for block in model.decoder_blocks:
        y = block(y)
    hidden = model.decoder_norm(y)[:, 1:]
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask.scatter_(1, ids_keep, False)
    pred = model.target.head(hidden[mask])
    return ((pred - values[mask]) ** 2).mean(), mask


def test_visible_encoder_matches_plain_torch_loss_and_gradients():
    model = _model(mask_ratio=0.6)
    values, positions, noise = _batch()
    out = model(values, positions, noise=noise, return_outputs=True)
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    loss, mask = reference_visible(model, values, positions, noise)
    loss.backward()
    assert torch.equal(out["mask"], mask) and out["mask"].sum(1).eq(11 - int(11 * 0.4)).all()
    torch.testing.assert_close(out["loss"], loss, atol=1e-6, rtol=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, atol=1e-6, rtol=1e-4, msg=name)


def test_norm_values_regresses_each_group_normalised_by_its_own_mean_and_variance():
    model = _model(norm_values=True)
    values, positions, noise = _batch()
    values[0, 0] = 3.0  # a constant group: its variance is 0, the eps keeps it finite
    out = model(values, positions, noise=noise, return_outputs=True)
    mask = out["mask"]
    rows = values[mask].double()
    target = (rows - rows.mean(1, keepdim=True)) / (rows.var(1, keepdim=True) + 1e-6).sqrt()
    expected = ((model.target.head(out["hidden"][mask]).double() - target) ** 2).mean()
    torch.testing.assert_close(out["loss"].double(), expected, atol=1e-5, rtol=1e-5)


def test_visible_encoder_never_reads_masked_values_and_the_loss_only_masked_groups():
    model = _model()
    values, positions, noise = _batch()
    out = model(values, positions, noise=noise, return_outputs=True)
    mask = out["mask"]
    changed = values.clone()
    changed[mask] += 5.0  # masked groups: other inputs and targets
    latent = model.forward_encoder(Groups(changed, positions), noise=noise)[0]
    torch.testing.assert_close(latent, out["latent"])
    assert not torch.allclose(model(changed, positions, noise=noise)["loss"], out["loss"])
    visible = values.clone()
    visible[~mask] += 5.0  # visible groups: other inputs only
    hidden = model(visible, positions, noise=noise, return_outputs=True)["hidden"]
    expected = ((model.target.head(hidden[mask]) - values[mask]) ** 2).mean()
    torch.testing.assert_close(model(visible, positions, noise=noise)["loss"], expected)


@pytest.mark.parametrize("masking", ["random", "span", "block"])
def test_full_encoder_replaces_masked_groups_by_the_mask_token(masking):
    model = _model(encoder="full", masking=masking, span_length=3, block_rows=2, min_block=2, position="mlp", pos_dim=2)
    g = torch.Generator().manual_seed(5)
    values, positions = torch.randn(2, 12, 7, generator=g), torch.randn(2, 12, 2, generator=g)
    out = model(values, positions, generator=torch.Generator().manual_seed(6), return_outputs=True)
    mask = out["mask"]
    assert mask.any(1).all() and (~mask).any(1).all()
    changed = values.clone()
    changed[mask] = torch.randn(int(mask.sum()), 7, generator=g)
    again = model.forward_encoder(Groups(changed, positions), mask=mask)[0]
    torch.testing.assert_close(again, out["latent"])
    # explicit: mask token plus position at masked groups, embedded values plus position elsewhere
    x = model.embedder(values)
    x = torch.where(mask[..., None], model.mask_token.expand_as(x), x) + model.pos_embed(positions)
    x = torch.cat([model.cls_token.expand(2, -1, -1), x], dim=1)
    for block in model.blocks:
        x = block(x)
    torch.testing.assert_close(model.norm(x), out["latent"])
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_positions_are_per_sample_and_follow_the_groups():
    """Groups in another order with their positions give the same group features (full, no mask)."""
    model = _model(encoder="full")
    values, positions, _ = _batch()
    perm = torch.stack([torch.randperm(11) for _ in range(3)])
    take = lambda t: torch.gather(t, 1, perm[..., None].expand(-1, -1, t.shape[-1]))
    feats = model.forward_features(values, positions)
    torch.testing.assert_close(model.forward_features(take(values), take(positions))[:, 1:], take(feats[:, 1:]),
                               atol=1e-5, rtol=1e-5)  # fmt: skip
    table = sincos_pos_embed_1d(32, 11)
    torch.testing.assert_close(masked_groups.sincos_positions(torch.arange(11.0)[None], 32)[0], table)


def test_clusters_target_is_cross_entropy_on_masked_groups():
    model = _model(target="clusters", num_clusters=5)
    values, positions, noise = _batch()
    clusters = torch.randint(0, 5, (3, 11))
    out = model(values, positions, noise=noise, clusters=clusters, return_outputs=True)
    mask = out["mask"]
    expected = F.cross_entropy(model.target.head(out["hidden"][mask]), clusters[mask])
    torch.testing.assert_close(out["loss"], expected)
    with pytest.raises(ValueError, match="clusters: the 'clusters' target needs it in the batch"):
        model(values, positions)
    with pytest.raises(ValueError, match=r"clusters: expected ids in \[0, 5\)"):
        model(values, positions, clusters=clusters + 5)
    with pytest.raises(ValueError, match=r"clusters: expected a \[B, L, ...\] = \(3, 11\) tensor"):
        model(values, positions, clusters=clusters[:, :4])


def test_a_registered_target_and_embedder_plug_in():
    @register_target
    class Mean(Target):
        name = "test_mean"

        def __init__(self, config):
            super().__init__()
            self.head = torch.nn.Linear(config.decoder_embed_dim, 1)

        def forward(self, hidden, rows):
            return ((self.head(hidden)[:, 0] - rows["values"].mean(1)) ** 2).mean()

    masked_groups.register_embedder("test_twice", lambda c: torch.nn.Sequential(torch.nn.Linear(c.group_dim, c.embed_dim),
                                                                                 torch.nn.GELU()))  # fmt: skip
    try:
        model = _model(target="test_mean", embedder="test_twice")
        values, positions, noise = _batch()
        out = model(values, positions, noise=noise, return_outputs=True)
        mask = out["mask"]
        expected = ((model.target.head(out["hidden"][mask])[:, 0] - values[mask].mean(1)) ** 2).mean()
        torch.testing.assert_close(out["loss"], expected)
        assert isinstance(model.embedder, torch.nn.Sequential)
    finally:
        group_targets.TARGETS.pop("test_mean")
        masked_groups.EMBEDDERS.pop("test_twice")


def test_bad_configs_and_inputs_name_the_argument():
    with pytest.raises(ValueError, match="encoder: 'visible' needs a fixed masked count"):
        _model(masking="span")
    with pytest.raises(ValueError, match=r"target: expected one of (\w+, )*clusters, (\w+, )*values(, \w+)*, got 'pixels'"):
        _model(target="pixels")
    with pytest.raises(ValueError, match="position: expected one of sincos, mlp"):
        _model(position="rope")
    with pytest.raises(ValueError, match="position: 'sincos' embeds a 1-D group index .* got pos_dim 3"):
        _model(pos_dim=3)
    model = _model()
    values, positions, noise = _batch()
    with pytest.raises(ValueError, match=r"groups: expected values \[B, L, 7\] and positions \[B, L, 1\]"):
        model(values[..., :5], positions)
    with pytest.raises(ValueError, match="groups.positions: expected"):
        model(values, positions[:, :4])
    with pytest.raises(ValueError, match="noise: expected shape"):
        model(values, positions, noise=noise[:, :3])
    with pytest.raises(ValueError, match="mask: the visible encoder takes noise"):
        model(values, positions, mask=noise > 0.5)
    assert create_model("masked_groups_tiny", group_dim=3).config.embed_dim == 128
