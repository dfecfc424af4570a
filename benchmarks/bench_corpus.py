"""Speed of the C++ word2vec corpus engine vs a vectorised NumPy version of the same sampling,
measured side by side in one run (CPU only).

    python benchmarks/bench_corpus.py --workers 1,2
    python benchmarks/bench_corpus.py --corpus ../shared/data/corpus20m.txt.xz --workers 1,2,4,8,16

Each row is one full epoch over the corpus (median of --repeats): words/s counts words read
before subsampling (as word2vec.c does), pairs/s the (center, context) pairs made (CBOW: examples,
one per center). Window 5, sample 1e-3, skip-gram with negative 0 and 5 for every worker count,
plus one CBOW row. The NumPy version draws from the same distributions: keep mask, sentences of
at most 1000 kept words cut at line ends, reach ~ U[1, window], negatives from the engine's
unigram^0.75 alias table. Writes benchmarks/results/corpus_cpu-<cores>c.json/.md, rewritten after
every row (``complete: false`` until the summary is in); a row that fails is an error row.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from harness import Results, run_info

from fastpretrain import _C
from fastpretrain.data import Corpus, Word2VecBatches

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1 << 20  # tokens per NumPy step; each chunk is cut like a C++ worker's range
MAX_SENTENCE = 1000


def time_engine(corpus, args, workers, sg, negative):
    """(examples per epoch, median seconds per epoch) of the C++ engine."""
    batches = Word2VecBatches(corpus, sg=sg, window=args.window, sample=args.sample, negative=negative,
                              batch_size=args.batch_size, workers=workers, seed=1)  # fmt: skip
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        n = sum(len(b) for b in batches)
        times.append(time.perf_counter() - start)
    return n, statistics.median(times)


def numpy_pairs(ids, keep, alias, window, negative, rng):
    """Skip-gram (centers, contexts, negatives) of one chunk of ids, all int32; -1 ends a line."""
    word = ids >= 0
    kept = word & (rng.random(len(ids)) < keep[np.where(word, ids, 0)])
    s = ids[kept]
    line = np.cumsum(~word)[kept]  # line-end markers (-1) seen so far
    pos = np.arange(len(s))
    line_start = np.maximum.accumulate(np.where(np.r_[True, line[1:] != line[:-1]], pos, 0))
    sentence = np.cumsum((pos - line_start) % MAX_SENTENCE == 0)
    reach = window - rng.integers(0, window, len(s), dtype=np.int32)
    centers, contexts = [], []
    for d in range(1, window + 1):
        same = sentence[d:] == sentence[:-d]
        right, left = same & (reach[:-d] >= d), same & (reach[d:] >= d)  # context at i+d / center at i+d
        centers += [s[:-d][right], s[d:][left]]
        contexts += [s[d:][right], s[:-d][left]]
    centers, contexts = np.concatenate(centers), np.concatenate(contexts)
    negatives = None
    if negative:
        thresholds, aliases = alias
        column = rng.integers(0, len(aliases), (len(centers), negative), dtype=np.int32)
        coin = rng.integers(0, 1 << 32, column.shape, dtype=np.int64)
        negatives = np.where(coin < thresholds[column], column, aliases[column])
    return centers, contexts, negatives


def time_numpy(corpus, args, negative):
    """(pairs per epoch, median seconds per epoch) of the NumPy version, single-threaded."""
    keep = corpus.vocab.keep_probabilities(args.sample)
    thresholds, aliases = _C.alias_table(corpus.vocab.noise_distribution(0.75))  # the engine's table
    alias = (thresholds.astype(np.int64), aliases)
    times = []
    for _ in range(args.repeats):
        rng = np.random.default_rng(1)
        start = time.perf_counter()
        n = 0
        for lo in range(0, len(corpus.ids), CHUNK):
            n += len(numpy_pairs(np.asarray(corpus.ids[lo : lo + CHUNK]), keep, alias, args.window, negative, rng)[0])
        times.append(time.perf_counter() - start)
    return n, statistics.median(times)


def measure(corpus, args, engine, workers, mode, negative) -> dict:
    """One row's speeds: epochs of the C++ engine or of the NumPy version (skip-gram only)."""
    if engine == "c++":
        n, seconds = time_engine(corpus, args, workers, int(mode == "skipgram"), negative)
    else:
        n, seconds = time_numpy(corpus, args, negative)
    words = corpus.n_words
    return {"words_per_s": words / seconds, "pairs_per_s": n / seconds, "seconds_median": seconds,
            "pairs_per_word": n / words}  # fmt: skip


def summarise(rows, fewest):
    """Per-thread words/s (from the row with the fewest workers), speed-ups over NumPy, and the
    pairs-per-word check that both sides sample the same thing; None when a row they need failed."""

    def pick(engine, neg, workers=None):
        return [x for x in rows if x["engine"] == engine and x["mode"] == "skipgram" and x["negative"] == neg
                and workers in (None, x["workers"]) and "error" not in x]  # fmt: skip

    if not all(pick(engine, neg, workers) for engine, workers in (("numpy", None), ("c++", fewest)) for neg in (0, 5)):
        return None
    ratios = {}
    for neg in (0, 5):
        numpy_wps = pick("numpy", neg)[0]["words_per_s"]
        per_thread = pick("c++", neg, fewest)[0]["words_per_s"] / fewest
        ratios[f"per_thread_words_per_s_neg{neg}"] = per_thread
        ratios[f"best_vs_numpy_neg{neg}"] = max(x["words_per_s"] for x in pick("c++", neg)) / numpy_wps
        ratios[f"one_worker_vs_numpy_neg{neg}"] = per_thread / numpy_wps
    ppw_cpp, ppw_np = pick("c++", 0, fewest)[0]["pairs_per_word"], pick("numpy", 0)[0]["pairs_per_word"]
    ratios["pairs_per_word_rel_diff"] = abs(ppw_np - ppw_cpp) / ppw_cpp
    return ratios


