"""word2vec.c's CPU loop (the C++ Hogwild trainer, Word2Vec(device="cpu")'s default): on one
thread it equals the batch path's reference update walked one example at a time over the
examples Word2VecBatches(workers=1) makes, for every build of the SGD step this CPU runs; it is
deterministic with one worker; it learns as well as gensim trained in the same test with the same
parameters (gensim's own sanity checks on the Lee corpus); it trains the model's tensors in
place; Ctrl-C stops it cleanly."""

import os
import signal
import threading
import time

import pytest
import torch

from fastpretrain import _C
from fastpretrain.data import Corpus, Word2VecBatches
from fastpretrain.models.word2vec import Word2Vec
from fastpretrain.models.word2vec_hogwild import isas, train_hogwild
from fastpretrain.ops import hs_update_reference, ns_update_reference

gensim_utils = pytest.importorskip("gensim.test.utils", reason="the learning checks use text from gensim's wheel")
LEE = gensim_utils.datapath("lee_background.cor")


@pytest.fixture(scope="module")
def lee(tmp_path_factory):
    return Corpus.build(LEE, min_count=5, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="module")
def small():
    """The Lee corpus's first 480 words in lines of 40: a vocabulary of ~25 words (min_count 3),
    so rows repeat within a window and negatives often hit the center."""
    words = open(LEE).read().split()[:480]
    return Corpus.build([words[i : i + 40] for i in range(0, len(words), 40)], min_count=3, progress=False)


