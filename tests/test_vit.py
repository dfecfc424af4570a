"""ViT: the forward equals a hand-written eager computation with the same weights, the sin-cos
embedding is MAE's formula, the registered sizes are timm's, timm-layout weights load."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fastpretrain.interop.timm import load_timm_vit, vit_config_from_state_dict, vit_from_timm, vit_to_timm
from fastpretrain.models import VisionTransformer, ViTConfig, create_model
from fastpretrain.nn import sincos_pos_embed_2d


pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter random (LayerNorms and biases too, so a skipped term shows)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))


def _eager_vit(model: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """The ViT forward_features written out: patches by reshaping, attention by SDPA."""
    c = model.config
    sd = model.state_dict()
    b, p, d, h = x.shape[0], c.patch_size, c.embed_dim, c.num_heads
    g = c.img_size // p
    patches = x.reshape(b, c.in_chans, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, -1)
    tokens = patches @ sd["patch_embed.proj.weight"].reshape(d, -1).T + sd["patch_embed.proj.bias"]
    tokens = torch.cat([sd["cls_token"].expand(b, -1, -1), tokens], 1) + sd["pos_embed"]
    eps = c.layer_norm_eps
    for i in range(c.depth):
        w = lambda name: sd[f"blocks.{i}.{name}"]  # noqa: E731
        y = F.layer_norm(tokens, (d,), w("norm1.weight"), w("norm1.bias"), eps)
        q, k, v = F.linear(y, w("attn.qkv.weight"), w("attn.qkv.bias")).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, -1, h, d // h).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, d)
        tokens = tokens + F.linear(a, w("attn.proj.weight"), w("attn.proj.bias"))
        y = F.layer_norm(tokens, (d,), w("norm2.weight"), w("norm2.bias"), eps)
        y = F.linear(F.gelu(F.linear(y, w("mlp.fc1.weight"), w("mlp.fc1.bias"))), w("mlp.fc2.weight"), w("mlp.fc2.bias"))
        tokens = tokens + y
    return F.layer_norm(tokens, (d,), sd["norm.weight"], sd["norm.bias"], eps)


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_forward_matches_eager_computation(pool):
    torch.manual_seed(0)
    model = VisionTransformer(img_size=12, patch_size=4, in_chans=2, embed_dim=32, depth=2, num_heads=2, num_classes=5,
                              global_pool=pool).eval()  # fmt: skip
    _randomise(model)
    x = torch.randn(3, 2, 12, 12)
    features = _eager_vit(model, x)
    torch.testing.assert_close(model.forward_features(x), features, atol=1e-5, rtol=1e-5)
    pooled = features[:, 0] if pool == "token" else features[:, 1:].mean(1)
    torch.testing.assert_close(model.forward_head(features, pre_logits=True), pooled)
    logits = pooled @ model.head.weight.T + model.head.bias
    torch.testing.assert_close(model(x), logits, atol=1e-5, rtol=1e-5)


def _mae_numpy_pos_embed(embed_dim: int, grid_size: int) -> np.ndarray:
    """facebookresearch/mae util/pos_embed.py, verbatim but for np.float -> np.float64."""

    def one_d(dim, pos):
        omega = np.arange(dim // 2, dtype=np.float64)
        omega /= dim / 2.0
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape([2, 1, grid_size, grid_size])
    emb = np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)
    return np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)


@pytest.mark.parametrize("dim, grid", [(16, 7), (64, 3), (192, 14)])
def test_sincos_pos_embed_is_maes_formula(dim, grid):
    ours = sincos_pos_embed_2d(dim, grid)
    assert ours.dtype == torch.float32 and ours.shape == (1 + grid * grid, dim)
    np.testing.assert_allclose(ours.numpy(), _mae_numpy_pos_embed(dim, grid), atol=1e-6)
    model = VisionTransformer(img_size=grid * 4, patch_size=4, embed_dim=dim, depth=1, num_heads=dim // 16,
                              pos_embed="sincos")  # fmt: skip
    assert torch.equal(model.pos_embed[0], ours) and not model.pos_embed.requires_grad


def test_registered_sizes_are_timms():
    """Parameter counts of timm's vit_*_patch16_224 with a 1000-class head (ViT-B/16: 86.6M)."""
    expected = {"vit_tiny": 5_717_416, "vit_small": 22_050_664, "vit_base": 86_567_656, "vit_large": 304_326_632}
    with torch.device("meta"):
        for name, count in expected.items():
            assert create_model(name).num_params() == count, name
        model = create_model("vit_base", patch_size=14, img_size=28, num_classes=0)
        flops = create_model("vit_base").flops_per_item()
    assert model.config.num_patches == 4 and isinstance(model.head, torch.nn.Identity)
    # ViT-B/16 at 224: 6 x 85.8M weights x 197 tokens, plus 12 x 12 x 197^2 x 768 for attention
    assert flops == pytest.approx(6 * 85.8e6 * 197 + 12 * 12 * 197**2 * 768, rel=0.01)


