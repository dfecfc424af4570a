"""GPT <-> Hugging Face GPT2LMHeadModel: the same weights give the same logits both ways (and HF's
loss equals ours), a saved directory loads in transformers (model and tokenizer) and back, and
configs HF has but we do not are refused by name."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

from fastpretrain.data import train_bpe
from fastpretrain.interop.hf_gpt import (
    gpt_config_from_hf,
    gpt_from_hf,
    gpt_from_hf_model,
    gpt_to_hf,
    gpt_to_hf_model,
    load_hf_gpt,
    save_hf_gpt,
)
from fastpretrain.models import create_model

pytestmark = pytest.mark.usefixtures("one_thread")


def hf_tiny() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=101, n_positions=40, n_embd=64, n_layer=3, n_head=2, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # non-zero biases and norms, so a misplaced one shows
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def test_hf_to_ours_same_logits_and_loss():
    hf = hf_tiny()
    ours = gpt_from_hf_model(hf).eval()
    ids = torch.randint(0, 101, (2, 23), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids, labels=ids)
        got = ours(ids)["logits"]
        torch.testing.assert_close(got, want.logits, atol=1e-4, rtol=1e-4)
        labels = torch.cat([ids[:, 1:], torch.full((2, 1), -100)], 1)
        torch.testing.assert_close(ours(ids, labels)["loss"], want.loss, atol=1e-5, rtol=1e-5)


def test_ours_to_hf_same_logits_and_state_round_trip():
    torch.manual_seed(2)
    ours = create_model("gpt_tiny", vocab_size=77, block_size=30).eval()
    hf = gpt_to_hf_model(ours).eval()
    ids = torch.randint(0, 77, (3, 30), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours(ids)["logits"], atol=1e-4, rtol=1e-4)
    back = gpt_from_hf(gpt_to_hf(ours.state_dict()))
    assert back.keys() == ours.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())


def test_saved_directory_loads_in_transformers_and_back(tmp_path):
    torch.manual_seed(4)
    texts = ["the cat sat on the mat. " * 5, "a dog ran in the park, then home. " * 5]
    tokenizer = train_bpe(texts, vocab_size=300, progress=False)
    ours = create_model("gpt_tiny", vocab_size=tokenizer.get_vocab_size(), block_size=32).eval()
    save_hf_gpt(ours, tmp_path, tokenizer)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    hf_tok = GPT2TokenizerFast.from_pretrained(tmp_path)
    text = "the dog sat in the park"
    ids = torch.tensor([tokenizer.encode(text).ids])
    assert hf_tok(text)["input_ids"] == ids[0].tolist() and hf_tok.eos_token_id == 0 == hf.config.eos_token_id
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours(ids)["logits"], atol=1e-4, rtol=1e-4)
        loaded = load_hf_gpt(tmp_path).eval()
        assert torch.equal(loaded(ids)["logits"], ours(ids)["logits"])


def test_unsupported_configs_and_weights_are_named(tmp_path):
    d = hf_tiny().config.to_dict()
    with pytest.raises(ValueError, match="config: activation_function 'relu' is not supported"):
        gpt_config_from_hf({**d, "activation_function": "relu"})
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx=True is not supported"):
        gpt_config_from_hf({**d, "scale_attn_by_inverse_layer_idx": True})
    with pytest.raises(ValueError, match="resid_pdrop, embd_pdrop and attn_pdrop differ"):
        gpt_config_from_hf({**d, "attn_pdrop": 0.0})
    with pytest.raises(ValueError, match="config: n_head: 3 heads split width 64"):
        gpt_config_from_hf({**d, "n_head": 3})
    with pytest.raises(ValueError, match="no wpe.weight"):
        gpt_to_hf(create_model("gpt_tiny", vocab_size=50, positions="rope").state_dict())
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_hf_gpt(tmp_path)
