"""``fastpretrain word2vec train|eval``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fastpretrain.cli.args import at_least

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
        print(
            f"analogies    {result['total']:.1%} of {sum(s['correct'] + s['incorrect'] for s in result['sections'].values())}"
            f" questions (restrict_vocab {args.restrict_vocab}, {result['skipped']} skipped as out of vocabulary)"
        )
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
    print(
        f"trained      {len(model.vocab):,} words x {args.vector_size} at {model.words_per_second / 1e6:.2f} M words/s,"
        f" final loss {model.final_loss:.3f}; saved {out}"
    )
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
    p.add_argument("--restrict-vocab", type=at_least(1), default=30000, help="evaluate the most frequent N words")


def add_commands(sub: argparse._SubParsersAction) -> None:
    w2v = sub.add_parser("word2vec", help="train and evaluate word2vec (skip-gram / CBOW)")
    actions = w2v.add_subparsers(title="actions", metavar="<action>", required=True)
    p = actions.add_parser("train", help="train word vectors on a corpus", description=_word2vec_train.__doc__)
    p.add_argument("--corpus", default="wiki206", help="text file (.xz/.bz2/.gz), directory, or 'wiki206' (default)")
    p.add_argument("--out", default="vectors.bin", help=".bin: word2vec.c binary, .txt: text, .safetensors: full model")
    p.add_argument("--sg", type=int, choices=(0, 1), default=0, help="1 skip-gram, 0 CBOW (default)")
    p.add_argument("--hs", type=int, choices=(0, 1), default=0, help="1 hierarchical softmax")
    p.add_argument("--negative", type=at_least(0), default=5, help="negatives per example (0 with --hs 1)")
    p.add_argument("--vector-size", type=at_least(1), default=100)
    p.add_argument("--window", type=at_least(1), default=5)
    p.add_argument("--sample", type=at_least(0.0, float), default=1e-3, help="subsampling threshold (0 disables)")
    p.add_argument("--min-count", type=at_least(1), default=5)
    p.add_argument("--max-vocab-size", type=at_least(1), default=None)
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
    p.add_argument("--epochs", type=at_least(1), default=5)
    p.add_argument("--workers", type=at_least(1), default=os.cpu_count() or 1, help="corpus engine threads")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--batch-size",
        type=at_least(1),
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
    p.add_argument("vectors", help="vectors.bin / vectors.txt (word2vec.c formats) or model.safetensors")
    _add_eval_flags(p)
    p.set_defaults(run=_word2vec_eval)
