"""``fastpretrain gpt train`` then ``gpt eval`` and ``gpt generate`` on a tiny corpus the test
writes: the run's files, the held-out perplexity eval reproduces (from the run and from its Hugging
Face export), sampling prints text, and bad flags fail in one line."""

import json

import pytest
from bert_corpus import write_corpus

from fastpretrain.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(tmp_path, *flags: str) -> int:
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        write_corpus(corpus, docs=30, sentences=12)
    return main(["gpt", "train", "--corpus", str(corpus), "--vocab-size", "300", "--model", "gpt_tiny",
                 "--seq-len", "32", "--batch-size", "4", "--log-every", "3", "--warmup-steps", "2",
                 "--out-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), *flags])  # fmt: skip


def test_gpt_train_eval_generate(tmp_path, capsys):
    from transformers import GPT2LMHeadModel

    assert _train(tmp_path, "--steps", "6", "--heldout", "0.2", "--eval-rows", "8") == 0
    out = capsys.readouterr().out
    assert "packed with document boundaries" in out and "perplexity" in out
    run = tmp_path / "run"
    assert (run / "tokenizer/tokenizer.json").is_file() and (run / "model.safetensors").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6] and all(r["nll"] > 0 for r in rows)
    metrics = json.loads((run / "eval.json").read_text())
    assert metrics["rows"] == 8 and metrics["perplexity"] > 1
    GPT2LMHeadModel.from_pretrained(run / "hf")

    cache = ["--cache-dir", str(tmp_path / "cache"), "--eval-rows", "8"]
    assert main(["gpt", "eval", str(run), *cache]) == 0
    assert f"perplexity   {metrics['perplexity']:.2f}" in capsys.readouterr().out  # same weights, same rows
    assert main(["gpt", "eval", str(run / "hf"), "--corpus", str(tmp_path / "corpus.txt"), "--seq-len", "32",
                 "--heldout", "0.2", *cache]) == 0  # fmt: skip
    assert f"perplexity   {metrics['perplexity']:.2f}" in capsys.readouterr().out  # the export holds the same weights
    assert main(["gpt", "eval", str(run), "--packed", "no", *cache]) == 0
    assert "unpacked rows" in capsys.readouterr().out

    assert main(["gpt", "generate", str(run), "--prompt", "The", "--max-new-tokens", "10", "--num-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- sample") == 2 and "\nThe" in out


def test_bad_flags_fail_in_one_line(tmp_path, capsys):
    assert _train(tmp_path, "--steps", "1", "--seq-len", "300") == 2
    assert "--seq-len: 300 is longer than the model's --block-size 256" in capsys.readouterr().err
    assert _train(tmp_path, "--steps", "1", "--tokenizer", str(tmp_path)) == 2
    assert "--tokenizer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _train(tmp_path, "--positions", "alibi")
    assert main(["gpt", "train", "--corpus", str(tmp_path / "nope.txt"), "--out-dir", str(tmp_path / "r")]) == 2
    assert "--corpus" in capsys.readouterr().err
