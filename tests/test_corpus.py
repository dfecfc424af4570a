"""Vocabulary building and corpus encoding: every source kind gives the same ids, the
vocabulary follows word2vec's rules, and encoded corpora are cached and reloaded."""

import bz2
import gzip
import lzma
import random
from collections import Counter

import numpy as np
import pytest

from fastpretrain.data import Corpus, Vocab

SENTENCES = [
    "the quick brown fox jumps over the lazy dog".split(),
    "the dog sleeps".split(),
    ["fox"],
    "a fox and a dog and the cat élan naïve".split(),
]


def expected_ids(sentences, vocab):
    """Python oracle: ids of in-vocabulary words, -1 after each non-empty line."""
    out = []
    for s in sentences:
        kept = [vocab[w] for w in s if w in vocab]
        out += kept + ([-1] if kept else [])
    return np.array(out, dtype=np.int32)


def test_vocab_sorted_by_count_then_word_and_filtered():
    corpus = Corpus.build(SENTENCES, min_count=2)
    counts = Counter(w for s in SENTENCES for w in s)
    want = sorted((w for w in counts if counts[w] >= 2), key=lambda w: (-counts[w], w))
    assert corpus.vocab.words == want
    assert corpus.vocab.counts.tolist() == [counts[w] for w in want]
    np.testing.assert_array_equal(corpus.ids, expected_ids(SENTENCES, corpus.vocab))
    assert corpus.n_words == sum(counts[w] for w in want)


def test_max_vocab_size_keeps_most_frequent():
    corpus = Corpus.build(SENTENCES, min_count=1, max_vocab_size=3)
    assert corpus.vocab.words == ["the", "dog", "fox"]
    np.testing.assert_array_equal(corpus.ids, expected_ids(SENTENCES, corpus.vocab))


@pytest.mark.parametrize("suffix,opener", [("", open), (".xz", lzma.open), (".bz2", bz2.open), (".gz", gzip.open)])
def test_file_sources_match_iterable(tmp_path, suffix, opener):
    """Plain and compressed files, lines as sentences, give the ids of the token lists."""
    path = tmp_path / f"corpus.txt{suffix}"
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("\n".join("  ".join(s) for s in SENTENCES) + "\n\n")
    from_file = Corpus.build(path, min_count=1)
    from_list = Corpus.build(SENTENCES, min_count=1)
    assert from_file.vocab.words == from_list.vocab.words
    np.testing.assert_array_equal(from_file.ids, from_list.ids)


def test_words_cut_by_read_chunks_are_whole(tmp_path, monkeypatch):
    """A word straddling the reader's chunk boundary is counted once, intact."""
    monkeypatch.setattr("fastpretrain.data.corpus.CHUNK_BYTES", 3)
    path = tmp_path / "text8"
    path.write_text("anarchism originated as a term of abuse é naïve")
    corpus = Corpus.build(path, min_count=1)
    assert sorted(corpus.vocab.words) == sorted("anarchism originated as a term of abuse é naïve".split())
    assert corpus.n_words == 9


def test_directory_source_reads_files_in_sorted_order(tmp_path):
    (tmp_path / "b.txt").write_text(" ".join(SENTENCES[1]))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text(" ".join(SENTENCES[2]))
    (tmp_path / "a.txt").write_text(" ".join(SENTENCES[0]))  # no trailing newline: still a line end
    (tmp_path / ".hidden").write_text("secret words")
    corpus = Corpus.build(tmp_path, min_count=1)
    np.testing.assert_array_equal(corpus.ids, expected_ids(SENTENCES[:3], corpus.vocab))
    assert "secret" not in corpus.vocab


def test_encode_against_given_vocab_drops_unknown_words():
    vocab = Vocab(["dog", "fox", "unseen"], np.array([5, 3, 1]))
    corpus = Corpus.build(SENTENCES, vocab=vocab)
    assert corpus.vocab.words == vocab.words
    np.testing.assert_array_equal(corpus.ids, expected_ids(SENTENCES, vocab))


def test_cache_is_reused_and_invalidated(tmp_path):
    path = tmp_path / "text8"
    path.write_text("a b a c a b")
    first = Corpus.build(path, min_count=1, cache_dir=tmp_path / "cache")
    again = Corpus.build(path, min_count=1, cache_dir=tmp_path / "cache")
    assert again.path == first.path and isinstance(again.ids, np.memmap)
    other = Corpus.build(path, min_count=2, cache_dir=tmp_path / "cache")
    assert other.path != first.path and other.vocab.words == ["a", "b"]
    path.write_text("a b a c a b d d d d")
    changed = Corpus.build(path, min_count=1, cache_dir=tmp_path / "cache")
    assert changed.path != first.path and changed.vocab.words[0] == "d"
    reloaded = Corpus.load(first.path)
    np.testing.assert_array_equal(reloaded.ids, first.ids)
    assert not list((tmp_path / "cache" / "corpora").glob(".build-*")), "build directories left behind"


def test_vocab_save_load_round_trip(tmp_path):
    rng = random.Random(0)
    words = [f"w{i}é" for i in range(50)]
    vocab = Vocab(words, np.array([rng.randrange(1, 10**12) for _ in words]))
    vocab.save(tmp_path / "vocab.txt")
    loaded = Vocab.load(tmp_path / "vocab.txt")
    assert loaded.words == vocab.words
    np.testing.assert_array_equal(loaded.counts, vocab.counts)
    assert loaded["w7é"] == 7 and "w50é" not in loaded and loaded.get("nope") == -1


def test_real_corpus_vocabulary_matches_gensim_figure(shared_data):
    """corpus20m with min_count 5: 20.68M tokens and gensim's vocabulary of 85,718 words."""
    corpus = Corpus.build(shared_data / "corpus20m.txt.xz", min_count=5, progress=False)
    assert len(corpus.vocab) == 85_718
    assert corpus.vocab.words[:3] == ["the", "a", "of"]
    assert corpus.n_words == int(corpus.vocab.counts.sum())