def test_bad_configs_name_the_argument():
    with pytest.raises(ValueError, match="img_size: 30 is not divisible by patch_size 4"):
        ViTConfig(img_size=30, patch_size=4)
    with pytest.raises(ValueError, match="num_heads: 5 heads split width 40"):
        ViTConfig(embed_dim=40, num_heads=5)
    with pytest.raises(ValueError, match="pos_embed"):
        ViTConfig(pos_embed="rope")
    model = VisionTransformer(img_size=8, patch_size=4, embed_dim=32, depth=1, num_heads=2)
    with pytest.raises(ValueError, match=r"x: expected images \[B, 3, 8, 8\]"):
        model(torch.randn(1, 3, 12, 12))


def test_timm_layout_round_trip_and_unsupported_keys():
    model = VisionTransformer(img_size=8, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=3)
    sd = vit_to_timm(model.state_dict())
    expected = {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.1.attn.qkv.weight", "blocks.0.mlp.fc2.bias",
                "blocks.1.norm2.weight", "norm.bias", "head.weight"}  # fmt: skip
    assert expected <= set(sd)
    config = vit_config_from_state_dict(sd, num_heads=2)
    assert (config.img_size, config.patch_size, config.embed_dim, config.depth, config.num_classes) == (8, 4, 32, 2, 3)
    other = VisionTransformer(config)
    other.load_state_dict(vit_from_timm(sd))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(other(x), model(x))
    with pytest.raises(ValueError, match="fc_norm"):
        vit_from_timm({**sd, "fc_norm.weight": torch.ones(32)})
    with pytest.raises(ValueError, match="cls_token"):
        vit_from_timm({k: v for k, v in sd.items() if k != "cls_token"})


def test_timm_weights_with_an_odd_mlp_width_load_exactly():
    """The MLP width is read off the tensors (int(112 * (115 / 112)) would be 114, one row short)."""
    torch.manual_seed(0)
    model = VisionTransformer(img_size=8, patch_size=4, embed_dim=112, depth=1, num_heads=7, mlp_hidden=115,
                              num_classes=3).eval()  # fmt: skip
    sd = vit_to_timm(model.state_dict())
    assert vit_config_from_state_dict(sd, num_heads=7).mlp_hidden == 115
    loaded = load_timm_vit(sd, num_heads=7).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def _timm_state() -> dict:
    return vit_to_timm(VisionTransformer(img_size=8, patch_size=4, embed_dim=32, depth=2, num_heads=2).state_dict())


@pytest.mark.parametrize(
    "damage, kw, match",
    [
        (lambda sd: sd.pop("pos_embed"), {}, "'pos_embed' is missing; expected the weights of a timm VisionTrans"),
        (lambda sd: sd.pop("blocks.0.mlp.fc1.weight"), {}, r"no 'blocks\.0\.mlp\.fc1\.weight'"),
        (lambda sd: sd.update(pos_embed=torch.zeros(1, 6, 32)), {}, "pos_embed holds 5 patch positions .* not a"),
        (lambda sd: None, {"num_heads": 5}, "num_heads: 5 heads split width 32"),
        (lambda sd: None, {"num_heads": 2, "img_size": 16},
         r"does not fit the config read off it with \{'num_heads': 2, 'img_size': 16\}: shape of pos_embed"),
        (lambda sd: sd.update({"fc_norm.weight": torch.ones(32)}), {"num_heads": 2}, "'fc_norm.weight': register"),
    ],
    ids=["pos_embed", "block", "grid", "heads", "img_size", "fc_norm"],
)
def test_timm_weights_that_do_not_fit_are_errors_naming_the_key(damage, kw, match):
    sd = _timm_state()
    damage(sd)
    with pytest.raises(ValueError, match=f"state_dict: .*{match}"):
        load_timm_vit(sd, **kw)


