"""Image GPT: the k-means palette finds clear clusters and quantizes to the nearest colour; the
autoregressive objective is next-pixel cross-entropy behind a start token and sees only earlier
pixels; the BERT-style one masks a fixed share of each image, predicts only those and sees both
sides; probe features are the middle block's; cached sampling equals recomputing."""

import pytest
import torch
import torch.nn.functional as F

from fastpretrain.data.palette import dequantize, kmeans_palette, quantize, to_unit
from fastpretrain.models import create_model, model_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_kmeans_recovers_clusters_and_quantizes_to_the_nearest():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.9, 0.4, 0.1], [0.1, 0.8, 0.2], [0.2, 0.2, 0.7], [0.05, 0.05, 0.05]])
    pixels = centres[torch.randint(0, 4, (4000,), generator=g)] + 0.01 * torch.randn(4000, 3, generator=g)
    palette = kmeans_palette(pixels, 4, seed=1)
    order = centres.mean(1).argsort()
    torch.testing.assert_close(palette, centres[order], atol=2e-3, rtol=0)
    assert (palette.mean(1).diff() > 0).all()  # sorted by brightness
    images = torch.rand(2, 3, 5, 5, generator=g)
    ids = quantize(images, palette)
    want = torch.cdist(images.permute(0, 2, 3, 1).reshape(-1, 3), palette).argmin(1).view(2, 25)
    assert torch.equal(ids, want)
    assert torch.equal(dequantize(ids, palette, 5)[0, :, 1, 2], palette[ids[0, 1 * 5 + 2]])
    grey = to_unit(torch.full((1, 1, 28, 28), 255, dtype=torch.uint8), 14)
    assert grey.shape == (1, 1, 14, 14) and torch.all(grey == 1.0)
    with pytest.raises(ValueError, match="k: 9 clusters need at least 9 pixels"):
        kmeans_palette(torch.rand(5, 1), 9)


def tiny(objective: str, **overrides):
    torch.manual_seed(0)
    return create_model("igpt_tiny", image_size=5, palette_size=7, objective=objective, **overrides).eval()


def test_autoregressive_loss_is_next_pixel_cross_entropy_and_causal():
    model = tiny("ar")
    tokens = torch.randint(0, 7, (3, 25), generator=torch.Generator().manual_seed(1))
    out = model(tokens)
    ids = torch.cat([torch.full((3, 1), 7), tokens[:, :-1]], 1)
    logits = model.head(model.hidden_states(ids))
    torch.testing.assert_close(
        out["loss"], F.cross_entropy(logits.flatten(0, 1), tokens.flatten()), atol=1e-5, rtol=1e-5
    )
    assert int(out["items"]) == 75
    changed = tokens.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 7
    with torch.no_grad():
        a, b = model.hidden_states(model.inputs(tokens)[0]), model.hidden_states(model.inputs(changed)[0])
    torch.testing.assert_close(a[:, :11], b[:, :11])  # position 10 predicts pixel 10 from pixels < 10
    assert not torch.allclose(a[:, 11:], b[:, 11:])


def test_bert_objective_masks_a_share_and_sees_both_sides():
    model = tiny("bert", mask_ratio=0.2)
    tokens = torch.randint(0, 7, (4, 25), generator=torch.Generator().manual_seed(2))
    ids, targets = model.inputs(tokens, torch.Generator().manual_seed(3))
    masked = ids == 7
    assert masked.sum(1).tolist() == [5] * 4 and torch.equal(targets[masked], tokens[masked])
    assert (targets[~masked] == -100).all() and torch.equal(ids[~masked], tokens[~masked])
    out = model(tokens, torch.Generator().manual_seed(3))
    logits = model.head(model.hidden_states(ids))
    torch.testing.assert_close(
        out["loss"], F.cross_entropy(logits.flatten(0, 1), targets.flatten()), atol=1e-5, rtol=1e-5
    )
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 7
    with torch.no_grad():
        assert not torch.allclose(model.hidden_states(tokens)[:, 0], model.hidden_states(changed)[:, 0])


def test_probe_features_come_from_the_middle_block():
    model = tiny("bert", num_layers=4)
    tokens = torch.randint(0, 7, (2, 25), generator=torch.Generator().manual_seed(4))
    x = model.wte(tokens) + model.wpe.weight
    for layer in model.layers[:2]:
        x = layer(x)
    torch.testing.assert_close(model.features(tokens), F.layer_norm(x, x.shape[-1:]).mean(1))
    assert not torch.allclose(model.features(tokens), model.features(tokens, layer=4))
    with pytest.raises(ValueError, match="probe_layer"):
        model_config("igpt_tiny", probe_layer=3)


def test_cached_sampling_equals_recomputing():
    model = tiny("ar")
    got = model.generate(2, temperature=0)
    want = torch.empty(2, 0, dtype=torch.long)
    with torch.no_grad():
        for _ in range(25):
            full = torch.cat([want, torch.zeros(2, 25 - want.shape[1], dtype=torch.long)], 1)
            logits = model.head(model.hidden_states(model.inputs(full)[0]))
            want = torch.cat([want, logits[:, want.shape[1]].argmax(-1, keepdim=True)], 1)
    assert torch.equal(got, want)
    sampled = model.generate(3, temperature=1.0, top_k=2, generator=torch.Generator().manual_seed(5))
    assert sampled.shape == (3, 25) and sampled.max() < 7
    with pytest.raises(ValueError, match="objective: only an autoregressive"):
        tiny("bert").generate(1)
    with pytest.raises(ValueError, match="tokens: expected \\[B, 25\\] palette ids"):
        model(torch.zeros(1, 24, dtype=torch.long))
