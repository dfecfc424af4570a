"""The C++ batch producer against a slow, readable pure-Python replay of its algorithm.

On a tiny corpus with a fixed seed, every batch of ``Word2VecBatches`` must equal the
reference's draw for draw: same SplitMix64 streams, subsampling, dynamic windows, sentence
cuts, negatives, batch sealing, round-robin hand-out, epochs and progress.
"""

import itertools
import math
import random
from collections import deque

import numpy as np
import pytest

from fastpretrain import _C
from fastpretrain.data import Corpus, Word2VecBatches

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


class SplitMix64:
    """csrc/rng.h, in Python ints (mod 2^64)."""

    def __init__(self, seed):
        self.state = seed & M64

    def next(self):
        self.state = (self.state + GOLDEN) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) * 2.0**-53

    def below(self, n):
        return ((self.next() >> 32) * n) >> 32


def keep_rates(counts, sample):
    """word2vec.c's keep rate min(1, (sqrt(f/t) + 1) * t/f), t = sample * T; ones if sample == 0."""
    if sample == 0:
        return [1.0] * len(counts)
    t = sample * float(sum(counts))
    return [min(1.0, (math.sqrt(f / t) + 1.0) * t / f) for f in map(float, counts)]


def worker_batches(ids, keep, noise, o, w):
    """All batches of worker w, as (examples, words_done, epoch), and the words it read; an
    example is (center, contexts, negatives): one context for skip-gram, up to 2*window for CBOW."""
    rng = SplitMix64(o["seed"] + GOLDEN * (w + 1))
    threshold, alias = noise
    lo, hi = len(ids) * w // o["workers"], len(ids) * (w + 1) // o["workers"]
    batches, examples, words_read = [], [], 0

    def add(center, contexts, epoch):
        negatives = []
        for _ in range(o["negative"]):  # one 64-bit draw per negative: column, then coin
            r = rng.next()
            i = ((r >> 32) * len(threshold)) >> 32
            negatives.append(i if (r & 0xFFFFFFFF) < threshold[i] else alias[i])
        examples.append((center, contexts, negatives))
        if len(examples) == o["batch_size"]:
            batches.append((examples.copy(), words_read, epoch))
            examples.clear()

    for epoch in range(o["epochs"]):
        pos = lo
        while pos < hi:
            sentence = []  # read up to max_sentence_length kept words, stop at a line end
            while pos < hi and len(sentence) < o["max_sentence_length"]:
                id_, pos = ids[pos], pos + 1
                if id_ == -1:
                    if sentence:
                        break
                    continue
                words_read += 1
                if keep[id_] < 1.0 and keep[id_] < rng.uniform():
                    continue  # subsampled away
                sentence.append(id_)
            for i, center in enumerate(sentence):
                shrink = rng.below(o["window"]) if o["shrink_windows"] else 0  # drawn even if no context results
                reach = o["window"] - shrink
                a, b = max(0, i - reach), min(len(sentence) - 1, i + reach)
                context = [sentence[j] for j in range(a, b + 1) if j != i]
                if o["sg"]:
                    for c in context:
                        add(center, [c], epoch)
                elif context:
                    add(center, context, epoch)
    if examples:  # the last, partial batch is sealed after all epochs
        batches.append((examples, words_read, o["epochs"] - 1))
    if batches:  # the last batch is stamped with every word read, even those after it filled
        batches[-1] = (batches[-1][0], words_read, o["epochs"] - 1)
    return batches, words_read


def reference_batches(corpus, o):
    """Every worker's batches, handed out round-robin as Producer::next does, as dicts."""
    ids = corpus.ids.tolist()
    keep = keep_rates(corpus.vocab.counts.tolist(), o["sample"])
    threshold, alias = _C.alias_table(corpus.vocab.noise_distribution(0.75))
    noise = (threshold.tolist(), alias.tolist())
    made = [worker_batches(ids, keep, noise, o, w) for w in range(o["workers"])]
    queues, words_read = [deque(m[0]) for m in made], [m[1] for m in made]
    active, cursor, consumed = list(range(o["workers"])), 0, [0] * o["workers"]
    total = o["epochs"] * int((corpus.ids >= 0).sum())
    while active:
        cursor %= len(active)
        w = active[cursor]
        if not queues[w]:
            consumed[w] = words_read[w]  # counts a worker that made no batch at all
            del active[cursor]  # the cursor now points at the next worker
            continue
        examples, consumed[w], epoch = queues[w].popleft()
        cursor += 1
        width = 1 if o["sg"] else 2 * o["window"]
        contexts = np.full((len(examples), width), -1, dtype=np.int32)
        for k, (_, ctx, _) in enumerate(examples):
            contexts[k, : len(ctx)] = ctx
        yield dict(
            centers=np.array([e[0] for e in examples], dtype=np.int32),
            contexts=contexts.ravel() if o["sg"] else contexts,
            lengths=None if o["sg"] else np.array([len(e[1]) for e in examples], dtype=np.int32),
            negatives=np.array([e[2] for e in examples], dtype=np.int32) if o["negative"] else None,
            epoch=epoch,
            progress=sum(consumed) / total,
        )


