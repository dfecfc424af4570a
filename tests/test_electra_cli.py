"""``fastpretrain electra train`` then ``electra eval`` on a tiny corpus the test writes; the
exported discriminator loads as a BERT encoder; bad flags exit 2 naming the flag."""

import json

import pytest
import torch
from bert_corpus import write_corpus

from fastpretrain.cli import main
from fastpretrain.interop.hf import load_hf_bert
from fastpretrain.models import ElectraForPreTraining

pytestmark = pytest.mark.usefixtures("one_thread")


def test_electra_train_then_eval(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt", docs=30, sentences=12)
    run, cache = tmp_path / "run", str(tmp_path / "cache")
    code = main(["electra", "train", "--corpus", str(corpus), "--vocab-size", "300", "--model", "electra_tiny",
                 "--max-len", "32", "--steps", "6", "--batch-size", "8", "--log-every", "3", "--warmup-steps", "2",
                 "--heldout", "0.2", "--attention-dropout", "0", "--eval-examples", "16", "--out-dir", str(run),
                 "--cache-dir", cache])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "rtd" in out and "all-original" in out
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6] and all(r["rtd_loss"] > 0 and r["mlm_loss"] > 0 for r in rows)
    metrics = json.loads((run / "eval.json").read_text())
    assert metrics["examples"] == 16 and 0 <= metrics["rtd_accuracy"] <= 1 and 0 < metrics["all_original_accuracy"] < 1
    assert 0 <= metrics["probe_accuracy"] <= 1

    assert main(["electra", "eval", str(run), "--eval-examples", "16", "--cache-dir", cache]) == 0
    out = capsys.readouterr().out
    assert f"accuracy {metrics['rtd_accuracy']:.2%} (all-original baseline {metrics['all_original_accuracy']:.2%})" in out
    assert f"accuracy {metrics['probe_accuracy']:.2%}" in out  # the same weights, held-out examples and draws

    assert main(["bert", "eval", str(run / "discriminator"), "--corpus", str(corpus), "--max-len", "32", "--heldout",
                 "0.2", "--eval-examples", "16", "--cache-dir", cache]) == 0  # fmt: skip
    assert "probe" in capsys.readouterr().out  # BERT's eval reads the exported discriminator

    model = ElectraForPreTraining.from_pretrained(run).eval()
    bert = load_hf_bert(run / "discriminator").eval()
    ids = torch.tensor([2, 40, 41, 3, 42, 3])
    cu = torch.tensor([0, 6], dtype=torch.int32)
    with torch.no_grad():
        torch.testing.assert_close(bert(ids, cu_seqlens=cu)["cls_hidden"], model(ids, cu_seqlens=cu)["cls_hidden"])


def test_bad_electra_flags_exit_2_naming_the_flag(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt", docs=4, sentences=4)
    base = ["electra", "train", "--corpus", str(corpus), "--model", "electra_tiny", "--out-dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as e:
        main([*base, "--generator-size", "1.5"])
    assert e.value.code == 2 and "--generator-size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*base, "--padded"])  # ELECTRA runs packed batches only
    assert e.value.code == 2 and "--padded" in capsys.readouterr().err
    assert main(["electra", "train", "--corpus", str(tmp_path / "nope.txt"), "--out-dir", str(tmp_path / "r")]) == 2
    assert "corpus" in capsys.readouterr().err
