"""``fastpretrain`` command line: ``fastpretrain <command> [options]``; ``--help`` on each."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm


def _at_least(low: float, kind: type = int):
    """argparse type: a number >= low, so typos fail before a long corpus read."""

    def parse(text: str):
        value = kind(text)
        if not value >= low:
            raise argparse.ArgumentTypeError(f"expected a value >= {low}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _corpus(args: argparse.Namespace) -> None:
    """Corpus engine statistics and batch throughput on a corpus."""
    from fastpretrain.data import Corpus, Word2VecBatches, resolve_corpus
    from fastpretrain.data.corpus import cache_root

    cache = Path(args.cache_dir) if args.cache_dir else cache_root()
    path = resolve_corpus(args.corpus, cache)
    t0 = time.perf_counter()
    corpus = Corpus.build(path, min_count=args.min_count, max_vocab_size=args.max_vocab_size, cache_dir=cache)
    load_s = time.perf_counter() - t0
    batches = Word2VecBatches(
        corpus, sg=args.sg, window=args.window, sample=args.sample, negative=args.negative,
        batch_size=args.batch_size, epochs=args.epochs, workers=args.workers, seed=args.seed,
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
    with tqdm(total=batches.total_words, unit="word", unit_scale=True, desc="batches", disable=None) as bar:
        for b in batches:
            examples += len(b)
            bar.update(round(b.progress * batches.total_words) - bar.n)
    seconds = time.perf_counter() - t0
    kind = "skip-gram pairs" if args.sg else "CBOW examples"
    print(
        f"throughput   {batches.total_words / seconds / 1e6:.1f} M words/s, {examples / seconds / 1e6:.1f} M {kind}/s "
        f"({args.workers} workers, window {args.window}, {args.negative} negatives, {args.epochs} epochs, {seconds:.2f} s)"
    )


def _add_corpus(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="vocabulary statistics and batch throughput of the C++ corpus engine",
                       description=_corpus.__doc__)  # fmt: skip
    p.add_argument("--corpus", default="wiki206",
                   help="text file (.xz/.bz2/.gz too), directory of text files, or 'wiki206' (default: the "
                        "206 Wikipedia articles shipped in gensim's wheel)")  # fmt: skip
    p.add_argument("--min-count", type=_at_least(1), default=5, help="drop words seen fewer times (default 5)")
    p.add_argument("--max-vocab-size", type=_at_least(1), default=None, help="keep at most this many words")
    p.add_argument("--sg", type=int, choices=(0, 1), default=1, help="1 skip-gram pairs (default), 0 CBOW examples")
    p.add_argument("--window", type=_at_least(1), default=5, help="maximum window; each center draws b ~ U[1, window]")
    p.add_argument("--sample", type=_at_least(0.0, float), default=1e-3, help="frequent-word subsampling threshold (0 disables)")
    p.add_argument("--negative", type=_at_least(0), default=5, help="negatives per pair or example (default 5)")
    p.add_argument("--batch-size", type=_at_least(1), default=16384, help="pairs or examples per batch")
    p.add_argument("--epochs", type=_at_least(1), default=1, help="passes over the corpus")
    p.add_argument("--workers", type=_at_least(1), default=os.cpu_count() or 1, help="C++ producer threads (default: all cores)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--top", type=_at_least(0), default=10, help="how many of the most frequent words to list")
    p.add_argument("--cache-dir", default=None, help="cache root (default $FASTPRETRAIN_CACHE or ~/.cache/fastpretrain)")
    p.set_defaults(run=_corpus)


PROBES = ("king", "france", "computer", "war", "music", "water", "good", "three")


def _eval_files(args: argparse.Namespace) -> dict[str, Path]:
    """Evaluation sets: the paths given, else the copies inside gensim's wheel, if installed."""
    files = {"analogies": args.questions, "wordsim353": args.wordsim, "simlex999": args.simlex}
    defaults = {"analogies": "questions-words.txt", "wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
    try:
        from gensim.test.utils import datapath
    except ImportError:
        datapath = None
    out = {}
    for name, given in files.items():
        if given:
            out[name] = Path(given)
        elif datapath is not None:
            out[name] = Path(datapath(defaults[name]))
    return out


def _report_vectors(kv, args: argparse.Namespace) -> None:
    """Nearest neighbours of a few probe words, analogy accuracy and similarity correlations."""
    from fastpretrain.eval import evaluate_word_analogies, evaluate_word_pairs

    probes = [w for w in PROBES if w in kv][:4] or kv.words[100:104]
    for word in probes:
        neighbours = ", ".join(f"{w} {s:.2f}" for w, s in kv.most_similar(positive=[word], topn=6))
        print(f"  {word:>10} -> {neighbours}")
    files = _eval_files(args)
    if not files:
        print("no evaluation sets: pass --questions/--wordsim/--simlex, or pip install 'fastpretrain[data]'")
    if "analogies" in files:
        result = evaluate_word_analogies(kv, files["analogies"], restrict_vocab=args.restrict_vocab)
        print(f"analogies    {result['total']:.1%} of {sum(s['correct'] + s['incorrect'] for s in result['sections'].values())}"
              f" questions (restrict_vocab {args.restrict_vocab}, {result['skipped']} skipped as out of vocabulary)")
    for name in ("wordsim353", "simlex999"):
        if name in files:
            result = evaluate_word_pairs(kv, files[name], restrict_vocab=args.restrict_vocab)
            print(f"{name:<12} Spearman {result['spearman']:.3f} ({result['oov_ratio']:.1f}% pairs out of vocabulary)")


def _word2vec_train(args: argparse.Namespace) -> None:
    """Train word vectors, save them, and show what they learned."""
    from fastpretrain.data import Corpus, resolve_corpus
    from fastpretrain.data.corpus import cache_root
    from fastpretrain.models.word2vec import Word2Vec

    cache = Path(args.cache_dir) if args.cache_dir else cache_root()
    path = resolve_corpus(args.corpus, cache)
    config = {k: getattr(args, k) for k in ("sg", "hs", "negative", "vector_size", "window", "sample", "min_count",
              "max_vocab_size", "alpha", "min_alpha", "epochs", "workers", "seed", "batch_size", "cbow_mean",
              "shared_negatives")}  # fmt: skip
    model = Word2Vec(device=args.device, **config)
    print(f"training {'skip-gram' if args.sg else 'CBOW'} with {'hierarchical softmax' if args.hs else ''}"
          f"{' and ' if args.hs and args.negative else ''}{f'{args.negative} negatives' if args.negative else ''}"
          f" on {path} ({model.device})")  # fmt: skip
    model.fit(Corpus.build(path, min_count=args.min_count, max_vocab_size=args.max_vocab_size, cache_dir=cache))
    out = Path(args.out)
    if out.suffix == ".safetensors":
        model.save(out)
    else:
        model.wv.save_word2vec_format(out, binary=out.suffix == ".bin")
    print(f"trained      {len(model.vocab):,} words x {args.vector_size} at {model.words_per_second / 1e6:.2f} M words/s,"
          f" final loss {model.final_loss:.3f}; saved {out}")
    _report_vectors(model.wv, args)


def _word2vec_eval(args: argparse.Namespace) -> None:
    """Evaluate saved word vectors (word2vec.c text/binary format or a .safetensors model)."""
    from fastpretrain.models.keyed_vectors import KeyedVectors
    from fastpretrain.models.word2vec import Word2Vec

    path = Path(args.vectors)
    kv = Word2Vec.load(path).wv if path.suffix == ".safetensors" else KeyedVectors.load_word2vec_format(path)
    print(f"vectors      {len(kv):,} words x {kv.vector_size} from {path}")
    _report_vectors(kv, args)


def _add_eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--questions", help="Google analogy file (default: questions-words.txt from gensim's wheel)")
    p.add_argument("--wordsim", help="WordSim-353 pairs (default: wordsim353.tsv from gensim's wheel)")
    p.add_argument("--simlex", help="SimLex-999 pairs (default: simlex999.txt from gensim's wheel)")
    p.add_argument("--restrict-vocab", type=_at_least(1), default=30000, help="evaluate the most frequent N words")


def _add_word2vec(sub: argparse._SubParsersAction) -> None:
    w2v = sub.add_parser("word2vec", help="train and evaluate word2vec (skip-gram / CBOW)")
    actions = w2v.add_subparsers(title="actions", metavar="<action>", required=True)
    p = actions.add_parser("train", help="train word vectors on a corpus", description=_word2vec_train.__doc__)
    p.add_argument("--corpus", default="wiki206", help="text file (.xz/.bz2/.gz), directory, or 'wiki206' (default)")
    p.add_argument("--out", default="vectors.bin", help=".bin: word2vec.c binary, .txt: text, .safetensors: full model")
    p.add_argument("--sg", type=int, choices=(0, 1), default=0, help="1 skip-gram, 0 CBOW (default)")
    p.add_argument("--hs", type=int, choices=(0, 1), default=0, help="1 hierarchical softmax")
    p.add_argument("--negative", type=_at_least(0), default=5, help="negatives per example (0 with --hs 1)")
    p.add_argument("--vector-size", type=_at_least(1), default=100)
    p.add_argument("--window", type=_at_least(1), default=5)
    p.add_argument("--sample", type=_at_least(0.0, float), default=1e-3, help="subsampling threshold (0 disables)")
    p.add_argument("--min-count", type=_at_least(1), default=5)
    p.add_argument("--max-vocab-size", type=_at_least(1), default=None)
    p.add_argument("--alpha", type=_at_least(0.0, float), default=None, help="initial lr (0.025 sg, 0.05 CBOW)")
    p.add_argument("--min-alpha", type=_at_least(0.0, float), default=None, help="final lr (default alpha * 1e-4)")
    p.add_argument("--cbow-mean", type=int, choices=(0, 1), default=1, help="1 mean of the context rows, 0 sum")
    p.add_argument("--shared-negatives", type=int, choices=(0, 1), default=0,
                   help="1: HogBatch skip-gram, a center's window shares its negatives (speed mode)")
    p.add_argument("--epochs", type=_at_least(1), default=5)
    p.add_argument("--workers", type=_at_least(1), default=os.cpu_count() or 1, help="corpus engine threads")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch-size", type=_at_least(1), default=None,
                   help="pairs or examples per update (default 1024 on CPU, 65536 on a GPU)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--cache-dir", default=None, help="cache root (default $FASTPRETRAIN_CACHE or ~/.cache/fastpretrain)")
    _add_eval_flags(p)
    p.set_defaults(run=_word2vec_train)
    p = actions.add_parser("eval", help="evaluate saved vectors", description=_word2vec_eval.__doc__)
    p.add_argument("vectors", help="vectors.bin / vectors.txt (word2vec.c formats) or model.safetensors")
    _add_eval_flags(p)
    p.set_defaults(run=_word2vec_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastpretrain", description=__doc__)
    sub = parser.add_subparsers(title="commands", metavar="<command>", required=True)
    _add_word2vec(sub)
    _add_corpus(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, ImportError, FloatingPointError) as e:
        print(f"fastpretrain: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