@pytest.fixture(scope="module")
def corpus():
    """40 sentences of 1..12 words from a Zipf-like 12-word vocabulary, some (and the last) of 1 word."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(12)]
    weights = [1 / (i + 1) ** 1.2 for i in range(12)]
    lengths = [1, 1, 2, 12] + [rng.randint(1, 9) for _ in range(35)] + [1]
    return Corpus.build([rng.choices(words, weights, k=n) for n in lengths], min_count=1)


LAYOUTS = [  # workers, batch_size, window, max_sentence_length, epochs, seed, shrink_windows
    (1, 7, 2, 1000, 1, 1, 1),
    (3, 7, 3, 4, 2, 12345, 1),
    (3, 5, 2, 1000, 2, 2**64 - 1, 1),
    (2, 1, 1, 3, 1, 7, 1),
    (3, 10_000, 2, 1000, 2, 3, 1),  # one partial batch per worker, sealed at the very end
    (2, 6, 3, 1000, 2, 9, 0),  # full windows: no draw per center
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("sg,negative,sample", list(itertools.product([1, 0], [3, 0], [1e-2, 0.0])))
def test_producer_matches_reference(corpus, layout, sg, negative, sample):
    """Every array element, epoch and progress of every batch equals the Python replay."""
    workers, batch_size, window, max_sentence_length, epochs, seed, shrink_windows = layout
    o = dict(sg=sg, window=window, sample=sample, negative=negative, batch_size=batch_size, epochs=epochs,
             workers=workers, seed=seed, max_sentence_length=max_sentence_length, shrink_windows=shrink_windows)  # fmt: skip
    if sample:
        assert min(corpus.vocab.keep_probabilities(sample)) < 0.5  # subsampling really drops words
    expected = list(reference_batches(corpus, o))
    got = list(Word2VecBatches(corpus, **o))
    assert len(got) == len(expected) > 1
    for k, (b, e) in enumerate(zip(got, expected)):
        for name in ("centers", "contexts", "lengths", "negatives"):
            actual = getattr(b, name)
            if e[name] is None:
                assert actual is None, (k, name)
            else:
                assert actual.dtype == np.int32, (k, name)
                np.testing.assert_array_equal(actual, e[name], err_msg=f"batch {k}: {name}")
        assert b.epoch == e["epoch"], k
        np.testing.assert_allclose(b.progress, e["progress"], rtol=1e-12, err_msg=f"batch {k}")


# 10_000: each worker's only batch is sealed after its last word; 1: the last batch fills
# before the corpus's final one-word sentence, which makes no pair but must count.
@pytest.mark.parametrize("batch_size", [10_000, 1])
def test_progress_ends_at_one(corpus, batch_size):
    """After the last batch, progress accounts for every word of every epoch."""
    assert corpus.ids[-3] == -1 and corpus.ids[-2] >= 0  # the corpus ends with a 1-word line
    batches = Word2VecBatches(corpus, sg=1, window=2, sample=0, negative=0, batch_size=batch_size, workers=3)
    assert list(batches)[-1].progress == 1.0


def test_keep_probabilities_match_formula(corpus):
    """The C++ keep rates are word2vec.c's formula; the replay uses the Python version."""
    counts = corpus.vocab.counts.astype(np.float64)
    t = 1e-2 * counts.sum()
    formula = np.minimum(1.0, (np.sqrt(counts / t) + 1) * t / counts)
    np.testing.assert_allclose(corpus.vocab.keep_probabilities(1e-2), formula, rtol=1e-12)
    np.testing.assert_allclose(corpus.vocab.keep_probabilities(1e-2), keep_rates(counts, 1e-2), rtol=1e-12)
    np.testing.assert_array_equal(corpus.vocab.keep_probabilities(0.0), 1.0)


def as_tuples(batches):
    return [(b.centers.tolist(), b.contexts.tolist(), b.negatives.tolist(), b.epoch, b.progress) for b in batches]


def test_threads_are_deterministic_and_seed_matters(corpus):
    """Two passes over one object with 3 threads agree exactly; another seed differs."""
    kw = dict(sg=1, window=2, sample=1e-2, negative=3, batch_size=7, epochs=2, workers=3)
    batches = Word2VecBatches(corpus, seed=5, **kw)
    first = as_tuples(batches)
    assert first == as_tuples(batches)
    assert first != as_tuples(Word2VecBatches(corpus, seed=6, **kw))
