"""Analogy and word-pair evaluations against gensim's own: on a small gensim model with the files
gensim ships, and on planted vocabularies with case variants where gensim's rules decide."""

import zlib

import numpy as np
import pytest
import torch

from fastpretrain.eval import evaluate_word_analogies, evaluate_word_pairs
from fastpretrain.models import KeyedVectors

gensim = pytest.importorskip("gensim", reason="these tests compare with gensim (pip install 'fastpretrain[test]')")
from gensim.models.word2vec import LineSentence  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`:DeprecationWarning")


@pytest.fixture(scope="module")
def trained():
    """gensim's vectors (a deterministic hash, so they do not depend on PYTHONHASHSEED) and ours."""
    model = gensim.models.Word2Vec(LineSentence(datapath("lee_background.cor")), vector_size=50, min_count=5,
                                   epochs=5, workers=1, seed=0, hashfxn=lambda s: zlib.crc32(s.encode()))  # fmt: skip
    return model.wv, KeyedVectors(list(model.wv.index_to_key), torch.from_numpy(model.wv.vectors.copy()))


@pytest.fixture(scope="module")
def planted():
    """200 random words, a third of them with a case variant ("w7", "W7") close to the original,
    and "cat" and "dog" in all 8 case forms each, all placed at random ranks, so the first (most
    frequent) of the variants is not always lower-case."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((202, 16)).astype(np.float32)
    forms = ["".join(c.upper() if bit == "1" else c for c, bit in zip(w, f"{k:03b}"))
             for w in ("cat", "dog") for k in range(8)]  # fmt: skip
    words = [f"w{i}" for i in range(200)] + [f"W{i}" for i in range(0, 200, 3)] + forms
    variants = np.concatenate([base[:200:3], base[[200] * 8 + [201] * 8]])
    vectors = np.concatenate([base[:200], variants + 0.1 * rng.standard_normal(variants.shape).astype(np.float32)])
    order = rng.permutation(len(words))
    words, vectors = [words[i] for i in order], vectors[order]
    gkv = gensim.models.KeyedVectors(16)
    gkv.add_vectors(words, vectors)
    return gkv, KeyedVectors(words, torch.from_numpy(vectors))


def gensim_analogies(gkv, path, **kwargs):
    """gensim's result in our layout (sections of the same name merged)."""
    total, sections = gkv.evaluate_word_analogies(str(path), **kwargs)
    ours = {}
    for s in sections[:-1]:
        counts = ours.setdefault(s["section"], {"correct": 0, "incorrect": 0})
        counts["correct"] += len(s["correct"])
        counts["incorrect"] += len(s["incorrect"])
    with_dummies = gkv.evaluate_word_analogies(str(path), dummy4unknown=True, **kwargs)[1][-1]
    skipped = len(with_dummies["incorrect"]) - len(sections[-1]["incorrect"])
    return total, ours, skipped


def assert_same_analogies(ours, theirs):
    total, sections, skipped = theirs
    assert {name: (s["correct"], s["incorrect"]) for name, s in ours["sections"].items()} == {
        name: (s["correct"], s["incorrect"]) for name, s in sections.items()
    }
    assert ours["total"] == pytest.approx(total, abs=1e-12) and ours["skipped"] == skipped
    for s in ours["sections"].values():
        assert s["accuracy"] == (s["correct"] / (s["correct"] + s["incorrect"]) if s["correct"] + s["incorrect"] else 0)


@pytest.mark.parametrize("restrict", [300_000, 1000, 300])
@pytest.mark.parametrize("case_insensitive", [True, False])
def test_analogies_match_gensim(trained, restrict, case_insensitive):
    gkv, kv = trained
    path = datapath("questions-words.txt")
    ours = evaluate_word_analogies(kv, path, restrict_vocab=restrict, case_insensitive=case_insensitive)
    theirs = gensim_analogies(gkv, path, restrict_vocab=restrict, case_insensitive=case_insensitive)
    assert_same_analogies(ours, theirs)
    assert len(ours["sections"]) == 14 and ours["skipped"] > 0


def planted_questions(tmp_path, gkv):
    """Questions whose expected answer is gensim's 1st-4th candidate, written in random case, plus
    repeated words, out-of-vocabulary words, malformed lines and a section name used twice; and
    "x cat dog y" traps, where (case-insensitive) all 5 candidates gensim reads are variants of
    question words: gensim then takes the 5th, and counts it right when it matches y."""
    rng = np.random.default_rng(1)
    lines = [": traps"]
    for _ in range(40):
        x, y = rng.choice(200, 2)
        lines.append(f"w{x} {rng.choice(['cat', 'CAT', 'caT'])} dOg {rng.choice(['cat', 'Dog', f'w{y}'])}")
    for section in ("first", "second", "first", "empty"):
        lines.append(f": {section}")
        for _ in range(60 if section != "empty" else 0):
            a, b, c = rng.choice(200, 3)
            a, b, c = f"w{a}", f"w{b}", f"w{c}" if rng.random() > 0.1 else f"w{a}"
            ranked = [w for w, _ in gkv.most_similar(positive=[b, c], negative=[a], topn=4)]
            quad = [w.upper() if rng.random() < 0.3 else w for w in (a, b, c, ranked[rng.integers(4)])]
            lines.append(" ".join(quad))
        lines += ["w1 w2 zzz w3", "w1 w2 w3", "w1 w2 w3 w4 w5", ""]
    path = tmp_path / "questions.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("restrict", [None, 200])
@pytest.mark.parametrize("case_insensitive", [True, False])
def test_analogies_with_case_variants_match_gensim(tmp_path, planted, restrict, case_insensitive):
    gkv, kv = planted
    path = planted_questions(tmp_path, gkv)
    ours = evaluate_word_analogies(kv, path, restrict_vocab=restrict, case_insensitive=case_insensitive)
    theirs = gensim_analogies(gkv, path, restrict_vocab=restrict or len(kv), case_insensitive=case_insensitive)
    assert_same_analogies(ours, theirs)
    assert ours["sections"]["first"]["correct"] > 3 and ours["sections"]["first"]["incorrect"] > 3
    assert ours["sections"]["empty"] == {"correct": 0, "incorrect": 0, "accuracy": 0}


@pytest.mark.parametrize("case_insensitive", [True, False])
def test_analogies_3cosmul_match_gensim_cosmul(tmp_path, planted, monkeypatch, case_insensitive):
    """gensim evaluates with 3CosAdd only; pointing its most_similar at most_similar_cosmul gives
    its 3CosMul answers (gensim's cosmul ignores restrict_vocab, so the whole vocabulary)."""
    gkv, kv = planted
    path = planted_questions(tmp_path, gkv)
    monkeypatch.setattr(gkv, "most_similar", gkv.most_similar_cosmul)
    ours = evaluate_word_analogies(kv, path, restrict_vocab=None, case_insensitive=case_insensitive, method="mul")
    theirs = gensim_analogies(gkv, path, restrict_vocab=len(kv), case_insensitive=case_insensitive)
    assert_same_analogies(ours, theirs)
    assert ours != evaluate_word_analogies(kv, path, restrict_vocab=None, case_insensitive=case_insensitive)


def assert_same_pairs(ours, theirs):
    """1e-4: the small model's cosines all lie in [0.99, 1], so float32 rounding of a cosine
    (6e-8, which gensim's BLAS and torch do differently) moves Pearson over 5 pairs by 3e-5."""
    pearson, spearman, oov = theirs
    assert ours["spearman"] == pytest.approx(spearman.statistic, abs=1e-4)
    assert ours["pearson"] == pytest.approx(pearson.statistic, abs=1e-4)
    assert ours["oov_ratio"] == pytest.approx(oov, abs=1e-12)


@pytest.mark.parametrize("name", ["wordsim353.tsv", "simlex999.txt"])
@pytest.mark.parametrize("restrict", [300_000, 500])
@pytest.mark.parametrize("case_insensitive", [True, False])
def test_word_pairs_match_gensim(trained, name, restrict, case_insensitive):
    gkv, kv = trained
    ours = evaluate_word_pairs(kv, datapath(name), restrict_vocab=restrict, case_insensitive=case_insensitive)
    theirs = gkv.evaluate_word_pairs(datapath(name), restrict_vocab=restrict, case_insensitive=case_insensitive)
    assert_same_pairs(ours, theirs)
    n_pairs = {"wordsim353.tsv": 353, "simlex999.txt": 999}[name]
    assert ours["pairs"] == round(n_pairs * (1 - ours["oov_ratio"] / 100)) and ours["pairs"] > 3


def test_word_pairs_with_case_variants_and_odd_lines_match_gensim(tmp_path, planted):
    gkv, kv = planted
    rng = np.random.default_rng(2)
    lines = ["# comment", "Word 1\tWord 2\tHuman (mean)", "word1\tword2\tSimLex999", "", "w1 w2 3.0"]
    for _ in range(80):
        a, b = (f"w{i}" if rng.random() < 0.7 else f"W{i}" for i in rng.choice(200, 2))
        lines.append(f"{a}\t{b}\t{rng.uniform(0, 10):.2f}")
    lines += ["w1\tzzz\t5.0", "zzz\tw1\t5.0"]
    path = tmp_path / "pairs.txt"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    for case_insensitive in (True, False):
        for restrict in (None, 100):
            ours = evaluate_word_pairs(kv, path, restrict_vocab=restrict, case_insensitive=case_insensitive)
            theirs = gkv.evaluate_word_pairs(str(path), restrict_vocab=restrict or len(kv),
                                             case_insensitive=case_insensitive)  # fmt: skip
            assert_same_pairs(ours, theirs)
            used = round(82 * (1 - ours["oov_ratio"] / 100))
            assert ours["pairs"] == used and used > 5


def test_shared_eval_files_match_gensim(trained, shared_data):
    gkv, kv = trained
    folder = shared_data / "eval"
    ours = evaluate_word_analogies(kv, folder / "questions-words.txt", restrict_vocab=1000)
    assert_same_analogies(ours, gensim_analogies(gkv, folder / "questions-words.txt", restrict_vocab=1000))
    for name in ("wordsim353.tsv", "simlex999.txt"):
        assert_same_pairs(evaluate_word_pairs(kv, folder / name), gkv.evaluate_word_pairs(str(folder / name)))


def test_bad_input(tmp_path, planted):
    _, kv = planted
    path = tmp_path / "q.txt"
    path.write_text("w1 w2 w3 w4\n: section\n")
    with pytest.raises(ValueError, match=r"q\.txt: line 1 comes before the first ': section' header"):
        evaluate_word_analogies(kv, path)
    with pytest.raises(ValueError, match="method: expected 'add' or 'mul'"):
        evaluate_word_analogies(kv, path, method="cos")
    with pytest.raises(ValueError, match="restrict_vocab: expected None or an int >= 1"):
        evaluate_word_analogies(kv, path, restrict_vocab=0)
    with pytest.raises(FileNotFoundError):
        evaluate_word_analogies(kv, tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError):
        evaluate_word_pairs(kv, tmp_path / "missing.txt")
    path.write_text("w1 w2 1.0\nzzz\tw1\t2.0\n")
    with pytest.raises(ValueError, match=r"q\.txt: no usable pair"):
        evaluate_word_pairs(kv, path)
