"""word2vec quality parity: our vectors vs gensim's, same corpus and hyperparameters.

    python benchmarks/quality_word2vec.py --engine gensim   # CPU, all cores (slow: minutes per method)
    python benchmarks/quality_word2vec.py --engine ours     # GPU when present
    python benchmarks/quality_word2vec.py --engine ours --corpus wiki206 --methods sg-ns,sg-ns-shared \
        --vector-size 100 --epochs 3 --sample 1e-3 --tag _hogbatch_wiki206   # HogBatch vs exact, CPU-sized

Each method (skip-gram / CBOW x negative sampling / hierarchical softmax) is trained on corpus20m
with the issue's settings (d 200, window 5, negative 10, sample 1e-4, min_count 5, 5 epochs) and
scored on Google analogies (restrict_vocab 30000), WordSim-353 and SimLex-999. Results go to
benchmarks/results/quality_word2vec_<engine>.json/.md, so the two engines can run on different
machines and be compared row by row: the goal is analogies no more than 1.0 point and the
similarities no more than 0.02 below gensim. Each method's row is written as soon as it is scored
(``complete: false`` until the last); a method that fails (diverges, runs out of memory) is an
error row and the others still run.

words/s times training alone on both sides: gensim's ``train()`` after its ``build_vocab()``
scan, ours ``fit()`` on a corpus encoded beforehand (its kernels compiled on a full and an
odd-sized batch first). Both count the same words: in-vocabulary tokens (min_count kept) x epochs.
"""

from __future__ import annotations

import argparse
import lzma
import os
import shutil
import sys
import time
from pathlib import Path

import torch
from bench_word2vec import warm_fit
from harness import Results, run_info

from fastpretrain.atomic import atomic_write
from fastpretrain.data import Corpus, cache_root, resolve_corpus
from fastpretrain.eval import evaluate_word_analogies, evaluate_word_pairs
from fastpretrain.models import KeyedVectors, Word2Vec

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
METHODS = {"sg-ns": dict(sg=1, hs=0, negative=10), "cbow-ns": dict(sg=0, hs=0, negative=10),
           "sg-hs": dict(sg=1, hs=1, negative=0), "cbow-hs": dict(sg=0, hs=1, negative=0),
           "sg-ns-shared": dict(sg=1, hs=0, negative=10, shared_negatives=1)}  # fmt: skip  (ours only: HogBatch)
SETTINGS = dict(vector_size=200, window=5, sample=1e-4, min_count=5, epochs=5, seed=1)


def plain_text(corpus_path: Path) -> Path:
    """The corpus as plain text (gensim reads no .xz): decompressed once into the cache."""
    if corpus_path.suffix != ".xz":
        return corpus_path
    text = cache_root() / corpus_path.with_suffix("").name
    if not text.exists():
        with lzma.open(corpus_path) as src, atomic_write(text) as dst:
            shutil.copyfileobj(src, dst, 1 << 24)
    return text


def speed(words: int, seconds: float) -> dict:
    return {"words": words, "train_seconds": seconds, "words_per_s": words / seconds}


def train_gensim(corpus_path: Path, config: dict, workers: int) -> tuple[KeyedVectors, dict]:
    """gensim's vectors and the speed of its train() alone (the vocabulary scan comes first, untimed)."""
    from gensim.models import Word2Vec as GensimWord2Vec
    from gensim.models.word2vec import LineSentence

    if config.get("shared_negatives"):
        raise ValueError("shared negatives (HogBatch) is ours only; gensim draws negatives per pair")
    sentences = LineSentence(str(plain_text(corpus_path)), max_sentence_length=1000)
    model = GensimWord2Vec(workers=workers, **SETTINGS, **config)
    model.build_vocab(sentences)
    start = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
    seconds = time.perf_counter() - start
    in_vocab = int(sum(model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key))
    kv = KeyedVectors(list(model.wv.index_to_key), torch.from_numpy(model.wv.vectors.copy()))
    return kv, speed(in_vocab * model.epochs, seconds)


def train_ours(corpus_path: Path, config: dict, workers: int) -> tuple[KeyedVectors, dict]:
    """Our vectors and the speed of fit() alone (Corpus.build and the kernels' compiles come first)."""
    corpus = Corpus.build(corpus_path, min_count=SETTINGS["min_count"], progress=False)
    model = Word2Vec(workers=workers, **SETTINGS, **config)
    warm_fit(model, corpus)
    model.fit(corpus, progress=False)
    words = corpus.n_words * SETTINGS["epochs"]
    return model.wv, speed(words, words / model.words_per_second)


def scores(kv: KeyedVectors, evals: Path) -> dict:
    return {"analogies": evaluate_word_analogies(kv, evals / "questions-words.txt", restrict_vocab=30000)["total"],
            "wordsim353": evaluate_word_pairs(kv, evals / "wordsim353.tsv")["spearman"],
            "simlex999": evaluate_word_pairs(kv, evals / "simlex999.txt")["spearman"]}  # fmt: skip


def markdown(result: dict) -> str:
    lines = [f"# word2vec quality, {result['engine']} on {result['device']} ({result['date']}, "
             f"commit {result['commit']})",
             f"`{result['command']}`: {result['settings']}" + ("" if result["complete"] else "; INCOMPLETE"), "",
             "| method | M words/s | analogies (30k) | WordSim-353 | SimLex-999 |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['method']} | error: {r['error']} | | | |")
        else:
            lines.append(f"| {r['method']} | {r['words_per_s'] / 1e6:.3g} | {r['analogies']:.1%} | "
                         f"{r['wordsim353']:.3f} | {r['simlex999']:.3f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=("gensim", "ours"), required=True)
    p.add_argument("--corpus", default=str(DATA / "corpus20m.txt.xz"))
    p.add_argument("--eval-dir", default=str(DATA / "eval"))
    p.add_argument("--methods", default="sg-ns,cbow-ns,sg-hs,cbow-hs", help="comma-separated subset of " + ",".join(METHODS))
    p.add_argument("--vector-size", type=int, default=SETTINGS["vector_size"])
    p.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    p.add_argument("--sample", type=float, default=SETTINGS["sample"])
    p.add_argument("--tag", default="", help="suffix of the result files, for runs with other settings")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    methods = args.methods.split(",")
    if unknown := sorted(set(methods) - set(METHODS)):
        p.error(f"--methods: unknown {unknown}; choose from {sorted(METHODS)}")
    SETTINGS.update(vector_size=args.vector_size, epochs=args.epochs, sample=args.sample)
    try:
        corpus, evals = resolve_corpus(args.corpus, cache_root()), Path(args.eval_dir)
    except FileNotFoundError as e:
        sys.exit(f"quality_word2vec: {e}; skipped")
    train = train_gensim if args.engine == "gensim" else train_ours
    device = torch.device("cuda" if args.engine == "ours" and torch.cuda.is_available() else "cpu")
    meta = {**run_info(device), "engine": args.engine, "workers": args.workers, "corpus": str(corpus),
            "settings": SETTINGS}  # fmt: skip
    results = Results(args.out, f"quality_word2vec_{args.engine}{args.tag}", meta, markdown)

    def measure(name: str) -> dict:
        kv, timing = train(corpus, METHODS[name], args.workers)
        return {**timing, **scores(kv, evals)}

    for name in methods:
        print(results.attempt({"method": name}, lambda name=name: measure(name)), flush=True)
    results.finish()


if __name__ == "__main__":
    main()
