"""fastpretrain.patch across the Hugging Face families (BERT, GPT-2, ViT, ViTMAE): a patched
model saves HF's own checkpoint, unpatch restores every forward and attention implementation, and
a patched model under torch.compile (aot_eager, reference path: the plumbing) and gradient
checkpointing trains to the eager patched model's loss and gradients."""

import pytest
import torch
from patch_cases import same_state_dict

import fastpretrain

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")


def family(name: str):
    """(a tiny model with dropout off, one training batch) of the family."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    vision = {"image_size": 24, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 40, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}  # fmt: skip
    pixels = torch.randn(2, 3, 24, 24, generator=g)
    ids = torch.randint(1, 61, (2, 9), generator=g)
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4])
    if name == "bert":
        config = transformers.BertConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=37, hidden_dropout_prob=0.0,
                                         attention_probs_dropout_prob=0.0)  # fmt: skip
        return transformers.BertForMaskedLM(config), {"input_ids": ids, "attention_mask": mask,
                                                      "labels": torch.where(mask.bool(), ids, -100)}  # fmt: skip
    if name == "gpt2":
        config = transformers.GPT2Config(vocab_size=61, n_positions=16, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0,
                                         embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)  # fmt: skip
        return transformers.GPT2LMHeadModel(config), {"input_ids": ids, "attention_mask": mask,
                                                      "labels": torch.where(mask.bool(), ids, -100)}  # fmt: skip
    if name == "vit":
        config = transformers.ViTConfig(**vision, num_labels=3)
        return transformers.ViTForImageClassification(config), {"pixel_values": pixels, "labels": torch.tensor([0, 2])}
    config = transformers.ViTMAEConfig(**vision, decoder_hidden_size=32, decoder_num_hidden_layers=1,
                                       decoder_num_attention_heads=2, decoder_intermediate_size=40)  # fmt: skip
    return transformers.ViTMAEForPreTraining(config), {"pixel_values": pixels, "noise": torch.rand(2, 9, generator=g)}


FAMILIES = ["bert", "gpt2", "vit", "vit_mae"]


@pytest.mark.parametrize("name", FAMILIES)
def test_saves_the_original_checkpoint_and_unpatches(name, tmp_path):
    model, _ = family(name)
    plain, _ = family(name)
    forwards = {path: m.forward for path, m in model.named_modules()}
    configs = {path: m.config._attn_implementation for path, m in model.named_modules() if hasattr(m, "config")}
    report = fastpretrain.patch(model)
    assert report.patched and str(report).startswith(f"fastpretrain.patch({name}, {type(model).__name__})")
    model.save_pretrained(tmp_path / "patched")
    plain.save_pretrained(tmp_path / "plain")
    for f in ("config.json", "model.safetensors"):
        assert (tmp_path / "patched" / f).read_bytes() == (tmp_path / "plain" / f).read_bytes(), f
    loaded = type(model).from_pretrained(tmp_path / "patched")
    same_state_dict(loaded.state_dict(), plain.state_dict())
    fastpretrain.unpatch(model)
    assert {path: m.forward for path, m in model.named_modules()} == forwards
    assert {p: m.config._attn_implementation for p, m in model.named_modules() if hasattr(m, "config")} == configs
    assert not model._forward_pre_hooks


@pytest.mark.parametrize("name", FAMILIES)
def test_compile_and_checkpointing_train_as_eager(name):
    model, data = family(name)
    fastpretrain.patch(model)
    loss = model.train()(**data).loss
    loss.backward()
    expect = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    for variant in ("compile", "checkpointing"):
        twin, _ = family(name)
        fastpretrain.patch(twin)
        if variant == "checkpointing":
            twin.gradient_checkpointing_enable()
        else:
            twin = torch.compile(twin, backend="aot_eager")
        got = twin.train()(**data).loss
        got.backward()
        torch.testing.assert_close(got, loss.detach(), rtol=1e-5, atol=1e-6)
        grads = {n.removeprefix("_orig_mod."): p.grad for n, p in twin.named_parameters() if p.grad is not None}
        assert grads.keys() == expect.keys()
        for n, g in grads.items():
            torch.testing.assert_close(g, expect[n], rtol=1e-4, atol=1e-6, msg=f"{variant}: {n}")
