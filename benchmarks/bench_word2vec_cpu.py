"""word2vec on the CPU: our reference path (pure torch, batches from the C++ engine) next to
gensim on the same machine, corpus and hyperparameters, in one run. We do not aim to win on
the CPU; this says how far the reference path is from gensim's Cython loops.

    python benchmarks/bench_word2vec_cpu.py                      # the default corpus (wiki206)
    python benchmarks/bench_word2vec_cpu.py --corpus ../shared/data/corpus20m.txt.xz --max-words 2000000

Writes benchmarks/results/word2vec_cpu.json/.md: words/s and WordSim-353 Spearman for each method
and engine, one row written as soon as it is measured (``complete: false`` until the last); a run
that fails is an error row and the others still run. words/s times training alone on both sides:
gensim's ``train()`` after its ``build_vocab()`` scan, ours ``fit()`` on a corpus encoded
beforehand; both count in-vocabulary words (min_count kept, before subsampling) x epochs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import torch
from harness import Results, run_info

from fastpretrain.data import Corpus, cache_root, resolve_corpus
from fastpretrain.eval import evaluate_word_pairs
from fastpretrain.models import KeyedVectors, Word2Vec

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"CBOW k5": dict(sg=0, hs=0, negative=5), "skip-gram k5": dict(sg=1, hs=0, negative=5),
           "skip-gram HS": dict(sg=1, hs=1, negative=0)}  # fmt: skip
ENGINES = ("gensim", "ours")


def text8_prefix(path: Path, max_words: int | None, out: Path) -> Path:
    """The first max_words words of a corpus as one text8 line (gensim and we read the same file)."""
    if max_words is None and path.suffix not in (".xz", ".lzma", ".bz2", ".gz"):
        return path
    corpus = Corpus.build(path, min_count=1, progress=False)
    ids = corpus.ids[: max_words * 2 if max_words else None]
    words = [corpus.vocab.words[i] for i in ids.tolist() if i >= 0][:max_words]
    out.write_text(" ".join(words))
    return out


def speed(words: int, seconds: float) -> dict:
    return {"words": words, "train_seconds": seconds, "words_per_s": words / seconds}


def gensim_run(path: Path, config: dict, args) -> tuple[dict, KeyedVectors]:
    """The speed of gensim's train() alone (its vocabulary scan comes first, untimed) and its vectors."""
    from gensim.models import Word2Vec as GensimWord2Vec
    from gensim.models.word2vec import LineSentence

    model = GensimWord2Vec(vector_size=args.vector_size, window=5, min_count=5, sample=1e-3, epochs=args.epochs,
                           workers=args.workers, seed=1, **config)  # fmt: skip
    model.build_vocab(LineSentence(str(path)))
    start = time.perf_counter()
    model.train(LineSentence(str(path)), total_examples=model.corpus_count, epochs=args.epochs)
    seconds = time.perf_counter() - start
    in_vocab = int(sum(model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key))
    kv = KeyedVectors(list(model.wv.index_to_key), torch.from_numpy(model.wv.vectors.copy()))
    return speed(in_vocab * args.epochs, seconds), kv


def ours_run(path: Path, config: dict, args) -> tuple[dict, KeyedVectors]:
    """The speed of our fit() alone (the corpus is encoded first, untimed) and our vectors."""
    corpus = Corpus.build(path, min_count=5, progress=False)
    model = Word2Vec(vector_size=args.vector_size, window=5, min_count=5, sample=1e-3, epochs=args.epochs,
                     workers=args.workers, seed=1, device="cpu", **config)  # fmt: skip
    model.fit(corpus, progress=False)
    words = corpus.n_words * args.epochs
    return speed(words, words / model.words_per_second), model.wv


def measure(run, path: Path, config: dict, args, wordsim: str) -> dict:
    timing, kv = run(path, config, args)
    return {**timing, "wordsim353": evaluate_word_pairs(kv, wordsim)["spearman"]}


def cell(row: dict | None, key: str, scale: float = 1.0) -> str:
    """A table cell: the row's value; blank for a row not measured (yet) or failed, whose error
    goes in its words/s cell."""
    if row is None or ("error" in row and key != "words_per_s"):
        return ""
    return f"error: {row['error']}" if "error" in row else f"{row[key] / scale:.3f}"


def markdown(result: dict) -> str:
    c = result["config"]
    lines = [f"# word2vec on the CPU, ours (reference path) vs gensim, {result['device']}, {result['date']}, "
             f"commit {result['commit']}",
             f"`{result['command']}`: d={c['vector_size']}, window 5, min_count 5, sample 1e-3, "
             f"{c['epochs']} epoch(s), {c['workers']} workers, torch {result['versions']['torch']}"
             + ("" if result["complete"] else "; INCOMPLETE"),
             "", "| method | gensim M words/s | ours M words/s | ours / gensim | WordSim-353 gensim | ours |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name in METHODS:
        gensim, ours = (next((r for r in result["rows"] if (r["method"], r["engine"]) == (name, e)), None)
                        for e in ENGINES)  # fmt: skip
        if gensim is None and ours is None:
            continue
        measured = all(r is not None and "error" not in r for r in (gensim, ours))
        ratio = f"{ours['words_per_s'] / gensim['words_per_s']:.2f}x" if measured else ""
        lines.append(f"| {name} | {cell(gensim, 'words_per_s', 1e6)} | {cell(ours, 'words_per_s', 1e6)} | {ratio} | "
                     f"{cell(gensim, 'wordsim353')} | {cell(ours, 'wordsim353')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="wiki206", help="text file, or 'wiki206' (default)")
    p.add_argument("--max-words", type=int, default=None, help="use only the first N words")
    p.add_argument("--vector-size", type=int, default=100)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    try:
        from gensim.test.utils import datapath
    except ImportError:
        sys.exit("bench_word2vec_cpu: needs gensim (pip install 'fastpretrain[data]'); skipped")
    source = resolve_corpus(args.corpus, cache_root())
    path = text8_prefix(Path(source), args.max_words, cache_root() / "bench_word2vec_cpu.txt")
    torch.set_num_threads(args.workers)
    config = {**vars(args), "corpus_file": str(path)}
    wordsim = datapath("wordsim353.tsv")
    results = Results(args.out, "word2vec_cpu", {**run_info(torch.device("cpu")), "config": config}, markdown)
    for (name, method), engine in itertools.product(METHODS.items(), ENGINES):
        run = gensim_run if engine == "gensim" else ours_run
        row = {"method": name, "engine": engine}
        timed = lambda run=run, method=method: measure(run, path, method, args, wordsim)
        print(results.attempt(row, timed), file=sys.stderr)
    results.finish()


if __name__ == "__main__":
    main()
