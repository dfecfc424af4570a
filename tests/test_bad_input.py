"""Bad input gets a clear Python exception naming the argument, never a crash, a hang, an
OOM kill or a damaged file that later runs trust."""

import json
import os
import warnings

import numpy as np
import pytest
import torch

from fastpretrain import _C
from fastpretrain.atomic import check_writable
from fastpretrain.data import Corpus, Vocab, Word2VecBatches
from fastpretrain.models.keyed_vectors import KeyedVectors
from fastpretrain.models.word2vec import Word2Vec


@pytest.fixture
def corpus():
    return Corpus.build([["a", "b", "a", "c"], ["b", "a"]] * 50, min_count=1)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="source: .*nope.txt.* does not exist"):
        Corpus.build(tmp_path / "nope.txt")


@pytest.mark.parametrize("text", ["", "  \n\t\n  ", "\u00a0\u3000\u2028\x1c\n"])
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
    with pytest.raises(ValueError, match="max_final_vocab=1: no word is left"):
        Corpus.build([["a", "b"]], min_count=1, max_final_vocab=1)  # both tie at the cut


@pytest.mark.parametrize("bad", [b"ok \xff\xfe bad", b"ok caf\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"x\xe2\x80", b"\xe3\x80"])
def test_undecodable_bytes(tmp_path, bad):
    (tmp_path / "bad.txt").write_bytes(bad)
    with pytest.raises(ValueError, match=r"source: .*bad.txt.*not valid UTF-8: bad byte at offset \d+"):
        Corpus.build(tmp_path / "bad.txt", min_count=1)
    assert not list((tmp_path / "bad.txt").parent.glob(".build-*"))


@pytest.mark.parametrize("chunk", [1, 3, 1 << 22])
@pytest.mark.parametrize("data,offset", [(b"hello w\xffrld", 7), (b"a\xc2\xa0b \xe2\x80\xa8c\xe2\x80 d", 9)])
def test_undecodable_offset_is_exact(tmp_path, monkeypatch, chunk, data, offset):
    """Also when the bad bytes are a multi-byte space cut short, and the reader's chunks cut them."""
    monkeypatch.setattr("fastpretrain.data.corpus.CHUNK_BYTES", chunk)
    (tmp_path / "bad.txt").write_bytes(data)
    with pytest.raises(ValueError, match=f"offset {offset}$"):
        Corpus.build(tmp_path / "bad.txt", min_count=1)


@pytest.mark.parametrize(
    "sentences,error,match",
    [(["a string, not tokens"], TypeError, "split it into tokens"), ([["a", 3]], TypeError, "tokens must be str"),
     ([["a b"]], ValueError, r"contains whitespace \(U\+0020\)"), ([["a", ""]], ValueError, "empty token"),
     ([["a\u00a0b"]], ValueError, r"U\+00A0"), ([["x\u3000"]], ValueError, r"U\+3000"),
     ([["l\u2028m"]], ValueError, r"U\+2028"), ([["\x1c"]], ValueError, r"U\+001C"),
     ([["a\ud800"]], ValueError, "lone surrogate"), ([[b"bytes"]], TypeError, "tokens must be str"),
     ([None], TypeError, "found NoneType"), (42, TypeError, "source")],
)  # fmt: skip
def test_bad_iterables(sentences, error, match):
    with pytest.raises(error, match=match):
        Corpus.build(sentences, min_count=1)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"window": 0}, r"window: expected an int in \[1, 1048576\]"), ({"negative": -1}, "negative: expected an int"),
     ({"sample": -1e-3}, "sample: expected a finite number >= 0"), ({"sample": float("nan")}, "sample"),
     ({"sample": float("inf")}, "sample"), ({"sample": "1e-3"}, "sample"), ({"sample": True}, "sample"),
     ({"batch_size": 0}, "batch_size"), ({"batch_size": 2**31}, r"batch_size: expected an int in \[1, 16777216\]"),
     ({"batch_size": 2**62}, "batch_size: expected an int in"), ({"batch_size": 2**24 + 1}, "batch_size"),
     ({"epochs": 0}, "epochs"), ({"epochs": 2**31}, "epochs"), ({"workers": 0}, "workers"),
     ({"workers": 1025}, "workers"), ({"seed": -1}, "seed"), ({"seed": 2**64}, "seed"),
     ({"window": 2**20 + 1}, "window"), ({"negative": 2**20 + 1}, "negative"),
     ({"max_sentence_length": 0}, "max_sentence_length"), ({"max_sentence_length": 2**31}, "max_sentence_length"),
     ({"sg": 2}, "sg: expected 0 or 1"), ({"window": 2.5}, "window"), ({"shrink_windows": 2}, "shrink_windows"),
     ({"ns_exponent": float("inf")}, "ns_exponent"), ({"ns_exponent": 1e6}, "ns_exponent: .* overflows")],
)  # fmt: skip
def test_bad_batch_options(corpus, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Word2VecBatches(corpus, **kwargs)


def test_batches_too_large_for_memory_are_refused_before_allocation(corpus):
    """2**24 CBOW examples with a 10**5 window would be terabytes: a ValueError, not the OOM killer."""
    batches = Word2VecBatches(corpus, sg=0, window=10**5, batch_size=2**24, negative=0)
    with pytest.raises(ValueError, match="batch_size: .* more than half of this machine's .*lower batch_size"):
        next(iter(batches))


def producer(ids, vocab=3, **options):
    kw = dict(skipgram=True, window=2, negative=1, batch_size=4, epochs=1, workers=2, seed=0,
              max_sentence_length=1000, queue_depth=2) | options  # fmt: skip
    return _C.Producer(ids, np.ones(vocab), np.ones(vocab), **kw)


@pytest.mark.parametrize(
    "options,match",
    [({"batch_size": 2**62}, r"batch_size: expected an int in \[1, 16777216\], got 4611686018427387904"),
     ({"batch_size": 2**31}, "batch_size: expected an int in"), ({"batch_size": 0}, "batch_size"),
     ({"window": 0}, "window"), ({"window": 2**21}, "window"), ({"negative": -1}, "negative"),
     ({"workers": 0}, "workers"), ({"workers": 5000}, "workers"), ({"queue_depth": 0}, "queue_depth"),
     ({"epochs": 0}, "epochs"), ({"max_sentence_length": 0}, "max_sentence_length"),
     ({"skipgram": False, "window": 2**19, "batch_size": 2**24}, "more than half of this machine's")],
)  # fmt: skip
def test_engine_checks_its_own_bounds(options, match):
    """The C++ side names the argument too (it used to die in vector::_M_default_append)."""
    with pytest.raises(ValueError, match=match):
        producer(np.array([0, 1, 2], dtype=np.int32), **options)


def test_corrupt_ids_are_rejected_before_threads_start():
    with pytest.raises(IndexError, match=r"ids\[2\] = 7 is outside the vocabulary of 3 words"):
        producer(np.array([0, 1, 7, -1], dtype=np.int32))


@pytest.mark.parametrize(
    "kwargs,match",
    [({"min_count": -1}, "min_count: expected an int in"), ({"min_count": 10**23}, "min_count: expected an int in"),
     ({"min_count": 1.5}, "min_count"), ({"min_count": "5"}, "min_count"), ({"min_count": True}, "min_count"),
     ({"max_final_vocab": 0}, "max_final_vocab"), ({"max_final_vocab": 2**31}, "max_final_vocab"),
     ({"max_final_vocab": 3.0}, "max_final_vocab"), ({"max_vocab_size": 0}, "max_vocab_size"),
     ({"max_vocab_size": 2**63}, "max_vocab_size"), ({"sorted_vocab": 2}, "sorted_vocab: expected 0 or 1"),
     ({"sorted_vocab": "yes"}, "sorted_vocab")],
)  # fmt: skip
def test_bad_build_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Corpus.build([["a"]], **kwargs)


def test_bad_vocab_argument():
    with pytest.raises(ValueError, match="vocab: no word of the source"):
        Corpus.build([["a"]], vocab=Vocab(["z"], np.array([1])))
    with pytest.raises(TypeError, match="vocab: expected a fastpretrain.data.Vocab"):
        Corpus.build([["a"]], vocab=["a"])


@pytest.mark.parametrize(
    "words,counts,error,match",
    [(["a", "b"], [1], ValueError, "counts: expected shape"), (["a", "a"], [1, 1], ValueError, "duplicates .'a' at 0"),
     ([], [], ValueError, "empty"), (["a", ""], [1, 1], ValueError, "entry 1 is empty"),
     (["a b"], [1], ValueError, r"entry 0 .*U\+0020"), (["x", "a\u00a0b"], [1, 1], ValueError, r"entry 1 .*U\+00A0"),
     (["\u3000"], [1], ValueError, r"U\+3000"), (["l\u2028m"], [1], ValueError, r"U\+2028"),
     (["a\x1cb"], [1], ValueError, r"U\+001C"), (["a\tb"], [1], ValueError, r"U\+0009"),
     (["a", 3], [1, 1], TypeError, "entry 1 is int"), (["a"], [-1], ValueError, "counts: must be >= 0"),
     (["a"], [1.5], ValueError, "counts: expected integers"), (["a"], ["1"], ValueError, "counts: expected integers")],
)  # fmt: skip
def test_bad_vocabularies(words, counts, error, match):
    with pytest.raises(error, match=match):
        Vocab(words, np.array(counts))


@pytest.mark.parametrize(
    "content,match",
    [("the 10\nbroken line here\n", "line 2: expected 'word count'"), ("a\u00a0b 5\n", "line 1: expected 'word count'"),
     ("a 5\nb \u00b2\n", "line 2"), ("a 5\na 3\n", "duplicates"), ("a 99999999999999999999\n", "above 2\\^63"),
     ("\n\n", "is empty"), ("a -3\n", "line 1")],
)  # fmt: skip
def test_bad_vocab_files(tmp_path, content, match):
    (tmp_path / "v.txt").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        Vocab.load(tmp_path / "v.txt")


def test_vocab_file_missing_or_not_utf8(tmp_path):
    with pytest.raises(FileNotFoundError, match="path: vocabulary file"):
        Vocab.load(tmp_path / "missing.txt")
    (tmp_path / "v.txt").write_bytes(b"a 1\n\xff\xfe 2\n")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        Vocab.load(tmp_path / "v.txt")


@pytest.mark.parametrize("counts,exponent,match", [([0, 0], 0.75, "every count is 0"), ([5, 2], 1e6, "overflows")])
def test_no_noise_distribution(counts, exponent, match):
    with pytest.raises(ValueError, match=f"ns_exponent: no noise distribution, .*{match}"):
        Vocab(["a", "b"], np.array(counts)).noise_distribution(exponent)


def test_keep_probabilities_refuse_nan_in_the_engine_too():
    with pytest.raises(ValueError, match="sample: expected a threshold >= 0"):
        _C.keep_probabilities(np.array([3, 4]), float("nan"))


def test_not_a_corpus_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a corpus directory"):
        Corpus.load(tmp_path)


def _truncate_ids(entry):
    with open(entry / "ids.i32", "rb+") as f:
        f.truncate(8)


def _flip_an_id(entry):
    data = bytearray((entry / "ids.i32").read_bytes())
    data[5] ^= 0x01
    (entry / "ids.i32").write_bytes(bytes(data))


def _edit_meta(change):
    def damage(entry):
        meta = json.loads((entry / "meta.json").read_text())
        change(meta)
        (entry / "meta.json").write_text(json.dumps(meta))

    return damage


DAMAGE = {  # ways a cache entry goes bad: a crash, a full disk, a bit flip, an older version, a hand edit
    "truncated ids": _truncate_ids,
    "flipped id": _flip_an_id,
    "vocab edited": lambda e: (e / "vocab.txt").write_text("a\u00a0b 3\nc 1\n", encoding="utf-8"),
    "vocab gone": lambda e: (e / "vocab.txt").unlink(),
    "ids gone": lambda e: (e / "ids.i32").unlink(),
    "meta not JSON": lambda e: (e / "meta.json").write_text('{"format": 2, "n_tok'),
    "meta not UTF-8": lambda e: (e / "meta.json").write_bytes(b"\xff\xfe{}"),
    "meta a list": lambda e: (e / "meta.json").write_text("[2]"),
    "older format": _edit_meta(lambda m: m.update(format=1)),
    "no crc": _edit_meta(lambda m: m.pop("ids_crc32")),
    "negative count": _edit_meta(lambda m: m.update(n_words=-4)),
    "wrong vocab size": _edit_meta(lambda m: m.update(vocab_size=m["vocab_size"] + 1)),
    "wrong n_tokens": _edit_meta(lambda m: m.update(n_tokens=m["n_tokens"] - 1)),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_cache_entry_is_rebuilt_with_a_warning(tmp_path, damage):
    """Never trusted: the entry is checked when opened, and a bad one is replaced, not reused."""
    path = tmp_path / "text.txt"
    path.write_text("a b a c a b\nb c d\n")
    good = Corpus.build(path, min_count=1)
    words, ids = good.vocab.words, np.array(good.ids)
    damage(good.path)
    with pytest.raises((ValueError, FileNotFoundError), match="path: "):
        Corpus.load(good.path)
    with pytest.warns(UserWarning, match="corpus cache: .* is damaged .*rebuilding it"):
        rebuilt = Corpus.build(path, min_count=1)
    assert rebuilt.path == good.path and rebuilt.vocab.words == words
    np.testing.assert_array_equal(rebuilt.ids, ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Corpus.build(path, min_count=1)  # the rebuilt entry is sound
    assert [p.name for p in good.path.parent.iterdir()] == [good.path.name]


def test_abandoned_iteration_stops_workers(corpus):
    """Leaving a long run after one batch joins the worker threads instead of hanging."""
    batches = Word2VecBatches(corpus, epochs=100_000, workers=2, batch_size=8)
    for _ in range(3):
        it = iter(batches)
        first = next(it)
        it.close()
        assert len(first) == 8


@pytest.mark.parametrize(
    "kwargs,match",
    [({"vector_size": 0}, "vector_size"), ({"vector_size": 2**21}, "vector_size"), ({"batch_size": 2**31}, "batch_size"),
     ({"batch_size": 0}, "batch_size"), ({"seed": -1}, r"seed: expected an int in \[0, 18446744073709551615\]"),
     ({"seed": 2**64}, "seed"), ({"epochs": 2**31}, "epochs"), ({"min_count": 10**23}, "min_count"),
     ({"min_count": -1}, "min_count"), ({"workers": 0}, "workers"), ({"workers": 10**6}, "workers"),
     ({"window": 2**21}, "window"), ({"negative": 2**21}, "negative"), ({"alpha": float("nan")}, "alpha"),
     ({"alpha": float("inf")}, "alpha"), ({"alpha": 0.0}, "alpha: expected a learning rate > 0"),
     ({"min_alpha": float("nan")}, "min_alpha"), ({"sample": float("nan")}, "sample"),
     ({"ns_exponent": float("nan")}, "ns_exponent"), ({"max_final_vocab": 0}, "max_final_vocab"),
     ({"max_vocab_size": -1}, "max_vocab_size"), ({"shrink_windows": 2}, "shrink_windows"),
     ({"sorted_vocab": 3}, "sorted_vocab"), ({"cbow_mean": 0.5}, "cbow_mean"), ({"hs": True, "negative": 0, "sg": 5}, "sg"),
     ({"max_sentence_length": 0}, "max_sentence_length")],
)  # fmt: skip
def test_bad_word2vec_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Word2Vec(device="cpu", **kwargs)


@pytest.mark.parametrize(
    "name,match",
    [("trim_rule", "filter the token lists"), ("sentences", "pass the corpus to fit"), ("corpus_file", "fit"),
     ("callbacks", "not supported"), ("compute_loss", "final_loss"), ("batch_words", "batch_size"),
     ("vectorsize", "not a word2vec option; expected one of")],
)  # fmt: skip
def test_gensim_options_we_lack_say_what_to_use(name, match):
    with pytest.raises(TypeError, match=f"{name}: .*{match}"):
        Word2Vec(device="cpu", **{name: None})


def test_weights_too_large_for_memory_are_refused(corpus):
    model = Word2Vec(vector_size=2**20, min_count=1, device="cpu")
    big = Corpus.build([[f"w{i}" for i in range(3000)]], min_count=1)
    with pytest.raises(ValueError, match="vector_size: 2 matrices of 3,000 words x 1048576 take"):
        model.build_vocab(big)
    assert model.vocab is None


@pytest.mark.parametrize(
    "damage,match",
    [(lambda p: p.write_bytes(b"not safetensors"), "not a model written by Word2Vec.save"),
     (lambda p: p.write_bytes(p.read_bytes()[:200]), "not a model"),
     ("no config", "KeyError"), ("wrong syn0", r"tensor 'syn0': expected shape \(3, 8\)"),
     ("bad config", "vector_size")],
)  # fmt: skip
def test_bad_model_files(tmp_path, corpus, damage, match):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    model = Word2Vec(vector_size=8, min_count=1, epochs=1, workers=1, device="cpu")
    model.build_vocab(corpus)
    model.save(path)
    if callable(damage):
        damage(path)
    else:
        config = json.loads(json.dumps(model.config.__dict__))
        config["vector_size"] = "big" if damage == "bad config" else 8
        tensors = {"syn0": torch.zeros(3, 8 if damage != "wrong syn0" else 9), "counts": torch.ones(3, dtype=torch.int64),
                   "syn1neg": torch.zeros(3, 8)}  # fmt: skip
        meta = {"words": json.dumps(model.vocab.words)} | ({} if damage == "no config" else {"config": json.dumps(config)})
        save_file(tensors, path, metadata=meta)
    with pytest.raises(ValueError, match=match):
        Word2Vec.load(path, device="cpu")


@pytest.fixture
def kv():
    return KeyedVectors(["a", "b", "c"], torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]))


@pytest.mark.parametrize(
    "query,error,match",
    [(dict(positive=[np.zeros(3)]), ValueError, r"positive: a vector must be numbers of shape \[2\]"),
     (dict(positive=[np.array([np.nan, 1.0])]), ValueError, "positive: the vector holds NaN"),
     (dict(positive=[np.array(["x", "y"])]), ValueError, "positive: a vector must be numbers"),
     (dict(positive=np.zeros((1, 1, 2))), ValueError, "must be 2-D"),
     (dict(positive=[("a", float("nan"))]), ValueError, "weight of 'a': expected a finite number"),
     (dict(positive=[("a", "heavy")]), ValueError, "weight of 'a'"),
     (dict(positive=[("a", 1.0, 2.0)]), TypeError, "or a \\(term, weight\\) pair"),
     (dict(positive=[5]), KeyError, "positive: index 5 is outside the vocabulary"),
     (dict(negative=["a"], positive=[-1]), KeyError, "index -1"), (dict(positive=[{"a"}]), TypeError, "pair"),
     (dict(positive=["a"], topn=2.5), ValueError, "topn: expected an int or None"),
     (dict(positive=["a"], topn=True), ValueError, "topn"),
     (dict(positive=["a"], restrict_vocab=True), ValueError, "restrict_vocab"),
     (dict(positive=["zebra"]), KeyError, "'zebra' is not in the vocabulary")],
)  # fmt: skip
def test_bad_most_similar_terms(kv, query, error, match):
    with pytest.raises(error, match=match):
        kv.most_similar(**query)


def test_bad_most_similar_cosmul_terms(kv):
    with pytest.raises(ValueError, match="positive: 3CosMul needs at least one positive term"):
        kv.most_similar_cosmul(negative=[np.ones(2)])
    with pytest.raises(ValueError, match="negative: a vector must be numbers of shape"):
        kv.most_similar_cosmul(["a"], [np.ones(5)])


@pytest.mark.parametrize("make", ["file", "dir", "under a file"])
def test_unwritable_output_paths_are_named(tmp_path, make):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    target = {"file": tmp_path / "f" / "out.bin", "dir": tmp_path / "d", "under a file": tmp_path / "f" / "a" / "o.bin"}
    with pytest.raises(ValueError, match="--out: "):
        check_writable("--out", target[make])


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_output_folder_is_named(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(ValueError, match="--out: cannot create files in"):
        check_writable("--out", tmp_path / "ro" / "v.bin")
