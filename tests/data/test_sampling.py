"""The sampling distributions of the batch producer, checked statistically on large samples
against word2vec's formulas, and the Huffman codes against an optimal heapq construction."""

import heapq
import itertools

import numpy as np
import pytest
from scipy import stats

from fastpretrain import _C
from fastpretrain.data import Corpus, Vocab, Word2VecBatches

COUNTS = [40_000, 20_000, 8_000, 3_000, 1_000, 400, 100]  # word i occurs COUNTS[i] times


@pytest.fixture(scope="module")
def zipf_corpus(tmp_path_factory):
    """One text8-style line with word wI repeated COUNTS[I] times, shuffled."""
    tokens = np.repeat(np.arange(len(COUNTS)), COUNTS)
    np.random.default_rng(0).shuffle(tokens)
    path = tmp_path_factory.mktemp("zipf") / "text8"
    path.write_text(" ".join(f"w{i}" for i in tokens))
    corpus = Corpus.build(path, min_count=1, cache_dir=path.parent / "cache", progress=False)
    assert corpus.vocab.words == [f"w{i}" for i in range(len(COUNTS))]
    return corpus


def word2vec_keep(counts, sample):
    total = sum(counts)
    return np.array([min(1.0, ((c / (sample * total)) ** 0.5 + 1) * sample * total / c) for c in counts])


def test_subsampling_keep_rates_match_word2vec_formula(zipf_corpus):
    """Kept tokens per word over 4 epochs: each within 4.5 sigma of counts * keep(f)."""
    sample, epochs = 1e-2, 4
    keep = word2vec_keep(COUNTS, sample)
    assert 0.1 < keep[0] < 0.2 and keep[-1] == 1.0  # the formula bites on frequent words only
    np.testing.assert_allclose(zipf_corpus.vocab.keep_probabilities(sample), keep, rtol=1e-12)
    # CBOW makes exactly one example per kept token (sentences here are ~1000 words long).
    batches = Word2VecBatches(zipf_corpus, sg=0, window=2, sample=sample, negative=0, epochs=epochs, workers=2)
    kept = np.bincount(np.concatenate([b.centers for b in batches]), minlength=len(COUNTS))
    n = np.array(COUNTS) * epochs
    z = (kept - n * keep) / np.sqrt(n * keep * (1 - keep) + 1e-9)
    assert np.abs(z[keep < 1]).max() < 4.5, z
    # Words that are always kept: all of them, bar a final one-word sentence per worker and epoch.
    assert (n[keep == 1] - kept[keep == 1] <= 2 * epochs).all()


def observed_reaches(corpus, sentences, batches, sg):
    """Per interior center (window <= position < len - window) of every sentence, its reach: the
    largest distance to a context word, 0 when it made no example or pair at all. The words are
    distinct, so an id tells its sentence and position; also checks the contexts fill the window."""
    where = {corpus.vocab[w]: (i, j) for i, s in enumerate(sentences) for j, w in enumerate(s)}
    contexts: dict[int, list[int]] = {}
    for b in batches:
        rows = b.contexts[:, None] if sg else b.contexts
        lengths = np.ones(len(b), dtype=np.int64) if sg else b.lengths
        for center, row, k in zip(b.centers.tolist(), rows, lengths.tolist()):
            contexts.setdefault(center, []).extend(row[:k].tolist())
    window = batches.window
    reaches = []
    for i, s in enumerate(sentences):
        for j in range(window, len(s) - window):
            got = sorted(where[c][1] - j for c in contexts.get(corpus.vocab[s[j]], []))
            reach = max(map(abs, got), default=0)
            assert all(where[c][0] == i for c in contexts.get(corpus.vocab[s[j]], []))
            assert got == [d for d in range(-reach, reach + 1) if d], (i, j, got)  # the whole window, no gaps
            reaches.append(reach)
    return np.bincount(reaches, minlength=window + 1)


@pytest.mark.parametrize("sg", [0, 1])
def test_dynamic_window_is_uniform_on_1_to_window(sg):
    """Each center's window is b ~ U[1, window], read from the batches themselves: b = 0 (no example)
    never happens, b never exceeds window, and 1..window are equally likely."""
    window, length = 7, 60
    sentences = [[f"s{i}w{j}" for j in range(length)] for i in range(400)]
    corpus = Corpus.build(sentences, min_count=1)
    batches = Word2VecBatches(corpus, sg=sg, window=window, sample=0, negative=0, workers=2, batch_size=999)
    observed = observed_reaches(corpus, sentences, batches, sg)
    assert observed[0] == 0 and len(observed) == window + 1, observed
    assert observed.sum() == 400 * (length - 2 * window)
    assert stats.chisquare(observed[1:]).pvalue > 1e-4, observed


def test_full_windows_without_shrink_windows():
    window, length = 4, 30
    sentences = [[f"s{i}w{j}" for j in range(length)] for i in range(50)]
    corpus = Corpus.build(sentences, min_count=1)
    batches = Word2VecBatches(corpus, sg=0, window=window, sample=0, negative=0, shrink_windows=0)
    observed = observed_reaches(corpus, sentences, batches, 0)
    assert observed.tolist() == [0] * window + [50 * (length - 2 * window)]


