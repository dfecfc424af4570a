"""fastpretrain.patch on timm's VisionTransformer (where timm is installed: it needs torchvision):
the fused attention gives timm's logits and gradients within the flash-attention rule through the
kernels, the same 50-step loss curve, and leaves other attention classes and head widths with the
reason."""

import pytest
import torch
from patch_cases import assert_patched_close, assert_same_curve

import fastpretrain

timm = pytest.importorskip("timm", reason="timm needs torchvision; runs where timm is installed (the GPU box)")
pytestmark = pytest.mark.usefixtures("one_thread")


def vit(**kw):
    torch.manual_seed(0)
    base = {"img_size": 24, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_classes": 3}
    return timm.models.vision_transformer.VisionTransformer(**{**base, **kw})


def batch(seed: int = 1, b: int = 2) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(b, 3, 24, 24, generator=g), "y": torch.randint(0, 3, (b,), generator=g)}


def loss_of(model, batch):
    return torch.nn.functional.cross_entropy(model(batch["x"]), batch["y"])


def step(model, batch):
    model.train()
    logits = model(batch["x"])
    return torch.nn.functional.cross_entropy(logits, batch["y"]), {"logits": logits}


@pytest.mark.parametrize("options", [{}, {"qk_norm": True}], ids=["plain", "qk-norm"])
def test_matches_timm(options, kernel_path):
    assert_patched_close(vit(**options), batch(), step, kernel_path)


def test_same_loss_curve(kernel_path):
    assert_same_curve(lambda: vit(depth=1, num_heads=1), [batch(s) for s in range(2)], loss_of, kernel_path)


def test_report_and_unpatch():
    model = vit(embed_dim=40)
    with pytest.raises(ValueError, match="head dim 20"):
        fastpretrain.patch(model)
    model = vit()
    report = fastpretrain.patch_timm_vit(model, strict=True)
    assert [w for w, _ in report.patched] == ["blocks.0.attn", "blocks.1.attn"]
    with pytest.raises(ValueError, match="attn_mask"):
        model.blocks[0].attn(torch.randn(1, 10, 32), attn_mask=torch.ones(1, 1, 10, 10, dtype=torch.bool))
    fastpretrain.unpatch(model)
    assert "forward" not in model.blocks[0].attn.__dict__


def test_leaves_other_attention_classes():
    try:
        model = vit(attn_layer="diff")
    except (TypeError, KeyError, ValueError, AssertionError):
        pytest.skip("this timm has no DiffAttention")
    with pytest.raises(ValueError, match="DiffAttention is not timm's plain Attention"):
        fastpretrain.patch(model)
