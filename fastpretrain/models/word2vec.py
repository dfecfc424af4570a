"""word2vec (Mikolov et al. 2013): skip-gram and CBOW, with negative sampling and/or
hierarchical softmax, trained the word2vec.c way — sparse in-place SGD on the rows a batch
touches, learning rate decayed linearly with the words read. Batches come from the C++ corpus
engine; updates run in the fused Triton kernels on a GPU and in the pure-torch references on CPU.

Parameter names and defaults follow gensim's ``Word2Vec`` (alpha and min_alpha follow
word2vec.c: 0.025 for skip-gram, 0.05 for CBOW, decayed to alpha * 1e-4).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from fastpretrain.atomic import atomic_path
from fastpretrain.checks import check_int
from fastpretrain.data import Corpus, Vocab, Word2VecBatches
from fastpretrain.data.corpus import Source
from fastpretrain.data.noise import AliasSampler
from fastpretrain.models.keyed_vectors import KeyedVectors
from fastpretrain.ops import word2vec_hs_update_, word2vec_ns_update_, word2vec_shared_ns_update_


@dataclass
class Word2VecConfig:
    vector_size: int = 100
    sg: int = 0
    hs: int = 0
    negative: int = 5
    window: int = 5
    sample: float = 1e-3
    min_count: int = 5
    max_vocab_size: int | None = None
    alpha: float | None = None  # None: 0.025 for skip-gram, 0.05 for CBOW
    min_alpha: float | None = None  # None: alpha * 1e-4
    ns_exponent: float = 0.75
    cbow_mean: int = 1
    # HogBatch speed mode (skip-gram, negative sampling): a center's context rows share one
    # set of negatives, scored with matrix products; word2vec.c draws negatives per pair.
    shared_negatives: int = 0
    epochs: int = 5
    seed: int = 1
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Pairs (skip-gram), examples (CBOW) or centers (HogBatch) per update; None: 1024 pairs on
    # CPU, where the reference applies a batch's updates all from the same weights (large
    # batches diverge), 65536 on a GPU.
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.alpha is None:
            self.alpha = 0.025 if self.sg else 0.05
        if self.min_alpha is None:
            self.min_alpha = self.alpha * 1e-4
        for name in ("vector_size", "window", "min_count", "epochs", "workers", "batch_size"):
            if getattr(self, name) is not None or name != "batch_size":
                check_int(name, getattr(self, name), 1)
        if self.sg not in (0, 1) or self.hs not in (0, 1) or self.cbow_mean not in (0, 1):
            raise ValueError(f"sg, hs, cbow_mean: expected 0 or 1, got {self.sg}, {self.hs}, {self.cbow_mean}")
        check_int("negative", self.negative, 0)
        if not self.hs and not self.negative:
            raise ValueError("negative: 0 needs hs=1, otherwise nothing trains the output layer")
        hogbatch_ok = self.sg and not self.hs and self.negative
        if self.shared_negatives not in (0, 1) or (self.shared_negatives and not hogbatch_ok):
            raise ValueError("shared_negatives: 1 needs sg=1, hs=0 and negative > 0 (HogBatch skip-gram)")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"alpha: expected a learning rate > 0, got {self.alpha}")
        if not (math.isfinite(self.min_alpha) and 0 <= self.min_alpha <= self.alpha):
            raise ValueError(f"min_alpha: expected 0 <= min_alpha <= alpha, got {self.min_alpha}")
        if not self.sample >= 0:
            raise ValueError(f"sample: expected a threshold >= 0, got {self.sample}")


class Word2Vec:
    """word2vec model: ``Word2Vec(sg=1, negative=10).fit(corpus)``, then ``model.wv``."""

    def __init__(self, *, device: str | torch.device | None = None, **config) -> None:
        self.config = Word2VecConfig(**config)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.config.batch_size is None:  # CPU: about 1024 pairs (HogBatch counts centers)
            cpu = 1024 // (2 * self.config.window) if self.config.shared_negatives else 1024
            self.config.batch_size = 65536 if self.device.type == "cuda" else cpu
        self.vocab: Vocab | None = None
        self.syn0 = self.syn1neg = self.syn1 = None
        self.words_per_second = 0.0

    def build_vocab(self, corpus: Corpus | Source) -> Corpus:
        """Encode the corpus (cached) and initialise the weights as word2vec.c does."""
        c = self.config
        if not isinstance(corpus, Corpus):
            corpus = Corpus.build(corpus, min_count=c.min_count, max_vocab_size=c.max_vocab_size)
        self.vocab = corpus.vocab
        v, d = len(self.vocab), c.vector_size
        g = torch.Generator().manual_seed(c.seed)
        self.syn0 = ((torch.rand(v, d, generator=g) - 0.5) / d).to(self.device)
        self.syn1neg = torch.zeros(v, d, device=self.device) if c.negative else None
        self._noise = AliasSampler(self.vocab.noise_distribution(c.ns_exponent), self.device, seed=c.seed)
        if c.hs:
            huffman = self.vocab.huffman()
            self.syn1 = torch.zeros(max(v - 1, 1), d, device=self.device)
            self._huffman = tuple(torch.from_numpy(x).to(self.device) for x in (huffman.codes, huffman.points, huffman.lengths))
        return corpus

    def fit(self, corpus: Corpus | Source, *, progress: bool = True) -> Word2Vec:
        """Train on ``corpus``: a :class:`Corpus`, a text file/directory path, or token lists."""
        c = self.config
        corpus = self.build_vocab(corpus)
        batches = Word2VecBatches(  # negatives are drawn on the training device
            corpus, sg=0 if c.shared_negatives else c.sg, window=c.window, sample=c.sample, negative=0,
            batch_size=c.batch_size, epochs=c.epochs, workers=c.workers, seed=c.seed,
        )  # fmt: skip
        start, loss_sum, seen = time.perf_counter(), 0.0, 0
        bar = tqdm(total=batches.total_words, unit="word", unit_scale=True, desc="word2vec", disable=None if progress else True)
        done = 0.0  # fraction of words read before this batch, as word2vec.c decays alpha
        for i, b in enumerate(batches):
            alpha = max(c.alpha * (1 - done), c.min_alpha)
            done = b.progress
            loss = self.step(b.centers, b.contexts, b.lengths, alpha)
            if i % 50 == 0:  # reading the loss synchronises the GPU: not every batch
                mean = float(loss.mean())
                if not math.isfinite(mean) or mean > 1e4:
                    raise FloatingPointError(f"word2vec diverged at batch {i} (loss {mean:.3g}, alpha {alpha:.3g}): "
                                             f"lower alpha or batch_size (now {c.batch_size})")  # fmt: skip
                loss_sum, seen = loss_sum + mean, seen + 1
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", lr=f"{alpha:.2e}", refresh=False)
            bar.update(round(b.progress * batches.total_words) - bar.n)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        bar.close()
        self.words_per_second = batches.total_words / (time.perf_counter() - start)
        self.final_loss = loss_sum / max(seen, 1)
        return self

    def step(self, centers, contexts, lengths, alpha: float) -> torch.Tensor:
        """One batch of SGD. Skip-gram feeds the context word's row to predict the center
        (word2vec.c's order); CBOW feeds the window. Returns the per-example loss."""
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
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: model file {str(path)!r} does not exist")
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        tensors = load_file(path)
        model = cls(device=device, **json.loads(meta["config"]))
        model.vocab = Vocab(json.loads(meta["words"]), tensors["counts"].numpy())
        model.syn0 = tensors["syn0"].to(model.device)
        model.syn1neg = tensors["syn1neg"].to(model.device) if "syn1neg" in tensors else None
        model._noise = AliasSampler(model.vocab.noise_distribution(model.config.ns_exponent), model.device)
        if "syn1" in tensors:
            model.syn1 = tensors["syn1"].to(model.device)
            h = model.vocab.huffman()
            model._huffman = tuple(torch.from_numpy(x).to(model.device) for x in (h.codes, h.points, h.lengths))
        return model
