"""Every registered model builds, runs forward and backward on a tiny input (every trainable
parameter gets a finite, non-zero gradient), and comes back from save_pretrained / from_pretrained
with identical outputs; the registry and the loader reject bad names, overrides and files clearly."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from fastpretrain.models import MAE, BertForPreTraining, create_model, list_models, model_class, model_config
from fastpretrain.models.registry import write_config

pytestmark = pytest.mark.usefixtures("one_thread")

# Small inputs; the registered widths and heads, and their depths but for the base and large sizes,
# cut to two blocks to keep the test in seconds (tests/test_vit.py counts their parameters at full depth).
INPUTS = {
    "vit": dict(img_size=32),
    "mae": dict(img_size=32),
    "simmim": dict(img_size=32, mask_patch_size=16),
    "simclr": dict(img_size=32),
    "clip": dict(img_size=32, vocab_size=128, context_length=8),
    "cpc": dict(window=4, sentence_len=32),
    "bert": dict(vocab_size=128, max_position_embeddings=16),
    "electra": dict(vocab_size=128, max_position_embeddings=16),
    "gpt": dict(vocab_size=128, block_size=16),
    "nnlm": dict(vocab_size=128, num_sampled=16),
    "elmo": dict(vocab_size=128, num_sampled=16),
    "igpt": dict(image_size=4),
    "dvae": dict(img_size=32),
    "beit": dict(img_size=32, min_block=1),
    "masked": dict(group_dim=5),
    "inpaint": dict(img_size=16, widths=(8, 16), disc_widths=(8, 16)),
    "colorize": dict(img_size=16, widths=(8, 16), num_bins=4),
}
SHALLOW = {"vit": dict(depth=2), "mae": dict(depth=2), "simmim": dict(depth=2), "beit": dict(depth=2),
           "bert": dict(num_layers=2), "electra": dict(num_layers=2), "gpt": dict(num_layers=2),
           "igpt": dict(num_layers=2), "masked": dict(depth=2, decoder_depth=1)}


def family(name: str) -> str:
    families = ("mae", "simmim", "simclr", "clip", "cpc", "vit", "bert", "electra", "gpt", "nnlm", "elmo", "igpt", "dvae",
                "beit", "masked", "inpaint", "colorize")
    return next(f for f in families if name.startswith(f))


def small(name: str) -> dict:
    deep = any(size in name for size in ("_base", "_large", "_124m", "_350m", "igpt_small"))
    return {**INPUTS[family(name)], **(SHALLOW.get(family(name), {}) if deep else {})}


def run(model, name: str) -> torch.Tensor:
    """The model's scalar objective on a fixed tiny input."""
    g = torch.Generator().manual_seed(0)
    kind = family(name)
    if kind in ("bert", "electra"):
        ids = torch.randint(1, 128, (11,), generator=g)
        batch = dict(input_ids=ids, cu_seqlens=torch.tensor([0, 7, 11], dtype=torch.int32),
                     mlm_positions=torch.tensor([1, 5, 8]), mlm_labels=torch.tensor([3, 9, 27]),
                     nsp_labels=torch.tensor([0, 1]))  # fmt: skip
        return model(**batch, **({"generator": g} if kind == "electra" else {}))["loss"]
    if kind == "igpt":
        return model(torch.randint(0, model.config.palette_size, (2, 16), generator=g), generator=g)["loss"]
    if kind == "gpt":
        ids = torch.randint(0, 128, (12,), generator=g)
        labels = torch.cat([ids[1:], torch.tensor([-100])])
        return model(ids, labels, cu_seqlens=torch.tensor([0, 5, 12], dtype=torch.int32))["loss"]
    if kind == "masked":
        values, positions = torch.randn(2, 12, 5, generator=g), torch.arange(12.0).expand(2, 12)[..., None]
        return model(values, positions, generator=g)["loss"]
    if kind == "nnlm":
        return model(torch.randint(0, 128, (2, 12), generator=g))["loss"]
    if kind == "elmo":
        model.set_vocabulary([f"w{i}" for i in range(128)])
        return model(torch.randint(0, 128, (2, 8), generator=g))["loss"]
    c = model.config
    if kind == "cpc":
        return model(torch.randint(0, 256, (3, c.window, c.sentence_len), generator=g))["loss"]
    imgs = torch.randn(2, c.in_chans, c.img_size, c.img_size, generator=g)
    if kind == "mae":
        return model(imgs, noise=torch.rand(2, model.num_patches, generator=g))["loss"]
    if kind in ("simmim", "inpaint", "colorize"):
        return model(imgs, generator=g)["loss"]
    if kind == "dvae":
        return model(imgs)["loss"]
    if kind == "beit":
        return model(imgs, torch.randint(0, c.vocab_size, (2, model.num_patches), generator=g), generator=g)["loss"]
    if kind == "simclr":
        return model(torch.stack([imgs, imgs.flip(-1)], 1))["loss"]
    if kind == "clip":
        ids = torch.randint(1, 128, (2, 8), generator=g)
        ids[0, 5:] = model.config.pad_token_id
        return model(imgs, ids)["loss"]
    return model(imgs).square().mean()


