"""ELECTRA: the replaced-token labels against a reference (a sample equal to the original is not
replaced), the loss against a plain-torch computation on the same draw, no gradient into the
generator from the RTD loss, one shared embedding, the discriminator exported as a BERT encoder,
a few Trainer steps that must learn, and bad input."""

import pytest
import torch
import torch.nn.functional as F
from bert_corpus import write_corpus, write_vocab

from fastpretrain.data import BertExamples, collate_packed, load_wordpiece
from fastpretrain.models import BertForPreTraining, ElectraConfig, ElectraForPreTraining
from fastpretrain.models.electra import replaced_tokens
from fastpretrain.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(vocab_size=90, hidden_size=64, num_layers=2, generator_size=0.25, max_position_embeddings=40,
             hidden_dropout=0.0, attention_dropout=0.0)  # fmt: skip


def model(seed=0, **kw) -> ElectraForPreTraining:
    torch.manual_seed(seed)
    m = ElectraForPreTraining(ElectraConfig(**{**SMALL, **kw})).eval()
    with torch.no_grad():  # non-trivial norms and biases
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return m


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 90, (17,), generator=g)
    positions = torch.tensor([1, 3, 4, 9, 12, 15])
    labels = torch.randint(5, 90, (6,), generator=g)
    ids[positions[:4]] = 4  # [MASK]
    return dict(input_ids=ids, token_type_ids=(torch.arange(17) % 7 > 3).long(),
                cu_seqlens=torch.tensor([0, 8, 17], dtype=torch.int32), mlm_positions=positions, mlm_labels=labels)  # fmt: skip


def test_replaced_tokens_match_a_reference_with_equal_samples_not_replaced():
    ids = torch.tensor([2, 4, 11, 4, 4, 13, 3, 4, 21, 3])
    positions, labels = torch.tensor([1, 3, 4, 7]), torch.tensor([30, 31, 32, 33])
    sampled = torch.tensor([30, 40, 32, 50])  # positions 1 and 4 drew the original
    corrupted, replaced = replaced_tokens(ids, positions, labels, sampled)
    expected_ids, expected = ids.tolist(), [False] * len(ids)
    for p, label, s in zip(positions.tolist(), labels.tolist(), sampled.tolist()):
        expected_ids[p] = s
        expected[p] = s != label
    assert corrupted.tolist() == expected_ids and replaced.tolist() == expected
    assert replaced.sum() == 2 and ids[1] == 4  # the input is left as it was


def test_model_labels_a_sample_equal_to_the_original_as_not_replaced():
    """The generator's bias forces every sample to id 7: the positions whose original is 7 are not
    replaced; the RTD loss is the discriminator's BCE on exactly those ids and labels."""
    m, b = model(), batch()
    b["mlm_labels"] = torch.tensor([7, 20, 7, 31, 7, 44])
    with torch.no_grad():
        m.generator.bias.fill_(-1e4)
        m.generator.bias[7] = 1e4
        out = m(**b)
        expected_ids = b["input_ids"].clone()
        expected_ids[b["mlm_positions"]] = 7
        replaced = torch.zeros(17)
        replaced[b["mlm_positions"][[1, 3, 5]]] = 1
        detect = m(expected_ids, b["token_type_ids"], cu_seqlens=b["cu_seqlens"])
    assert out["replaced_fraction"] == 3 / 17
    torch.testing.assert_close(out["rtd_loss"], F.binary_cross_entropy_with_logits(detect["rtd_logits"], replaced))
    torch.testing.assert_close(out["rtd_accuracy"], ((detect["rtd_logits"] > 0) == replaced.bool()).float().mean())


