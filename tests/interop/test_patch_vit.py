"""fastpretrain.patch on Hugging Face ViT: the fused attention gives HF's logits and gradients
within the flash-attention rule through the kernels (interpreter on CPU), the same 50-step loss
curve of an image classifier, and a report that says the classifier head stays HF's."""

import pytest
import torch
from patch_cases import assert_patched_close, assert_same_curve

import fastpretrain

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")


def classifier(**kw):
    torch.manual_seed(0)
    base = {"image_size": 24, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 40, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
            "num_labels": 3}  # fmt: skip
    return transformers.ViTForImageClassification(transformers.ViTConfig(**{**base, **kw}))


def batch(seed: int = 1, b: int = 2) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.randn(b, 3, 24, 24, generator=g), "labels": torch.randint(0, 3, (b,), generator=g)}


def step(model, batch):
    model.train()
    out = model(**batch)
    return out.loss, {"logits": out.logits}


def test_matches_hf(kernel_path):
    assert_patched_close(classifier(), batch(), step, kernel_path)


def test_same_loss_curve(kernel_path):
    batches = [batch(seed) for seed in range(2)]
    assert_same_curve(
        lambda: classifier(num_hidden_layers=1, num_attention_heads=1), batches, lambda m, b: m(**b).loss, kernel_path
    )


def test_report():
    model = classifier()
    report = fastpretrain.patch(model, strict=True)
    assert report.patched[0][0] == "vit.layers.0.attention .. vit.layers.1.attention (2 modules)"
    assert report.left == [("loss", "ViT's classifier and pixel losses are small; they stay HF's")]
    with pytest.raises(ValueError, match="output_attentions"):
        model(pixel_values=batch()["pixel_values"], output_attentions=True)
