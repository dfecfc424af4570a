"""word2vec (Mikolov et al. 2013): skip-gram and CBOW, with negative sampling and/or
hierarchical softmax, trained the word2vec.c way — sparse in-place SGD on the rows a batch
touches, learning rate decayed linearly with the words read. ``train`` consumes batches (the C++
corpus engine's :class:`Word2VecBatches`, or any that yield the same fields); ``fit`` builds them
from a corpus first. Updates run in the fused Triton kernels on a GPU and in the pure-torch
references on CPU. On CPU ``fit`` trains through word2vec.c's own loop instead by default
(``engine="hogwild"``: C++ threads, one SGD step per example, see word2vec_hogwild.py); the
batch path (``engine="batches"``) stays its spec.

Parameter names and defaults follow gensim's ``Word2Vec`` (alpha and min_alpha follow
word2vec.c: 0.025 for skip-gram, 0.05 for CBOW, decayed to alpha * 1e-4; max_sentence_length
is word2vec.c's 1000 where gensim cuts at 10000); gensim options we do not have are refused
with what to use instead.

On CPU, the batch path runs torch with one intra-op thread: a batch's updates are small (1024 pairs x
d), so a second thread only adds synchronisation, and the corpus engine's threads need the
cores. CBOW on gensim's Lee corpus, 2-core machine: 1 thread 0.44 s/2 epochs, 2 threads 4.9 s.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from fastpretrain.atomic import atomic_path
from fastpretrain.checks import INT32_MAX, INT64_MAX, UINT64_MAX, check_flag, check_float, check_int, host_memory_bytes
from fastpretrain.data import Corpus, Vocab, Word2VecBatch, Word2VecBatches
from fastpretrain.data.corpus import Source
from fastpretrain.data.samplers import AliasSampler
from fastpretrain.data.word2vec_batches import MAX_BATCH_SIZE, MAX_NEGATIVE, MAX_WINDOW, MAX_WORKERS
from fastpretrain.models.keyed_vectors import KeyedVectors
from fastpretrain.models.word2vec_hogwild import train_hogwild
from fastpretrain.ops import word2vec_hs_update_, word2vec_ns_update_, word2vec_shared_ns_update_
from fastpretrain.progress import Progress

MAX_VECTOR_SIZE = 2**20

# gensim's Word2Vec arguments we do not take, with what to do instead.
GENSIM_ONLY = {
    "sentences": "pass the corpus to fit(): Word2Vec(...).fit(sentences)",
    "corpus_iterable": "pass the corpus to fit(): Word2Vec(...).fit(sentences)",
    "corpus_file": "pass the file's path to fit(): Word2Vec(...).fit('corpus.txt')",
    "trim_rule": "not supported: filter the token lists first, or use min_count / max_final_vocab",
    "null_word": "not supported",
    "hashfxn": "not needed: initialisation is seeded by seed alone",
    "batch_words": "use batch_size (pairs or examples per update)",
    "compute_loss": "the loss is always computed: see model.final_loss",
    "callbacks": "not supported: pass train() a generator over Word2VecBatches to run code between batches",
    "comment": "not supported",
}

@dataclass
class Word2VecConfig:
    vector_size: int = 100
    sg: int = 0
    hs: int = 0
    negative: int = 5
    window: int = 5
    sample: float = 1e-3
    min_count: int = 5
    max_final_vocab: int | None = None  # gensim's: the words counted more often than the (N+1)-th
    max_vocab_size: int | None = None  # gensim's scan-time pruning (see Corpus.build)
    sorted_vocab: int = 1
    alpha: float | None = None  # None: 0.025 for skip-gram, 0.05 for CBOW
    min_alpha: float | None = None  # None: alpha * 1e-4
    ns_exponent: float = 0.75
    cbow_mean: int = 1
    shrink_windows: int = 1  # 0: every center uses the full window
    max_sentence_length: int = 1000
    # HogBatch speed mode (skip-gram, negative sampling): a center's context rows share one
    # set of negatives, scored with matrix products; word2vec.c draws negatives per pair.
    shared_negatives: int = 0
    epochs: int = 5
    seed: int = 1
    workers: int = field(default_factory=lambda: min(os.cpu_count() or 1, MAX_WORKERS))
    # Pairs (skip-gram), examples (CBOW) or centers (HogBatch) per update; None: 1024 pairs on
    # CPU, where the reference applies a batch's updates all from the same weights (large
    # batches diverge), 65536 on a GPU.
    batch_size: int | None = None

    def __post_init__(self) -> None:
        for name, low, high in (("vector_size", 1, MAX_VECTOR_SIZE), ("window", 1, MAX_WINDOW),
                                ("min_count", 0, INT64_MAX), ("epochs", 1, INT32_MAX), ("workers", 1, MAX_WORKERS),
                                ("seed", 0, UINT64_MAX), ("max_sentence_length", 1, INT32_MAX),
                                ("negative", 0, MAX_NEGATIVE)):  # fmt: skip
            check_int(name, getattr(self, name), low, high)
        for name, low, high in (("batch_size", 1, MAX_BATCH_SIZE), ("max_final_vocab", 1, INT32_MAX),
                                ("max_vocab_size", 1, INT64_MAX)):  # fmt: skip
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low, high)
        for name in ("sg", "hs", "cbow_mean", "sorted_vocab", "shrink_windows", "shared_negatives"):
            check_flag(name, getattr(self, name))
        if not self.hs and not self.negative:
            raise ValueError("negative: 0 needs hs=1, otherwise nothing trains the output layer")
        if self.shared_negatives and not (self.sg and not self.hs and self.negative):
            raise ValueError("shared_negatives: 1 needs sg=1, hs=0 and negative > 0 (HogBatch skip-gram)")
        if self.alpha is None:
            self.alpha = 0.025 if self.sg else 0.05
        if check_float("alpha", self.alpha, 0.0) == 0:
            raise ValueError(f"alpha: expected a learning rate > 0, got {self.alpha}")
        if self.min_alpha is None:
            self.min_alpha = self.alpha * 1e-4
        if not 0 <= check_float("min_alpha", self.min_alpha, 0.0) <= self.alpha:
            raise ValueError(f"min_alpha: expected 0 <= min_alpha <= alpha ({self.alpha}), got {self.min_alpha}")
        check_float("sample", self.sample, 0.0, " (e.g. 1e-3; 0 disables)")
        check_float("ns_exponent", self.ns_exponent)


class Word2Vec:
    """word2vec model: ``Word2Vec(sg=1, negative=10).fit(corpus)``, then ``model.wv``."""

    def __init__(self, *, device: str | torch.device | None = None, engine: str = "auto", **config) -> None:
        for name in config:
            if name in GENSIM_ONLY:
                raise TypeError(f"{name}: gensim's option is not one of ours; {GENSIM_ONLY[name]}")
        known = {f.name for f in fields(Word2VecConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise TypeError(f"{unknown[0]}: not a word2vec option; expected one of {sorted(known)}")
        self.config = Word2VecConfig(**config)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.engine = self._engine(engine)
        if self.config.batch_size is None:  # CPU: about 1024 pairs (HogBatch counts centers)
            cpu = 1024 // (2 * self.config.window) if self.config.shared_negatives else 1024
            self.config.batch_size = 65536 if self.device.type == "cuda" else cpu
        self.vocab: Vocab | None = None
        self.syn0 = self.syn1neg = self.syn1 = None
        self.words_per_second = 0.0
        self.trained_fraction = 0.0  # of the last fit's words: below 1 after an interruption

    def _engine(self, engine: str) -> str:
        """How fit() trains: "hogwild" (word2vec.c's per-example loop in C++ threads, CPU only, not
        HogBatch) or "batches" (train() over Word2VecBatches); "auto": hogwild where it can run."""
        hogwild_ok = self.device.type == "cpu" and not self.config.shared_negatives
        if engine == "auto":
            return "hogwild" if hogwild_ok else "batches"
        if engine not in ("hogwild", "batches"):
            raise ValueError(f"engine: expected 'auto', 'hogwild' or 'batches', got {engine!r}")
        if engine == "hogwild" and not hogwild_ok:
            why = "shared_negatives=1 (HogBatch)" if self.config.shared_negatives else f"device {self.device}"
            raise ValueError(f"engine: 'hogwild' trains on the CPU without shared_negatives, not with {why}; "
                             "use engine='batches'")  # fmt: skip
        return engine

    def build_vocab(self, corpus: Corpus | Source) -> Corpus:
        """Encode the corpus (cached) and initialise the weights as word2vec.c does."""
        c = self.config
        if not isinstance(corpus, Corpus):
            corpus = Corpus.build(corpus, min_count=c.min_count, max_final_vocab=c.max_final_vocab,
                                  max_vocab_size=c.max_vocab_size, sorted_vocab=c.sorted_vocab)  # fmt: skip
        v, d = len(corpus.vocab), c.vector_size
        _check_weights_fit(v, d, 1 + bool(c.negative) + c.hs, self.device)
        self.vocab = corpus.vocab
        g = torch.Generator().manual_seed(c.seed)
        self.syn0 = ((torch.rand(v, d, generator=g) - 0.5) / d).to(self.device)
        self.syn1neg = torch.zeros(v, d, device=self.device) if c.negative else None
        self.syn1 = torch.zeros(max(v - 1, 1), d, device=self.device) if c.hs else None
        self._make_samplers()
        return corpus

    def _make_samplers(self) -> None:
        """The vocabulary's noise sampler and Huffman paths, on the training device."""
        c = self.config
        self._noise = AliasSampler(self.vocab.noise_distribution(c.ns_exponent), self.device, seed=c.seed)
        if c.hs:
            h = self.vocab.huffman()
            self._huffman = tuple(torch.from_numpy(x).to(self.device) for x in (h.codes, h.points, h.lengths))

    def fit(self, corpus: Corpus | Source, *, progress: bool = True) -> Word2Vec:
        """Train on ``corpus``: a :class:`Corpus`, a text file/directory path, or token lists. Builds
        the vocabulary, then trains through word2vec.c's loop (``engine="hogwild"``) or builds the
        batches the config asks for and :meth:`train` consumes them. An interrupt keeps what was
        trained (``trained_fraction`` says how much) and propagates."""
        c = self.config
        corpus = self.build_vocab(corpus)
        if self.engine == "hogwild":
            train_hogwild(self, corpus, progress=progress)
            return self
        batches = Word2VecBatches(  # negatives are drawn on the training device
            corpus, sg=0 if c.shared_negatives else c.sg, window=c.window, sample=c.sample, negative=0,
            batch_size=c.batch_size, epochs=c.epochs, workers=c.workers, seed=c.seed,
            max_sentence_length=c.max_sentence_length, shrink_windows=c.shrink_windows,
        )  # fmt: skip
        return self.train(batches, batches.total_words, progress=progress)

    def train(self, batches: Iterable[Word2VecBatch], total_words: int, *, progress: bool = True) -> Word2Vec:
        """SGD over ready-made batches, after :meth:`build_vocab`: :class:`Word2VecBatches`, or anything
        yielding its fields ``centers``, ``contexts``, ``lengths`` (CBOW and HogBatch) and ``progress``,
        the fraction of ``total_words`` (the words read in all epochs, before subsampling) read so far.
        alpha decays linearly with it, as in word2vec.c; negatives come from the model's own sampler,
        not from the batches. On KeyboardInterrupt the weights keep what was trained
        (``trained_fraction`` says how much) and the interrupt propagates."""
        if self.vocab is None:
            raise RuntimeError("train: the model has no vocabulary yet; call build_vocab() first, or fit()")
        total_words = check_int("total_words", total_words, 1, INT64_MAX)
        self.trained_fraction, self.final_loss = 0.0, math.nan
        start = time.perf_counter()
        threads = contextlib.nullcontext() if self.device.type == "cuda" else _torch_threads(1)
        with threads, Progress(total_words, "word2vec", "word", enabled=progress) as bar:
            self._loop(batches, total_words, bar)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.words_per_second = total_words / (time.perf_counter() - start)
        return self

    def _loop(self, batches: Iterable[Word2VecBatch], total_words: int, bar: Progress) -> None:
        """The SGD loop: alpha decays linearly with the words read, as in word2vec.c."""
        c = self.config
        loss_sum, seen = 0.0, 0
        done = 0.0  # fraction of words read before this batch
        for i, b in enumerate(batches):
            alpha = max(c.alpha * (1 - done), c.min_alpha)
            loss = self.step(b.centers, b.contexts, b.lengths, alpha)
            done = self.trained_fraction = b.progress
            if i % 50 == 0:  # reading the loss synchronises the GPU: not every batch
                mean = float(loss.mean())
                if not math.isfinite(mean) or mean > 1e4:
                    raise FloatingPointError(f"word2vec diverged at batch {i} (loss {mean:.3g}, alpha {alpha:.3g}): "
                                             f"lower alpha or batch_size (now {c.batch_size})")  # fmt: skip
                loss_sum, seen = loss_sum + mean, seen + 1
                self.final_loss = loss_sum / seen
                bar.set_postfix(loss=f"{self.final_loss:.3f}", lr=f"{alpha:.2e}")
            bar.update(round(b.progress * total_words) - bar.n)

    def step(self, centers, contexts, lengths, alpha: float) -> torch.Tensor:
        """One batch of SGD. Skip-gram feeds the context word's row to predict the center
        (word2vec.c's order); CBOW feeds the window. Returns the per-example loss."""
        skipgram = bool(self.config.sg and not self.config.shared_negatives)
        if np.ndim(contexts) != (1 if skipgram else 2):
            layout = "[N] for skip-gram" if skipgram else "[N, 2 * window] for CBOW and HogBatch"
            raise ValueError(f"contexts: expected {layout}, got shape {np.shape(contexts)}")
        targets = self._to_device(centers)
        inputs = self._to_device(contexts)
        if self.config.shared_negatives:  # CBOW-shaped batches: each center with its window
            negatives = self._noise(len(targets), self.config.negative)
            return word2vec_shared_ns_update_(self.syn0, self.syn1neg, inputs, targets, negatives, alpha)
        inputs = inputs.unsqueeze(1) if self.config.sg else inputs
        lengths = None if lengths is None else self._to_device(lengths)
        loss = torch.zeros(len(targets), device=self.device)
        if self.config.hs:
            loss += word2vec_hs_update_(self.syn0, self.syn1, inputs, targets, *self._huffman, alpha,
                                        lengths=lengths, cbow_mean=bool(self.config.cbow_mean))  # fmt: skip
        if self.config.negative:
            negatives = self._noise(len(targets), self.config.negative)
            loss += word2vec_ns_update_(self.syn0, self.syn1neg, inputs, targets, negatives, alpha,
                                        lengths=lengths, cbow_mean=bool(self.config.cbow_mean))  # fmt: skip
        return loss

    def _to_device(self, array) -> torch.Tensor:
        """numpy -> device. Through pinned memory on a GPU, so the copy is asynchronous and the
        host prepares the next batch while the kernels run."""
        t = torch.from_numpy(array)
        return t.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else t

    @property
    def wv(self) -> KeyedVectors:
        """The trained word vectors (the input embeddings), sharing memory with the model."""
        if self.vocab is None:
            raise RuntimeError("wv: the model is not trained yet; call fit() first")
        return KeyedVectors(self.vocab.words, self.syn0, self.vocab.counts)

    def save(self, path: str | os.PathLike) -> None:
        """Weights, vocabulary and config in one safetensors file, written atomically."""
        if self.vocab is None:
            raise RuntimeError("save: the model is not trained yet; call fit() first")
        path = Path(path)
        tensors = {"syn0": self.syn0.cpu(), "counts": torch.from_numpy(self.vocab.counts)}
        if self.syn1neg is not None:
            tensors["syn1neg"] = self.syn1neg.cpu()
        if self.syn1 is not None:
            tensors["syn1"] = self.syn1.cpu()
        meta = {"config": json.dumps(asdict(self.config)), "words": json.dumps(self.vocab.words)}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> Word2Vec:
        """Read a file written by :meth:`save`; ValueError naming the file when it is not one."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: model file {str(path)!r} does not exist")
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(path)
            model = cls(device=device, **json.loads(meta["config"]))
            model._set_weights(Vocab(json.loads(meta["words"]), tensors["counts"].numpy()), tensors)
        except (SafetensorError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a model written by Word2Vec.save ({type(e).__name__}: {e})") from None
        return model

    def _set_weights(self, vocab: Vocab, tensors: dict[str, torch.Tensor]) -> None:
        """Take saved weights after checking their shapes against the vocabulary and config."""
        c = self.config
        v, d = len(vocab), c.vector_size
        shapes = {"syn0": (v, d), "syn1neg": (v, d) if c.negative else None,
                  "syn1": (max(v - 1, 1), d) if c.hs else None}  # fmt: skip
        for name, shape in shapes.items():
            got = tuple(tensors[name].shape) if name in tensors else None
            if got != shape:
                raise ValueError(f"tensor {name!r}: expected shape {shape} for {v} words x {d}, found {got}")
        self.vocab = vocab
        self.syn0, self.syn1neg, self.syn1 = (tensors[n].to(self.device) if n in tensors else None for n in shapes)
        self._make_samplers()


@contextlib.contextmanager
def _torch_threads(n: int):
    """torch's intra-op thread count set to ``n`` for a block, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_weights_fit(v: int, d: int, matrices: int, device: torch.device) -> None:
    """ValueError naming vector_size when the weight matrices would not fit in the device's memory."""
    need = 4 * v * d * matrices
    if device.type == "cuda":
        have = torch.cuda.mem_get_info(device)[0]
    else:
        have = host_memory_bytes() // 2
    if need > have:
        raise ValueError(f"vector_size: {matrices} matrices of {v:,} words x {d} take {need / 2**30:.1f} GiB, more "
                         f"than the {have / 2**30:.1f} GiB available on {device}; lower vector_size or the vocabulary")
