"""NNLM: the model is Bengio's formula (checked against it written out by hand), trains with the
sampled softmax and is scored with the full one, learns a corpus it can learn, and its data
(tokens, vocabulary, held-out documents, blocks) is what it says."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastpretrain.data.word_lm import EOS, UNK, TokenBlocks, WordCorpus, tokenize
from fastpretrain.models import create_model
from fastpretrain.models.nnlm import NNLM, NNLMConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def bengio(model, tokens):
    """y = b + W x + U tanh(d + H x) per window, by loops; the mean cross-entropy of the targets."""
    c = model.config
    w_out, b_out = model.output.weight, model.output.bias
    h_dim = c.hidden_dim
    losses = []
    for row in tokens:
        for t in range(c.context, len(row)):
            x = torch.cat([model.embed.weight[row[t - c.context + k]] for k in range(c.context)])
            y = b_out + w_out[:, :h_dim] @ torch.tanh(model.hidden.bias + model.hidden.weight @ x)
            if c.direct:
                y = y + w_out[:, h_dim:] @ x
            losses.append(F.cross_entropy(y[None], row[t : t + 1]))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("direct", [True, False])
def test_eval_loss_is_bengios_formula(direct):
    torch.manual_seed(0)
    model = NNLM(NNLMConfig(vocab_size=40, context=3, embed_dim=5, hidden_dim=7, direct=direct, num_sampled=8)).eval()
    tokens = torch.randint(0, 40, (2, 9))
    out = model(tokens)
    assert out["items"] == 12
    torch.testing.assert_close(out["loss"], bengio(model, tokens), atol=1e-5, rtol=1e-5)


def test_training_uses_the_sampled_softmax_and_reaches_every_parameter():
    torch.manual_seed(0)
    model = create_model("nnlm_tiny")
    tokens = torch.randint(0, 2000, (4, 20))
    loss = model(tokens)["loss"]
    full = model.eval()(tokens)["loss"]
    assert abs(loss.item() - full.item()) > 1e-3  # 64 candidates: not the full softmax
    model.train()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert (model.output.weight.grad.abs().sum(1) > 0).sum() < 2000  # only the target and candidate rows


@pytest.mark.parametrize("num_sampled", [0, 16])
def test_it_learns_a_learnable_stream(num_sampled):
    """A repeating 12-word sequence is predictable from 3 words: held-out (full softmax)
    perplexity falls near 1, with the sampled softmax as with the full one."""
    torch.manual_seed(0)
    ids = np.tile(np.random.default_rng(0).permutation(60)[:12], 100).astype(np.int32)
    blocks = TokenBlocks(ids, length=16, overlap=3)
    model = NNLM(NNLMConfig(vocab_size=60, context=3, embed_dim=16, hidden_dim=32, num_sampled=num_sampled))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = torch.stack([blocks[i] for i in range(len(blocks))])
    for _ in range(150):
        opt.zero_grad()
        model(batch)["loss"].backward()
        opt.step()
    with torch.no_grad():
        ppl = model.eval()(batch)["loss"].exp().item()
    assert ppl < 1.2, ppl


def test_bad_config_and_tokens():
    with pytest.raises(ValueError, match="sampler: expected one of"):
        NNLMConfig(sampler="zipf")
    with pytest.raises(ValueError, match="num_sampled: 100 distinct candidates from a vocabulary of 50"):
        NNLMConfig(vocab_size=50, num_sampled=100)
    with pytest.raises(ValueError, match="context"):
        NNLMConfig(context=0)
    with pytest.raises(ValueError, match=r"tokens: expected \[B, L \+ 3\]"):
        create_model("nnlm_tiny")(torch.zeros(2, 3, dtype=torch.long))


def test_tokens_blocks_and_corpus(tmp_path):
    assert tokenize("Don't stop, Mr. Smith!") == ["don't", "stop", ",", "mr", ".", "smith", "!"]
    assert tokenize("Don't", lowercase=False) == ["Don't"]
    blocks = TokenBlocks(np.arange(11), length=3, overlap=2)
    assert len(blocks) == 3 and blocks[2].tolist() == [6, 7, 8, 9, 10] and blocks[0].dtype == torch.int64
    with pytest.raises(IndexError):
        blocks[3]
    docs = ["The cat sat. The dog ran.\n\nA cat ran! The end.\n", "\nThe cat.\nOdd words here.\n"]
    (tmp_path / "c.txt").write_text("\n".join(docs))
    corpus = WordCorpus.build(tmp_path / "c.txt", vocab_size=6, heldout=0.34, seed=1, sentences=True)
    v = corpus.vocab
    assert len(v) == 6 and UNK in v and EOS in v and list(v.counts) == sorted(v.counts, reverse=True)
    words = [v.words[i] for i in np.concatenate([corpus.train, corpus.heldout])]
    assert words.count(EOS) == 6 and len(corpus.heldout) > 0  # 6 sentences in 3 documents, one held out
    assert len(corpus.heldout_documents) == 1 and corpus.heldout[-1] == v[EOS]
    held = docs[0].split("\n\n") + [docs[1].strip()]  # the three documents as written
    assert [v.words[i] for i in corpus.heldout[:2]] == [w if w in v else UNK for w in
                                                       tokenize(held[corpus.heldout_documents[0]])[:2]]  # fmt: skip
    assert v.counts[v[EOS]] == sum(w == EOS for w in (v.words[i] for i in corpus.train))
    with pytest.raises(ValueError, match="heldout"):
        WordCorpus.build(tmp_path / "c.txt", heldout=1.0)


def test_docs9m_heldout_split_is_by_document(shared_data):
    corpus = WordCorpus.build(shared_data / "docs9m.txt.xz", vocab_size=5000, heldout=0.1, max_documents=60)
    assert len(corpus.train) > 10 * len(corpus.heldout) > 0
    unk = corpus.vocab[UNK]
    assert (corpus.train == unk).mean() < 0.1


def test_resumed_training_draws_the_same_candidates(tmp_path):
    """The models' samplers draw from torch's RNG, which the Trainer checkpoints: 4 steps straight
    equal 2 steps, a new Trainer resuming, then 2 more, bit for bit (a sampler with its own seeded
    generator would start its draws over and differ)."""
    from fastpretrain.train import TrainConfig, Trainer

    ids = np.random.default_rng(0).integers(0, 2000, 3000).astype(np.int32)
    blocks = TokenBlocks(ids, length=16, overlap=3)

    def run(out, steps, resume=False):
        torch.manual_seed(0)
        model = create_model("nnlm_tiny")
        config = TrainConfig(out_dir=str(out), steps=steps, batch_size=4, ckpt_every=2, log_every=1, device="cpu",
                             resume=resume, schedule="constant")  # fmt: skip
        Trainer(model, blocks, config).fit()
        return model.state_dict()

    straight = run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)
    resumed = run(tmp_path / "b", 4, resume=True)
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name