@pytest.mark.parametrize("name", list_models())
def test_every_model_trains_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, **small(name))
    run(model, name).backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    model.eval()
    with torch.no_grad():
        before = run(model, name)
        model.save_pretrained(tmp_path)
        loaded = type(model).from_pretrained(tmp_path).eval()
        assert loaded.config == model.config
        assert torch.equal(run(loaded, name), before)


def test_registry_names_and_overrides():
    assert list_models("bert_*") == ["bert_base", "bert_large", "bert_medium", "bert_mini", "bert_small", "bert_tiny"]
    assert "mae_vit_fashion_mnist" in list_models("mae_*") and list_models("nope*") == []
    config = model_config("bert_mini", vocab_size=100)
    assert (config.num_layers, config.hidden_size, config.num_heads, config.vocab_size) == (4, 256, 4, 100)
    assert model_class("bert_mini") is BertForPreTraining and model_class("mae_vit_fashion_mnist") is MAE
    with pytest.raises(ValueError, match="name: no model 'vit_tinny'; did you mean vit_tiny"):
        create_model("vit_tinny")
    with pytest.raises(TypeError, match="hidden: not a field of BertConfig"):
        model_config("bert_tiny", hidden=3)
    with pytest.raises(ValueError, match="num_heads: 5 heads split width 128"):
        model_config("bert_tiny", num_heads=5)


def test_loading_rejects_mismatched_files(tmp_path):
    torch.manual_seed(0)
    model = create_model("bert_tiny", vocab_size=64, max_position_embeddings=16)
    model.save_pretrained(tmp_path / "ok")
    saved = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert saved["model"] == "bert" and saved["num_layers"] == 2 and saved["vocab_size"] == 64

    fewer = tmp_path / "fewer_layers"
    model.save_pretrained(fewer)
    write_config(fewer / "config.json", model_config("bert_tiny", vocab_size=64, max_position_embeddings=16,
                                                     num_layers=1))  # fmt: skip
    with pytest.raises(ValueError, match=r"does not fit the config in .*: unexpected layers\.1\.attn\.proj\.bias"):
        BertForPreTraining.from_pretrained(fewer)

    wider = tmp_path / "vocab"
    model.save_pretrained(wider)
    write_config(wider / "config.json", model_config("bert_tiny", vocab_size=65, max_position_embeddings=16))
    with pytest.raises(ValueError, match=r"shape of .*embeddings\.word\.weight \(64, 128\) \(config: \(65, 128\)\)"):
        BertForPreTraining.from_pretrained(wider)

    missing = tmp_path / "missing"
    model.save_pretrained(missing)
    state = load_file(missing / "model.safetensors")
    del state["pooler.weight"]
    save_file(state, missing / "model.safetensors")
    with pytest.raises(ValueError, match="missing pooler.weight"):
        BertForPreTraining.from_pretrained(missing)

    with pytest.raises(ValueError, match="holds a 'bert' model, not 'mae'"):
        type(create_model("mae_vit_fashion_mnist")).from_pretrained(tmp_path / "ok")
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    (hf_dir / "model.safetensors").write_bytes((tmp_path / "ok" / "model.safetensors").read_bytes())
    (hf_dir / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 128}))
    with pytest.raises(ValueError, match="no 'model' field: not a fastpretrain save_pretrained folder"):
        BertForPreTraining.from_pretrained(hf_dir)
    (hf_dir / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        BertForPreTraining.from_pretrained(hf_dir)
    with pytest.raises(FileNotFoundError, match="checkpoint: no model.safetensors"):
        BertForPreTraining.from_pretrained(tmp_path / "absent")
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "ok").iterdir())


