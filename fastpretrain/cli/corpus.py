"""``fastpretrain corpus``: vocabulary statistics and batch throughput of the corpus engine."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from fastpretrain.checks import INT32_MAX, INT64_MAX, UINT64_MAX
from fastpretrain.cli.args import at_least
from fastpretrain.progress import Progress


def _corpus(args: argparse.Namespace) -> None:
    """Corpus engine statistics and batch throughput on a corpus."""
    from fastpretrain.data import Corpus, Word2VecBatches, resolve_corpus
    from fastpretrain.data.corpus import cache_root

    cache = Path(args.cache_dir) if args.cache_dir else cache_root()
    path = resolve_corpus(args.corpus, cache)
    t0 = time.perf_counter()
    corpus = Corpus.build(path, min_count=args.min_count, max_final_vocab=args.max_final_vocab,
                          max_vocab_size=args.max_vocab_size, cache_dir=cache)  # fmt: skip
    load_s = time.perf_counter() - t0
    batches = Word2VecBatches(
        corpus, sg=args.sg, window=args.window, sample=args.sample, negative=args.negative,
        batch_size=args.batch_size, epochs=args.epochs, workers=args.workers, seed=args.seed,
        shrink_windows=args.shrink_windows,
    )  # fmt: skip
    vocab = corpus.vocab
    lengths = vocab.huffman().lengths
    keep = vocab.keep_probabilities(args.sample)
    kept = float((keep * vocab.counts).sum() / vocab.counts.sum())
    print(f"corpus       {path}")
    print(f"cache        {corpus.path}  ({load_s:.2f} s to read or encode)")
    print(f"tokens       {corpus.n_words:,} in vocabulary, {len(vocab):,} words with count >= {args.min_count}")
    print(f"top words    {', '.join(f'{w} ({c:,})' for w, c in zip(vocab.words[: args.top], vocab.counts.tolist()))}")
    print(f"subsampling  sample={args.sample:g} keeps {kept:.1%} of the tokens in expectation")
    print(f"huffman      code length mean {np.average(lengths, weights=vocab.counts):.2f}, max {lengths.max()}")

    examples = 0
    t0 = time.perf_counter()
    with Progress(batches.total_words, "batches", "word") as bar:
        for b in batches:
            examples += len(b)
            bar.update(round(b.progress * batches.total_words) - bar.n)
    seconds = time.perf_counter() - t0
    kind = "skip-gram pairs" if args.sg else "CBOW examples"
    print(
        f"throughput   {batches.total_words / seconds / 1e6:.1f} M words/s, {examples / seconds / 1e6:.1f} M {kind}/s "
        f"({args.workers} workers, window {args.window}, {args.negative} negatives, {args.epochs} epochs, {seconds:.2f} s)"
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="vocabulary statistics and batch throughput of the C++ corpus engine",
                       description=_corpus.__doc__)  # fmt: skip
    p.add_argument("--corpus", default="wiki206",
                   help="text file (.xz/.bz2/.gz too), directory of text files, 'wiki206' (default: the 206 "
                        "Wikipedia articles shipped in gensim's wheel) or 'corpus20m' (the shared data folder)")  # fmt: skip
    p.add_argument("--min-count", type=at_least(0, high=INT64_MAX), default=5,
                   help="drop words seen fewer times (default 5)")  # fmt: skip
    p.add_argument("--max-final-vocab", type=at_least(1, high=INT32_MAX), default=None,
                   help="keep at most N words, as gensim: those counted more often than the (N+1)-th")  # fmt: skip
    p.add_argument("--max-vocab-size", type=at_least(1, high=INT64_MAX), default=None,
                   help="gensim's scan-time pruning of rare words while counting (not the final size)")  # fmt: skip
    p.add_argument("--sg", type=int, choices=(0, 1), default=1, help="1 skip-gram pairs (default), 0 CBOW examples")
    p.add_argument("--window", type=at_least(1, high=2**20), default=5,
                   help="maximum window; each center draws b ~ U[1, window]")  # fmt: skip
    p.add_argument("--shrink-windows", type=int, choices=(0, 1), default=1,
                   help="0: every center uses the full window instead of b ~ U[1, window]")  # fmt: skip
    p.add_argument(
        "--sample", type=at_least(0.0, float), default=1e-3, help="frequent-word subsampling threshold (0 disables)"
    )
    p.add_argument("--negative", type=at_least(0, high=2**20), default=5,
                   help="negatives per pair or example (default 5)")  # fmt: skip
    p.add_argument("--batch-size", type=at_least(1, high=2**24), default=16384, help="pairs or examples per batch")
    p.add_argument("--epochs", type=at_least(1, high=INT32_MAX), default=1, help="passes over the corpus")
    p.add_argument("--workers", type=at_least(1, high=1024), default=min(os.cpu_count() or 1, 1024),
                   help="C++ producer threads (default: all cores)")  # fmt: skip
    p.add_argument("--seed", type=at_least(0, high=UINT64_MAX), default=1)
    p.add_argument("--top", type=at_least(0), default=10, help="how many of the most frequent words to list")
    p.add_argument(
        "--cache-dir", default=None, help="cache root (default $FASTPRETRAIN_CACHE or ~/.cache/fastpretrain)"
    )
    p.set_defaults(run=_corpus, parser=p)
