"""KeyedVectors against gensim: the same neighbours and scores from vectors trained by gensim, file
formats both ways, our safetensors round trip and its atomicity, and rejection of bad input."""

import contextlib
import zlib

import numpy as np
import pytest
import torch

import fastpretrain.models.keyed_vectors as kv_module
from fastpretrain.atomic import atomic_write
from fastpretrain.models import KeyedVectors

gensim = pytest.importorskip("gensim", reason="these tests compare with gensim (pip install 'fastpretrain[test]')")
from gensim.models.word2vec import LineSentence  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`:DeprecationWarning")


@pytest.fixture(scope="module")
def trained():
    """A small gensim model (a deterministic hash, so its vectors do not depend on PYTHONHASHSEED)
    and our KeyedVectors over a copy of its vectors, in the same word order."""
    model = gensim.models.Word2Vec(LineSentence(datapath("lee_background.cor")), vector_size=50, min_count=5,
                                   epochs=5, workers=1, seed=0, hashfxn=lambda s: zlib.crc32(s.encode()))  # fmt: skip
    gkv = model.wv
    return gkv, KeyedVectors(list(gkv.index_to_key), torch.from_numpy(gkv.vectors.copy()))


def assert_same_ranking(ours, theirs, all_scores):
    """Same words in the same order with scores within 1e-5 — where gensim's own scores tie within
    1e-6 float32 rounding may swap neighbours, so then our word must score what gensim gives it."""
    assert len(ours) == len(theirs) > 0
    for (word, score), (their_word, their_score) in zip(ours, theirs):
        assert score == pytest.approx(their_score, abs=1e-5)
        if word != their_word:
            assert abs(all_scores[word] - their_score) < 1e-6, (ours, theirs)


def gensim_scores(gkv, values):
    return dict(zip(gkv.index_to_key, values.tolist()))


@pytest.mark.parametrize("query", [
    dict(positive=["government"]),
    dict(positive=["war", "president"], negative=["man"]),
    dict(positive="Australia", negative=["Sydney", "police"]),
    dict(positive=[("fire", 2.0), "water"], negative=[("day", -0.5)]),
])  # fmt: skip
def test_most_similar_matches_gensim(trained, query):
    gkv, kv = trained
    for restrict in (None, 300):
        ours = kv.most_similar(**query, topn=15, restrict_vocab=restrict)
        theirs = gkv.most_similar(**query, topn=15, restrict_vocab=restrict)
        assert_same_ranking(ours, theirs, gensim_scores(gkv, gkv.most_similar(**query, topn=None)))
        if restrict:
            assert all(kv.index(w) < restrict for w, _ in ours)
        asked = [query["positive"]] if isinstance(query["positive"], str) else query["positive"]
        assert not {w if isinstance(w, str) else w[0] for w in asked} & {w for w, _ in ours}


VECTOR_QUERIES = {  # gensim's most_similar takes vectors, 2-D arrays of them and row indices as terms too
    "a vector": lambda v: dict(positive=[v("government")]),
    "a bare vector": lambda v: dict(positive=v("fire") * 3.0),
    "a 2-D array": lambda v: dict(positive=np.stack([v("war"), v("president")])),
    "vector and words": lambda v: dict(positive=[v("war") * 0.1, "president"], negative=["man"]),
    "weighted vectors": lambda v: dict(positive=[(v("fire"), 2.0), "water"], negative=[(v("day"), -0.5)]),
    "row indices": lambda v: dict(positive=[3, 10], negative=[np.int64(7)]),
    "zero weight": lambda v: dict(positive=[("war", 0.0)]),
}


@pytest.mark.parametrize("name", VECTOR_QUERIES)
def test_most_similar_with_vectors_matches_gensim(trained, name):
    """It used to fail with "too many values to unpack"; now the same neighbours as gensim (a vector
    is taken as it is, unnormalised, and only words and indices are left out of the results)."""
    gkv, kv = trained
    query = VECTOR_QUERIES[name](lambda w: gkv.vectors[gkv.key_to_index[w]].copy())
    for restrict in (None, 300):
        ours = kv.most_similar(**query, topn=15, restrict_vocab=restrict)
        theirs = gkv.most_similar(**query, topn=15, restrict_vocab=restrict)
        assert_same_ranking(ours, theirs, gensim_scores(gkv, gkv.most_similar(**query, topn=None)))
    np.testing.assert_allclose(kv.most_similar(**query, topn=None), gkv.most_similar(**query, topn=None), atol=1e-5)
    np.testing.assert_allclose(kv.most_similar(**query, topn=None, restrict_vocab=100),
                               gkv.most_similar(**query, topn=None, restrict_vocab=100), atol=1e-5)  # fmt: skip


def test_similar_by_vector_and_word_match_gensim(trained):
    gkv, kv = trained
    v = gkv.vectors[gkv.key_to_index["police"]]
    full = gensim_scores(gkv, gkv.most_similar(v, topn=None))
    assert_same_ranking(kv.similar_by_vector(torch.from_numpy(v), topn=8), gkv.similar_by_vector(v, topn=8), full)
    assert_same_ranking(kv.similar_by_word("police", topn=8), gkv.similar_by_word("police", topn=8), full)


def test_most_similar_cosmul_with_unit_vectors_matches_gensim(trained):
    """For unit vectors gensim's 3CosMul (which uses a vector unnormalised) and ours agree."""
    gkv, kv = trained
    unit = gkv.get_vector("war", norm=True)
    query = dict(positive=[unit, "president"], negative=["man"])
    full = gkv.most_similar_cosmul(**query, topn=None)
    assert_same_ranking(kv.most_similar_cosmul(**query, topn=12), gkv.most_similar_cosmul(**query, topn=12),
                        gensim_scores(gkv, full))  # fmt: skip
    np.testing.assert_allclose(kv.most_similar_cosmul(**query, topn=None), full, atol=1e-5)


@pytest.mark.parametrize("query", [dict(positive=["government"]), dict(positive=["war", "president"], negative=["man"])])
def test_most_similar_cosmul_matches_gensim(trained, query):
    gkv, kv = trained
    full = gkv.most_similar_cosmul(**query, topn=None)
    assert_same_ranking(kv.most_similar_cosmul(**query, topn=15), gkv.most_similar_cosmul(**query, topn=15),
                        gensim_scores(gkv, full))  # fmt: skip
    # gensim ignores restrict_vocab here; we honour it: gensim's ranking filtered to the first 200 words
    restricted = [(w, float(full[i])) for i, w in enumerate(gkv.index_to_key[:200]) if w not in query["positive"]]
    if "negative" in query:
        restricted = [(w, s) for w, s in restricted if w not in query["negative"]]
    restricted.sort(key=lambda ws: -ws[1])
    assert_same_ranking(kv.most_similar_cosmul(**query, topn=10, restrict_vocab=200), restricted[:10],
                        gensim_scores(gkv, full))  # fmt: skip


def test_similarity_and_analogy(trained):
    gkv, kv = trained
    for a, b in [("war", "peace"), ("Australia", "Sydney"), ("fire", "fire")]:
        assert kv.similarity(a, b) == pytest.approx(float(gkv.similarity(a, b)), abs=1e-6)
    assert kv.analogy("man", "president", "war", topn=3) == kv.most_similar(["president", "war"], ["man"], topn=3)
    best = gkv.most_similar_cosmul(positive=["president", "war"], negative=["man"], topn=1)[0]
    (word, score), = kv.analogy("man", "president", "war", method="mul")  # fmt: skip
    assert (word, score) == (best[0], pytest.approx(best[1], abs=1e-5))


def test_nearest_batched_chunked_and_excluding(trained, monkeypatch):
    gkv, kv = trained
    words = ["government", "fire", "Australia", "police", "man"]
    idx, scores = kv.nearest(words, k=4)
    assert idx[:, 0].tolist() == [kv.index(w) for w in words]  # a word is its own best hit
    assert torch.allclose(scores[:, 0], torch.ones(5), atol=1e-5)
    exclude = torch.tensor([[kv.index(w), -1] for w in words])
    monkeypatch.setattr(kv_module, "_SCORE_BUDGET", 2 * len(kv))  # chunks of 2 queries
    idx, scores = kv.nearest(torch.stack([kv[w] for w in words]) * 3.0, k=6, exclude=exclude)
    assert idx.shape == scores.shape == (5, 6)
    for w, row, s in zip(words, idx.tolist(), scores.tolist()):
        theirs = gkv.most_similar(w, topn=6)
        assert_same_ranking(list(zip([kv.words[i] for i in row], s)), theirs,
                            gensim_scores(gkv, gkv.most_similar(w, topn=None)))  # fmt: skip
    idx, scores = kv.nearest(["fire"], k=10, restrict_vocab=3, exclude=[[0, 1]])
    assert idx.shape == (1, 3) and idx[0, 0].item() == 2 and scores[0, 1:].isneginf().all()


def test_word_access(trained):
    gkv, kv = trained
    assert len(kv) == len(gkv) and kv.vector_size == 50 and kv.words == list(gkv.index_to_key)
    assert "fire" in kv and "not-a-word" not in kv and 3 not in kv
    assert kv.index("fire") == gkv.key_to_index["fire"]
    assert torch.equal(kv["fire"], torch.tensor(gkv["fire"]))


def words_and_vectors():
    words = ["naïve", "日本", "the", "Straße", "a\tb", "x,y", "ﬁ", "emoji🙂"]
    return words, torch.randn(len(words), 7, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_round_trip_with_gensim(tmp_path, trained, binary):
    gkv, kv = trained
    for words, vectors in [(kv.words, kv.vectors), words_and_vectors()]:
        ours = tmp_path / "ours"
        KeyedVectors(words, vectors).save_word2vec_format(ours, binary=binary)
        back = gensim.models.KeyedVectors.load_word2vec_format(ours, binary=binary)
        assert back.index_to_key == words
        np.testing.assert_allclose(back.vectors, vectors.numpy(), rtol=0, atol=0 if binary else 1e-6)
        back.save_word2vec_format(tmp_path / "theirs", binary=binary)
        again = KeyedVectors.load_word2vec_format(tmp_path / "theirs", binary=binary)
        assert again.words == words and torch.equal(again.vectors, torch.from_numpy(back.vectors))
        mine = KeyedVectors.load_word2vec_format(ours, binary=binary)
        assert mine.words == words and torch.equal(mine.vectors, vectors)


def test_binary_layout_is_word2vec_c(tmp_path):
    """Header, then per word "word " + little-endian float32 + "\\n", as word2vec.c writes it."""
    vectors = torch.tensor([[1.5, -2.0], [0.25, 3.0]])
    KeyedVectors(["日本", "b"], vectors).save_word2vec_format(tmp_path / "v.bin", binary=True)
    rows = [w.encode() + b" " + v.numpy().astype("<f4").tobytes() + b"\n" for w, v in zip(["日本", "b"], vectors)]
    assert (tmp_path / "v.bin").read_bytes() == b"2 2\n" + b"".join(rows)


def test_binary_detected_by_suffix(tmp_path):
    kv = KeyedVectors(*words_and_vectors())
    kv.save_word2vec_format(tmp_path / "v.bin", binary=True)
    kv.save_word2vec_format(tmp_path / "v.txt", binary=False)
    for name in ("v.bin", "v.txt"):
        assert torch.equal(KeyedVectors.load_word2vec_format(tmp_path / name).vectors, kv.vectors)


def test_save_load_round_trip(tmp_path):
    words, vectors = words_and_vectors()
    counts = np.arange(len(words), 0, -1) * 10
    KeyedVectors(words, vectors, counts).save(tmp_path / "kv.safetensors")
    back = KeyedVectors.load(tmp_path / "kv.safetensors")
    assert back.words == words and torch.equal(back.vectors, vectors) and np.array_equal(back.counts, counts)
    KeyedVectors(words[:2], vectors[:2]).save(tmp_path / "kv.safetensors")  # overwrite, no counts
    back = KeyedVectors.load(tmp_path / "kv.safetensors")
    assert back.words == words[:2] and back.counts is None and torch.equal(back.vectors, vectors[:2])


def test_crash_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    old = KeyedVectors(*words_and_vectors())
    new = KeyedVectors(["only"], torch.ones(1, 7))
    old.save(tmp_path / "kv.safetensors")
    old.save_word2vec_format(tmp_path / "kv.bin", binary=True)

    def half_then_crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(kv_module, "save_file", half_then_crash)

    class CrashingFile:  # the second write fails
        def __init__(self, f):
            self.f, self.calls = f, 0

        def write(self, data):
            self.calls += 1
            if self.calls == 2:
                raise OSError("disk full")
            return self.f.write(data)

    @contextlib.contextmanager
    def crashing_atomic_write(path, mode="wb"):
        with atomic_write(path, mode) as f:
            yield CrashingFile(f)

    monkeypatch.setattr(kv_module, "atomic_write", crashing_atomic_write)
    with pytest.raises(OSError, match="disk full"):
        new.save(tmp_path / "kv.safetensors")
    with pytest.raises(OSError, match="disk full"):
        new.save_word2vec_format(tmp_path / "kv.bin", binary=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kv.bin", "kv.safetensors"]
    assert KeyedVectors.load(tmp_path / "kv.safetensors").words == old.words
    assert torch.equal(KeyedVectors.load_word2vec_format(tmp_path / "kv.bin").vectors, old.vectors)


def test_bad_construction():
    v = torch.randn(3, 4)
    with pytest.raises(ValueError, match="words: must not be empty"):
        KeyedVectors([], torch.randn(0, 4))
    with pytest.raises(ValueError, match=r"vectors: expected shape \[3, d\].*\[2, 4\]"):
        KeyedVectors(["a", "b", "c"], v[:2])
    with pytest.raises(ValueError, match="vectors: expected shape"):
        KeyedVectors(["a", "b", "c"], v[:, :, None])
    with pytest.raises(ValueError, match="words: duplicate word 'a' at indices 0 and 2"):
        KeyedVectors(["a", "b", "a"], v)
    with pytest.raises(TypeError, match="words: entry 1 is int"):
        KeyedVectors(["a", 1, "c"], v)
    with pytest.raises(TypeError, match="vectors: expected a floating-point"):
        KeyedVectors(["a", "b", "c"], torch.ones(3, 4, dtype=torch.long))
    v[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"vectors: row 1 \(word 'b'\) holds NaN"):
        KeyedVectors(["a", "b", "c"], v)
    with pytest.raises(ValueError, match="counts: expected 3 non-negative integers"):
        KeyedVectors(["a", "b", "c"], torch.randn(3, 4), np.array([3, -1, 1]))


def test_bad_queries():
    kv = KeyedVectors(["a", "b", "c"], torch.randn(3, 4))
    with pytest.raises(KeyError, match="word 'zebra' is not in the vocabulary"):
        kv.most_similar(positive=["a"], negative=["zebra"])
    with pytest.raises(KeyError, match="'zebra'"):
        kv.most_similar_cosmul(positive=["zebra"])
    with pytest.raises(KeyError, match="'zebra'"):
        kv["zebra"]
    with pytest.raises(ValueError, match="positive, negative: both empty"):
        kv.most_similar()
    with pytest.raises(ValueError, match="positive: 3CosMul needs"):
        kv.most_similar_cosmul(negative=["a"])
    with pytest.raises(ValueError, match="restrict_vocab: expected None or an int >= 1"):
        kv.most_similar("a", restrict_vocab=0)
    with pytest.raises(ValueError, match=r"queries: expected shape \[Q, 4\]"):
        kv.nearest(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"exclude: expected shape \[2, m\]"):
        kv.nearest(torch.randn(2, 4), exclude=torch.zeros(3, 1))
    with pytest.raises(ValueError, match="method: expected 'add' or 'mul'"):
        kv.analogy("a", "b", "c", method="sub")
    assert kv.most_similar("a", topn=0) == [] and len(kv.most_similar("a", topn=10)) == 2


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        KeyedVectors.load_word2vec_format(tmp_path / "missing.bin")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        KeyedVectors.load(tmp_path / "missing.safetensors")
    kv = KeyedVectors(*words_and_vectors())
    kv.save_word2vec_format(tmp_path / "v.bin", binary=True)
    data = (tmp_path / "v.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-20])
    with pytest.raises(ValueError, match=r"cut\.bin: truncated or malformed at word 7 of 8"):
        KeyedVectors.load_word2vec_format(tmp_path / "cut.bin")
    (tmp_path / "long.bin").write_bytes(data + b"extra 1234")
    with pytest.raises(ValueError, match=r"long\.bin: bytes after word 7"):
        KeyedVectors.load_word2vec_format(tmp_path / "long.bin")
    cases = {
        "2 3\na 1 2 3\nb 1 2\n": r"line 3 should be a word and 3 numbers, got word 'b' and 2 fields",
        "2 3\na 1 2 3\nb 1 x 3\n": r"line 3 should be a word and 3 numbers",
        "3 3\na 1 2 3\nb 1 2 3\n": r"header announces 3 words but 2 lines follow",
        "2 3\na 1 2 3\na 1 2 3\n": r"words: duplicate word 'a'",
        "2 3\na 1 2 3\nb nan 2 3\n": r"vectors: row 1 \(word 'b'\) holds NaN",
        "two 3\na 1 2 3\n": r"line 1 should be the header",
        "": r"line 1 should be the header",
    }
    for i, (text, message) in enumerate(cases.items()):
        (tmp_path / f"bad{i}.txt").write_text(text)
        with pytest.raises(ValueError, match=rf"bad{i}\.txt: .*{message}"):
            KeyedVectors.load_word2vec_format(tmp_path / f"bad{i}.txt")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        KeyedVectors.load(tmp_path / "v.bin")
    with pytest.raises(ValueError, match=r"words: word 1 \('a b'\) is empty or holds a space"):
        KeyedVectors(["a", "a b"], torch.ones(2, 2)).save_word2vec_format(tmp_path / "x.txt")