def saved_bert(directory):
    """A bert_tiny saved to ``directory`` and its config.json as a dict."""
    torch.manual_seed(0)
    model = create_model("bert_tiny", vocab_size=64, max_position_embeddings=16)
    model.save_pretrained(directory)
    return model, json.loads((directory / "config.json").read_text())


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c.pop("pre_norm"), r"config\.json lacks the BertConfig field pre_norm"),
        (lambda c: c.update(num_layres=c.pop("num_layers")), r"'num_layres' is not a field of BertConfig; did you"),
        (lambda c: c.update(colour="red"),
         r"'colour' is not a field of BertConfig nor an extra \(data, mean, std, modality, tokenizer\)"),
        (lambda c: c.update(num_layers="2"), r"config\.json: num_layers: expected an int >= 1, got '2'"),
        (lambda c: c.update(vocab_size=None), r"config\.json: vocab_size: expected an int >= 1, got None"),
        (lambda c: c.update(num_heads=3), r"config\.json: num_heads: 3 heads split width 128 .*\(16, 32, 64, 96, 128"),
        (lambda c: c.update(hidden_dropout=1.5), r"config\.json: hidden_dropout: expected a probability"),
        (lambda c: c.update(model=3), r"config\.json holds a 3 model, not 'bert'"),
    ],
    ids=["missing", "misspelled", "unknown", "str", "null", "heads", "dropout", "model"],
)
def test_damaged_config_names_the_file_and_the_field(tmp_path, edit, match):
    """A field missing (pre_norm would fall back to post-norm: same shapes, other outputs), misspelled
    or invalid is an error naming config.json and the field, not a default, a raw error or a model."""
    _, config = saved_bert(tmp_path)
    edit(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match) as error:
        BertForPreTraining.from_pretrained(tmp_path)
    assert str(tmp_path / "config.json") in str(error.value)


@pytest.mark.parametrize("content, match", [(b"\xff\xfe{}", "is not valid JSON"), (b"[1]", "holds a list, expected")])
def test_config_that_is_not_a_json_object(tmp_path, content, match):
    saved_bert(tmp_path)
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(ValueError, match=f"checkpoint: {re.escape(str(tmp_path / 'config.json'))} {match}"):
        BertForPreTraining.from_pretrained(tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_weights_file_names_the_file(tmp_path, damage):
    saved_bert(tmp_path)
    file = tmp_path / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes({"garbage": b"not safetensors at all", "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(ValueError, match=f"checkpoint: {re.escape(str(file))} is not a readable safetensors file"):
        BertForPreTraining.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", ["vit_tiny", "mae_vit_fashion_mnist", "bert_tiny"])
def test_every_model_type_refuses_a_misspelled_field(tmp_path, name):
    model = create_model(name, **small(name))
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["layer_norm_epsilon"] = config.pop("layer_norm_eps")
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"'layer_norm_epsilon' is not a field of .*; did you mean 'layer_norm_eps'"):
        type(model).from_pretrained(tmp_path)


def test_run_extras_load_and_other_extras_are_refused(tmp_path):
    """A run's documented extras (data, normalisation) sit beside the fields and load; an undocumented
    extra is refused on writing, and a stale key in an old file is not carried into the new one."""
    model, _ = saved_bert(tmp_path)
    write_config(tmp_path / "config.json", model.config, data="fashion-mnist", mean=[0.5], std=[0.25])
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["data"], saved["mean"], saved["std"]) == ("fashion-mnist", [0.5], [0.25])
    assert BertForPreTraining.from_pretrained(tmp_path).config == model.config
    with pytest.raises(TypeError, match=r"colour: not a config\.json extra"):
        write_config(tmp_path / "config.json", model.config, colour="red")
    (tmp_path / "config.json").write_text(json.dumps({**saved, "old_field": 1}))
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "old_field" not in saved and saved["mean"] == [0.5]


def test_load_weights_checks_everything_before_loading_anything(tmp_path):
    """create_model + load_weights: weights that do not fit change nothing in the model (torch's
    load_state_dict copies the tensors that fit before it raises), and ones that fit load exactly."""
    model, _ = saved_bert(tmp_path / "ok")
    torch.manual_seed(1)
    wider = create_model("bert_tiny", vocab_size=65, max_position_embeddings=16)
    wider.save_pretrained(tmp_path / "wider")
    target = create_model("bert_tiny", vocab_size=64, max_position_embeddings=16)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    file = tmp_path / "wider" / "model.safetensors"
    misfit = r"does not fit this BertForPreTraining: shape of .*embeddings\.word\.weight \(65, 128\) \(config: \(64,"
    with pytest.raises(ValueError, match=rf"weights: {re.escape(str(file))} {misfit}"):
        target.load_weights(tmp_path / "wider")
    state = {k: v for k, v in model.state_dict().items() if k != "pooler.bias"}
    with pytest.raises(ValueError, match=r"weights: the state dict does not fit this BertForPreTraining: missing pool"):
        target.load_weights(state)
    with pytest.raises(FileNotFoundError, match="weights: no weights file"):
        target.load_weights(tmp_path / "absent")
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())
    assert target.load_weights(tmp_path / "ok") is target
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in target.state_dict().items())
