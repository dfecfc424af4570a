"""Vocabulary building and corpus encoding: every source kind gives the same ids, the
vocabulary follows word2vec's rules, and encoded corpora are cached and reloaded."""

import bz2
import gzip
import lzma
import os
import random
import time
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


def gensim_order(counts, first_seen):
    """gensim 4.4's order: decreasing count, ties with the word counted last first."""
    return sorted(counts, key=lambda w: (-counts[w], -first_seen.index(w)))


def test_vocab_sorted_by_count_ties_last_counted_first_and_filtered():
    corpus = Corpus.build(SENTENCES, min_count=2)
    counts = Counter(w for s in SENTENCES for w in s)
    first_seen = list(dict.fromkeys(w for s in SENTENCES for w in s))
    want = gensim_order({w: c for w, c in counts.items() if c >= 2}, first_seen)
    assert corpus.vocab.words == want
    assert corpus.vocab.counts.tolist() == [counts[w] for w in want]
    np.testing.assert_array_equal(corpus.ids, expected_ids(SENTENCES, corpus.vocab))
    assert corpus.n_words == sum(counts[w] for w in want)


def test_max_final_vocab_drops_every_word_tied_at_the_cut():
    """gensim keeps the words counted more often than the (N+1)-th: ties at the cut all go."""
    counts = Counter(w for s in SENTENCES for w in s)  # the 4, fox 3, dog 3, a 2, and 2, ...
    assert Corpus.build(SENTENCES, min_count=1, max_final_vocab=3).vocab.words == ["the", "dog", "fox"]
    assert Corpus.build(SENTENCES, min_count=1, max_final_vocab=2).vocab.words == ["the"]
    corpus = Corpus.build(SENTENCES, min_count=1, max_final_vocab=4)
    assert corpus.vocab.words == ["the", "dog", "fox"] and counts["a"] == counts["and"] == 2
    np.testing.assert_array_equal(corpus.ids, expected_ids(SENTENCES, corpus.vocab))


def test_sorted_vocab_0_keeps_first_counted_order():
    corpus = Corpus.build(SENTENCES, min_count=1, sorted_vocab=0)
    assert corpus.vocab.words == list(dict.fromkeys(w for s in SENTENCES for w in s))


def test_min_count_0_keeps_every_word():
    assert Corpus.build(SENTENCES, min_count=0).vocab.words == Corpus.build(SENTENCES, min_count=1).vocab.words


def random_sentences(seed, n_sentences, vocab, max_len):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    weights = [1 / (i + 1) for i in range(vocab)]
    return [rng.choices(words, weights, k=rng.randint(0, max_len)) for _ in range(n_sentences)]


GENSIM_VOCAB_SETTINGS = [  # min_count, max_final_vocab, max_vocab_size, sorted_vocab
    (1, None, None, 1), (3, None, None, 1), (1, None, None, 0), (0, 40, None, 1), (2, 15, None, 0),
    (1, None, 60, 1), (1, None, 25, 0), (2, 30, 50, 1), (1, None, 3, 1),
]  # fmt: skip


@pytest.mark.parametrize("settings", GENSIM_VOCAB_SETTINGS)
def test_vocabulary_equals_gensims_for_token_lists(settings):
    """Words, order and counts equal gensim 4.4's build_vocab on the same token lists, with scan-time
    pruning (max_vocab_size), the max_final_vocab cut and both orders; empty sentences included."""
    gensim = pytest.importorskip("gensim.models")
    min_count, max_final_vocab, max_vocab_size, sorted_vocab = settings
    sentences = random_sentences(7, 400, 200, 12)
    ours = Corpus.build(sentences, min_count=min_count, max_final_vocab=max_final_vocab,
                        max_vocab_size=max_vocab_size, sorted_vocab=sorted_vocab).vocab  # fmt: skip
    theirs = gensim.Word2Vec(min_count=min_count, max_final_vocab=max_final_vocab, max_vocab_size=max_vocab_size,
                             sorted_vocab=sorted_vocab, vector_size=4, workers=1)  # fmt: skip
    theirs.build_vocab(sentences)
    assert ours.words == theirs.wv.index_to_key
    assert ours.counts.tolist() == [theirs.wv.get_vecattr(w, "count") for w in ours.words]


@pytest.mark.parametrize("max_vocab_size", [None, 30, 4])
def test_vocabulary_equals_gensims_for_a_file(tmp_path, max_vocab_size):
    """A file is read as gensim's LineSentence reads it: a line is a sentence, and a line of more than
    10000 words is several (each a pruning check), which max_vocab_size's counts depend on."""
    gensim = pytest.importorskip("gensim.models")
    lines = [" ".join(s) for s in random_sentences(3, 60, 300, 40)]
    lines.insert(20, " ".join(w for s in random_sentences(4, 2600, 300, 12) for w in s))  # ~16k words
    lines.insert(40, "")
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    ours = Corpus.build(path, min_count=1, max_vocab_size=max_vocab_size).vocab
    theirs = gensim.Word2Vec(min_count=1, max_vocab_size=max_vocab_size, vector_size=4, workers=1)
    theirs.build_vocab(corpus_file=str(path))
    assert ours.words == theirs.wv.index_to_key
    assert ours.counts.tolist() == [theirs.wv.get_vecattr(w, "count") for w in ours.words]