def reference_loss(m: ElectraForPreTraining, b: dict, seed: int, weight: float):
    """ELECTRA's loss on ``b`` written out in plain torch (the BERT layers called as modules)."""
    e, c = m.embeddings, m.config
    cu, ids, types = b["cu_seqlens"], b["input_ids"], b["token_type_ids"]
    positions = torch.cat([torch.arange(n) for n in cu.diff().tolist()])

    def embed(x):
        h = e.word.weight[x] + e.position.weight[positions] + e.token_type.weight[types]
        return F.layer_norm(h, (c.hidden_size,), e.norm.weight, e.norm.bias, c.layer_norm_eps)

    def layers(x, blocks):
        for block in blocks:
            x = block(x, cu_seqlens=cu, max_seqlen=int(cu.diff().max()))
        return x

    gen = m.generator
    h = layers(F.linear(embed(ids), gen.project.weight, gen.project.bias), gen.layers)[b["mlm_positions"]]
    h = F.layer_norm(F.gelu(F.linear(h, gen.transform.weight, gen.transform.bias)), (c.hidden_size,), gen.norm.weight,
                     gen.norm.bias, c.layer_norm_eps)  # fmt: skip
    logits = h @ e.word.weight.T + gen.bias
    mlm = F.cross_entropy(logits, b["mlm_labels"])
    sampled = torch.multinomial(torch.softmax(logits, -1), 1, generator=torch.Generator().manual_seed(seed))[:, 0]
    original = ids.clone()
    original[b["mlm_positions"]] = b["mlm_labels"]
    corrupted = original.clone()
    corrupted[b["mlm_positions"]] = sampled
    d = m.discriminator
    h = layers(embed(corrupted), d.layers)
    rtd_logits = F.linear(F.gelu(F.linear(h, d.dense.weight, d.dense.bias)), d.out.weight, d.out.bias)[:, 0]
    rtd = F.binary_cross_entropy_with_logits(rtd_logits, (corrupted != original).float())
    return mlm + weight * rtd, mlm, rtd, (corrupted != original)


@pytest.mark.parametrize("weight", [50.0, 3.0])
def test_loss_equals_a_plain_torch_computation(weight):
    m, b = model(rtd_weight=weight), batch()
    with torch.no_grad():
        out = m(**b, generator=torch.Generator().manual_seed(11))
        loss, mlm, rtd, replaced = reference_loss(m, b, 11, weight)
        again = m(**b, generator=torch.Generator().manual_seed(11))
        other = m(**b, generator=torch.Generator().manual_seed(12))
    assert replaced.sum() > 0
    torch.testing.assert_close(out["mlm_loss"], mlm, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["rtd_loss"], rtd, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss"], loss, rtol=1e-5, atol=1e-5)
    assert out["replaced_fraction"] == replaced.float().mean()
    assert torch.equal(again["loss"], out["loss"])  # the same generator seed, the same draw
    assert not torch.equal(other["rtd_loss"], out["rtd_loss"])  # another draw, other replacements


def test_rtd_loss_sends_no_gradient_into_the_generator():
    m, b = model(), batch()
    m(**b)["rtd_loss"].backward()
    generator = {n: p.grad for n, p in m.generator.named_parameters()}
    assert all(g is None for g in generator.values()), [n for n, g in generator.items() if g is not None]
    assert m.embeddings.word.weight.grad.abs().sum() > 0  # shared: the discriminator trains the embeddings
    assert all(p.grad.abs().sum() > 0 for p in m.discriminator.parameters())
    m.zero_grad(set_to_none=True)
    m(**b)["mlm_loss"].backward()
    assert all(p.grad is None for p in m.discriminator.parameters())
    assert m.embeddings.word.weight.grad.abs().sum() > 0 and m.generator.bias.grad.abs().sum() > 0


def test_embeddings_are_one_parameter_shared_by_both_networks():
    m, b = model(), batch()
    vocab_sized = [n for n, p in m.named_parameters() if p.shape[0] == 90 and p.dim() == 2]
    assert vocab_sized == ["embeddings.word.weight"]
    assert not any(n.startswith(("generator.", "discriminator.")) and "embed" in n for n in m.state_dict())
    with torch.no_grad():
        before_gen, before_rtd = m(**b, generator=torch.Generator().manual_seed(0)), m(**{**b, "mlm_labels": None,
                                                                                            "mlm_positions": None})  # fmt: skip
        noise = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))  # not a constant: LayerNorm removes it
        m.embeddings.word.weight[b["mlm_labels"][0]] += noise[0]  # a token the generator predicts and ...
        m.embeddings.word.weight[b["input_ids"][0]] += noise[1]  # ... one the discriminator reads
        after_gen, after_rtd = m(**b, generator=torch.Generator().manual_seed(0)), m(**{**b, "mlm_labels": None,
                                                                                          "mlm_positions": None})  # fmt: skip
    assert not torch.allclose(before_gen["mlm_loss"], after_gen["mlm_loss"])
    assert not torch.allclose(before_rtd["rtd_logits"], after_rtd["rtd_logits"])


