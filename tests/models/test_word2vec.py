"""word2vec learns, the gensim-style way: on text inside gensim's wheel, trained vectors put
related words together and correlate with human similarity judgements; untrained ones do not. The
batch path, train(), does what fit() does on the batches fit() builds, from any iterable of their fields."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fastpretrain.data import Corpus, Word2VecBatches, resolve_corpus
from fastpretrain.eval import evaluate_word_pairs
from fastpretrain.models.word2vec import Word2Vec

gensim_utils = pytest.importorskip("gensim.test.utils", reason="the learning checks use text from gensim's wheel")


@pytest.fixture(scope="module")
def lee(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return Corpus.build(gensim_utils.datapath("lee_background.cor"), min_count=5, cache_dir=cache, progress=False)


@pytest.fixture(scope="module")
def cbow(lee):
    """gensim's defaults (CBOW, d=100, negative 5), 10 epochs on the Lee corpus (~60k words)."""
    return Word2Vec(epochs=10, workers=2, batch_size=1024, seed=0, device="cpu").fit(lee, progress=False)


def test_attacks_neighbours_include_bombings(cbow):
    neighbours = [w for w, _ in cbow.wv.most_similar(positive=["attacks"], topn=50)]
    assert "bombings" in neighbours


@pytest.mark.parametrize("config", [dict(sg=1, negative=5), dict(sg=0, hs=1, negative=0), dict(sg=1, hs=1, negative=0)])
def test_other_modes_learn_too(lee, config):
    model = Word2Vec(epochs=10, workers=2, batch_size=1024, seed=0, device="cpu", **config).fit(lee, progress=False)
    neighbours = [w for w, _ in model.wv.most_similar(positive=["attacks"], topn=50)]
    assert "bombings" in neighbours, config


def test_wordsim_correlation_beats_untrained(tmp_path_factory):
    """On the default corpus (0.47M words; Lee's 60k words miss 87% of the WordSim pairs)."""
    cache = tmp_path_factory.mktemp("cache")
    corpus = Corpus.build(resolve_corpus("wiki206", cache), min_count=5, cache_dir=cache, progress=False)
    path = gensim_utils.datapath("wordsim353.tsv")
    model = Word2Vec(epochs=5, workers=2, batch_size=1024, seed=0, device="cpu").fit(corpus, progress=False)
    trained = evaluate_word_pairs(model.wv, path)
    untrained = Word2Vec(seed=0, device="cpu")
    untrained.build_vocab(corpus)
    baseline = evaluate_word_pairs(untrained.wv, path)["spearman"]
    assert trained["pairs"] > 200 and trained["spearman"] > 0.15 and abs(baseline) < 0.1, (trained, baseline)


def test_learning_rate_decays_linearly_to_min_alpha(lee, monkeypatch):
    """alpha(progress) = max(alpha * (1 - progress), min_alpha), word2vec.c's schedule."""
    seen = []
    model = Word2Vec(epochs=2, workers=1, batch_size=4096, seed=0, device="cpu", engine="batches", alpha=0.05,
                     min_alpha=0.01)
    step = model.step
    monkeypatch.setattr(model, "step", lambda *a: (seen.append(a[-1]), step(*a))[1])
    model.fit(lee, progress=False)
    assert seen[0] == pytest.approx(0.05, rel=0.05) and seen[-1] == 0.01
    assert all(a >= b for a, b in zip(seen, seen[1:]))


def test_init_follows_word2vec_c(lee):
    model = Word2Vec(vector_size=50, seed=3, device="cpu")
    model.build_vocab(lee)
    assert model.syn0.abs().max() <= 0.5 / 50 and model.syn0.std() > 0.2 / 50
    assert torch.count_nonzero(model.syn1neg) == 0


def test_save_load_round_trip(cbow, tmp_path):
    cbow.save(tmp_path / "model.safetensors")
    loaded = Word2Vec.load(tmp_path / "model.safetensors", device="cpu")
    assert loaded.config == cbow.config and loaded.vocab.words == cbow.vocab.words
    torch.testing.assert_close(loaded.syn0, cbow.syn0, rtol=0, atol=0)
    torch.testing.assert_close(loaded.syn1neg, cbow.syn1neg, rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.vocab.counts, cbow.vocab.counts)
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize(
    "kwargs,match",
    [(dict(vector_size=0), "vector_size"), (dict(sg=2), "sg: expected 0 or 1"), (dict(negative=0), "negative: 0 needs hs=1"),
     (dict(alpha=-1.0), "alpha"), (dict(min_alpha=1.0, alpha=0.1), "min_alpha"), (dict(sample=-1e-3), "sample"),
     (dict(window=0), "window"), (dict(negative=-2), "negative")],
)  # fmt: skip
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Word2Vec(**kwargs)


def test_wv_before_training_is_a_clear_error():
    with pytest.raises(RuntimeError, match="call fit"):
        Word2Vec().wv


