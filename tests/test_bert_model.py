"""BERT model: packed vs padded, Hugging Face interop both ways, the MLM loss, post-/pre-norm layers
against hand-written eager ones, and a few Trainer steps that must overfit a tiny corpus."""

import json
import re

import pytest
import torch
import torch.nn.functional as F
from bert_corpus import write_corpus, write_vocab
from safetensors.torch import load_file, save_file

from fastpretrain.data import BertExamples, collate_packed, collate_padded, load_wordpiece
from fastpretrain.interop.hf import (
    bert_config_to_hf, bert_from_hf_model, bert_to_hf, bert_to_hf_model, load_hf_bert, save_hf_bert,
)  # fmt: skip
from fastpretrain.models import BertConfig, BertForPreTraining
from fastpretrain.models.bert import bert_layer
from fastpretrain.nn import TransformerBlock
from fastpretrain.train import Trainer, TrainConfig

SMALL = dict(vocab_size=90, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=96, max_position_embeddings=40)


pytestmark = pytest.mark.usefixtures("one_thread")


def padded_batch(seed=0, b=3, s=20, vocab=90):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (b, s), generator=g)
    lengths = torch.tensor([s, 13, 6])[:b]
    mask = (torch.arange(s) < lengths[:, None]).long()
    types = ((torch.arange(s) >= lengths[:, None] // 2) & mask.bool()).long()
    return ids * mask, types, mask


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return BertForPreTraining(BertConfig(**{**SMALL, **kw})).eval()


def test_packed_and_padded_forms_give_the_same_outputs(tmp_path):
    tok = load_wordpiece(write_vocab(tmp_path / "vocab.txt"))
    ds = BertExamples.build(write_corpus(tmp_path / "c.txt"), tok, max_len=24, heldout=0, cache_dir=tmp_path, progress=False)
    examples = [ds[i] for i in range(4)]
    m = model(vocab_size=tok.get_vocab_size())
    packed, padded = collate_packed(examples), collate_padded(examples)
    with torch.no_grad():
        a, b = m(**packed), m(**padded)
        for key in ("loss", "mlm_loss", "nsp_loss"):
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
        assert a["items"] == b["items"] == packed["input_ids"].numel()
        strip = lambda batch: {k: v for k, v in batch.items() if k not in ("mlm_labels", "nsp_labels")}  # noqa: E731
        a, b = m(**strip(packed)), m(**strip(padded))
    for key in ("mlm_logits", "nsp_logits", "cls_hidden"):
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5)
    # position ids computed from cu_seqlens when absent
    with torch.no_grad():
        c = m(**{k: v for k, v in strip(packed).items() if k != "position_ids"})
    torch.testing.assert_close(c["mlm_logits"], a["mlm_logits"])


def hf_outputs(hf, ids, types, mask):
    with torch.no_grad():
        out = hf(input_ids=ids, token_type_ids=types, attention_mask=mask)
    return out.prediction_logits[mask.bool()], out.seq_relationship_logits


def test_ours_to_hf_and_hf_to_ours_give_the_same_logits():
    transformers = pytest.importorskip("transformers")
    ids, types, mask = padded_batch()
    ours = model(seed=1)
    with torch.no_grad():
        out = ours(ids, token_type_ids=types, attention_mask=mask)
    mlm, nsp = hf_outputs(bert_to_hf_model(ours).eval(), ids, types, mask)
    torch.testing.assert_close(out["mlm_logits"], mlm, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["nsp_logits"], nsp, rtol=1e-4, atol=1e-5)

    torch.manual_seed(2)
    fields = {k: v for k, v in bert_config_to_hf(ours.config).items() if k != "model_type"}
    hf_config = transformers.BertConfig(**fields)
    hf = transformers.BertForPreTraining(hf_config).eval()
    with torch.no_grad():  # HF zero-initialises some biases; random ones make the check complete
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    back = bert_from_hf_model(hf).eval()
    with torch.no_grad():
        out = back(ids, token_type_ids=types, attention_mask=mask)
    mlm, nsp = hf_outputs(hf, ids, types, mask)
    torch.testing.assert_close(out["mlm_logits"], mlm, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["nsp_logits"], nsp, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out["nsp_logits"], model(seed=1)(ids, token_type_ids=types, attention_mask=mask)["nsp_logits"])


def test_hf_export_loads_in_hf_and_back(tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = load_wordpiece(write_vocab(tmp_path / "vocab.txt"))
    ours = model(seed=3, vocab_size=tok.get_vocab_size())
    save_hf_bert(ours, tmp_path / "export", tok)
    assert json.loads((tmp_path / "export/config.json").read_text())["architectures"] == ["BertForPreTraining"]
    hf = transformers.BertForPreTraining.from_pretrained(tmp_path / "export").eval()
    ids, types, mask = padded_batch(vocab=tok.get_vocab_size())
    with torch.no_grad():
        out = ours(ids, token_type_ids=types, attention_mask=mask)
        again = load_hf_bert(tmp_path / "export").eval()(ids, token_type_ids=types, attention_mask=mask)
    mlm, nsp = hf_outputs(hf, ids, types, mask)
    torch.testing.assert_close(out["mlm_logits"], mlm, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["nsp_logits"], nsp, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(again["mlm_logits"], out["mlm_logits"])
    hf_tok = transformers.BertTokenizerFast.from_pretrained(tmp_path / "export")
    assert hf_tok("D3s4 alpha.")["input_ids"] == tok.encode("D3s4 alpha.").ids


def random_hf(transformers, **sizes):
    """A ``transformers.BertForPreTraining`` of SMALL's sizes (``sizes`` overriding), every weight random."""
    torch.manual_seed(2)
    fields = {k: v for k, v in bert_config_to_hf(BertConfig(**SMALL)).items() if k != "model_type"}
    hf = transformers.BertForPreTraining(transformers.BertConfig(**{**fields, **sizes})).eval()
    with torch.no_grad():  # HF zero-initialises some biases; random ones make the check complete
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return hf


def test_left_padded_batch_pools_position_0_as_hugging_face():
    """HF's pooler (and so NSP) reads position 0 even where it is padding: a left-padded batch gives
    HF's NSP logits and position-0 states, and the real tokens' MLM logits stay HF's."""
    transformers = pytest.importorskip("transformers")
    hf = random_hf(transformers)
    ours = bert_from_hf_model(hf).eval()
    ids, types, mask = padded_batch()
    ids, types, mask = ids.flip(1), types.flip(1), mask.flip(1)  # rows 1 and 2 now start with padding
    with torch.no_grad():
        out = ours(ids, token_type_ids=types, attention_mask=mask)
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(out["nsp_logits"], ref.seq_relationship_logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["cls_hidden"], ref.hidden_states[-1][:, 0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["mlm_logits"], ref.prediction_logits[mask.bool()], rtol=1e-4, atol=1e-5)
    first_real = ref.hidden_states[-1][1, 7]  # row 1's first real token: what a packed pooler would read
    assert mask[1, :8].tolist() == [0] * 7 + [1] and not torch.allclose(out["cls_hidden"][1], first_real, atol=0.1)


def test_hf_head_widths_the_kernels_lack_are_refused_at_load(tmp_path):
    """Head width 10 builds in HF; ours refuses it when converting, naming HF's field and the widths."""
    transformers = pytest.importorskip("transformers")
    hf = random_hf(transformers, hidden_size=60, num_attention_heads=6)
    refused = r"num_attention_heads: 6 heads split width 60 into heads of 10; .*\(16, 32, 64, 96, 128\)"
    with pytest.raises(ValueError, match=f"hf_model.config: {refused}"):
        bert_from_hf_model(hf)
    hf.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"directory: {re.escape(str(tmp_path / 'config.json'))}: {refused}"):
        load_hf_bert(tmp_path)


def _edit_config(directory, **fields):
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({k: v for k, v in {**config, **fields}.items() if v != "drop"}))


def _edit_weights(directory, **tensors):
    state = load_file(directory / "model.safetensors")
    save_file({**state, **tensors}, directory / "model.safetensors")


MISFIT = "not the BertForPreTraining its config gives: "
DAMAGE = {  # how an HF BERT directory is damaged, the file the error names, what it says
    "missing": (lambda d: _edit_config(d, num_hidden_layers="drop"), "config.json", "lacks num_hidden_layers"),
    "json": (lambda d: (d / "config.json").write_text("{"), "config.json", "is not valid JSON"),
    "array": (lambda d: (d / "config.json").write_text("[]"), "config.json", "holds a list"),
    "fewer": (lambda d: _edit_config(d, num_hidden_layers=1), "model.safetensors", rf"{MISFIT}unexpected layers\.1\."),
    "more": (lambda d: _edit_config(d, num_hidden_layers=3), "model.safetensors", rf"{MISFIT}missing layers\.2\."),
    "vocab": (lambda d: _edit_config(d, vocab_size=91), "model.safetensors",
              rf"{MISFIT}shape of .*embeddings\.word\.weight \(90, 64\) \(config: \(91, 64\)\)"),
    "heads": (lambda d: _edit_config(d, num_attention_heads=3), "config.json", "num_attention_heads: 3 heads split"),
    "pad": (lambda d: _edit_config(d, pad_token_id=90), "config.json", r"pad_token_id: expected an id in \[0, 90\)"),
    "act": (lambda d: _edit_config(d, hidden_act="gelu_new"), "config.json", "hidden_act 'gelu_new' is not supported"),
    "relative": (lambda d: _edit_config(d, position_embedding_type="relative_key"), "config.json",
                 "position_embedding_type 'relative_key' is not supported"),
    "garbage": (lambda d: (d / "model.safetensors").write_bytes(b"\0" * 64), "model.safetensors",
                "is not a readable safetensors file"),
    "unknown": (lambda d: _edit_weights(d, **{"bert.encoder.layer.0.attention.self.distance_embedding.weight":
                                               torch.zeros(3, 4)}), "model.safetensors",
                "1 keys with no counterpart in BertForPreTraining .*distance_embedding"),
    "untied": (lambda d: _edit_weights(d, **{"cls.predictions.decoder.weight": torch.zeros(90, 64)}),
               "model.safetensors", "'cls.predictions.decoder.weight' differs from 'bert.embeddings.word_embeddings"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_hf_directory_names_the_file_and_the_field(tmp_path, damage):
    """Every damaged HF directory is a ValueError naming the file and the field or key: no KeyError,
    JSONDecodeError, torch RuntimeError, or silently dropped decoder."""
    save_hf_bert(model(seed=4), tmp_path)
    edit, file, match = DAMAGE[damage]
    edit(tmp_path)
    with pytest.raises(ValueError, match=f"directory: {re.escape(str(tmp_path / file))}:? {match}"):
        load_hf_bert(tmp_path)


def test_hf_directory_without_safetensors_says_what_to_do(tmp_path):
    save_hf_bert(model(), tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="has no model.safetensors .*load it with transformers, then bert_from"):
        load_hf_bert(tmp_path)


def test_mlm_loss_is_cross_entropy_on_the_selected_positions():
    ids, types, mask = padded_batch()
    m = model()
    positions = torch.tensor([1, 4, 7, 21, 25, 41, 43])  # flat indices into [B * S], real tokens only
    labels = torch.randint(0, 90, (7,), generator=torch.Generator().manual_seed(5))
    nsp = torch.tensor([0, 1, 1])
    with torch.no_grad():
        out = m(ids, token_type_ids=types, attention_mask=mask, mlm_positions=positions, mlm_labels=labels, nsp_labels=nsp)
        every = m(ids, token_type_ids=types, attention_mask=mask)  # logits of every real token, packed order
    rows = torch.full((60,), -1)
    rows[mask.flatten().bool()] = torch.arange(int(mask.sum()))
    expected = F.cross_entropy(every["mlm_logits"][rows[positions]], labels)
    torch.testing.assert_close(out["mlm_loss"], expected)
    torch.testing.assert_close(out["nsp_loss"], F.cross_entropy(every["nsp_logits"], nsp))
    torch.testing.assert_close(out["loss"], expected + out["nsp_loss"])
    assert not torch.allclose(expected, F.cross_entropy(every["mlm_logits"][rows[positions] + 1], labels))


def eager_layer(layer: TransformerBlock, x: torch.Tensor, pre_norm: bool) -> torch.Tensor:
    """One BERT layer on a single sequence [S, E], written out by hand."""
    e = x.shape[-1]
    h = layer.attn.num_heads

    def attend(y):
        q, k, v = (F.linear(y, w, b).view(-1, h, e // h).transpose(0, 1)
                   for w, b in zip(layer.attn.qkv.weight.chunk(3), layer.attn.qkv.bias.chunk(3)))  # fmt: skip
        p = torch.softmax(q @ k.transpose(-1, -2) / (e // h) ** 0.5, -1)
        return F.linear((p @ v).transpose(0, 1).reshape(-1, e), layer.attn.proj.weight, layer.attn.proj.bias)

    def mlp(y):
        fc1, fc2 = layer.mlp.fc1, layer.mlp.fc2
        return F.linear(F.gelu(F.linear(y, fc1.weight, fc1.bias)), fc2.weight, fc2.bias)

    ln1 = lambda y: F.layer_norm(y, (e,), layer.norm1.weight, layer.norm1.bias, 1e-12)  # noqa: E731
    ln2 = lambda y: F.layer_norm(y, (e,), layer.norm2.weight, layer.norm2.bias, 1e-12)  # noqa: E731
    if pre_norm:
        x = x + attend(ln1(x))
        return x + mlp(ln2(x))
    x = ln1(x + attend(x))
    return ln2(x + mlp(x))


def test_post_norm_and_pre_norm_layers_match_eager_and_differ():
    torch.manual_seed(0)
    x = torch.randn(11 + 6, 64)
    cu = torch.tensor([0, 11, 17], dtype=torch.int32)
    outs = {}
    for pre_norm in (False, True):
        torch.manual_seed(1)
        layer = bert_layer(BertConfig(**SMALL, pre_norm=pre_norm)).eval()
        with torch.no_grad():
            for p in layer.parameters():  # non-trivial norms and biases
                p.add_(torch.randn_like(p) * 0.1)
            outs[pre_norm] = layer(x, cu_seqlens=cu, max_seqlen=11)
            expected = torch.cat([eager_layer(layer, x[:11], pre_norm), eager_layer(layer, x[11:], pre_norm)])
        torch.testing.assert_close(outs[pre_norm], expected, rtol=1e-4, atol=1e-5)
    assert (outs[False] - outs[True]).abs().max() > 0.1
    with pytest.raises(ValueError, match="pre_norm"):
        bert_to_hf(model(pre_norm=True).state_dict())


def test_trainer_steps_overfit_a_tiny_corpus(tmp_path):
    tok = load_wordpiece(write_vocab(tmp_path / "vocab.txt", docs=6, sentences=8))
    corpus = write_corpus(tmp_path / "c.txt", docs=6, sentences=8)
    ds = BertExamples.build(corpus, tok, max_len=32, heldout=0, cache_dir=tmp_path, progress=False)
    torch.manual_seed(0)
    m = BertForPreTraining(BertConfig(**{**SMALL, "vocab_size": tok.get_vocab_size()}, hidden_dropout=0.0, attention_dropout=0.0))
    config = TrainConfig(out_dir=str(tmp_path / "run"), steps=40, batch_size=8, lr=3e-3, warmup_steps=4,
                         schedule="linear", log_every=10, ckpt_every=1000, device="cpu", weight_decay=0.0)  # fmt: skip
    history = Trainer(m, ds, config, collate_fn=collate_packed).fit()
    first, last = history[0], history[-1]
    assert last["loss"] < 0.6 * first["loss"] and last["mlm_loss"] < first["mlm_loss"] - 1.0
    assert all(r["items_per_s"] > 0 for r in history)
