"""fastpretrain.patch on Hugging Face BERT: the fused attention (dense, and varlen for padded
batches) and the fused MLM head + loss give HF's outputs and gradients within the flash-attention
rule through the kernels (interpreter on CPU), the same 50-step loss curve, and everything around:
the report, unpatch, refusals, from_pretrained models, HF Trainer (save / load, torch.compile and
gradient checkpointing for every family: test_patch.py; DDP / FSDP2: test_patch_distributed.py)."""

import copy

import pytest
import torch
from patch_cases import assert_patched_close, assert_same_curve

import fastpretrain
from fastpretrain.interop import patch_hf

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 61


def config(**kw):
    base = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 37, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
            "max_position_embeddings": 32}  # fmt: skip
    return transformers.BertConfig(**{**base, **kw})


def mlm(**kw):
    torch.manual_seed(0)
    return transformers.BertForMaskedLM(config(**kw))


def batch(padded: bool, seed: int = 1, b: int = 3, s: int = 11) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.long)
    if padded:
        mask[1, 7:] = 0
        mask[2, 3:] = 0
    labels = torch.where(torch.rand(b, s, generator=g) < 0.3, ids, -100)
    labels[:, 0] = ids[:, 0]
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train_step(model, batch):
    model.train()
    return model(**batch).loss, {}


def eval_step(model, batch):
    """Eval mode, no labels: the logits at real tokens (pad positions differ on the varlen path by design)."""
    model.eval()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = logits[batch["attention_mask"].bool()]
    return real.square().mean(), {"logits": real}


@pytest.mark.parametrize("padded", [False, True], ids=["dense", "padded-varlen"])
@pytest.mark.parametrize("step", [train_step, eval_step], ids=["mlm-loss", "logits"])
def test_matches_hf(padded, step, kernel_path):
    assert_patched_close(mlm(), batch(padded), step, kernel_path)


def test_key_padding_mask_below_the_unpad_threshold(kernel_path, monkeypatch):
    """Padded batches below UNPAD_MIN_PADDING run dense with the key padding mask: every position matches."""
    monkeypatch.setattr(patch_hf, "UNPAD_MIN_PADDING", 1.0)

    def step(model, batch):
        model.eval()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits.square().mean(), {"logits": logits}

    assert_patched_close(mlm(), batch(True), step, kernel_path)


def test_pretraining_loss_matches_hf(kernel_path):
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(config())
    data = {**batch(True), "next_sentence_label": torch.tensor([0, 1, 1])}
    assert_patched_close(model, data, train_step, kernel_path)


def test_same_loss_curve(kernel_path):
    batches = [batch(True, seed) for seed in range(4)]
    assert_same_curve(
        lambda: mlm(num_hidden_layers=1, num_attention_heads=1), batches, lambda m, b: m(**b).loss, kernel_path
    )


def test_report_and_unpatch():
    model = mlm()
    original = {n: m.forward for n, m in model.named_modules()}
    report = fastpretrain.patch(model)
    assert [where for where, _ in report.patched] == [
        "bert.encoder.layer.0.attention.self .. bert.encoder.layer.1.attention.self (2 modules)",
        "cls.predictions + loss",
    ]
    assert report.left == [] and fastpretrain.patch_report(model) is report
    assert model.config._attn_implementation == "fastpretrain"
    assert "patched cls.predictions + loss" in str(report)
    with pytest.raises(RuntimeError, match="already patched"):
        fastpretrain.patch(model)
    fastpretrain.unpatch(model)
    assert model.config._attn_implementation == "sdpa" and fastpretrain.patch_report(model) is None
    assert "forward" not in model.__dict__
    assert {n: m.forward for n, m in model.named_modules()} == original


def test_classifier_keeps_its_head():
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config(num_labels=3))
    report = fastpretrain.patch_bert(model, strict=True)
    assert len(report.patched) == 1 and report.left[0][0] == "loss"


