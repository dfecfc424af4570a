"""``fastpretrain word2vec train|eval``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fastpretrain.checks import INT32_MAX, INT64_MAX, UINT64_MAX
from fastpretrain.cli.args import at_least

PROBES = ("king", "france", "computer", "war", "music", "water", "good", "three")
# Vector files by suffix: word2vec.c's binary, its text format (fastText's .vec is the same), our full model.
FORMATS = {".bin": "word2vec binary", ".txt": "word2vec text", ".vec": "word2vec text", ".safetensors": "full model"}
INTERRUPTED = 130  # the shell's exit status after Ctrl-C


def _vector_path(flag: str, path: str) -> Path:
    """``path`` if its suffix names one of FORMATS, else ValueError listing them."""
    out = Path(path)
    if out.suffix not in FORMATS:
        listed = ", ".join(f"{k} ({v})" for k, v in FORMATS.items())
        raise ValueError(f"{flag}: {str(out)!r} has suffix {out.suffix or '(none)'!r}; expected one of {listed}")
    return out


def _eval_files(args: argparse.Namespace) -> dict[str, Path]:
    """Evaluation sets: the paths given, else the copies inside gensim's wheel, if installed."""
    files = {"analogies": args.questions, "wordsim353": args.wordsim, "simlex999": args.simlex}
    flags = {"analogies": "--questions", "wordsim353": "--wordsim", "simlex999": "--simlex"}
    defaults = {"analogies": "questions-words.txt", "wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
    try:
        from gensim.test.utils import datapath
    except ImportError:
        datapath = None
    out = {}
    for name, given in files.items():
        if given and not Path(given).is_file():
            raise FileNotFoundError(f"{flags[name]}: {given!r} does not exist")
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
        print(
            f"analogies    {result['total']:.1%} of {sum(s['correct'] + s['incorrect'] for s in result['sections'].values())}"
            f" questions (restrict_vocab {args.restrict_vocab}, {result['skipped']} skipped as out of vocabulary)"
        )
    for name in ("wordsim353", "simlex999"):
        if name in files:
            try:
                result = evaluate_word_pairs(kv, files[name], restrict_vocab=args.restrict_vocab)
            except ValueError as e:  # no pair in the vocabulary: a small corpus, not a failed run
                print(f"{name:<12} skipped: {e}")
                continue
            print(f"{name:<12} Spearman {result['spearman']:.3f} ({result['oov_ratio']:.1f}% pairs out of vocabulary)")


def _word2vec_train(args: argparse.Namespace) -> None:
    """Train word vectors, save them, and show what they learned."""
    from fastpretrain.atomic import check_writable
    from fastpretrain.data import Corpus, resolve_corpus
    from fastpretrain.data.corpus import cache_root
    from fastpretrain.models.word2vec import Word2Vec

    out = check_writable("--out", _vector_path("--out", args.out))
    _eval_files(args)  # a missing evaluation file fails now, not after training
    cache = Path(args.cache_dir) if args.cache_dir else cache_root()
    config = {k: getattr(args, k) for k in ("sg", "hs", "negative", "vector_size", "window", "sample", "min_count",
              "max_final_vocab", "max_vocab_size", "alpha", "min_alpha", "epochs", "workers", "seed", "batch_size",
              "cbow_mean", "shrink_windows", "shared_negatives")}  # fmt: skip
    model = Word2Vec(device=args.device, **config)
    path = resolve_corpus(args.corpus, cache)
    print(f"training {'skip-gram' if args.sg else 'CBOW'} with {'hierarchical softmax' if args.hs else ''}"
          f"{' and ' if args.hs and args.negative else ''}{f'{args.negative} negatives' if args.negative else ''}"
          f" on {path} ({model.device})", flush=True)  # fmt: skip
    try:
        corpus = Corpus.build(path, min_count=args.min_count, max_final_vocab=args.max_final_vocab,
                              max_vocab_size=args.max_vocab_size, cache_dir=cache)  # fmt: skip
    except KeyboardInterrupt:
        _interrupted("while reading the corpus, before training: nothing was saved")
    try:
        model.fit(corpus)
    except KeyboardInterrupt:
        if model.trained_fraction == 0:
            _interrupted("before the first batch was trained: nothing was saved")
        _save(model, out)
        _interrupted(f"after {model.trained_fraction:.1%} of training: saved the partly trained vectors to {out}")
    _save(model, out)
    print(
        f"trained      {len(model.vocab):,} words x {args.vector_size} at {model.words_per_second / 1e6:.2f} M words/s,"
        f" final loss {model.final_loss:.3f}; saved {out}"
    )
    try:
        _report_vectors(model.wv, args)
    except KeyboardInterrupt:
        _interrupted(f"during the evaluation; the trained vectors are saved in {out}")


def _save(model, out: Path) -> None:
    """Write the vectors in the format the suffix names (atomically: a second Ctrl-C leaves no half file)."""
    try:
        if out.suffix == ".safetensors":
            model.save(out)
        else:
            model.wv.save_word2vec_format(out, binary=out.suffix == ".bin")
    except KeyboardInterrupt:
        _interrupted(f"while saving: nothing was written to {out}")


def _interrupted(what: str):
    """Say what Ctrl-C left behind and exit with the shell's status for it."""
    print(f"fastpretrain: interrupted {what}", file=sys.stderr)
    raise SystemExit(INTERRUPTED)


def _word2vec_eval(args: argparse.Namespace) -> None:
    """Evaluate saved word vectors (word2vec.c text/binary format or a .safetensors model)."""
    from fastpretrain.models.keyed_vectors import KeyedVectors
    from fastpretrain.models.word2vec import Word2Vec

    path = _vector_path("vectors", args.vectors)
    if not path.is_file():
        raise FileNotFoundError(f"vectors: {str(path)!r} does not exist")
    _eval_files(args)
    if path.suffix == ".safetensors":
        kv = Word2Vec.load(path).wv
    else:
        kv = KeyedVectors.load_word2vec_format(path, binary=path.suffix == ".bin")
    print(f"vectors      {len(kv):,} words x {kv.vector_size} from {path}")
    _report_vectors(kv, args)


def _add_eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--questions", help="Google analogy file (default: questions-words.txt from gensim's wheel)")
    p.add_argument("--wordsim", help="WordSim-353 pairs (default: wordsim353.tsv from gensim's wheel)")
    p.add_argument("--simlex", help="SimLex-999 pairs (default: simlex999.txt from gensim's wheel)")
    p.add_argument("--restrict-vocab", type=at_least(1), default=30000, help="evaluate the most frequent N words")


def add_commands(sub: argparse._SubParsersAction) -> None:
    w2v = sub.add_parser("word2vec", help="train and evaluate word2vec (skip-gram / CBOW)")
    actions = w2v.add_subparsers(title="actions", metavar="<action>", required=True)
    p = actions.add_parser("train", help="train word vectors on a corpus", description=_word2vec_train.__doc__)
    p.add_argument("--corpus", default="wiki206",
                   help="text file (.xz/.bz2/.gz), directory, 'wiki206' (default: gensim's wheel) or 'corpus20m' (the "
                        "shared data folder: $FASTPRETRAIN_DATA or ../shared/data)")  # fmt: skip
    p.add_argument("--out", default="vectors.bin",
                   help=".bin: word2vec binary, .txt or .vec: word2vec text, .safetensors: full model")  # fmt: skip
    p.add_argument("--sg", type=int, choices=(0, 1), default=0, help="1 skip-gram, 0 CBOW (default)")
    p.add_argument("--hs", type=int, choices=(0, 1), default=0, help="1 hierarchical softmax")
    p.add_argument("--negative", type=at_least(0, high=2**20), default=5, help="negatives per example (0 with --hs 1)")
    p.add_argument("--vector-size", type=at_least(1, high=2**20), default=100)
    p.add_argument("--window", type=at_least(1, high=2**20), default=5)
    p.add_argument("--shrink-windows", type=int, choices=(0, 1), default=1,
                   help="1: each center's window is b ~ U[1, window] (default); 0: always the full window")  # fmt: skip
    p.add_argument("--sample", type=at_least(0.0, float), default=1e-3, help="subsampling threshold (0 disables)")
    p.add_argument("--min-count", type=at_least(0, high=INT64_MAX), default=5)
    p.add_argument("--max-final-vocab", type=at_least(1, high=INT32_MAX), default=None,
                   help="keep at most N words, as gensim: those counted more often than the (N+1)-th")  # fmt: skip
    p.add_argument("--max-vocab-size", type=at_least(1, high=INT64_MAX), default=None,
                   help="gensim's scan-time pruning of rare words while counting (not the final size)")  # fmt: skip
    p.add_argument("--alpha", type=at_least(0.0, float), default=None, help="initial lr (0.025 sg, 0.05 CBOW)")
    p.add_argument("--min-alpha", type=at_least(0.0, float), default=None, help="final lr (default alpha * 1e-4)")
    p.add_argument("--cbow-mean", type=int, choices=(0, 1), default=1, help="1 mean of the context rows, 0 sum")
    p.add_argument(
        "--shared-negatives",
        type=int,
        choices=(0, 1),
        default=0,
        help="1: HogBatch skip-gram, a center's window shares its negatives (speed mode)",
    )
    p.add_argument("--epochs", type=at_least(1, high=INT32_MAX), default=5)
    p.add_argument("--workers", type=at_least(1, high=1024), default=min(os.cpu_count() or 1, 1024),
                   help="corpus engine threads")  # fmt: skip
    p.add_argument("--seed", type=at_least(0, high=UINT64_MAX), default=1)
    p.add_argument(
        "--batch-size",
        type=at_least(1, high=2**24),
        default=None,
        help="pairs or examples per update (default 1024 on CPU, 65536 on a GPU)",
    )
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument(
        "--cache-dir", default=None, help="cache root (default $FASTPRETRAIN_CACHE or ~/.cache/fastpretrain)"
    )
    _add_eval_flags(p)
    p.set_defaults(run=_word2vec_train)
    p = actions.add_parser("eval", help="evaluate saved vectors", description=_word2vec_eval.__doc__)
    p.add_argument("vectors", help="vectors.bin / .txt / .vec (word2vec.c formats) or model.safetensors")
    _add_eval_flags(p)
    p.set_defaults(run=_word2vec_eval)
