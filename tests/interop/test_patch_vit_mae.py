"""fastpretrain.patch on Hugging Face ViTMAE: the fused masking (same patches kept as HF from the
same noise or RNG state), gather with positions, decoder unshuffle and the fused attention in
encoder and decoder give HF's loss, reconstructions and gradients within the flash-attention rule
through the kernels (interpreter on CPU) and the same 50-step loss curve."""

import pytest
import torch
from patch_cases import assert_patched_close, assert_same_curve

import fastpretrain

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")


def mae(**kw):
    torch.manual_seed(0)
    base = {"image_size": 24, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 40, "decoder_hidden_size": 32, "decoder_num_hidden_layers": 1,
            "decoder_num_attention_heads": 2, "decoder_intermediate_size": 40, "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0, "mask_ratio": 0.6}  # fmt: skip
    return transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**{**base, **kw}))


def batch(seed: int = 1, b: int = 2) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.randn(b, 3, 24, 24, generator=g), "noise": torch.rand(b, 9, generator=g)}


def step(model, batch):
    model.train()
    out = model(**batch)
    return out.loss, {"logits": out.logits, "mask": out.mask, "ids_restore": out.ids_restore.double()}


def test_matches_hf(kernel_path):
    assert_patched_close(mae(), batch(), step, kernel_path)


def test_draws_hf_noise_from_the_rng():
    """Without ``noise`` both draw torch.rand(B, L) from the same RNG state: the same masking."""
    plain, patched = mae(), mae()
    fastpretrain.patch(patched)
    pixels = batch()["pixel_values"]
    torch.manual_seed(5)
    a = plain(pixel_values=pixels)
    torch.manual_seed(5)
    b = patched(pixel_values=pixels)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.ids_restore, b.ids_restore)
    torch.testing.assert_close(a.loss, b.loss)


def test_same_loss_curve(kernel_path):
    batches = [batch(seed) for seed in range(2)]
    tiny = {"num_hidden_layers": 1, "num_attention_heads": 1, "decoder_num_attention_heads": 1}  # 2 programs a launch
    assert_same_curve(lambda: mae(**tiny), batches, lambda m, b: m(**b).loss, kernel_path, lr=5e-3)


def test_report_decoder_config_on_its_own():
    """The decoder has its own config: a head width the op cannot take there leaves only the decoder's attention."""
    model = mae(decoder_hidden_size=40, decoder_intermediate_size=40)
    report = fastpretrain.patch(model)
    assert [w for w, _ in report.patched] == ["vit.layers.0.attention .. vit.layers.1.attention (2 modules)",
                                              "vit.embeddings", "decoder"]  # fmt: skip
    assert report.left[0][0].startswith("decoder.decoder_layers.0.attention") and "head dim 20" in report.left[0][1]
    assert model.config._attn_implementation == "fastpretrain"
    assert model.decoder.config._attn_implementation == "sdpa"
    fastpretrain.unpatch(model)
    assert model.config._attn_implementation == "sdpa" and "forward" not in model.decoder.__dict__


def test_interpolated_positions_run_hf_masking():
    plain, patched = mae(), mae()
    fastpretrain.patch(patched)
    g = torch.Generator().manual_seed(3)
    data = {"pixel_values": torch.randn(2, 3, 32, 32, generator=g), "noise": torch.rand(2, 16, generator=g)}
    a, b = plain(**data, interpolate_pos_encoding=True), patched(**data, interpolate_pos_encoding=True)
    torch.testing.assert_close(a.loss, b.loss)
