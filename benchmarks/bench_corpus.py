"""Speed of the C++ word2vec corpus engine vs a vectorised NumPy version of the same sampling,
measured side by side in one run (CPU only).

    python benchmarks/bench_corpus.py --workers 1,2
    python benchmarks/bench_corpus.py --corpus ../shared/data/corpus20m.txt.xz --workers 1,2,4,8,16

Each row is one full epoch over the corpus (median of --repeats): words/s counts words read
before subsampling (as word2vec.c does), pairs/s the (center, context) pairs made (CBOW: examples,
one per center). Window 5, sample 1e-3, skip-gram with negative 0 and 5 for every worker count,
plus one CBOW row. The NumPy version draws from the same distributions: keep mask, sentences of
at most 1000 kept words cut at line ends, reach ~ U[1, window], negatives from the engine's
unigram^0.75 alias table. Writes benchmarks/results/corpus_cpu-<cores>c.json/.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

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


def row(engine, workers, mode, negative, n, seconds, words):
    return {"engine": engine, "workers": workers, "mode": mode, "negative": negative, "words_per_s": words / seconds,
            "pairs_per_s": n / seconds, "seconds_median": seconds, "pairs_per_word": n / words}  # fmt: skip


def summarise(rows, fewest):
    """Per-thread words/s (from the row with the fewest workers), speed-ups over NumPy, and the
    pairs-per-word check that both sides sample the same thing."""

    def pick(engine, neg, workers=None):
        return [x for x in rows if x["engine"] == engine and x["mode"] == "skipgram" and x["negative"] == neg
                and workers in (None, x["workers"])]  # fmt: skip

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


def cpu_name():
    """platform.processor(), which is empty on Linux, else the model name in /proc/cpuinfo."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line for line in cpuinfo.splitlines() if line.startswith("model name")]
    return platform.processor() or (models[0].split(":", 1)[1].strip() if models else platform.machine())


def report(result, args):
    """The markdown table and target checks."""
    r = result["ratios"]
    lines = [
        f"# word2vec corpus engine, {result['machine']['cpu']} ({result['machine']['cores']} cores), {result['date']}",
        f"`{result['command']}`: {result['corpus']['tokens']:,} tokens, vocab {result['corpus']['vocab']:,}, "
        f"window {args.window}, sample {args.sample:g}, batch {args.batch_size}; median of {args.repeats} epochs; "
        f"numpy {result['numpy']}, torch {result['torch']}, python {result['python']}",
        "",
        "| engine | workers | mode | negative | M words/s | M pairs/s | pairs/word | s/epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in result["rows"]:
        lines.append(f"| {x['engine']} | {x['workers']} | {x['mode']} | {x['negative']} | "
                     f"{x['words_per_s'] / 1e6:.2f} | {x['pairs_per_s'] / 1e6:.2f} | {x['pairs_per_word']:.3f} | "
                     f"{x['seconds_median']:.2f} |")  # fmt: skip
    lines += ["", "CBOW pairs/s counts examples (one per center).", ""]
    for neg in (0, 5):
        lines.append(f"- negative {neg}: C++ per thread {r[f'per_thread_words_per_s_neg{neg}'] / 1e6:.2f} M words/s; "
                     f"C++ best / NumPy {r[f'best_vs_numpy_neg{neg}']:.1f}x (1 worker / NumPy "
                     f"{r[f'one_worker_vs_numpy_neg{neg}']:.1f}x)")  # fmt: skip
    lines.append(f"- sanity: NumPy vs C++ pairs per word differ by {r['pairs_per_word_rel_diff']:.2%} (limit 2%): "
                 f"{'ok' if r['pairs_per_word_rel_diff'] < 0.02 else 'MISMATCH'}")  # fmt: skip
    for name, met in result["targets"].items():
        lines.append(f"- target {name}: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


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
    words = corpus.n_words

    rows = []
    for w in workers:
        for neg in (0, 5):
            print(f"c++ skipgram workers={w} negative={neg}", file=sys.stderr)
            rows.append(row("c++", w, "skipgram", neg, *time_engine(corpus, args, w, 1, neg), words))
    print(f"c++ cbow workers={workers[-1]} negative=5", file=sys.stderr)
    rows.append(row("c++", workers[-1], "cbow", 5, *time_engine(corpus, args, workers[-1], 0, 5), words))
    for neg in (0, 5):
        print(f"numpy skipgram negative={neg}", file=sys.stderr)
        rows.append(row("numpy", 1, "skipgram", neg, *time_numpy(corpus, args, neg), words))

    ratios = summarise(rows, workers[0])
    result = {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "corpus": {"path": args.corpus, "tokens": words, "vocab": len(corpus.vocab)},
        "config": {"window": args.window, "sample": args.sample, "batch_size": args.batch_size,
                   "repeats": args.repeats, "numpy_chunk_tokens": CHUNK},  # fmt: skip
        "rows": rows,
        "ratios": ratios,
        "targets": {  # the targets, for pairs alone and with negatives drawn by the engine
            **{f">= 5M words/s per thread, negative {n}": ratios[f"per_thread_words_per_s_neg{n}"] >= 5e6
               for n in (0, 5)},
            **{f">= 10x NumPy (best C++), negative {n}": ratios[f"best_vs_numpy_neg{n}"] >= 10 for n in (0, 5)},
        },
    }
    table = report(result, args)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"corpus_cpu-{os.cpu_count()}c"
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{name}.md").write_text(table + "\n")
    print(f"wrote {out / name}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    main()
