"""The ``fastpretrain`` command line: help lists the commands, ``corpus`` reports the
statistics of the corpus it was given, and bad input exits 2 with a message."""

import re

import pytest

from fastpretrain.cli import main
from fastpretrain.data import Corpus


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert re.search(r"^\s+corpus\s+vocabulary statistics", capsys.readouterr().out, re.M)


def test_corpus_reports_vocabulary_and_throughput(tmp_path, capsys):
    words = [f"w{i % 37}" for i in range(5000)] + ["rare"]
    (tmp_path / "text8").write_text(" ".join(words))
    assert main(["corpus", "--corpus", str(tmp_path / "text8"), "--workers", "2", "--min-count", "2"]) == 0
    out = capsys.readouterr().out
    corpus = Corpus.build(tmp_path / "text8", min_count=2)
    assert f"tokens       {corpus.n_words:,} in vocabulary, {len(corpus.vocab)} words" in out
    assert re.search(r"throughput\s+[\d.]+ M words/s, [\d.]+ M skip-gram pairs/s \(2 workers", out)


def test_default_corpus_is_the_gensim_wikipedia_sample(capsys):
    pytest.importorskip("gensim", reason="the default corpus is made from text in gensim's wheel")
    assert main(["corpus", "--workers", "1", "--top", "3"]) == 0
    out = capsys.readouterr().out
    path = re.search(r"^corpus\s+(\S+)", out, re.M).group(1)
    text = open(path).read()
    assert re.fullmatch(r"[a-z ]+", text) and len(text.split()) > 400_000
    assert "top words    the (" in out


def test_bad_input_exits_2_with_a_message(tmp_path, capsys):
    assert main(["corpus", "--corpus", str(tmp_path / "missing.txt")]) == 2
    assert "error: corpus: " in capsys.readouterr().err
    (tmp_path / "t").write_text("a b c")
    assert main(["corpus", "--corpus", str(tmp_path / "t")]) == 2
    assert "error: min_count=5: no word occurs that often" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["corpus", "--corpus", str(tmp_path / "t"), "--window", "0"])
    assert exit_info.value.code == 2
    assert "argument --window: expected a value >= 1, got 0" in capsys.readouterr().err


def test_word2vec_train_then_eval(tmp_path, capsys):
    """train writes vectors of the corpus's vocabulary in the chosen format; eval reads them back."""
    from fastpretrain.models import KeyedVectors

    words = [f"w{i % 23}" for i in range(3000)]
    (tmp_path / "text8").write_text(" ".join(words))
    (tmp_path / "pairs.tsv").write_text("w1\tw2\t5.0\nw3\tw4\t2.0\nw5\tw6\t8.0\n")
    (tmp_path / "q.txt").write_text(": toy\nw1 w2 w3 w4\n")
    flags = ["--questions", str(tmp_path / "q.txt"), "--wordsim", str(tmp_path / "pairs.tsv"),
             "--simlex", str(tmp_path / "pairs.tsv")]  # fmt: skip
    out = tmp_path / "v.txt"
    assert main(["word2vec", "train", "--corpus", str(tmp_path / "text8"), "--min-count", "1", "--epochs", "1",
                 "--vector-size", "8", "--workers", "1", "--device", "cpu", "--out", str(out), *flags]) == 0  # fmt: skip
    trained = capsys.readouterr().out
    kv = KeyedVectors.load_word2vec_format(out)
    assert sorted(kv.words) == sorted(set(words)) and kv.vector_size == 8
    assert re.search(r"trained\s+23 words x 8", trained) and "analogies    " in trained
    assert main(["word2vec", "eval", str(out), *flags]) == 0
    evaluated = capsys.readouterr().out
    assert "vectors      23 words x 8" in evaluated
    assert re.search(r"wordsim353\s+Spearman", evaluated)
