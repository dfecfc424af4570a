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
similarities no more than 0.02 below gensim.
"""

from __future__ import annotations

import argparse
import datetime
import json
import lzma
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

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


def train_gensim(corpus_path: Path, config: dict, workers: int) -> tuple[KeyedVectors, float]:
    from gensim.models import Word2Vec as GensimWord2Vec
    from gensim.models.word2vec import LineSentence

    text8 = corpus_path
    if corpus_path.suffix == ".xz":  # gensim reads plain text: decompress once into the cache
        text8 = cache_root() / corpus_path.with_suffix("").name
        if not text8.exists():
            with lzma.open(corpus_path) as src, atomic_write(text8) as dst:
                shutil.copyfileobj(src, dst, 1 << 24)
    start = time.perf_counter()
    model = GensimWord2Vec(LineSentence(str(text8), max_sentence_length=1000), workers=workers, **SETTINGS, **config)
    seconds = time.perf_counter() - start
    kv = KeyedVectors(list(model.wv.index_to_key), torch.from_numpy(model.wv.vectors.copy()))
    return kv, model.corpus_total_words * SETTINGS["epochs"] / seconds


def train_ours(corpus_path: Path, config: dict, workers: int) -> tuple[KeyedVectors, float]:
    corpus = Corpus.build(corpus_path, min_count=SETTINGS["min_count"])
    model = Word2Vec(workers=workers, **SETTINGS, **config).fit(corpus)
    return model.wv, model.words_per_second


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
    SETTINGS.update(vector_size=args.vector_size, epochs=args.epochs, sample=args.sample)
    corpus, evals = resolve_corpus(args.corpus, cache_root()), Path(args.eval_dir)
    if not corpus.exists():
        sys.exit(f"quality_word2vec: corpus {corpus} not found; skipped")
    train = train_gensim if args.engine == "gensim" else train_ours
    rows = []
    for name in args.methods.split(","):
        kv, words_per_s = train(corpus, METHODS[name], args.workers)
        row = {
            "method": name,
            "words_per_s": words_per_s,
            "analogies": evaluate_word_analogies(kv, evals / "questions-words.txt", restrict_vocab=30000)["total"],
            "wordsim353": evaluate_word_pairs(kv, evals / "wordsim353.tsv")["spearman"],
            "simlex999": evaluate_word_pairs(kv, evals / "simlex999.txt")["spearman"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    device = torch.cuda.get_device_name() if args.engine == "ours" and torch.cuda.is_available() else "cpu"
    result = {
        "engine": args.engine,
        "device": device,
        "machine": f"{platform.machine()} ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "settings": SETTINGS,
        "rows": rows,
    }
    lines = [f"# word2vec quality, {args.engine} on {device}, {result['machine']}, {result['date']}",
             f"`{result['command']}`: {SETTINGS}", "",
             "| method | M words/s | analogies (30k) | WordSim-353 | SimLex-999 |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['method']} | {r['words_per_s'] / 1e6:.2f} | {r['analogies']:.1%} | {r['wordsim353']:.3f} | "
              f"{r['simlex999']:.3f} |" for r in rows]  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"quality_word2vec_{args.engine}{args.tag}"
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