def test_timm_weights_file_errors_name_the_file(tmp_path):
    file = tmp_path / "model.safetensors"
    save_file(_timm_state(), file)
    assert load_timm_vit(file, num_heads=2).config.embed_dim == 32
    file.write_bytes(b"{}")
    with pytest.raises(ValueError, match=f"weights: {re.escape(str(file))} is not a readable safetensors file"):
        load_timm_vit(file, num_heads=2)
    with pytest.raises(FileNotFoundError, match="weights: no weights file"):
        load_timm_vit(tmp_path / "absent.safetensors")


def test_equals_timm_vit_tiny():
    timm = pytest.importorskip("timm", reason="timm needs torchvision; runs where timm is installed (the GPU box)")
    torch.manual_seed(0)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    model = create_model("vit_tiny").eval()
    model.load_state_dict(vit_from_timm(ref.state_dict()))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), ref.forward_features(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model(x), ref(x), atol=1e-4, rtol=1e-4)
    ref.load_state_dict(vit_to_timm(model.state_dict()))


def test_mask_token_replaces_the_masked_patch_embeddings():
    """SimMIM's hook: where ``mask`` is True the patch embedding becomes the learned token (the
    patch's pixels no longer matter), elsewhere nothing changes; off by default."""
    torch.manual_seed(0)
    model = VisionTransformer(img_size=8, patch_size=4, embed_dim=32, depth=1, num_heads=2, num_classes=0,
                              mask_token=True).eval()  # fmt: skip
    x = torch.randn(2, 3, 8, 8)
    mask = torch.tensor([[True, False, False, True], [False] * 4])
    with torch.no_grad():
        out = model.forward_features(x, mask)
        assert torch.equal(model.forward_features(x, torch.zeros_like(mask)), model.forward_features(x))
        assert torch.equal(out[1], model.forward_features(x)[1])
        other = x.clone()
        other[0, :, :4, :4] += 3.0  # patch 0, masked in sample 0
        assert torch.equal(model.forward_features(other, mask), out)
        other[0, :, :4, 4:] += 3.0  # patch 1, visible
        assert not torch.allclose(model.forward_features(other, mask)[0], out[0])
        by_hand = model.patch_embed(x)
        by_hand[mask] = model.mask_token[0, 0]
        tokens = model.prepend_cls(by_hand + model.pos_embed[:, 1:])
        torch.testing.assert_close(model.forward_blocks(tokens), out)
    with pytest.raises(ValueError, match="mask: this encoder has no mask token"):
        VisionTransformer(img_size=8, patch_size=4, embed_dim=32, depth=1, num_heads=2)(x, mask)
    with pytest.raises(ValueError, match=r"mask: expected a bool tensor of shape \(2, 4\)"):
        model(x, mask.long())


def test_layer_scale_in_timm_names():
    """LayerScale weights are timm's ``blocks.i.ls1.gamma`` / ``ls2.gamma``; at 0 every block is the identity."""
    model = VisionTransformer(img_size=8, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=3,
                              init_values=0.0)  # fmt: skip
    sd = vit_to_timm(model.state_dict())
    assert {"blocks.0.ls1.gamma", "blocks.1.ls2.gamma"} <= set(sd)
    config = vit_config_from_state_dict(sd, num_heads=2)
    assert config.init_values is not None
    other = VisionTransformer(config)
    other.load_state_dict(vit_from_timm(sd))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(other(x), model(x))
        tokens = model.prepend_cls(model.patch_embed(x) + model.pos_embed[:, 1:])
        torch.testing.assert_close(model.forward_features(x), model.norm(tokens))


def test_original_mae_checkpoint_gives_its_encoder():
    """models_mae.py names its encoder as timm does, beside its decoder: the encoder loads as a ViT."""
    mae = create_model("mae_vit_fashion_mnist").eval()
    original = {k.removeprefix("encoder."): v for k, v in mae.state_dict().items()}  # decoder keys as they are
    assert "decoder_blocks.0.attn.qkv.weight" in original and "mask_token" in original
    vit = VisionTransformer(vit_config_from_state_dict(original, num_heads=4, pos_embed="sincos")).eval()
    vit.load_state_dict(vit_from_timm(original))
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(vit.forward_features(x), mae.encoder.forward_features(x))
