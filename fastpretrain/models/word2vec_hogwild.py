"""word2vec on the CPU as word2vec.c trains it: C++ threads (``_C.Trainer``), one per slice of the
corpus, each applying every example's SGD step at once to the model's own tables (its torch CPU
tensors, shared without a copy), without locks (Hogwild), with the GIL released. The learning rate
decays linearly with the words all threads have read. One worker replays the examples and
negatives of ``Word2VecBatches(workers=1)`` with the same seed, so the batch path's reference
update, walked one example at a time, is its spec (tests/models/test_word2vec_hogwild.py).

Python polls the threads for the progress bar (words/s, loss, lr) and stops them cleanly on
Ctrl-C: the weights keep what was trained and the interrupt propagates.
"""

from __future__ import annotations

import math
import time

from fastpretrain import _C
from fastpretrain.data import Corpus
from fastpretrain.progress import Progress

POLL_MS = 200
# The loss of one example in LOSS_EVERY is summed: a log per target costs ~10% of a step (measured
# on skip-gram NS, d 100), and the bar's mean does not need them all.
LOSS_EVERY = 8


def isas() -> list[str]:
    """The instruction sets of the SGD step this CPU runs, best last ("baseline" always)."""
    return _C.sgd_isas()


def train_hogwild(model, corpus: Corpus, *, progress: bool = True, isa: str = "auto",
                  loss_every: int = LOSS_EVERY) -> None:  # fmt: skip
    """Train ``model`` (a :class:`~fastpretrain.models.Word2Vec` after ``build_vocab(corpus)``, on
    the CPU) in place; sets its ``trained_fraction``, ``final_loss`` and ``words_per_second``.
    ``isa`` picks the SGD step's build ("auto": the best this CPU runs, see :func:`isas`)."""
    c = model.config
    if corpus.n_words == 0:
        raise ValueError("corpus: holds no words")
    h = model.vocab.huffman() if c.hs else None
    trainer = _C.Trainer(
        corpus.ids, corpus.vocab.keep_probabilities(c.sample), corpus.vocab.noise_distribution(c.ns_exponent),
        model.syn0.numpy(), None if model.syn1neg is None else model.syn1neg.numpy(),
        None if model.syn1 is None else model.syn1.numpy(), *(None,) * 3 if h is None else (h.codes, h.points, h.lengths),
        skipgram=bool(c.sg), cbow_mean=bool(c.cbow_mean), window=c.window, negative=c.negative, epochs=c.epochs,
        workers=c.workers, seed=c.seed, alpha=c.alpha, min_alpha=c.min_alpha,
        max_sentence_length=c.max_sentence_length, shrink_windows=bool(c.shrink_windows), loss_every=loss_every,
        isa=isa,
    )  # fmt: skip
    total = c.epochs * trainer.words_per_epoch
    model.trained_fraction, model.final_loss = 0.0, math.nan
    start = time.perf_counter()
    with Progress(total, "word2vec", "word", enabled=progress) as bar:
        trainer.start()
        try:
            done = False
            while not done:
                done = trainer.wait(POLL_MS)
                _report(model, trainer, total, bar)
        finally:
            trainer.stop()
            _report(model, trainer, total, bar)
    model.words_per_second = total / (time.perf_counter() - start)


def _report(model, trainer, total: int, bar: Progress) -> None:
    """The threads' progress into the model's fields and the bar; FloatingPointError on divergence."""
    words, examples, loss, alpha = trainer.progress()
    model.trained_fraction = words / total
    if examples:
        model.final_loss = loss / examples
        if not math.isfinite(model.final_loss) or model.final_loss > 1e4:
            raise FloatingPointError(f"word2vec diverged (loss {model.final_loss:.3g}, alpha {alpha:.3g}): "
                                     f"lower alpha (now {model.config.alpha})")  # fmt: skip
        bar.set_postfix(loss=f"{model.final_loss:.3f}", lr=f"{alpha:.2e}")
    bar.update(words - bar.n)