@pytest.fixture
def one_torch_thread():
    """The batch path's CPU setting (tiny ops, no thread handoffs), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_walk(model, corpus):
    """word2vec.c's loop in Python: the examples (and negatives) of Word2VecBatches(workers=1,
    batch_size=1) in order, each applied by the batch path's reference update at
    max(alpha * (1 - progress), min_alpha), progress counting the words read up to its sentence.
    Returns the mean loss."""
    c = model.config
    batches = Word2VecBatches(corpus, sg=c.sg, window=c.window, sample=c.sample, negative=c.negative,
                              ns_exponent=c.ns_exponent, batch_size=1, epochs=c.epochs, workers=1, seed=c.seed,
                              max_sentence_length=c.max_sentence_length, shrink_windows=c.shrink_windows)  # fmt: skip
    h = model.vocab.huffman() if c.hs else None
    huffman = [torch.from_numpy(x) for x in (h.codes, h.points, h.lengths)] if c.hs else None
    losses = []
    for b in batches:
        alpha = max(c.alpha * (1 - b.progress), c.min_alpha)
        inputs = torch.from_numpy(b.contexts).reshape(1, -1)
        targets = torch.from_numpy(b.centers)
        if c.hs:
            loss = hs_update_reference(model.syn0, model.syn1, inputs, None, targets, *huffman, alpha, c.cbow_mean)
        else:
            negatives = torch.from_numpy(b.negatives)
            loss = ns_update_reference(model.syn0, model.syn1neg, inputs, None, targets, negatives, alpha, c.cbow_mean)
        losses.append(loss.item())
    assert len(losses) > 250
    return sum(losses) / len(losses)


MODES = {"sg-ns": dict(sg=1, negative=4), "sg-hs": dict(sg=1, hs=1, negative=0),
         "cbow-ns": dict(sg=0, negative=4), "cbow-hs": dict(sg=0, hs=1, negative=0),
         "cbow-sum-ns": dict(sg=0, negative=3, cbow_mean=0), "sg-ns-no-shrink": dict(sg=1, negative=2, shrink_windows=0)}  # fmt: skip


@pytest.mark.parametrize("isa", isas())
@pytest.mark.parametrize("mode", MODES)
def test_one_thread_is_the_reference_walked_example_by_example(small, mode, isa, one_torch_thread):
    config = dict(vector_size=37, window=3, sample=1e-2, epochs=2, workers=1, seed=5, alpha=0.1, **MODES[mode])
    ours, reference = Word2Vec(device="cpu", **config), Word2Vec(device="cpu", engine="batches", **config)
    for model in (ours, reference):
        model.build_vocab(small)
    before = ours.syn0.clone()
    train_hogwild(ours, small, progress=False, isa=isa, loss_every=1)
    loss = reference_walk(reference, small)
    assert not torch.equal(ours.syn0, before)
    for name in ("syn0", "syn1neg", "syn1"):
        if getattr(ours, name) is not None:
            torch.testing.assert_close(getattr(ours, name), getattr(reference, name), rtol=1e-6, atol=1e-7)  # a few float32 ulps (measured <= 1.5e-8)
    assert ours.final_loss == pytest.approx(loss, rel=1e-5) and ours.trained_fraction == 1.0


def test_one_worker_is_deterministic(lee):
    runs = [Word2Vec(sg=sg, epochs=2, workers=1, seed=seed, device="cpu").fit(lee, progress=False)
            for sg, seed in ((1, 3), (1, 3), (1, 4), (0, 3), (0, 3))]  # fmt: skip
    assert torch.equal(runs[0].syn0, runs[1].syn0) and torch.equal(runs[0].syn1neg, runs[1].syn1neg)
    assert torch.equal(runs[3].syn0, runs[4].syn0) and not torch.equal(runs[0].syn0, runs[2].syn0)


def test_trains_the_models_own_tensors_in_place(lee):
    model = Word2Vec(sg=1, hs=1, negative=3, epochs=1, workers=2, device="cpu")
    model.build_vocab(lee)
    tables = [(t, t.data_ptr(), t.clone()) for t in (model.syn0, model.syn1neg, model.syn1)]
    train_hogwild(model, lee, progress=False)
    for t, (same, ptr, before) in zip((model.syn0, model.syn1neg, model.syn1), tables):
        assert t is same and t.data_ptr() == ptr and not torch.equal(t, before)


# gensim 4.4's test_word2vec.py: its four mode tests (plus skip-gram without subsampling) on its
# Lee corpus (simple_preprocess'd lines) and model_sanity's checks: "bombings" ranks in the top 50
# from "attacks", and both are among the 51 nearest to the vector of "attacks". gensim's defaults
# are stated where ours differ (alpha, min_alpha, max_sentence_length).
GENSIM_SUITE = {
    "sg-hs": dict(sg=1, window=4, hs=1, negative=0, epochs=10),
    "sg-ns": dict(sg=1, window=4, hs=0, negative=15, epochs=10),
    "sg-ns-sample0": dict(sg=1, window=4, hs=0, negative=15, epochs=10, sample=0),
    "cbow-hs": dict(sg=0, cbow_mean=1, alpha=0.1, window=2, hs=1, negative=0, epochs=60),
    "cbow-ns-sample0": dict(sg=0, cbow_mean=1, alpha=0.05, window=5, hs=0, negative=15, epochs=10, sample=0),
}


def sanity(kv, vocab_size):
    """model_sanity's figures: the rank of "bombings" from "attacks", and whether both words are
    among the 51 nearest to the vector of "attacks"."""
    ranked = [w for w, _ in kv.most_similar(positive=["attacks"], topn=vocab_size)]
    near = [w for w, _ in kv.most_similar(positive=[kv["attacks"]], topn=51)]
    return ranked.index("bombings"), {"attacks", "bombings"} <= set(near)


@pytest.mark.slow
@pytest.mark.parametrize("mode", GENSIM_SUITE)
def test_learns_as_gensim_on_the_lee_corpus(mode):
    """Two workers, as gensim's suite. Measured (seeds 1-3), rank ours / gensim: sg-hs 5/6 4/4
    3/4, sg-ns 25/15 17/15 20/13, sg-ns-sample0 21/18 11/15 9/13, cbow-hs 0/2 0/7 0/0,
    cbow-ns-sample0 18/7 5/31 10/2 (and 34/5 in one CI run: two racing threads on both sides, so
    the band around gensim's rank is wide); the batch path's CBOW-NS without subsampling ranked it in
    the hundreds, which both checks fail."""
    from gensim.models import Word2Vec as GensimWord2Vec

    sentences = gensim_utils.lee_corpus_list
    config = dict(min_count=5, workers=2, alpha=0.025, min_alpha=0.0001, seed=1) | GENSIM_SUITE[mode]
    theirs = GensimWord2Vec(sentences, **config)
    ours = Word2Vec(device="cpu", max_sentence_length=10000, **config)
    ours.fit(Corpus.build(sentences, min_count=5, progress=False), progress=False)
    assert ours.engine == "hogwild" and len(ours.vocab) == len(theirs.wv)
    rank_theirs, near_theirs = sanity(theirs.wv, len(theirs.wv))
    rank_ours, near_ours = sanity(ours.wv, len(ours.vocab))
    assert rank_ours < 50 and near_ours, (mode, rank_ours, rank_theirs)
    assert rank_ours <= max(2 * rank_theirs, rank_theirs + 40), (mode, rank_ours, rank_theirs)


def test_ctrl_c_stops_the_threads_and_keeps_what_was_trained(lee):
    model = Word2Vec(sg=1, epochs=500, workers=2, device="cpu")
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(lee, progress=False)
    finally:
        timer.cancel()
    assert 0 < model.trained_fraction < 0.5
    weights = model.syn0.clone()
    time.sleep(0.3)
    assert torch.equal(model.syn0, weights), "a thread is still training after the interrupt"


def test_engine_choice_and_bad_input(lee):
    assert Word2Vec(device="cpu").engine == "hogwild"
    assert Word2Vec(device="cpu", sg=1, shared_negatives=1).engine == "batches"
    with pytest.raises(ValueError, match="engine: expected 'auto', 'hogwild' or 'batches', got 'fast'"):
        Word2Vec(device="cpu", engine="fast")
    with pytest.raises(ValueError, match="engine: 'hogwild' trains on the CPU without shared_negatives"):
        Word2Vec(device="cpu", engine="hogwild", sg=1, shared_negatives=1)
    model = Word2Vec(device="cpu", vector_size=8)
    model.build_vocab(lee)
    with pytest.raises(ValueError, match="isa: expected 'auto' or one this CPU runs \\(baseline"):
        train_hogwild(model, lee, progress=False, isa="sse9")
    keep, noise = lee.vocab.keep_probabilities(1e-3), lee.vocab.noise_distribution()
    for syn0, match in ((model.syn0.numpy()[:, :4], "syn0: expected a writable C-contiguous float32"),
                        (model.syn0.double().numpy(), "syn0: expected a writable C-contiguous float32")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            _C.Trainer(lee.ids, keep, noise, syn0, model.syn1neg.numpy(), None, None, None, None, skipgram=True,
                       cbow_mean=True, window=5, negative=5, epochs=1, workers=1, seed=1, alpha=0.025,
                       min_alpha=1e-4, max_sentence_length=1000, shrink_windows=True, loss_every=1, isa="auto")  # fmt: skip
