"""BEiT: the loss is cross-entropy of the codes at the masked patches only (against logits written
out), relative position bias shared or per block reaches the attention (and gets gradients), equal
outputs with Hugging Face's BeitForMaskedImageModeling from the same weights, the Trainer learns
codes that the visible patches tell, and ``fastpretrain beit train|eval`` on a dVAE's cached codes."""

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from fastpretrain.cli import main
from fastpretrain.data.visual_tokens import TokenizedImages
from fastpretrain.models import BEiT, BEiTConfig, create_model
from fastpretrain.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"img_size": 8, "patch_size": 2, "in_chans": 3, "embed_dim": 32, "depth": 2, "num_heads": 2, "vocab_size": 11,
        "min_block": 2, "drop_path_rate": 0.0}  # fmt: skip


def _tiny(**kw) -> BEiT:
    torch.manual_seed(0)
    return BEiT(BEiTConfig(**{**TINY, **kw}))


@pytest.mark.parametrize("rel_pos_bias", ["shared", "layer", "none"])
def test_loss_is_cross_entropy_of_the_masked_codes(rel_pos_bias):
    model = _tiny(rel_pos_bias=rel_pos_bias).eval()
    imgs, tokens = torch.randn(3, 3, 8, 8), torch.randint(0, 11, (3, 16))
    mask = model.random_mask(3, torch.Generator().manual_seed(0))
    assert mask.shape == (3, 16) and (mask.sum(1) <= 6).all() and (mask.sum(1) >= 4).all()  # 40% of 16, in blocks
    logits = model.lm_head(model.forward_features(imgs, mask)[:, 1:])
    want = F.cross_entropy(logits[mask], tokens[mask])
    torch.testing.assert_close(model(imgs, tokens, mask)["loss"], want)
    other = tokens.clone()
    other[~mask] = (other[~mask] + 1) % 11  # the codes of visible patches do not count
    torch.testing.assert_close(model(imgs, other, mask)["loss"], want)


def test_relative_position_bias_reaches_the_attention():
    model = _tiny(rel_pos_bias="layer").eval()
    imgs, mask = torch.randn(2, 3, 8, 8), torch.zeros(2, 16, dtype=torch.bool)
    before = model.forward_features(imgs, mask)
    with torch.no_grad():
        model.encoder.rel_pos_biases[1].relative_position_bias_table.normal_()
    after = model.forward_features(imgs, mask)
    assert (after - before).abs().max() > 1e-3
    mask[:, :5] = True
    model(imgs, torch.randint(0, 11, (2, 16)), mask)["loss"].backward()
    for bias in model.encoder.rel_pos_biases:
        assert bias.relative_position_bias_table.grad.abs().sum() > 0
    assert model.encoder.blocks[0].ls1.gamma.grad.abs().sum() > 0
    # the intermediate layer the probe reads runs the same blocks with their biases, before the norm
    torch.testing.assert_close(model.encoder.norm(model.forward_intermediate(imgs, 2)), model.forward_features(imgs))