def test_hogbatch_shared_negatives_learn(lee):
    model = Word2Vec(sg=1, shared_negatives=1, epochs=10, workers=2, batch_size=256, seed=0, device="cpu")
    neighbours = [w for w, _ in model.fit(lee, progress=False).wv.most_similar(positive=["attacks"], topn=50)]
    assert "bombings" in neighbours


def test_shared_negatives_needs_skipgram_ns():
    with pytest.raises(ValueError, match="shared_negatives: 1 needs sg=1"):
        Word2Vec(sg=0, shared_negatives=1)


def test_cpu_training_runs_torch_on_one_thread_and_restores_the_setting(lee, monkeypatch):
    """One intra-op thread on CPU (measured 3-10x faster than torch's default on 2 cores, see the
    module docstring); the caller's setting is back afterwards, also after an error."""
    seen = []
    model = Word2Vec(epochs=1, workers=1, seed=0, device="cpu", engine="batches")
    step = model.step
    monkeypatch.setattr(model, "step", lambda *a: (seen.append(torch.get_num_threads()), step(*a))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model.fit(lee, progress=False)
        assert set(seen) == {1} and torch.get_num_threads() == 2
        monkeypatch.setattr(model, "step", lambda *a: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            model.fit(lee, progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_interrupted_fit_keeps_what_was_trained(lee, monkeypatch):
    model = Word2Vec(epochs=2, workers=1, seed=0, device="cpu", engine="batches")
    step, calls = model.step, []

    def interrupt_late(*a):
        calls.append(1)
        if len(calls) == 30:
            raise KeyboardInterrupt
        return step(*a)

    monkeypatch.setattr(model, "step", interrupt_late)
    with pytest.raises(KeyboardInterrupt):
        model.fit(lee, progress=False)
    assert 0 < model.trained_fraction < 0.5
    untrained = Word2Vec(epochs=2, seed=0, device="cpu")
    untrained.build_vocab(lee)
    assert not torch.equal(model.syn0, untrained.syn0) and len(model.wv) == len(lee.vocab)


@pytest.mark.parametrize("options", [dict(min_count=0), dict(max_final_vocab=50), dict(sorted_vocab=0, min_count=2),
                                     dict(max_vocab_size=40, min_count=1)])  # fmt: skip
def test_gensim_vocabulary_options_reach_the_corpus(options):
    sentences = [[f"w{(i * 7 + j) % 97}" for j in range(i % 13)] for i in range(300)]
    model = Word2Vec(vector_size=4, device="cpu", **options)
    model.build_vocab(sentences)
    assert model.vocab.words == Corpus.build(sentences, **{"min_count": 5} | options).vocab.words


def test_progress_is_logged_without_a_terminal(lee, capsys):
    """No TTY (CI, nohup, a pipe): log lines on stderr instead of a silent tqdm."""
    Word2Vec(epochs=1, workers=1, seed=0, device="cpu").fit(lee)
    err = capsys.readouterr().err
    assert re.search(r"^word2vec: [\d.]+k/[\d.]+k word \(100%\), [\d.]+[kM]?word/s, loss [\d.]+, lr ", err, re.M), err


def lee_batches(lee, **kw):
    """The batches fit() makes for Word2Vec(epochs=1, workers=1, seed=0) on CPU (negatives are drawn by the model)."""
    defaults = {"sg": 0, "window": 5, "negative": 0, "batch_size": 1024, "workers": 1, "seed": 0}
    return Word2VecBatches(lee, **defaults | kw)


def test_train_on_batches_is_what_fit_does(lee):
    """The batch path: Word2VecBatches, or any iterable yielding their fields, give fit()'s weights."""
    fitted = Word2Vec(epochs=1, workers=1, seed=0, device="cpu", engine="batches").fit(lee, progress=False)
    batches = lee_batches(lee)
    for source in (batches, (SimpleNamespace(centers=b.centers, contexts=b.contexts, lengths=b.lengths,
                                             progress=b.progress) for b in batches)):  # fmt: skip
        model = Word2Vec(epochs=1, workers=1, seed=0, device="cpu")
        model.build_vocab(lee)
        model.train(source, batches.total_words, progress=False)
        assert torch.equal(model.syn0, fitted.syn0) and torch.equal(model.syn1neg, fitted.syn1neg)
        assert model.trained_fraction == 1.0 and model.final_loss == fitted.final_loss


def test_train_refuses_what_it_cannot_use(lee):
    with pytest.raises(RuntimeError, match="call build_vocab"):
        Word2Vec(device="cpu").train(lee_batches(lee), lee.n_words)
    model = Word2Vec(sg=1, device="cpu")
    model.build_vocab(lee)
    with pytest.raises(ValueError, match="total_words"):
        model.train(lee_batches(lee), 0)
    with pytest.raises(ValueError, match=r"contexts: expected \[N\] for skip-gram, got shape \(1024, 10\)"):
        model.train(lee_batches(lee), lee.n_words, progress=False)
