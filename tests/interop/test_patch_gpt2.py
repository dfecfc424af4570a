"""fastpretrain.patch on Hugging Face GPT-2: causal attention (dense, padded, varlen) and the fused
shifted LM loss give HF's outputs and gradients within the flash-attention rule through the kernels
(interpreter on CPU), the same 50-step loss curve, HF's ``num_items_in_batch`` semantics, greedy
generation on the KV cache token for token, and clear refusals."""

import pytest
import torch
from patch_cases import assert_patched_close, assert_same_curve

import fastpretrain

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 67


def lm(**kw):
    torch.manual_seed(0)
    base = {"vocab_size": VOCAB, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 2, "resid_pdrop": 0.0,
            "embd_pdrop": 0.0, "attn_pdrop": 0.0, "bos_token_id": 0, "eos_token_id": 0}  # fmt: skip
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**base, **kw}))


def batch(padded: bool, seed: int = 1, b: int = 3, s: int = 13) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.long)
    if padded:
        mask[1, s - 4 :] = 0
        mask[-1, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.where(mask.bool(), ids, -100)}


def train_step(model, batch):
    model.train()
    return model(**batch).loss, {}


def eval_step(model, batch):
    model.eval()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = logits[batch["attention_mask"].bool()]
    return real.square().mean(), {"logits": real}


@pytest.mark.parametrize("padded", [False, True], ids=["dense", "padded-varlen"])
@pytest.mark.parametrize("step", [train_step, eval_step], ids=["lm-loss", "logits"])
def test_matches_hf(padded, step, kernel_path):
    assert_patched_close(lm(), batch(padded), step, kernel_path)


def test_scaled_by_layer_matches_hf(kernel_path):
    """HF's per-layer attention scale (scale_attn_by_inverse_layer_idx) reaches the op."""
    assert_patched_close(lm(scale_attn_by_inverse_layer_idx=True), batch(False), eval_step, kernel_path)


def test_num_items_in_batch_as_hf():
    """HF Trainer's gradient-accumulation normaliser: the sum over labelled tokens / num_items_in_batch."""
    data = batch(True)
    plain, patched = lm().train(), lm().train()
    fastpretrain.patch(patched)
    items = torch.tensor(17)
    torch.testing.assert_close(
        patched(**data, num_items_in_batch=items).loss, plain(**data, num_items_in_batch=items).loss
    )


def test_same_loss_curve(kernel_path):
    batches = [batch(True, seed, b=2, s=9) for seed in range(4)]
    assert_same_curve(lambda: lm(n_layer=1, n_head=1), batches, lambda m, b: m(**b).loss, kernel_path)


def test_generate_on_the_kv_cache():
    """One-token decoding steps attend to every cached key: greedy generation matches HF's."""
    plain, patched = lm().eval(), lm().eval()
    fastpretrain.patch(patched)
    prompt = batch(False)["input_ids"][:, :4]
    kw = {"max_new_tokens": 5, "do_sample": False, "attention_mask": torch.ones_like(prompt), "pad_token_id": 0}
    assert torch.equal(patched.generate(prompt, **kw), plain.generate(prompt, **kw))


def test_report_and_refusals():
    model = lm()
    report = fastpretrain.patch(model)
    assert [w for w, _ in report.patched] == [
        "transformer.h.0.attn .. transformer.h.1.attn (2 modules)",
        "lm_head + loss",
    ]
    ids = batch(False)["input_ids"]
    with pytest.raises(ValueError, match="output_attentions"):
        model(input_ids=ids, output_attentions=True)
    cache = transformers.DynamicCache(config=model.config)
    model(input_ids=ids[:, :4], cache=cache, use_cache=True)
    with pytest.raises(ValueError, match="chunked prefill"):
        model(input_ids=ids[:, 4:7], cache=cache, use_cache=True)
    with pytest.raises(ValueError, match="packed sequences from position_ids"):
        model(input_ids=ids, use_cache=False, position_ids=torch.tensor([[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6]] * 3))
    fastpretrain.unpatch(model)
    assert model(input_ids=ids, output_attentions=True).attentions is not None
    torch.manual_seed(0)
    heads = transformers.GPT2Model(transformers.GPT2Config(vocab_size=VOCAB, n_embd=48, n_layer=1, n_head=4))
    with pytest.raises(ValueError, match="head dim 12"):
        fastpretrain.patch(heads)
