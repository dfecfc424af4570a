"""``fastpretrain bert train`` then ``bert eval`` on a tiny corpus the test writes."""

import json

import pytest
from bert_corpus import write_corpus

from fastpretrain.cli import main


pytestmark = pytest.mark.usefixtures("one_thread")


def test_bert_train_then_eval(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt", docs=30, sentences=12)
    run = tmp_path / "run"
    code = main(["bert", "train", "--corpus", str(corpus), "--vocab-size", "300", "--size", "tiny", "--max-len", "32",
                 "--steps", "6", "--batch-size", "8", "--log-every", "3", "--warmup-steps", "2", "--heldout", "0.2",
                 "--attention-dropout", "0", "--eval-examples", "16", "--out-dir", str(run),
                 "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert (run / "tokenizer/vocab.txt").is_file() and (run / "hf/model.safetensors").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6] and all(r["mlm_loss"] > 0 for r in rows)
    metrics = json.loads((run / "eval.json").read_text())
    assert 0 <= metrics["mlm_accuracy"] <= 1 and metrics["examples"] == 16

    assert main(["bert", "eval", str(run), "--eval-examples", "16", "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "mlm          loss" in out and "nsp          loss" in out and "probe" in out
    assert f"accuracy {metrics['mlm_accuracy']:.2%}" in out  # the same checkpoint and held-out examples
    assert main(["bert", "eval", str(run / "hf"), "--corpus", str(corpus), "--max-len", "32", "--heldout", "0.2",
                 "--eval-examples", "16", "--cache-dir", str(tmp_path / "cache")]) == 0  # fmt: skip
    assert f"accuracy {metrics['mlm_accuracy']:.2%}" in capsys.readouterr().out  # the export holds the same weights


def test_bert_train_missing_corpus(tmp_path, capsys):
    assert main(["bert", "train", "--corpus", str(tmp_path / "nope.txt"), "--out-dir", str(tmp_path / "run")]) == 2
    assert "corpus" in capsys.readouterr().err
