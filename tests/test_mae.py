"""MAE: patchify layout, the masking helpers (the ops' spec), the loss on masked patches only,
visible-only encoding, Hugging Face ViTMAE equality both ways, training through the Trainer,
saving, the reconstruction grid, and the ``fastpretrain mae train|eval`` command line."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.utils.data import TensorDataset

from fastpretrain.cli import main
from fastpretrain.eval.visualize import save_reconstruction_grid
from fastpretrain.interop.hf import mae_config_from_hf, mae_from_hf, mae_from_hf_model, mae_to_hf
from fastpretrain.models import MAE, MAEConfig, create_model
from fastpretrain.models import mae as mae_module
from fastpretrain.nn import gather_visible, random_masking, unshuffle_tokens
from fastpretrain.train import TrainConfig, Trainer


pytestmark = pytest.mark.usefixtures("one_thread")


TINY = dict(img_size=8, patch_size=4, in_chans=3, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32,
            decoder_depth=1, decoder_num_heads=2)  # fmt: skip


def _tiny(**kw) -> MAE:
    torch.manual_seed(0)
    return MAE(MAEConfig(**{**TINY, **kw}))


def test_patchify_layout_and_round_trip():
    model = _tiny(img_size=12, patch_size=4)
    imgs = torch.randn(2, 3, 12, 12)
    x = model.patchify(imgs)
    assert x.shape == (2, 9, 48)
    # patch (i, j) holds pixel (p, q) of channel c at index (p * P + q) * C + c
    i, j, p, q, c = 1, 2, 3, 0, 2
    assert x[1, i * 3 + j, (p * 4 + q) * 3 + c] == imgs[1, c, i * 4 + p, j * 4 + q]
    assert torch.equal(model.unpatchify(x), imgs)
    with pytest.raises(ValueError, match="imgs: expected"):
        model.patchify(torch.randn(2, 3, 10, 12))


def test_random_masking_keeps_exactly_k_and_ids_restore_inverts_the_shuffle():
    b, length, ratio = 5, 49, 0.75
    m = random_masking(b, length, ratio, generator=torch.Generator().manual_seed(3))
    k = int(length * (1 - ratio))
    assert m.ids_keep.shape == (b, k) and m.ids_keep.dtype == torch.int64 and m.ids_restore.dtype == torch.int64
    for row in range(b):
        keep = m.ids_keep[row]
        assert len(set(keep.tolist())) == k
        assert torch.equal(m.ids_restore[row, keep], torch.arange(k))  # kept patches come first in the shuffle
        assert sorted(m.ids_restore[row].tolist()) == list(range(length))
        expected = torch.ones(length)
        expected[keep] = 0
        assert torch.equal(m.mask[row], expected)
    assert not torch.equal(m.ids_keep[0], m.ids_keep[1])
    again = random_masking(b, length, ratio, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b_) for a, b_ in zip(m, again))
    # the draw is MAE's: argsort of torch.rand(B, L) from the same generator
    noise = torch.rand(b, length, generator=torch.Generator().manual_seed(3))
    assert torch.equal(m.ids_keep, noise.argsort(1)[:, :k])


def test_gather_and_unshuffle_helpers_against_loops():
    b, length, d = 3, 10, 8
    m = random_masking(b, length, 0.6, generator=torch.Generator().manual_seed(1))
    x, pos = torch.randn(b, length, d), torch.randn(1, length, d)
    vis = gather_visible(x, pos, m.ids_keep)
    for row in range(b):
        for r, j in enumerate(m.ids_keep[row].tolist()):
            assert torch.equal(vis[row, r], x[row, j] + pos[0, j])
    dec_in, token, dpos = torch.randn(b, 1 + vis.shape[1], d), torch.randn(1, 1, d), torch.randn(1, 1 + length, d)
    full = unshuffle_tokens(dec_in, token, dpos, m.ids_restore)
    for row in range(b):
        assert torch.equal(full[row, 0], dec_in[row, 0] + dpos[0, 0])
        slot = {j: r for r, j in enumerate(m.ids_keep[row].tolist())}
        for j in range(length):
            src = dec_in[row, 1 + slot[j]] if j in slot else token[0, 0]
            assert torch.equal(full[row, 1 + j], src + dpos[0, 1 + j])


@pytest.mark.parametrize("norm_pix", [False, True])
def test_loss_is_mse_on_masked_patches_only(norm_pix):
    model = _tiny(img_size=16, norm_pix_loss=norm_pix)
    imgs = torch.randn(3, 3, 16, 16)
    out = model(imgs, generator=torch.Generator().manual_seed(0), return_outputs=True)
    pred, mask = out["pred"], out["mask"]
    terms = []
    for b in range(3):
        for j in range(16):
            if mask[b, j] == 1:
                target = model.patchify(imgs)[b, j]
                if norm_pix:
                    target = (target - target.mean()) / (target.var(unbiased=True) + 1e-6) ** 0.5
                terms.append(((pred[b, j] - target) ** 2).mean())
    assert len(terms) == 3 * 12
    torch.testing.assert_close(out["loss"], torch.stack(terms).mean())
    # the prediction of a visible patch does not enter the loss
    pred.retain_grad()
    out["loss"].backward()
    assert (pred.grad[mask == 0] == 0).all() and (pred.grad[mask == 1] != 0).any()


def test_norm_pix_loss_of_a_constant_patch_is_finite():
    """A constant patch has no variance: the epsilon makes its normalised target 0, not 0 / 0."""
    model = _tiny(img_size=8, norm_pix_loss=True)
    imgs = torch.randn(1, 3, 8, 8)
    imgs[..., :4, :4] = 0.25  # patch 0: 48 equal values, mean and variance exact
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.7]])  # keeps patch 1, masks 0, 2 and 3
    out = model(imgs, noise=noise, return_outputs=True)
    assert out["mask"].tolist() == [[1.0, 0.0, 1.0, 1.0]] and torch.isfinite(out["loss"])
    target = model.patchify(imgs)[0]
    terms = [(out["pred"][0, 0] ** 2).mean()]
    for j in (2, 3):
        normed = (target[j] - target[j].mean()) / (target[j].var() + 1e-6) ** 0.5
        terms.append(((out["pred"][0, j] - normed) ** 2).mean())
    torch.testing.assert_close(out["loss"], torch.stack(terms).mean())


def test_encoder_sees_only_the_visible_patches():
    model = _tiny(img_size=16).eval()
    imgs = torch.randn(2, 3, 16, 16)
    noise = torch.rand(2, 16)
    latent, masking = model.forward_encoder(imgs, 0.75, noise=noise)
    assert latent.shape == (2, 1 + 4, 32)
    masked_j = int(masking.mask[0].nonzero()[0])
    visible_j = int((masking.mask[0] == 0).nonzero()[0])
    for j, changes in ((masked_j, False), (visible_j, True)):
        other = imgs.clone()
        r, c = divmod(j, 4)
        other[0, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 5.0
        latent2, _ = model.forward_encoder(other, 0.75, noise=noise)
        assert torch.equal(latent2[1], latent[1])
        assert (not torch.allclose(latent2[0], latent[0])) == changes


def _hf_config(**sizes):
    transformers = pytest.importorskip("transformers")
    return transformers, transformers.ViTMAEConfig(**{
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "decoder_hidden_size": 32, "decoder_num_hidden_layers": 2, "decoder_num_attention_heads": 2,
        "decoder_intermediate_size": 64, "image_size": 16, "patch_size": 4, "num_channels": 3, "mask_ratio": 0.75,
        "attn_implementation": "eager", **sizes,
    })  # fmt: skip


def _hf_pair(norm_pix_loss=False, **sizes):
    transformers, config = _hf_config(norm_pix_loss=norm_pix_loss, **sizes)
    torch.manual_seed(0)
    hf = transformers.ViTMAEForPreTraining(config).eval()
    with torch.no_grad():  # random values where HF initialises zeros or fixed tables, so every term shows
        for p in (hf.vit.embeddings.position_embeddings, hf.decoder.decoder_pos_embed, hf.decoder.mask_token,
                  hf.vit.embeddings.cls_token):  # fmt: skip
            p.copy_(torch.randn_like(p))
    return transformers, config, hf


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_equals_hugging_face_vitmae_both_ways(norm_pix_loss):
    transformers, config, hf = _hf_pair(norm_pix_loss)
    ours = MAE(mae_config_from_hf(config)).eval()
    ours.load_state_dict(mae_from_hf(hf.state_dict()))
    imgs, noise = torch.randn(3, 3, 16, 16), torch.rand(3, 16)
    with torch.no_grad():
        ref = hf(pixel_values=imgs, noise=noise)
        ref_latent = hf.vit(pixel_values=imgs, noise=noise).last_hidden_state
        out = ours(imgs, noise=noise, return_outputs=True)
        torch.testing.assert_close(out["latent"], ref_latent, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out["pred"], ref.logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out["mask"], ref.mask)
        torch.testing.assert_close(out["ids_restore"], ref.ids_restore)
        torch.testing.assert_close(out["loss"], ref.loss, atol=1e-5, rtol=1e-5)
        # the encoder alone on whole images: HF with mask_ratio 0 keeps all patches in noise order
        sorted_noise = torch.arange(16.0).expand(3, 16)
        hf.config.mask_ratio = 0.0
        full = hf.vit(pixel_values=imgs, noise=sorted_noise).last_hidden_state
        torch.testing.assert_close(ours.encoder.forward_features(imgs), full, atol=1e-5, rtol=1e-5)
    # and back: our weights into a fresh HF model give the same outputs
    torch.manual_seed(1)
    ours_random = MAE(mae_config_from_hf(config)).eval()
    hf2 = transformers.ViTMAEForPreTraining(config).eval()
    hf2.load_state_dict(mae_to_hf(ours_random.state_dict()), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(hf2(pixel_values=imgs, noise=noise).logits,
                                   ours_random(imgs, noise=noise, return_outputs=True)["pred"], atol=1e-5, rtol=1e-5)  # fmt: skip


def test_hf_v4_key_layout_round_trip():
    model = _tiny()
    v4 = mae_to_hf(model.state_dict(), layout="v4")
    assert "vit.encoder.layer.1.attention.attention.query.weight" in v4
    assert "decoder.decoder_layers.0.intermediate.dense.bias" in v4 and "decoder.decoder_pred.weight" in v4
    back = mae_from_hf(v4)
    assert set(back) == set(model.state_dict()) and all(torch.equal(back[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="no counterpart"):
        mae_from_hf({**v4, "vit.pooler.dense.weight": torch.zeros(1)})


def _same_outputs(ours: MAE, hf, img_size: int) -> None:
    patches = (img_size // ours.patch_size) ** 2
    imgs, noise = torch.randn(2, 3, img_size, img_size), torch.rand(2, patches)
    with torch.no_grad():
        ref, out = hf(pixel_values=imgs, noise=noise), ours.eval()(imgs, noise=noise, return_outputs=True)
    torch.testing.assert_close(out["pred"], ref.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["loss"], ref.loss, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("encoder, decoder", [((112, 115), (112, 230)), ((176, 185), (48, 77))])
def test_odd_mlp_widths_are_hugging_faces(encoder, decoder, tmp_path):
    """HF's intermediate sizes are carried exactly: int(112 * (115 / 112)) is 114, one row short,
    and the decoder may have a ratio of its own; the widths survive save_pretrained too."""
    (hidden, inter), (dec_hidden, dec_inter) = encoder, decoder
    _, config, hf = _hf_pair(hidden_size=hidden, intermediate_size=inter, num_attention_heads=hidden // 16,
                             decoder_hidden_size=dec_hidden, decoder_intermediate_size=dec_inter,
                             decoder_num_attention_heads=dec_hidden // 16, image_size=8, num_hidden_layers=1,
                             decoder_num_hidden_layers=1)  # fmt: skip
    ours = MAE(mae_config_from_hf(config))
    assert ours.encoder.blocks[0].mlp.fc1.weight.shape == hf.vit.layers[0].mlp.fc1.weight.shape == (inter, hidden)
    assert ours.decoder_blocks[0].mlp.fc1.out_features == dec_inter
    ours.load_state_dict(mae_from_hf(hf.state_dict()))
    _same_outputs(ours, hf, 8)
    _same_outputs(mae_from_hf_model(hf), hf, 8)
    ours.save_pretrained(tmp_path)
    assert MAE.from_pretrained(tmp_path).decoder_blocks[0].mlp.fc2.in_features == dec_inter


def test_square_tuple_image_size_is_hugging_faces():
    _, _, hf = _hf_pair(image_size=(16, 16))
    ours = mae_from_hf_model(hf)
    assert (ours.config.img_size, ours.config.patch_size) == (16, 4)
    _same_outputs(ours, hf, 16)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"image_size": (16, 8)}, r"image_size \(16, 8\) is not square"),
        ({"image_size": [16, 16, 3]}, r"image_size \(16, 16, 3\) is not square"),
        ({"num_attention_heads": 4}, r"num_attention_heads: 4 heads split width 32 .*\(16, 32, 64, 96, 128\)"),
        ({"decoder_num_attention_heads": 4}, "decoder_num_attention_heads: 4 heads split width 32"),
        ({"decoder_intermediate_size": 0}, "decoder_intermediate_size: expected an int >= 1, got 0"),
        ({"hidden_act": "relu"}, "hidden_act 'relu' is not supported"),
    ],
    ids=["image", "image3", "heads", "decoder_heads", "mlp", "act"],
)
def test_hf_config_errors_name_hugging_faces_field(change, match):
    """Values HF's ViTMAEConfig accepts but ours cannot build: ValueErrors naming HF's field."""
    transformers, config = _hf_config()
    with pytest.raises(ValueError, match=f"hf_config: {match}"):
        mae_config_from_hf(transformers.ViTMAEConfig(**{**config.to_dict(), **change}))


def test_hf_config_dict_without_a_field_names_it():
    config = _hf_config()[1].to_dict()
    del config["decoder_hidden_size"]
    with pytest.raises(ValueError, match="hf_config: lacks decoder_hidden_size"):
        mae_config_from_hf(config)


def test_hf_weights_that_do_not_fit_load_nothing():
    """A conversion whose config says one block where the weights hold two is a ValueError naming
    the keys (not torch's RuntimeError after copying what fits)."""
    _, _, hf = _hf_pair()
    hf.config.num_hidden_layers = 1
    with pytest.raises(ValueError, match=r"hf_model: its weights do not fit its config: unexpected encoder\.blocks\.1"):
        mae_from_hf_model(hf)


@pytest.mark.parametrize("damage", ["missing", "extra", "reshaped"])
def test_from_pretrained_with_a_damaged_weight_names_the_file_and_key(tmp_path, damage):
    _tiny().save_pretrained(tmp_path)
    file = tmp_path / "model.safetensors"
    state = load_file(file)
    expected = {"missing": "missing mask_token", "extra": "unexpected pixel_mean",
                "reshaped": r"shape of decoder_pred\.bias \(5,\)"}  # fmt: skip
    if damage == "missing":
        del state["mask_token"]
    else:
        state["pixel_mean" if damage == "extra" else "decoder_pred.bias"] = torch.zeros(5)
    save_file(state, file)
    misfit = rf"checkpoint: {re.escape(str(file))} does not fit the config in .*json: {expected[damage]}"
    with pytest.raises(ValueError, match=misfit):
        MAE.from_pretrained(tmp_path)


def test_registered_sizes_and_bad_config():
    with torch.device("meta"):
        base = create_model("mae_vit_base_patch16_dec512d8b")
    assert base.encoder.num_params() == 86_567_656 - 768 * 1000 - 1000  # ViT-B/16 without its head
    assert (base.config.decoder_embed_dim, base.config.decoder_depth, base.config.decoder_num_heads) == (512, 8, 16)
    small = create_model("mae_vit_fashion_mnist")
    assert (small.num_patches, small.config.in_chans, small.decoder_pred.out_features) == (49, 1, 16)
    with pytest.raises(ValueError, match="mask_ratio"):
        MAEConfig(**{**TINY, "mask_ratio": 1.0})
    with pytest.raises(ValueError, match="decoder_num_heads"):
        MAEConfig(**{**TINY, "decoder_num_heads": 3})


def test_trainer_overfits_a_tiny_batch(tmp_path):
    """Images of one colour each: the visible patches tell the masked ones, so the loss must fall
    far below what predicting the dataset's mean image gets (the no-information floor)."""
    model = _tiny(img_size=8, mask_ratio=0.5)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(16, 3, 1, 1, generator=g).expand(16, 3, 8, 8).contiguous()
    floor = ((images - images.mean(0)) ** 2).mean().item()
    data = TensorDataset(images, torch.zeros(16, dtype=torch.long))
    history = Trainer(model, data, TrainConfig(out_dir=str(tmp_path), steps=100, batch_size=16, lr=3e-3, log_every=10,
                                               weight_decay=0.0, schedule="constant", device="cpu")).fit()  # fmt: skip
    losses = [row["loss"] for row in history]
    assert losses[-1] < 0.1 * floor < losses[0], (floor, losses)


def test_save_pretrained_round_trip_and_reconstruction_grid(tmp_path):
    model = _tiny(img_size=12).eval()
    model.save_pretrained(tmp_path / "run")
    loaded = MAE.from_pretrained(tmp_path / "run").eval()
    assert loaded.config == model.config
    imgs, noise = torch.rand(2, 3, 12, 12), torch.rand(2, 9)
    torch.testing.assert_close(loaded(imgs, noise=noise)["loss"], model(imgs, noise=noise)["loss"])
    path = save_reconstruction_grid(model, imgs, tmp_path / "grid.png", scale=2)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (3 * (24 + 2) + 2, 2 * (24 + 2) + 2, 3)
    # the first row is the images themselves, enlarged 2x
    first = (imgs[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(grid[2:26:2, 2:26:2], first)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_masking_steps_are_one_helper_call_each(monkeypatch):
    """The masking steps run on the fused ops, each called once per forward."""
    calls = []
    for name in ("random_masking", "gather_visible", "unshuffle_tokens"):
        original = getattr(mae_module, name)
        monkeypatch.setattr(mae_module, name, lambda *a, _n=name, _f=original, **kw: calls.append(_n) or _f(*a, **kw))
    _tiny()(torch.rand(2, 3, 8, 8))
    assert sorted(calls) == ["gather_visible", "random_masking", "unshuffle_tokens"]


def test_cli_train_then_eval(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.arange(96) % 3
    images = rng.random((96, 8, 8)) * 60
    images[labels == 0, :, :4] += 150  # the classes: left half, right half or top half bright
    images[labels == 1, :, 4:] += 150
    images[labels == 2, :4, :] += 150
    images = images.astype(np.uint8)
    np.savez(tmp_path / "toy.npz", images=images, labels=labels)
    sizes = ["--img-size", "8", "--patch-size", "4", "--in-chans", "1", "--embed-dim", "32", "--depth", "1",
             "--num-heads", "2", "--decoder-embed-dim", "32", "--decoder-depth", "1", "--decoder-num-heads", "2"]  # fmt: skip
    run = tmp_path / "run"
    assert main(["mae", "train", "--data", str(tmp_path / "toy.npz"), *sizes, "--max-images", "64", "--steps", "3",
                 "--batch-size", "16", "--out-dir", str(run), "--log-every", "1", "--device", "cpu"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "data         " in out and "64 images" in out and re.search(r"trained      final loss [\d.]+, saved", out)
    final, last = load_file(run / "model.safetensors"), load_file(run / "checkpoints" / "step_000003" / "model.safetensors")
    assert set(final) == set(last) and all(torch.equal(final[k], last[k]) for k in final)
    config = json.loads((run / "config.json").read_text())
    assert config["embed_dim"] == 32 and config["in_chans"] == 1 and len(config["mean"]) == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    assert main(["mae", "eval", str(run), "--data", str(tmp_path / "toy.npz"), "--probe-iters", "50", "--k", "5",
                 "--reconstruction", str(tmp_path / "grid.png"), "--num-images", "4", "--json", str(tmp_path / "r.json")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "probe on 77 train / 19 held-out test images" in out
    rows = {m[1]: (float(m[2]), float(m[3])) for m in re.finditer(r"^(mae|random init|raw pixels) +([\d.]+)% +([\d.]+)%$", out, re.M)}
    assert set(rows) == {"mae", "random init", "raw pixels"}
    assert rows["raw pixels"] == (100.0, 100.0)  # the pattern separates the classes, linearly and by cosine
    assert Image.open(tmp_path / "grid.png").size[0] > 4 * 8
    assert set(json.loads((tmp_path / "r.json").read_text())["results"]) == set(rows)
    # an intermediate checkpoint folder evaluates too (config from the run folder); bad input exits 2
    assert main(["mae", "eval", str(run / "checkpoints" / "step_000003"), "--data", str(tmp_path / "toy.npz"),
                 "--no-baselines", "--probe-iters", "5"]) == 0  # fmt: skip
    assert main(["mae", "eval", str(tmp_path / "missing"), "--data", str(tmp_path / "toy.npz")]) == 2
    assert "error: checkpoint: " in capsys.readouterr().err
