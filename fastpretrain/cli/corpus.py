"""``fastpretrain corpus``: vocabulary statistics and batch throughput of the corpus engine."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from fastpretrain.cli.args import at_least
from fastpretrain.cli.flags import add_config_flags, build_config
from fastpretrain.cli.word2vec import CONFIG_HELP
from fastpretrain.models.word2vec import Word2VecConfig
from fastpretrain.progress import Progress

# The Word2VecConfig fields that shape the vocabulary and the batch stream (the rest is the model's);
# the command's own defaults: skip-gram pairs in large batches over one epoch.
STREAM_FIELDS = ("min_count", "max_final_vocab", "max_vocab_size", "sg", "window", "shrink_windows", "sample",
                 "negative", "batch_size", "epochs", "workers", "seed")  # fmt: skip
DEFAULTS = {"sg": 1, "batch_size": 16384, "epochs": 1}
HELP = {**{k: v for k, v in CONFIG_HELP.items() if k in STREAM_FIELDS}, "sg": "1 skip-gram pairs, 0 CBOW examples",
        "negative": "negatives drawn per pair or example", "batch_size": "pairs or examples per batch",
        "seed": "seed of the sampling"}  # fmt: skip


def _corpus(args: argparse.Namespace) -> None:
    """Corpus engine statistics and batch throughput on a corpus."""
    from fastpretrain.data import Corpus, Word2VecBatches, resolve_corpus
    from fastpretrain.data.corpus import cache_root

    c = build_config(Word2VecConfig, args)
    cache = Path(args.cache_dir) if args.cache_dir else cache_root()
    path = resolve_corpus(args.corpus, cache)
    t0 = time.perf_counter()
    corpus = Corpus.build(path, min_count=c.min_count, max_final_vocab=c.max_final_vocab,
                          max_vocab_size=c.max_vocab_size, cache_dir=cache)  # fmt: skip
    load_s = time.perf_counter() - t0
    batches = Word2VecBatches(
        corpus, sg=c.sg, window=c.window, sample=c.sample, negative=c.negative, batch_size=c.batch_size,
        epochs=c.epochs, workers=c.workers, seed=c.seed, shrink_windows=c.shrink_windows,
    )  # fmt: skip
    vocab = corpus.vocab
    lengths = vocab.huffman().lengths
    keep = vocab.keep_probabilities(c.sample)
    kept = float((keep * vocab.counts).sum() / vocab.counts.sum())
    print(f"corpus       {path}")
    print(f"cache        {corpus.path}  ({load_s:.2f} s to read or encode)")
    print(f"tokens       {corpus.n_words:,} in vocabulary, {len(vocab):,} words with count >= {c.min_count}")
    print(f"top words    {', '.join(f'{w} ({c:,})' for w, c in zip(vocab.words[: args.top], vocab.counts.tolist()))}")
    print(f"subsampling  sample={c.sample:g} keeps {kept:.1%} of the tokens in expectation")
    print(f"huffman      code length mean {np.average(lengths, weights=vocab.counts):.2f}, max {lengths.max()}")

    examples = 0
    t0 = time.perf_counter()
    with Progress(batches.total_words, "batches", "word") as bar:
        for b in batches:
            examples += len(b)
            bar.update(round(b.progress * batches.total_words) - bar.n)
    seconds = time.perf_counter() - t0
    kind = "skip-gram pairs" if c.sg else "CBOW examples"
    print(
        f"throughput   {batches.total_words / seconds / 1e6:.1f} M words/s, {examples / seconds / 1e6:.1f} M {kind}/s "
        f"({c.workers} workers, window {c.window}, {c.negative} negatives, {c.epochs} epochs, {seconds:.2f} s)"
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="vocabulary statistics and batch throughput of the C++ corpus engine",
                       description=_corpus.__doc__)  # fmt: skip
    p.add_argument("--corpus", default="wiki206",
                   help="text file (.xz/.bz2/.gz too), directory of text files, 'wiki206' (default: the 206 "
                        "Wikipedia articles shipped in gensim's wheel) or 'corpus20m' (the shared data folder)")  # fmt: skip
    p.add_argument("--top", type=at_least(0), default=10, help="how many of the most frequent words to list")
    p.add_argument(
        "--cache-dir", default=None, help="cache root (default $FASTPRETRAIN_CACHE or ~/.cache/fastpretrain)"
    )
    exclude = tuple(f.name for f in dataclasses.fields(Word2VecConfig) if f.name not in STREAM_FIELDS)
    add_config_flags(p, Word2VecConfig, title="vocabulary and batches (word2vec's flags)", defaults=DEFAULTS,
                     helps=HELP, exclude=exclude)  # fmt: skip
    p.set_defaults(run=_corpus, parser=p)
