"""word2vec on the CPU: our reference path (pure torch, batches from the C++ engine) next to
gensim on the same machine, corpus and hyperparameters, in one run. We do not aim to win on
the CPU; this says how far the reference path is from gensim's Cython loops.

    python benchmarks/bench_word2vec_cpu.py                      # the default corpus (wiki206)
    python benchmarks/bench_word2vec_cpu.py --corpus ../shared/data/corpus20m.txt.xz --max-words 2000000

Writes benchmarks/results/word2vec_cpu.json/.md: words/s (words read, before subsampling) and
WordSim-353 Spearman for each method.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from fastpretrain.data import Corpus, cache_root, resolve_corpus
from fastpretrain.eval import evaluate_word_pairs
from fastpretrain.models import KeyedVectors, Word2Vec

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"CBOW k5": dict(sg=0, hs=0, negative=5), "skip-gram k5": dict(sg=1, hs=0, negative=5),
           "skip-gram HS": dict(sg=1, hs=1, negative=0)}  # fmt: skip


def text8_prefix(path: Path, max_words: int | None, out: Path) -> Path:
    """The first max_words words of a corpus as one text8 line (gensim and we read the same file)."""
    if max_words is None and path.suffix not in (".xz", ".lzma", ".bz2", ".gz"):
        return path
    corpus = Corpus.build(path, min_count=1, progress=False)
    ids = corpus.ids[: max_words * 2 if max_words else None]
    words = [corpus.vocab.words[i] for i in ids.tolist() if i >= 0][:max_words]
    out.write_text(" ".join(words))
    return out


def gensim_run(path: Path, config: dict, args) -> tuple[float, KeyedVectors]:
    from gensim.models import Word2Vec as GensimWord2Vec
    from gensim.models.word2vec import LineSentence

    start = time.perf_counter()
    model = GensimWord2Vec(LineSentence(str(path)), vector_size=args.vector_size, window=5, min_count=5,
                           sample=1e-3, epochs=args.epochs, workers=args.workers, seed=1, **config)  # fmt: skip
    seconds = time.perf_counter() - start
    kv = KeyedVectors(list(model.wv.index_to_key), torch.from_numpy(model.wv.vectors.copy()))
    return model.corpus_total_words * args.epochs / seconds, kv


def ours_run(path: Path, config: dict, args) -> tuple[float, KeyedVectors]:
    corpus = Corpus.build(path, min_count=5, progress=False)  # encoded once, outside the timing
    model = Word2Vec(vector_size=args.vector_size, window=5, min_count=5, sample=1e-3, epochs=args.epochs,
                     workers=args.workers, seed=1, device="cpu", **config)  # fmt: skip
    model.fit(corpus, progress=False)
    return model.words_per_second, model.wv


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
    rows = []
    for (name, config), (engine, run) in itertools.product(METHODS.items(), [("gensim", gensim_run), ("ours", ours_run)]):
        words_per_s, kv = run(path, config, args)
        rho = evaluate_word_pairs(kv, datapath("wordsim353.tsv"))["spearman"]
        rows.append({"method": name, "engine": engine, "words_per_s": words_per_s, "wordsim353": rho})
        print(f"{name:<14} {engine:<7} {words_per_s / 1e6:6.3f} M words/s  WordSim-353 {rho:.3f}", file=sys.stderr)
    result = {
        "machine": f"{platform.machine()} ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "config": {**vars(args), "corpus_file": str(path)},
        "rows": rows,
    }
    lines = [f"# word2vec on the CPU, ours (reference path) vs gensim, {result['machine']}, {result['date']}",
             f"`{result['command']}`: d={args.vector_size}, window 5, min_count 5, sample 1e-3, "
             f"{args.epochs} epoch(s), {args.workers} workers, torch {result['torch']}", "",
             "| method | gensim M words/s | ours M words/s | ours / gensim | WordSim-353 gensim | ours |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name in METHODS:
        g, o = (next(r for r in rows if r["method"] == name and r["engine"] == e) for e in ("gensim", "ours"))
        lines.append(f"| {name} | {g['words_per_s'] / 1e6:.3f} | {o['words_per_s'] / 1e6:.3f} | "
                     f"{o['words_per_s'] / g['words_per_s']:.2f}x | {g['wordsim353']:.3f} | {o['wordsim353']:.3f} |")  # fmt: skip
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "word2vec_cpu.json").write_text(json.dumps(result, indent=1))
    (out / "word2vec_cpu.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