def test_discriminator_exports_as_a_bert_encoder(tmp_path):
    m, b = model(), batch()
    bert = m.discriminator_as_bert().eval()
    assert isinstance(bert, BertForPreTraining)
    inputs = {k: b[k] for k in ("input_ids", "token_type_ids", "cu_seqlens")}
    with torch.no_grad():
        ours = m(**inputs)
        theirs = bert(**inputs)
        loaded = BertForPreTraining.from_pretrained(bert.save_pretrained(tmp_path)).eval()(**inputs)
    torch.testing.assert_close(theirs["cls_hidden"], ours["cls_hidden"])
    torch.testing.assert_close(loaded["cls_hidden"], ours["cls_hidden"])
    with torch.no_grad():
        m.discriminator.layers[0].attn.qkv.weight.add_(0.1)  # a copy: later training does not reach the export
    assert torch.equal(bert(**inputs)["cls_hidden"], theirs["cls_hidden"])


def test_trainer_steps_learn_to_detect_replacements(tmp_path):
    """30 steps on a tiny corpus whose vocabulary holds ~1,150 marker tokens the corpus never uses
    (the full write_vocab): the young generator samples them, and the discriminator, over every
    token, must beat calling every token original (the all-original baseline) on fresh draws."""
    tok = load_wordpiece(write_vocab(tmp_path / "vocab.txt"))
    corpus = write_corpus(tmp_path / "c.txt", docs=6, sentences=8)
    ds = BertExamples.build(corpus, tok, max_len=32, heldout=0, cache_dir=tmp_path, progress=False)
    torch.manual_seed(0)
    m = ElectraForPreTraining(ElectraConfig(**{**SMALL, "vocab_size": tok.get_vocab_size()}))
    config = TrainConfig(out_dir=str(tmp_path / "run"), steps=30, batch_size=8, lr=3e-3, warmup_steps=4, clip_grad=1.0,
                         schedule="linear", log_every=15, ckpt_every=1000, device="cpu", weight_decay=0.0)  # fmt: skip
    history = Trainer(m, ds, config, collate_fn=collate_packed).fit()
    assert history[-1]["loss"] < 0.7 * history[0]["loss"] and history[-1]["mlm_loss"] < history[0]["mlm_loss"] - 0.5
    m.eval()
    with torch.no_grad():
        every = collate_packed([ds[i] for i in range(len(ds))])
        outs = [m(**every, generator=torch.Generator().manual_seed(s)) for s in range(5)]
    accuracy = sum(o["rtd_accuracy"] for o in outs) / len(outs)
    baseline = 1 - sum(o["replaced_fraction"] for o in outs) / len(outs)
    assert accuracy > baseline + 0.01, (accuracy, baseline)


@pytest.mark.parametrize(("fields", "match"), [
    (dict(generator_size=0.0), r"generator_size: expected a fraction in \(0, 1\], got 0.0"),
    (dict(generator_size=1.5), r"generator_size: expected a fraction in \(0, 1\], got 1.5"),
    (dict(hidden_size=128, generator_size=1 / 3), r"generator_size: .* gives a generator of width 43, which does not"),
    (dict(rtd_weight=-1.0), r"rtd_weight: expected a finite number >= 0.0"),
    (dict(generator_layers=0), r"generator_layers: expected an int >= 1, got 0"),
    (dict(hidden_size=60), r"num_heads"),
])  # fmt: skip
def test_bad_config_names_the_field(fields, match):
    with pytest.raises(ValueError, match=match):
        ElectraConfig(**{**SMALL, **fields})


def test_bad_input_names_the_argument():
    m, b = model(), batch()
    with pytest.raises(TypeError, match="config: expected an ElectraConfig"):
        ElectraForPreTraining(SMALL)
    with pytest.raises(ValueError, match=r"input_ids: expected packed \[total\] ids with cu_seqlens.*shape \(2, 5\)"):
        m(torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="without cu_seqlens"):
        m(b["input_ids"])
    with pytest.raises(ValueError, match="mlm_positions, mlm_labels: give both"):
        m(b["input_ids"], cu_seqlens=b["cu_seqlens"], mlm_positions=b["mlm_positions"])
    with pytest.raises(ValueError, match=r"mlm_positions, mlm_labels: expected two \[M\] tensors, got shapes \(6,\) and"):
        m(**{**b, "mlm_labels": b["mlm_labels"][:5]})