def test_refuses_unsupported_head_dims():
    model = mlm(hidden_size=40, num_attention_heads=2, intermediate_size=40)
    report = fastpretrain.patch(model)
    assert report.left[0][1].startswith("head dim 20 at bert.encoder.layer.0.attention.self")
    assert model.config._attn_implementation == "sdpa" and len(report.patched) == 1
    fastpretrain.unpatch(model)
    with pytest.raises(ValueError, match="head dim 20"):
        fastpretrain.patch(model, strict=True)
    assert fastpretrain.patch_report(model) is None and model.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="nothing to patch|head dim 20"):
        fastpretrain.patch(model, loss=False)


def test_leaves_attention_that_does_not_dispatch_through_hf_interface():
    """An attention class whose own forward does not look up HF's interface (older transformers, custom
    subclasses) is left: switching the config might not reach it."""

    class Hardwired(transformers.models.bert.modeling_bert.BertSelfAttention):
        def forward(self, hidden_states, attention_mask=None, **kwargs):
            return super().forward(hidden_states, attention_mask, **kwargs)

    model = mlm()
    old = model.bert.encoder.layer[1].attention.self
    model.bert.encoder.layer[1].attention.self = Hardwired(model.config)
    model.bert.encoder.layer[1].attention.self.load_state_dict(old.state_dict())
    report = fastpretrain.patch(model)
    assert "Hardwired of transformers" in report.left[0][1] and model.config._attn_implementation == "sdpa"


def test_refuses_output_attentions_and_4d_masks():
    model = mlm()
    fastpretrain.patch(model)
    data = batch(True)
    with pytest.raises(ValueError, match="output_attentions"):
        model(input_ids=data["input_ids"], output_attentions=True)
    with pytest.raises(ValueError, match=r"attention_mask: .*\[B, S\] padding mask"):
        model(input_ids=data["input_ids"], attention_mask=torch.ones(3, 1, 11, 11, dtype=torch.bool))


def test_refuses_wrapped_and_foreign_models():
    with pytest.raises(TypeError, match="not a family"):
        fastpretrain.patch(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="wrapped OptimizedModule"):
        fastpretrain.patch(torch.compile(mlm()))
    with pytest.raises(TypeError, match="expected a Hugging Face Bert"):
        fastpretrain.patch_bert(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="masking_ratio"):
        fastpretrain.patch(mlm(), masking_ratio=0.5)


def test_from_pretrained_model_matches(tmp_path, kernel_path):
    mlm().save_pretrained(tmp_path)
    model = transformers.BertForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager")
    assert_patched_close(model, batch(True), train_step, kernel_path)


def test_hf_trainer_loss(tmp_path):
    """HF Trainer takes the patched model's loss as it takes HF's: the same logged training losses."""
    pytest.importorskip("accelerate")
    rows = [{k: v[i] for k, v in batch(True, seed).items()} for seed in range(3) for i in range(3)]

    def train(patch: bool) -> list[float]:
        model = mlm()
        if patch:
            fastpretrain.patch(model)
        args = transformers.TrainingArguments(output_dir=str(tmp_path / str(patch)), per_device_train_batch_size=3,
                                              max_steps=3, logging_steps=1, report_to=[], use_cpu=True,
                                              save_strategy="no", dataloader_num_workers=0, seed=0)  # fmt: skip
        trainer = transformers.Trainer(model=model, args=args, train_dataset=rows)
        trainer.train()
        return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]

    plain, patched = train(False), train(True)
    assert len(plain) == 3
    assert patched == pytest.approx(plain, rel=1e-5)


def test_pickles_and_deep_copies_patched(tmp_path):
    """torch.save of the whole patched model loads back patched; deepcopy keeps the patch on the copy."""
    model = mlm()
    fastpretrain.patch(model)
    torch.save(model, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    assert fastpretrain.patch_report(loaded) is not None and loaded.forward.module is loaded
    data = batch(True)
    torch.testing.assert_close(loaded.train()(**data).loss, model.train()(**data).loss)
    fastpretrain.unpatch(loaded)
    assert "forward" not in loaded.__dict__ and loaded.config._attn_implementation == "sdpa"


def test_deepcopy_keeps_the_patch():
    model = mlm()
    fastpretrain.patch(model)
    twin = copy.deepcopy(model)
    assert fastpretrain.patch_report(twin) is not None and twin.forward.module is twin
    fastpretrain.unpatch(twin)
    assert "forward" not in twin.__dict__ and "forward" in model.__dict__