def test_pruned_words_keep_every_occurrence_in_the_ids():
    """A word forgotten by pruning and counted again later is one word: all its occurrences
    (before the pruning too) are in the ids, as gensim's training pass re-reads them all."""
    sentences = [["a", "b", "c"], ["a", "a"], ["b", "b", "b"]]  # b and c are pruned after the second
    corpus = Corpus.build(sentences, min_count=1, max_vocab_size=2)
    assert dict(zip(corpus.vocab.words, corpus.vocab.counts.tolist())) == {"b": 3, "a": 3}
    np.testing.assert_array_equal(corpus.ids, expected_ids(sentences, corpus.vocab))


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
    assert not list((tmp_path / "cache" / "corpora").glob(".build-*")), "build directories left behind"


def test_entries_no_run_can_hit_are_deleted(tmp_path):
    """Publishing an entry deletes those of changed or removed files, of an older format, and
    builds abandoned over a day ago; entries still valid (other settings, other files) stay."""
    cache, path, kept = tmp_path / "cache", tmp_path / "a.txt", tmp_path / "b.txt"
    path.write_text("a b a c a b")
    kept.write_text("x y x")
    first = Corpus.build(path, min_count=1, cache_dir=cache)
    other_settings = Corpus.build(path, min_count=2, cache_dir=cache)
    other_file = Corpus.build(kept, min_count=1, cache_dir=cache)
    corpora = cache / "corpora"
    old_format = corpora / ("0" * 24)
    old_format.mkdir()
    (old_format / "meta.json").write_text('{"format": 1}')
    abandoned, fresh = corpora / ".build-abandoned", corpora / ".build-running"
    abandoned.mkdir(), fresh.mkdir()
    os.utime(abandoned, (time.time() - 2 * 86400,) * 2)
    path.write_text("a b a c a b d d d d")
    changed = Corpus.build(path, min_count=1, cache_dir=cache)
    left = {p.name for p in corpora.iterdir()}
    assert left == {changed.path.name, other_file.path.name, fresh.name}
    assert not first.path.exists() and not other_settings.path.exists()  # both read the old a.txt
    kept.unlink()
    Corpus.build(path, min_count=3, cache_dir=cache)
    assert not other_file.path.exists() and changed.path.exists()


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


# Python's str.split() whitespace, in every width of UTF-8: what the tokenizer must split on too.
SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace() and c != 0x0A]
NOT_SPACES = ["\u200b", "\u180e", "\ufeff", "é", "€", "𝄞", "\x00", "\x1b"]  # zero-width, BOM, 2-4 byte letters


def line_tokens(text):
    """The oracle: lines end at '\\n' only; words are what str.split() makes of a line."""
    return [line.split() for line in text.split("\n")]


def mixed_text(seed, n=3000):
    rng = random.Random(seed)
    pieces = ["a", "bc", "é", "€", "𝄞", "\n"] + SPACES + NOT_SPACES
    return "".join(rng.choice(pieces) for _ in range(n))


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 22])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_words_split_on_unicode_whitespace_as_str_split(tmp_path, monkeypatch, chunk, seed):
    """NBSP, U+2028, U+3000, \\x1c ... split words as str.split() does, also when the reader's chunk
    boundary cuts a multi-byte space; the cached vocabulary file then reads back intact."""
    monkeypatch.setattr("fastpretrain.data.corpus.CHUNK_BYTES", chunk)
    text = mixed_text(seed)
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    corpus = Corpus.build(path, min_count=1, progress=False)
    sentences = line_tokens(text)
    assert sorted(corpus.vocab.words) == sorted({w for s in sentences for w in s})
    np.testing.assert_array_equal(corpus.ids, expected_ids(sentences, corpus.vocab))
    reloaded = Corpus.load(corpus.path)
    assert reloaded.vocab.words == corpus.vocab.words


@pytest.mark.parametrize("space", ["\u00a0", "\u3000", "\u2028", "\x1c", "\x85", "\u202f"])
def test_a_word_with_unicode_whitespace_never_breaks_the_cache(tmp_path, space):
    """The reported case: such a word used to land whole in vocab.txt, which split() then read as
    three fields, and every later run failed on the cached entry."""
    path = tmp_path / "text.txt"
    path.write_text(f"foo{space}bar baz\nfoo baz\n", encoding="utf-8")
    first = Corpus.build(path, min_count=1)
    assert sorted(first.vocab.words) == ["bar", "baz", "foo"]
    again = Corpus.build(path, min_count=1)
    assert again.path == first.path and again.vocab.words == first.vocab.words
