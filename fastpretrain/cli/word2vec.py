"""``fastpretrain word2vec train|eval``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastpretrain.cli.args import at_least
from fastpretrain.cli.device import pick_device
from fastpretrain.cli.errors import INTERRUPTED, loading
from fastpretrain.cli.flags import add_config_flags, config_values, flag_errors
from fastpretrain.models.word2vec import Word2VecConfig

PROBES = ("king", "france", "computer", "war", "music", "water", "good", "three")
# The main job's recipe: skip-gram, 10 epochs. On the default corpus (wiki206, 0.47M words) its
# neighbours make sense (france -> spain, russia, germany, italy; king -> sultan, ruler, lord) where
# gensim's CBOW defaults give france -> kabul, indian; the C++ CPU loop trains it in seconds.
RECIPE = {"sg": 1, "epochs": 10}
# Vector files by suffix: word2vec.c's binary, its text format (fastText's .vec is the same), our full model.
FORMATS = {".bin": "word2vec binary", ".txt": "word2vec text", ".vec": "word2vec text", ".safetensors": "full model"}
# Help of Word2VecConfig's fields, gensim's names and defaults.
CONFIG_HELP = {
    "vector_size": "dimensions of the vectors", "sg": "1 skip-gram, 0 CBOW", "hs": "1 hierarchical softmax, 0 none",
    "negative": "negatives per example (0 needs --hs 1)",
    "window": "maximum window; each center draws b ~ U[1, window] unless --shrink-windows 0",
    "sample": "subsampling threshold of frequent words (0 disables)",
    "min_count": "drop words seen fewer times (0 keeps every word)",
    "max_final_vocab": "keep at most N words, as gensim: those counted more often than the (N+1)-th (default: all)",
    "max_vocab_size": "gensim's scan-time pruning of rare words while counting, not the final size (default: none)",
    "sorted_vocab": "1: ids by decreasing count, as gensim; 0: in order of first count",
    "alpha": "initial learning rate (default 0.025 skip-gram, 0.05 CBOW)",
    "min_alpha": "final learning rate (default alpha * 1e-4)", "ns_exponent": "negatives drawn with count ** this",
    "cbow_mean": "1: mean of the context rows, 0: their sum",
    "shrink_windows": "1: each center's window is b ~ U[1, window]; 0: always the full window",
    "max_sentence_length": "longer sentences are cut into pieces of this many words (word2vec.c's 1000)",
    "shared_negatives": "1: HogBatch skip-gram, a center's window shares its negatives (speed mode)",
    "epochs": "passes over the corpus", "seed": "seed of the initial vectors and of the sampling",
    "workers": "corpus engine threads (default: one per CPU core, at most 1024)",
    "batch_size": "pairs or examples per update (default 1024 on CPU, 65536 on a GPU)",
}  # fmt: skip


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
        with loading("--questions", files["analogies"]):
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

    with flag_errors(Word2VecConfig):  # the flags' one check: the config's own
        model = Word2Vec(device=pick_device(args.device), **config_values(Word2VecConfig, args))
    c = model.config
    out = check_writable("--out", _vector_path("--out", args.out))
    _eval_files(args)  # a missing evaluation file fails now, not after training
    cache = Path(args.cache_dir) if args.cache_dir else cache_root()
    path = resolve_corpus(args.corpus, cache)
    print(f"training {'skip-gram' if c.sg else 'CBOW'} with {'hierarchical softmax' if c.hs else ''}"
          f"{' and ' if c.hs and c.negative else ''}{f'{c.negative} negatives' if c.negative else ''}"
          f" on {path} ({model.device})", flush=True)  # fmt: skip
    try:
        corpus = Corpus.build(path, min_count=c.min_count, max_final_vocab=c.max_final_vocab,
                              max_vocab_size=c.max_vocab_size, sorted_vocab=c.sorted_vocab,
                              cache_dir=cache)  # fmt: skip
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
        f"trained      {len(model.vocab):,} words x {c.vector_size} at {model.words_per_second / 1e6:.2f} M words/s,"
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
    with loading("vectors", path, "path"):
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
    p.add_argument("--restrict-vocab", type=at_least(1), default=30000,
                   help="evaluate the most frequent N words (default 30000)")  # fmt: skip


def add_commands(sub: argparse._SubParsersAction) -> None:
    w2v = sub.add_parser("word2vec", help="train and evaluate word2vec (skip-gram / CBOW)")
    actions = w2v.add_subparsers(title="actions", metavar="<action>", required=True)
    p = actions.add_parser("train", help="train word vectors on a corpus", description=_word2vec_train.__doc__)
    p.add_argument("--corpus", default="wiki206",
                   help="text file (.xz/.bz2/.gz), directory, 'wiki206' (default: gensim's wheel) or 'corpus20m' (the "
                        "shared data folder: $FASTPRETRAIN_DATA or ../shared/data)")  # fmt: skip
    p.add_argument("--out", default="vectors.bin",
                   help=".bin: word2vec binary (default vectors.bin), .txt or .vec: word2vec text, .safetensors: "
                        "full model")  # fmt: skip
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument(
        "--cache-dir", default=None, help="cache root (default $FASTPRETRAIN_CACHE or ~/.cache/fastpretrain)"
    )
    add_config_flags(p, Word2VecConfig, title="word2vec (gensim's names and defaults, but --sg 1 --epochs 10)",
                     defaults=RECIPE, helps=CONFIG_HELP)  # fmt: skip
    _add_eval_flags(p)
    p.set_defaults(run=_word2vec_train, parser=p)
    p = actions.add_parser("eval", help="evaluate saved vectors", description=_word2vec_eval.__doc__)
    p.add_argument("vectors", help="vectors.bin / .txt / .vec (word2vec.c formats) or model.safetensors")
    _add_eval_flags(p)
    p.set_defaults(run=_word2vec_eval, parser=p)
