"""Bad input gets a clear Python exception naming the argument, never a crash or a hang."""

import numpy as np
import pytest

from fastpretrain import _C
from fastpretrain.data import Corpus, Vocab, Word2VecBatches


@pytest.fixture
def corpus():
    return Corpus.build([["a", "b", "a", "c"], ["b", "a"]] * 50, min_count=1)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="source: .*nope.txt.* does not exist"):
        Corpus.build(tmp_path / "nope.txt")


@pytest.mark.parametrize("text", ["", "  \n\t\n  "])
def test_empty_corpus(tmp_path, text):
    (tmp_path / "empty.txt").write_text(text)
    with pytest.raises(ValueError, match="empty"):
        Corpus.build(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="empty"):
        Corpus.build([[], []])


def test_empty_directory(tmp_path):
    with pytest.raises(ValueError, match="holds no files"):
        Corpus.build(tmp_path)


def test_every_word_under_min_count(tmp_path):
    (tmp_path / "t.txt").write_text("a b c a")
    with pytest.raises(ValueError, match="min_count=5: .* most frequent occurs 2 times"):
        Corpus.build(tmp_path / "t.txt", min_count=5)


@pytest.mark.parametrize("bad", [b"ok \xff\xfe bad", b"ok caf\xc3", b"\xed\xa0\x80", b"\xc0\xaf"])
def test_undecodable_bytes(tmp_path, bad):
    (tmp_path / "bad.txt").write_bytes(bad)
    with pytest.raises(ValueError, match=r"source: .*bad.txt.*not valid UTF-8: bad byte at offset \d+"):
        Corpus.build(tmp_path / "bad.txt", min_count=1)
    assert not list((tmp_path / "bad.txt").parent.glob(".build-*"))


def test_undecodable_offset_is_exact(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"hello w\xffrld")
    with pytest.raises(ValueError, match="offset 7"):
        Corpus.build(tmp_path / "bad.txt", min_count=1)


@pytest.mark.parametrize(
    "sentences,error,match",
    [(["a string, not tokens"], TypeError, "split it into tokens"), ([["a", 3]], TypeError, "tokens must be str"),
     ([["a b"]], ValueError, "contains whitespace"), ([["a", ""]], ValueError, "empty token"), (42, TypeError, "source")],
)  # fmt: skip
def test_bad_iterables(sentences, error, match):
    with pytest.raises(error, match=match):
        Corpus.build(sentences, min_count=1)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"window": 0}, "window: expected an int >= 1"), ({"negative": -1}, "negative: expected an int >= 0"),
     ({"sample": -1e-3}, "sample: expected a threshold >= 0"), ({"sample": float("nan")}, "sample"),
     ({"batch_size": 0}, "batch_size"), ({"epochs": 0}, "epochs"), ({"workers": 0}, "workers"),
     ({"sg": 2}, "sg: expected 1"), ({"window": 2.5}, "window")],
)  # fmt: skip
def test_bad_batch_options(corpus, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Word2VecBatches(corpus, **kwargs)


def test_bad_corpus_argument():
    with pytest.raises(TypeError, match="corpus: expected a fastpretrain.data.Corpus"):
        Word2VecBatches([["a", "b"]])


def test_bad_build_options(tmp_path):
    with pytest.raises(ValueError, match="min_count: expected an int >= 1"):
        Corpus.build([["a"]], min_count=0)
    with pytest.raises(ValueError, match="max_vocab_size"):
        Corpus.build([["a"]], max_vocab_size=0)
    with pytest.raises(ValueError, match="vocab: no word of the source"):
        Corpus.build([["a"]], vocab=Vocab(["z"], np.array([1])))


def test_corrupt_ids_are_rejected_before_threads_start(corpus):
    ids = np.array([0, 1, 7, -1], dtype=np.int32)
    with pytest.raises(IndexError, match=r"ids\[2\] = 7 is outside the vocabulary of 3 words"):
        _C.Producer(ids, np.ones(3), np.ones(3), skipgram=True, window=2, negative=1, batch_size=4, epochs=1,
                    workers=2, seed=0, max_sentence_length=1000, queue_depth=2)  # fmt: skip


def test_bad_vocab_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="path: vocabulary file"):
        Vocab.load(tmp_path / "missing.txt")
    (tmp_path / "v.txt").write_text("the 10\nbroken line here\n")
    with pytest.raises(ValueError, match="line 2: expected 'word count'"):
        Vocab.load(tmp_path / "v.txt")
    with pytest.raises(ValueError, match="counts: expected shape"):
        Vocab(["a", "b"], np.array([1]))
    with pytest.raises(ValueError, match="duplicates"):
        Vocab(["a", "a"], np.array([1, 1]))


def test_not_a_corpus_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a corpus directory"):
        Corpus.load(tmp_path)


def test_abandoned_iteration_stops_workers(corpus):
    """Leaving a long run after one batch joins the worker threads instead of hanging."""
    batches = Word2VecBatches(corpus, epochs=100_000, workers=2, batch_size=8)
    for _ in range(3):
        it = iter(batches)
        first = next(it)
        it.close()
        assert len(first) == 8
