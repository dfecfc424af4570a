"""The word2vec and corpus benchmark scripts on tiny CPU inputs: each writes a complete result with
the rows it promises, counts what it times the same way on both sides of a ratio, and turns a
failing method or candidate (FASTPRETRAIN_BENCH_FAIL) into an error row while the others are still
measured."""

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def run_script(script, stem, out, *args, fail=None):
    """The JSON and markdown that ``benchmarks/<script> --out <out> <args>`` writes (one thread), with
    the rows whose fields contain ``fail`` made to raise."""
    env = {k: v for k, v in os.environ.items() if k != "FASTPRETRAIN_BENCH_FAIL"}
    env.update({"OMP_NUM_THREADS": "1", **({"FASTPRETRAIN_BENCH_FAIL": fail} if fail else {})})
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--out", str(out), *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / f"{stem}.json").read_text()), (out / f"{stem}.md").read_text()


def assert_rows(result, md, failed):
    """Complete; the rows whose key is in ``failed`` are injected errors, the others measured; every
    row is a table line."""
    assert result["complete"] is True and result["commit"]
    for r in result["rows"]:
        assert ("error" in r) == (r["key"] in failed), r
        assert "injected failure" in r.get("error", "injected failure")
    assert md.count("injected failure") == len(failed)


def zipf_text(path, words=6000, vocab=200, per_line=30, seed=0):
    """A text of Zipf-distributed words w0..w<vocab-1> (the rarest seen fewer than 5 times)."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, vocab + 1)
    ids = rng.choice(vocab, size=words, p=p / p.sum())
    path.write_text("\n".join(" ".join(f"w{i}" for i in line) for line in ids.reshape(-1, per_line)) + "\n")
    return path


def in_vocab_words(path, min_count=5):
    return sum(c for c in Counter(path.read_text().split()).values() if c >= min_count)


def keyed(rows, *fields):
    for r in rows:
        r["key"] = " ".join(str(r[f]) for f in fields)
    return {r["key"]: r for r in rows}


W2V = ["eager pytorch", "ours kernel", "ours end to end"]


def test_bench_word2vec_smoke(tmp_path):
    """The update rows time the same staged batches (the kernel's ratio is their pairs/s ratio, its
    row traffic the bytes its update moves); the end-to-end row trains the whole generated corpus."""
    result, md = run_script("bench_word2vec.py", "word2vec_cpu_smoke", tmp_path, "--smoke", "--device", "cpu")
    rows = keyed(result["rows"], "candidate")
    assert list(rows) == W2V
    assert_rows(result, md, failed=())
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    assert result["update_path"] == ("triton interpreter" if interpreted else "torch reference")
    c = result["config"]
    assert (c["vocab"], c["corpus_words"]) == (40, 2000)
    eager, kernel, fit = rows.values()
    assert kernel["vs_eager"] == pytest.approx(kernel["pairs_per_s"] / eager["pairs_per_s"])
    assert kernel["pairs_per_s"] == pytest.approx(eager["pairs_per_s"] * eager["ms_per_batch"] / kernel["ms_per_batch"])
    rows_per_pair = 2 * (c["negative"] + 1) + 2
    row_bytes = rows_per_pair * c["vector_size"] * 4
    assert kernel["row_traffic_gb_per_s"] == pytest.approx(kernel["pairs_per_s"] * row_bytes / 1e9)
    assert fit["words_per_s"] > 0 and math.isfinite(fit["final_loss"]) and fit["analogies_restrict_30k"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["word2vec_cpu_smoke.json", "word2vec_cpu_smoke.md"]


def test_bench_word2vec_error_rows(tmp_path):
    """With the baseline failing, the kernel and end-to-end rows are still measured (no ratio)."""
    result, md = run_script("bench_word2vec.py", "word2vec_cpu_smoke", tmp_path, "--smoke", "--device", "cpu",
                            fail="eager")  # fmt: skip
    rows = keyed(result["rows"], "candidate")
    assert list(rows) == W2V
    assert_rows(result, md, failed=("eager pytorch",))
    assert rows["ours kernel"]["pairs_per_s"] > 0 and "vs_eager" not in rows["ours kernel"]
    assert rows["ours end to end"]["words_per_s"] > 0


def test_word2vec_kernels_compile_once_for_every_batch_size(tmp_path):
    """The fused kernels do not specialize on N (an epoch's odd last batch would compile mid-run).
    Run outside the checkout, whose source tree would shadow the installed package."""
    code = ("import fastpretrain.kernels.word2vec as k; "
            "print([[p.name for p in f.params if p.do_not_specialize] "
            "for f in (k._ns_kernel, k._hs_kernel, k._shared_kernel)])")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compiled JIT functions, not interpreted
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=tmp_path).stdout  # fmt: skip
    assert out.strip() == "[['N'], ['N'], ['N']]"


@pytest.mark.parametrize("shared", [0, 1])
def test_warm_fit_steps_a_full_and_an_odd_batch(tmp_path, shared, one_thread):
    """Before fit's clock starts, the model steps the first batch fit makes and an odd-sized cut of it."""
    from bench_word2vec import warm_fit

    from fastpretrain.data import Corpus
    from fastpretrain.models import Word2Vec

    corpus = Corpus.build(zipf_text(tmp_path / "text.txt"), min_count=5, progress=False)
    model = Word2Vec(sg=1, negative=2, vector_size=8, window=2, batch_size=64, workers=1, device="cpu",
                     shared_negatives=shared)  # fmt: skip
    steps = []
    model.step = lambda centers, contexts, lengths, alpha: steps.append((len(centers), len(contexts), lengths is None))
    warm_fit(model, corpus)
    assert steps == [(64, 64, not shared), (63, 63, not shared)]


def eval_files(folder, vocab=200, seed=0):
    """questions-words.txt, wordsim353.tsv and simlex999.txt over the words of :func:`zipf_text`."""
    rng = np.random.default_rng(seed)
    words = lambda n: " ".join(f"w{i}" for i in rng.integers(0, 40, n))
    folder.mkdir()
    (folder / "questions-words.txt").write_text(": section\n" + "\n".join(words(4) for _ in range(20)) + "\n")
    pairs = ["\t".join([*words(2).split(), f"{rng.uniform(0, 10):.2f}"]) for _ in range(15)]
    (folder / "wordsim353.tsv").write_text("# word pairs\n" + "\n".join(pairs) + "\n")
    (folder / "simlex999.txt").write_text("word1\tword2\tSimLex999\n" + "\n".join(pairs) + "\n")
    return folder


def test_quality_word2vec_rows(tmp_path):
    """One row per method, written as each finishes; words/s counts the same words for gensim and us
    (in-vocabulary tokens x epochs over train seconds); a failing method is an error row."""
    text, evals = zipf_text(tmp_path / "text.txt"), eval_files(tmp_path / "eval")
    args = ["--corpus", str(text), "--eval-dir", str(evals), "--epochs", "1", "--vector-size", "16", "--workers", "1"]
    ours, md = run_script("quality_word2vec.py", "quality_word2vec_ours", tmp_path, *args, "--engine", "ours",
                          "--methods", "sg-ns,cbow-hs,sg-ns-shared", fail="cbow-hs")  # fmt: skip
    rows = keyed(ours["rows"], "method")
    assert list(rows) == ["sg-ns", "cbow-hs", "sg-ns-shared"]
    assert_rows(ours, md, failed=("cbow-hs",))
    words = in_vocab_words(text)
    for r in (rows["sg-ns"], rows["sg-ns-shared"]):
        assert r["words"] == words and r["words_per_s"] == pytest.approx(words / r["train_seconds"])
        assert 0 <= r["analogies"] <= 1 and -1 <= r["wordsim353"] <= 1 and -1 <= r["simlex999"] <= 1
    pytest.importorskip("gensim")
    gensim, md = run_script("quality_word2vec.py", "quality_word2vec_gensim", tmp_path, *args, "--engine", "gensim",
                            "--methods", "sg-ns,cbow-hs")  # fmt: skip
    rows = keyed(gensim["rows"], "method")
    assert list(rows) == ["sg-ns", "cbow-hs"]
    assert_rows(gensim, md, failed=())
    for r in rows.values():
        assert r["words"] == words and r["words_per_s"] == pytest.approx(words / r["train_seconds"])


def test_bench_word2vec_cpu_rows(tmp_path):
    """--smoke: a row per method, engine and worker count; both engines count the same words and are
    scored on the same files; a failing method is an error row for both engines and the others are
    still measured and compared."""
    pytest.importorskip("gensim")
    text, evals = zipf_text(tmp_path / "text.txt"), eval_files(tmp_path / "eval")
    result, md = run_script("bench_word2vec_cpu.py", "word2vec_cpu", tmp_path, "--smoke", "--corpus", str(text),
                            "--eval-dir", str(evals), fail="skip-gram HS")  # fmt: skip
    rows = keyed(result["rows"], "method", "engine", "workers")
    methods = ("CBOW NS", "skip-gram NS", "skip-gram HS", "CBOW HS")
    assert list(rows) == [f"{m} {e} 1" for m in methods for e in ("gensim", "ours")]
    assert_rows(result, md, failed=("skip-gram HS gensim 1", "skip-gram HS ours 1"))
    assert result["config"]["vector_size"] == 16 and result["isa"] in ("baseline", "avx2", "avx512")
    for method in ("CBOW NS", "skip-gram NS", "CBOW HS"):
        gensim, ours = rows[f"{method} gensim 1"], rows[f"{method} ours 1"]
        assert gensim["words"] == ours["words"] == in_vocab_words(text)
        for r in (gensim, ours):
            assert r["words_per_s"] == pytest.approx(r["words"] / r["train_seconds"])
            assert 0 <= r["analogies"] <= 1 and -1 <= r["wordsim353"] <= 1 and -1 <= r["simlex999"] <= 1
        assert f"| {method} | 1 | {gensim['words_per_s'] / 1e6:.3f} | {ours['words_per_s'] / 1e6:.3f} | " \
               f"{ours['words_per_s'] / gensim['words_per_s']:.2f}x |" in md


def test_bench_word2vec_cpu_ours_alone(tmp_path):
    """--engines ours (the GPU machine has no gensim): only our rows, measured and scored, and the
    table leaves gensim's cells and the ratio blank rather than making them up."""
    text, evals = zipf_text(tmp_path / "text.txt"), eval_files(tmp_path / "eval")
    result, md = run_script("bench_word2vec_cpu.py", "word2vec_cpu", tmp_path, "--smoke", "--corpus", str(text),
                            "--eval-dir", str(evals), "--engines", "ours", "--methods", "CBOW HS")  # fmt: skip
    rows = keyed(result["rows"], "method", "engine", "workers")
    assert list(rows) == ["CBOW HS ours 1"]
    ours = rows["CBOW HS ours 1"]
    assert ours["words"] == in_vocab_words(text) and 0 <= ours["analogies"] <= 1
    assert f"| CBOW HS | 1 |  | {ours['words_per_s'] / 1e6:.3f} |  |" in md


def test_bench_corpus_rows(tmp_path):
    """Every engine x mode x negative row; C++ and NumPy draw the same number of pairs per word; with
    the NumPy rows failing, the C++ rows are still measured and no summary is made up."""
    text = zipf_text(tmp_path / "text.txt", words=30000)
    args = ["--corpus", str(text), "--workers", "1", "--repeats", "1"]
    stem = f"corpus_cpu-{os.cpu_count()}c"
    want = ["c++ 1 skipgram 0", "c++ 1 skipgram 5", "c++ 1 cbow 5", "numpy 1 skipgram 0", "numpy 1 skipgram 5"]
    result, md = run_script("bench_corpus.py", stem, tmp_path, *args)
    assert list(keyed(result["rows"], "engine", "workers", "mode", "negative")) == want
    assert_rows(result, md, failed=())
    assert result["ratios"]["pairs_per_word_rel_diff"] < 0.02 and len(result["targets"]) == 4

    result, md = run_script("bench_corpus.py", stem, tmp_path, *args, fail="numpy")
    keyed(result["rows"], "engine", "workers", "mode", "negative")
    assert_rows(result, md, failed=want[3:])
    assert result["ratios"] is None and result["targets"] is None and "No summary" in md