def test_negatives_follow_unigram_to_the_075(zipf_corpus):
    batches = Word2VecBatches(zipf_corpus, sg=1, window=5, sample=0, negative=10, workers=2)
    negatives = np.concatenate([b.negatives.ravel() for b in batches])
    assert len(negatives) > 1_000_000
    observed = np.bincount(negatives, minlength=len(COUNTS))
    expected = np.array(COUNTS, dtype=float) ** 0.75
    expected *= len(negatives) / expected.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-4
    wrong = np.array(COUNTS, dtype=float) * len(negatives) / sum(COUNTS)  # plain unigram
    assert stats.chisquare(observed, wrong).pvalue < 1e-10


@pytest.mark.parametrize("weights", [[1.0], [1, 2, 3, 4], [5, 0, 0, 1e-9, 7], np.random.default_rng(2).pareto(1, 997)])
def test_alias_table_represents_weights_exactly(weights):
    """The probability each column assigns to each outcome sums to the normalised weight."""
    weights = np.asarray(weights, dtype=np.float64)
    thresholds, aliases = _C.alias_table(weights)
    n = len(weights)
    accept = thresholds / 2.0**32
    implied = accept.copy()
    np.add.at(implied, aliases, 1 - accept)
    np.testing.assert_allclose(implied / n, weights / weights.sum(), atol=1e-9)


def test_sentences_are_cut_at_1000_kept_words(tmp_path):
    """With distinct words (ids = positions), no context crosses a 1000-word boundary or a line."""
    n = 2500
    words = [f"w{i:05d}" for i in range(n)]
    (tmp_path / "text").write_text(" ".join(words[:2200]) + "\n" + " ".join(words[2200:]))
    corpus = Corpus.build(tmp_path / "text", min_count=1, sorted_vocab=0)
    batches = Word2VecBatches(corpus, sg=0, window=5, sample=0, negative=0, workers=1)
    examples = [(c, ctx[:k]) for b in batches for c, ctx, k in zip(b.centers, b.contexts, b.lengths)]
    assert [c for c, _ in examples] == list(range(n))
    block = lambda i: (i // 1000, 0) if i < 2200 else (2, 1)  # noqa: E731  (sentence of position i)
    for center, contexts in examples:
        assert all(block(int(c)) == block(int(center)) and 0 < abs(int(c) - int(center)) <= 5 for c in contexts)
    assert max(examples[999][1]) == 998 and min(examples[1000][1]) == 1001
    assert max(examples[2199][1]) == 2198 and min(examples[2200][1]) == 2201


def heapq_huffman_cost(counts):
    """Optimal weighted code length: the sum of all merged weights."""
    heap = list(counts)
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        cost += merged
        heapq.heappush(heap, merged)
    return cost


@pytest.mark.parametrize(
    "counts",
    [[7, 3], [5, 3, 2, 1, 1], [1] * 17, [int(1e6 / (r + 1)) for r in range(1000)],
     np.random.default_rng(3).integers(1, 10**9, 4097).tolist(), [2**i for i in range(40)]],
)  # fmt: skip
def test_huffman_is_an_optimal_prefix_code(counts):
    v = len(counts)
    h = Vocab([f"w{i}" for i in range(v)], np.array(counts)).huffman()
    codes = ["".join(map(str, h.codes[w, : h.lengths[w]])) for w in range(v)]
    assert all(len(c) >= 1 for c in codes)
    ordered = sorted(codes)
    assert not any(b.startswith(a) for a, b in itertools.pairwise(ordered)), "not a prefix code"
    assert sum(2.0 ** -len(c) for c in codes) == pytest.approx(1.0)  # a full binary tree
    assert int(np.dot(h.lengths, counts)) == heapq_huffman_cost(counts)
    # Inner nodes: the root is V-2, and each code prefix names exactly one node.
    node_of_prefix = {}
    for w, code in enumerate(codes):
        assert h.points[w, 0] == v - 2
        assert (h.points[w, len(code) :] == -1).all() and (h.codes[w, len(code) :] == 0).all()
        for d in range(len(code)):
            assert node_of_prefix.setdefault(code[:d], h.points[w, d]) == h.points[w, d]
    assert sorted(node_of_prefix.values()) == list(range(v - 1))


def test_huffman_codes_do_not_depend_on_the_order_of_tied_words():
    """Each word keeps its code when words of equal count are listed in another order (gensim's
    order puts a document's rare words together; they must not become siblings for that)."""
    rng = np.random.default_rng(4)
    words = [f"w{i}" for i in range(300)]
    counts = rng.integers(1, 6, len(words))
    order = np.lexsort((rng.random(len(words)), -counts))
    a, b = Vocab(words, counts).huffman(), Vocab([words[i] for i in order], counts[order]).huffman()
    for new, old in enumerate(order):
        k = a.lengths[old]
        assert b.lengths[new] == k and (b.codes[new, :k] == a.codes[old, :k]).all()
        assert (b.points[new, :k] == a.points[old, :k]).all()


def test_huffman_of_one_word_is_empty():
    h = Vocab(["only"], np.array([3])).huffman()
    assert h.lengths.tolist() == [0] and h.codes.shape == (1, 0)