@pytest.mark.parametrize("rel", ["shared", "layer"])
def test_equals_hugging_face_beit_for_masked_image_modeling(rel):
    transformers = pytest.importorskip("transformers")
    from fastpretrain.interop.hf_beit import beit_config_from_hf, beit_from_hf_model

    hf_config = transformers.BeitConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=96, vocab_size=50,
                                        use_shared_relative_position_bias=rel == "shared",
                                        use_relative_position_bias=rel == "layer",
                                        use_absolute_position_embeddings=rel == "layer", layer_scale_init_value=0.1,
                                        use_mask_token=True, layer_norm_eps=1e-6)  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.BeitForMaskedImageModeling(hf_config).eval()
    with torch.no_grad():  # HF starts these at zero / constants: random values so that each one shows
        for name, p in hf.named_parameters():
            if any(k in name for k in ("relative_position_bias_table", "lambda", "mask_token", "bias")):
                p.normal_(std=0.5)
    ours = beit_from_hf_model(hf).eval()
    assert ours.config.rel_pos_bias == rel and ours.config.mlp_hidden == 96
    imgs, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 50, (2, 16))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, :6], mask[1, 5:11] = True, True
    with torch.no_grad():
        theirs = hf(pixel_values=imgs, bool_masked_pos=mask, labels=labels[mask])
        hidden = hf.layernorm(hf.beit(imgs, bool_masked_pos=mask).last_hidden_state)
        mine = ours(imgs, labels, mask)
    torch.testing.assert_close(ours.forward_features(imgs, mask), hidden, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(mine["loss"], theirs.loss, atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="hidden_act 'relu' is not supported"):
        beit_config_from_hf(transformers.BeitConfig(hidden_act="relu"))


def test_trainer_learns_codes_the_visible_patches_tell(tmp_path):
    """Each image is one of 3 colours and every patch's code is its image's class: visible patches
    tell the masked codes, so the loss falls far below log(3), what guessing at random gets."""
    model = _tiny(vocab_size=3)
    classes = torch.arange(24) % 3
    images = torch.eye(3)[classes][:, :, None, None].expand(24, 3, 8, 8).contiguous()
    tokens = classes[:, None].expand(24, 16).contiguous()
    data = TokenizedImages(TensorDataset(images, classes), tokens, model.config.masker())
    history = Trainer(model, data, TrainConfig(out_dir=str(tmp_path), steps=30, batch_size=24, lr=3e-3, log_every=1,
                                               weight_decay=0.0, schedule="constant", device="cpu")).fit()  # fmt: skip
    losses = [r["loss"] for r in history]
    assert losses[0] > 0.6 * np.log(3) and losses[-1] < 0.05, losses


def test_sizes_and_bad_input():
    base = create_model("beit_base_patch16", depth=1)
    assert base.config.vocab_size == 8192 and base.encoder.rel_pos_bias is not None and base._masker.num_masked == 78
    assert not base.encoder.pos_embed.requires_grad and base.encoder.pos_embed.abs().sum() == 0
    with pytest.raises(ValueError, match="rel_pos_bias: expected 'shared', 'layer' or 'none'"):
        BEiTConfig(**{**TINY, "rel_pos_bias": "both"})
    with pytest.raises(ValueError, match=r"tokens: expected codes \[2, 16\]"):
        _tiny()(torch.randn(2, 3, 8, 8), torch.zeros(2, 15, dtype=torch.long))


def test_cli_dvae_then_beit_train_and_eval(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.arange(64) % 2
    images = rng.random((64, 8, 8)) * 60
    images[labels == 1, :, :4] += 150
    np.savez(tmp_path / "toy.npz", images=images.astype(np.uint8), labels=labels)
    data = ["--data", str(tmp_path / "toy.npz")]
    tok = tmp_path / "dvae"
    assert main(["dvae", "train", *data, "--img-size", "8", "--hidden-dim", "8", "--num-downsample", "1",
                 "--num-tokens", "16", "--codebook-dim", "8", "--steps", "2", "--batch-size", "16", "--no-augment",
                 "--out-dir", str(tok), "--device", "cpu"]) == 0  # fmt: skip
    run = tmp_path / "beit"
    args = ["beit", "train", *data, "--tokenizer", str(tok), "--img-size", "8", "--patch-size", "2", "--in-chans", "1",
            "--embed-dim", "32", "--depth", "2", "--num-heads", "2", "--min-block", "2", "--batch-size", "16",
            "--device", "cpu"]  # fmt: skip
    assert main([*args, "--steps", "2", "--out-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "4 x 4 codes of 16" in out and re.search(r"trained      final loss [\d.]+", out)
    assert len(list((tok / "tokens").glob("tokens-*.npy"))) == 1
    assert json.loads((run / "config.json").read_text())["vocab_size"] == 16
    assert main([*args, "--steps", "1", "--out-dir", str(tmp_path / "again")]) == 0
    assert len(list((tok / "tokens").glob("tokens-*.npy"))) == 1  # the same codes, read from the cache
    assert main(["beit", "eval", str(run), *data, "--probe-iters", "20", "--k", "3", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^(beit|random init|raw pixels) +[\d.]+% +[\d.]+%$", out, re.MULTILINE) == ["beit", "random init",
                                                                                                  "raw pixels"]  # fmt: skip
    assert json.loads((tmp_path / "r.json").read_text())["layer"] == 1
    assert main([*args[:4], "--tokenizer", str(tok), "--img-size", "16", "--device", "cpu"]) == 2
    assert "--tokenizer: its 8 px, 1-channel images" in capsys.readouterr().err
