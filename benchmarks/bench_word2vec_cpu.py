"""word2vec on the CPU: ours (Word2Vec(device="cpu"), the C++ Hogwild loop) next to gensim in the
same run, on the same corpus, with the same parameters and the same number of worker threads:
words/s and the quality figures of quality_word2vec.py (Google analogies restricted to 30k words,
WordSim-353, SimLex-999).

    python benchmarks/bench_word2vec_cpu.py --max-words 5000000 --epochs 1 --workers 1,2   # corpus20m prefix
    python benchmarks/bench_word2vec_cpu.py                  # the issue's setting: corpus20m, 5 epochs, d 200
    python benchmarks/bench_word2vec_cpu.py --smoke          # gensim's Lee corpus, d 16: the script runs
    python benchmarks/bench_word2vec_cpu.py --engines ours --epochs 1 --workers 16   # where gensim is absent

Parameters are quality_word2vec.py's (d 200, window 5, negative 10, sample 1e-4, min_count 5) with
gensim's learning rates for both engines (alpha 0.025, min_alpha 1e-4; word2vec.c starts CBOW at
0.05) and sentences cut at 1000 words for both. words/s times training alone: gensim's ``train()``
after its ``build_vocab()`` scan, ours ``fit()`` on a corpus encoded beforehand; both count
in-vocabulary words (min_count kept, before subsampling) x epochs. Writes
benchmarks/results/word2vec_cpu<tag>.json/.md, a row as soon as it is measured (``complete: false``
until the last); a run that fails is an error row and the others still run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from pathlib import Path

import torch
from harness import Results, run_info
from quality_word2vec import DATA, SETTINGS, plain_text, scores

from fastpretrain.data import Corpus, cache_root, resolve_corpus
from fastpretrain.models import KeyedVectors, Word2Vec
from fastpretrain.models.word2vec_hogwild import isas

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"CBOW NS": dict(sg=0, hs=0), "skip-gram NS": dict(sg=1, hs=0),
           "skip-gram HS": dict(sg=1, hs=1, negative=0), "CBOW HS": dict(sg=0, hs=1, negative=0)}  # fmt: skip
ENGINES = ("gensim", "ours")
RATES = dict(alpha=0.025, min_alpha=0.0001)
MAX_SENTENCE = 1000


def text_prefix(path: Path, max_words: int | None, out: Path) -> Path:
    """The corpus as plain text, or its first max_words words in lines of 1000 (both engines read it)."""
    path = plain_text(path)
    if max_words is None:
        return path
    words = []
    with open(path, encoding="utf-8") as f:
        while len(words) < max_words and (line := f.readline()):
            words.extend(line.split())
    words = words[:max_words]
    out.write_text("\n".join(" ".join(words[i : i + MAX_SENTENCE]) for i in range(0, len(words), MAX_SENTENCE)))
    return out


def speed(words: int, seconds: float) -> dict:
    return {"words": words, "train_seconds": seconds, "words_per_s": words / seconds}


def gensim_run(path: Path, config: dict, workers: int) -> tuple[dict, KeyedVectors]:
    from gensim.models import Word2Vec as GensimWord2Vec
    from gensim.models.word2vec import LineSentence

    sentences = LineSentence(str(path), max_sentence_length=MAX_SENTENCE)
    model = GensimWord2Vec(workers=workers, seed=1, **config)
    model.build_vocab(sentences)
    start = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
    seconds = time.perf_counter() - start
    in_vocab = int(sum(model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key))
    kv = KeyedVectors(list(model.wv.index_to_key), torch.from_numpy(model.wv.vectors.copy()))
    return speed(in_vocab * model.epochs, seconds), kv


def ours_run(path: Path, config: dict, workers: int) -> tuple[dict, KeyedVectors]:
    corpus = Corpus.build(path, min_count=config["min_count"], progress=False)
    model = Word2Vec(workers=workers, seed=1, device="cpu", max_sentence_length=MAX_SENTENCE, **config)
    model.fit(corpus, progress=False)
    words = corpus.n_words * config["epochs"]
    return speed(words, words / model.words_per_second), model.wv


def measure(run, path: Path, config: dict, workers: int, evals: Path | None) -> dict:
    timing, kv = run(path, config, workers)
    return {**timing, **(scores(kv, evals) if evals is not None else {})}


def cell(row: dict | None, key: str, fmt: str, scale: float = 1.0) -> str:
    """A table cell: blank for a row not measured (yet), a failed one (its error goes in the words/s
    cell) or a figure not measured."""
    if row is None or ("error" in row and key != "words_per_s"):
        return ""
    if "error" in row:
        return f"error: {row['error']}"
    return format(row[key] / scale, fmt) if row.get(key) is not None else ""


def markdown(result: dict) -> str:
    c = result["config"]
    peer = f"gensim {result['gensim']}" if result["gensim"] else "gensim (not installed here)"
    lines = [f"# word2vec on the CPU, ours (C++ Hogwild, {result['isa']}) vs {peer}, "
             f"{result['device']}, {result['date']}, commit {result['commit']}",
             f"`{result['command']}`: {result['corpus']} ({c['max_words'] or 'all'} words), d {c['vector_size']}, "
             f"window {c['window']}, negative {c['negative']}, sample {c['sample']}, min_count {c['min_count']}, "
             f"{c['epochs']} epoch(s), alpha {RATES['alpha']}; torch {result['versions']['torch']}"
             + ("" if result["complete"] else "; INCOMPLETE"),
             "", "| method | workers | gensim M words/s | ours M words/s | ours / gensim | analogies gensim | ours "
             "| WordSim-353 gensim | ours | SimLex-999 gensim | ours |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, workers in itertools.product(METHODS, result["workers"]):
        gensim, ours = (next((r for r in result["rows"] if (r["method"], r["engine"], r["workers"]) == (name, e, workers)),
                             None) for e in ENGINES)  # fmt: skip
        if gensim is None and ours is None:
            continue
        measured = all(r is not None and "error" not in r for r in (gensim, ours))
        ratio = f"{ours['words_per_s'] / gensim['words_per_s']:.2f}x" if measured else ""
        quality = [cell(r, key, fmt) for key, fmt in (("analogies", ".1%"), ("wordsim353", ".3f"), ("simlex999", ".3f"))
                   for r in (gensim, ours)]  # fmt: skip
        lines.append(f"| {name} | {workers} | {cell(gensim, 'words_per_s', '.3f', 1e6)} | {cell(ours, 'words_per_s', '.3f', 1e6)} "
                     f"| {ratio} | " + " | ".join(quality) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=None, help="text file (.xz ok) or 'wiki206'; default corpus20m (--smoke: Lee)")
    p.add_argument("--max-words", type=int, default=None, help="use only the first N words")
    p.add_argument("--eval-dir", default=str(DATA / "eval"), help="questions-words.txt, wordsim353.tsv, simlex999.txt")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    p.add_argument("--vector-size", type=int, default=SETTINGS["vector_size"])
    p.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    p.add_argument("--negative", type=int, default=10)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts, each run by both engines")
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of " + ",".join(ENGINES)
                   + " (ours alone where gensim is not installed, e.g. the GPU machine)")
    p.add_argument("--tag", default="", help="suffix of the result files")
    p.add_argument("--smoke", action="store_true", help="d 16, 1 epoch, 1 worker, on gensim's Lee corpus by default")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    engines = args.engines.split(",")
    if unknown := sorted(set(engines) - set(ENGINES)):
        p.error(f"--engines: unknown {unknown}; choose from {list(ENGINES)}")
    try:
        from gensim import __version__ as gensim_version
        from gensim.test.utils import datapath
    except ImportError:
        if "gensim" in engines or args.smoke and not args.corpus:
            sys.exit("bench_word2vec_cpu: needs gensim (pip install 'fastpretrain[data]') or --engines ours "
                     "with --corpus for --smoke; skipped")
        gensim_version = None
    if args.smoke:
        args.corpus = args.corpus or datapath("lee_background.cor")
        args.max_words, args.vector_size, args.epochs, args.workers = None, 16, 1, "1"
    args.corpus = args.corpus or str(DATA / "corpus20m.txt.xz")
    methods, workers = args.methods.split(","), [int(w) for w in args.workers.split(",")]
    if unknown := sorted(set(methods) - set(METHODS)):
        p.error(f"--methods: unknown {unknown}; choose from {sorted(METHODS)}")
    try:
        source = resolve_corpus(args.corpus, cache_root())
    except FileNotFoundError as e:
        sys.exit(f"bench_word2vec_cpu: {e}; skipped")
    path = text_prefix(Path(source), args.max_words, cache_root() / f"bench_word2vec_cpu_{args.max_words}.txt")
    evals = Path(args.eval_dir) if all((Path(args.eval_dir) / f).is_file() for f in
                                       ("questions-words.txt", "wordsim353.tsv", "simlex999.txt")) else None  # fmt: skip
    config = {**SETTINGS, "vector_size": args.vector_size, "epochs": args.epochs, "negative": args.negative, **RATES}
    config.pop("seed", None)
    meta = {**run_info(torch.device("cpu")), "device": f"{platform.machine()}, {os.cpu_count()} cores",
            "gensim": gensim_version, "isa": isas()[-1], "corpus": str(source), "workers": workers,
            "config": {**config, "max_words": args.max_words, "eval_dir": str(evals)}}  # fmt: skip
    results = Results(args.out, f"word2vec_cpu{args.tag}", meta, markdown)
    for name, w, engine in itertools.product(methods, workers, [e for e in ENGINES if e in engines]):
        run = gensim_run if engine == "gensim" else ours_run
        timed = lambda run=run, name=name, w=w: measure(run, path, {**config, **METHODS[name]}, w, evals)
        print(results.attempt({"method": name, "engine": engine, "workers": w}, timed), file=sys.stderr, flush=True)
    results.finish()


if __name__ == "__main__":
    main()