def targets(ratios):
    """The issue's targets, for pairs alone and with negatives drawn by the engine."""
    per_thread = {f">= 5M words/s per thread, negative {n}": ratios[f"per_thread_words_per_s_neg{n}"] >= 5e6
                  for n in (0, 5)}  # fmt: skip
    vs_numpy = {f">= 10x NumPy (best C++), negative {n}": ratios[f"best_vs_numpy_neg{n}"] >= 10 for n in (0, 5)}
    return {**per_thread, **vs_numpy}


def cpu_name():
    """platform.processor(), which is empty on Linux, else the model name in /proc/cpuinfo."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line for line in cpuinfo.splitlines() if line.startswith("model name")]
    return platform.processor() or (models[0].split(":", 1)[1].strip() if models else platform.machine())


def report(result):
    """The markdown table and, once the run is complete, the target checks."""
    c = result["config"]
    lines = [
        f"# word2vec corpus engine, {result['machine']['cpu']} ({result['machine']['cores']} cores), {result['date']}, "
        f"commit {result['commit']}",
        f"`{result['command']}`: {result['corpus']['tokens']:,} tokens, vocab {result['corpus']['vocab']:,}, "
        f"window {c['window']}, sample {c['sample']:g}, batch {c['batch_size']}; median of {c['repeats']} epochs; "
        f"numpy {result['numpy']}, torch {result['versions']['torch']}, python {result['python']}",
        "",
        "| engine | workers | mode | negative | M words/s | M pairs/s | pairs/word | s/epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in result["rows"]:
        head = f"| {x['engine']} | {x['workers']} | {x['mode']} | {x['negative']} |"
        if "error" in x:
            lines.append(f"{head} error: {x['error']} | | | |")
            continue
        lines.append(f"{head} {x['words_per_s'] / 1e6:.2f} | {x['pairs_per_s'] / 1e6:.2f} | "
                     f"{x['pairs_per_word']:.3f} | {x['seconds_median']:.2f} |")  # fmt: skip
    lines += ["", "CBOW pairs/s counts examples (one per center).", ""]
    r = result.get("ratios")
    if not result["complete"]:
        lines.append("INCOMPLETE (run stopped early): no summary.")
    elif r is None:
        lines.append("No summary: a row it needs failed.")
    else:
        for neg in (0, 5):
            lines.append(f"- negative {neg}: C++ per thread {r[f'per_thread_words_per_s_neg{neg}'] / 1e6:.2f} M "
                         f"words/s; C++ best / NumPy {r[f'best_vs_numpy_neg{neg}']:.1f}x (1 worker / NumPy "
                         f"{r[f'one_worker_vs_numpy_neg{neg}']:.1f}x)")  # fmt: skip
        lines.append(f"- sanity: NumPy vs C++ pairs per word differ by {r['pairs_per_word_rel_diff']:.2%} (limit 2%): "
                     f"{'ok' if r['pairs_per_word_rel_diff'] < 0.02 else 'MISMATCH'}")  # fmt: skip
        for name, met in result["targets"].items():
            lines.append(f"- target {name}: {'met' if met else 'NOT met'}")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=str(ROOT.parent / "shared/data/corpus20m.txt.xz"))
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--batch-size", type=int, default=16384)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if not Path(args.corpus).exists():
        print(f"bench_corpus: corpus {args.corpus} not found; skipped")
        return
    workers = sorted({int(w) for w in args.workers.split(",")})
    corpus = Corpus.build(args.corpus, min_count=5)
    config = {"window": args.window, "sample": args.sample, "batch_size": args.batch_size, "repeats": args.repeats,
              "numpy_chunk_tokens": CHUNK}  # fmt: skip
    meta = {
        **run_info(torch.device("cpu")),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "numpy": np.__version__,
        "corpus": {"path": args.corpus, "tokens": corpus.n_words, "vocab": len(corpus.vocab)},
        "config": config,
    }
    results = Results(args.out, f"corpus_cpu-{os.cpu_count()}c", meta, report)
    runs = [("c++", w, "skipgram", neg) for w in workers for neg in (0, 5)] + [("c++", workers[-1], "cbow", 5)]
    runs += [("numpy", 1, "skipgram", neg) for neg in (0, 5)]
    for engine, w, mode, neg in runs:
        print(f"{engine} {mode} workers={w} negative={neg}", file=sys.stderr)
        row = {"engine": engine, "workers": w, "mode": mode, "negative": neg}
        results.attempt(row, lambda row=row: measure(corpus, args, **row))
    ratios = summarise(results.rows, workers[0])
    results.result.update(ratios=ratios, targets=targets(ratios) if ratios else None)
    results.finish()
    print(f"wrote {Path(args.out) / results.stem}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    main()
