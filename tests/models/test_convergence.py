"""Convergence: each fused model trains the same through its Triton kernels (the interpreter on CPU) as
through the pure-torch references: a few dozen steps from the same weights on the same batches give
the same loss curve, step by step within a stated relative tolerance, and the loss goes down.

- BERT (tiny, one layer, packed batches from BertExamples, attention dropout off, hidden dropout on: both
  paths draw the same masks): the varlen attention and the fused MLM loss, trained with AdamW;
- MAE (tiny, 9 patches): the masking gather, the decoder's unshuffle and attention, with AdamW.
  Both measured within 3e-7 of the references (summation order only); bound 1e-4.
- word2vec, skip-gram with negative sampling and CBOW with hierarchical softmax: the fused sparse SGD
  updates. The kernels apply a batch's examples one after another (Hogwild across programs, as
  word2vec.c's threads), the references all from the weights before the batch, so where a batch repeats
  a row (a center's pairs, the Huffman root) the two part at second order in alpha: measured 3.5%
  (skip-gram) and 1.1% (CBOW) over 30 steps; bound 6%. The weights start random, not at word2vec.c's
  zero output layer, whose plateau would amplify that difference into a race to leave it.
"""

import functools

import numpy as np
import pytest
import torch
from bert_corpus import write_corpus, write_vocab

from fastpretrain.data import BertExamples, Corpus, Word2VecBatches, collate_packed, load_wordpiece
from fastpretrain.models import MAE, create_model
from fastpretrain.models.word2vec import Word2Vec
from fastpretrain.ops import use_kernels

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 24


def paths(kernel_path):
    """(device, [the references' context, the kernels' context])."""
    device, kernels = kernel_path
    return device, [functools.partial(use_kernels, False), kernels]


def adamw_curves(make_model, batches, loss_of, kernel_path, lr: float) -> list[list[float]]:
    """Loss per AdamW step of the same model trained on the references, then on the kernels."""
    device, contexts = paths(kernel_path)
    curves = []
    for context in contexts:
        torch.manual_seed(0)
        model = make_model().to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        losses = []
        for step in range(STEPS):
            with context():
                loss = loss_of(model, batches[step % len(batches)])
                optimizer.zero_grad()
                loss.backward()
            optimizer.step()
            losses.append(loss.item())
        curves.append(losses)
    return curves


def assert_same_curve(reference, kernels, rtol: float, drop: float) -> None:
    """Step by step within ``rtol``, and the last five steps' mean loss below ``drop`` x the first five's."""
    ref, got = np.array(reference), np.array(kernels)
    gap = np.abs(got - ref) / np.abs(ref)
    worst = int(gap.argmax())
    assert gap[worst] <= rtol, f"step {worst}: kernels {got[worst]:.6f}, reference {ref[worst]:.6f} ({gap[worst]:.2e})"
    assert ref[-5:].mean() < drop * ref[:5].mean(), f"the loss did not go down: {ref.round(3).tolist()}"


def test_bert(tmp_path, kernel_path):
    tokenizer = load_wordpiece(write_vocab(tmp_path / "vocab.txt", docs=12, sentences=10))
    ds = BertExamples.build(write_corpus(tmp_path / "corpus.txt", docs=12, sentences=10), tokenizer, max_len=16,
                            heldout=0, cache_dir=tmp_path / "cache", progress=False)  # fmt: skip
    device = kernel_path[0]
    batches = [collate_packed([ds[i] for i in range(j, j + 3)]) for j in range(0, 24, 3)]
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]
    make = functools.partial(create_model, "bert_tiny", vocab_size=tokenizer.get_vocab_size(), num_layers=1,
                             hidden_size=32, num_heads=2, intermediate_size=64, max_position_embeddings=16,
                             attention_dropout=0.0)  # fmt: skip
    reference, kernels = adamw_curves(make, batches, lambda model, batch: model(**batch)["loss"], kernel_path, lr=3e-3)
    assert_same_curve(reference, kernels, rtol=1e-4, drop=0.9)


def test_mae(kernel_path):
    device = kernel_path[0]
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(2, 1, 12, 12, generator=g), torch.rand(2, 9, generator=g)) for _ in range(4)]
    batches = [(imgs.to(device), noise.to(device)) for imgs, noise in batches]
    make = functools.partial(MAE, img_size=12, patch_size=4, in_chans=1, embed_dim=32, depth=1, num_heads=2,
                             decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)  # fmt: skip
    reference, kernels = adamw_curves(make, batches, lambda model, b: model(b[0], noise=b[1])["loss"], kernel_path,
                                      lr=3e-3)  # fmt: skip
    assert_same_curve(reference, kernels, rtol=1e-4, drop=0.8)


@pytest.mark.parametrize("mode", [dict(sg=1, hs=0, negative=5), dict(sg=0, hs=1, negative=0)], ids=["sg-ns", "cbow-hs"])
def test_word2vec(kernel_path, mode):
    """SGD at a constant alpha on 30 batches of 16 pairs (skip-gram) or windows (CBOW) of a 39-word
    corpus read over and over, through Word2Vec.step (the batch path's update)."""
    device, contexts = paths(kernel_path)
    rng = np.random.default_rng(0)
    corpus = Corpus.build([[f"w{i}" for i in rng.permutation(40)[:10]] for _ in range(8)], min_count=1)
    batches = list(Word2VecBatches(corpus, sg=mode["sg"], window=2, sample=0, negative=0, batch_size=16, workers=1,
                                   seed=0, epochs=100))[:30]  # fmt: skip
    curves = []
    for context in contexts:
        model = Word2Vec(vector_size=16, window=2, min_count=1, seed=0, device=device, **mode)
        model.build_vocab(corpus)
        g = torch.Generator().manual_seed(1)
        for weights in (model.syn0, model.syn1neg, model.syn1):
            if weights is not None:
                weights.copy_(0.3 * torch.randn(weights.shape, generator=g))
        with context():
            curves.append([model.step(b.centers, b.contexts, b.lengths, 0.1).mean().item() for b in batches])
    assert_same_curve(*curves, rtol=0.06, drop=0.8)
