"""``fastpretrain bert train`` then ``bert eval`` on a tiny corpus the test writes."""

import json
import os
import re
import signal

import pytest
from bert_corpus import write_corpus

from fastpretrain.cli import main
from fastpretrain.train import Trainer


pytestmark = pytest.mark.usefixtures("one_thread")


def test_bert_train_then_eval(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt", docs=30, sentences=12)
    run = tmp_path / "run"
    code = main(["bert", "train", "--corpus", str(corpus), "--vocab-size", "300", "--model", "bert_tiny",
                 "--max-len", "32", "--steps", "6", "--batch-size", "8", "--log-every", "3", "--warmup-steps", "2",
                 "--heldout", "0.2", "--attention-dropout", "0", "--eval-examples", "16", "--out-dir", str(run),
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


def _train(tmp_path, *flags: str) -> int:
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        write_corpus(corpus, docs=30, sentences=12)
    return main(["bert", "train", "--corpus", str(corpus), "--vocab-size", "300", "--model", "bert_tiny",
                 "--max-len", "32", "--batch-size", "8", "--heldout", "0", "--warmup-steps", "1", "--log-every", "1",
                 "--out-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), *flags])  # fmt: skip


def test_resume_with_other_model_flags_is_refused_and_keeps_the_run_files(tmp_path, capsys):
    """A refused --resume used to rewrite the run's config first, leaving a run whose checkpoints no
    longer load; now nothing is written and the error names the fields."""
    assert _train(tmp_path, "--steps", "2") == 0
    run = tmp_path / "run"
    before = {p: p.read_bytes() for p in (run / "config.json", run / "tokenizer" / "vocab.txt")}
    capsys.readouterr()
    assert _train(tmp_path, "--steps", "4", "--resume", "--pre-norm") == 2
    err = capsys.readouterr().err
    assert "error: resume: the model config differs from the checkpoint" in err
    assert "pre_norm False there, True here" in err
    assert {p: p.read_bytes() for p in before} == before
    assert _train(tmp_path, "--steps", "4", "--resume") == 0


def test_sigterm_saves_and_exits_143_without_claiming_success(tmp_path, capsys, monkeypatch):
    """SIGTERM after step 2 of 6: a checkpoint, "interrupted" on stderr, no "trained" line and exit
    status 143, the shell's for SIGTERM; --resume then finishes the run."""
    step = Trainer._step

    def step_then_sigterm(self, *args):
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, *args)

    monkeypatch.setattr(Trainer, "_step", step_then_sigterm)
    with pytest.raises(SystemExit) as stopped:
        _train(tmp_path, "--steps", "6")
    monkeypatch.undo()
    out, err = capsys.readouterr()
    assert stopped.value.code == 143 and "trained" not in out
    assert "interrupted by SIGTERM at step 2 of 6, not complete" in err
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_000002"]
    assert _train(tmp_path, "--steps", "6", "--resume") == 0
    assert "trained      6 steps" in capsys.readouterr().out


def test_attention_dropout_out_of_range_is_a_flag_error_before_the_corpus_is_read(tmp_path, capsys):
    """The flag used to take 1.5 and fail only after the tokenizer was trained; one name, the config's one check."""
    with pytest.raises(SystemExit) as exit_info:
        main(["bert", "train", "--corpus", str(tmp_path / "absent.txt"), "--attention-dropout", "1.5"])
    assert exit_info.value.code == 2
    assert "argument --attention-dropout: expected a probability in [0, 1), got 1.5" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name,content,match",
    [("absent.txt", None, "error: --tokenizer: '.*absent.txt' does not exist"),
     ("bad.json", "{not json", "error: --tokenizer: cannot load '.*bad.json': "),
     ("empty", "", "error: --tokenizer: directory '.*empty' holds neither tokenizer.json nor vocab.txt"),
     ("vocab.txt", "a\nb\n", "error: --tokenizer: cannot load .*vocab.txt.*not found in the vocabulary")],
)  # fmt: skip
def test_tokenizer_errors_name_the_flag(tmp_path, capsys, name, content, match):
    """The error used to say "path:"."""
    path = tmp_path / name
    if name == "empty":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    assert _train(tmp_path, "--steps", "1", "--tokenizer", str(path)) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and err.count("\n") == 1, err


def test_trains_with_the_shared_bert_vocabulary(tmp_path, capsys, shared_data):
    """The README's vocabulary: ../shared/data/bert-uncased-vocab.txt."""
    assert _train(tmp_path, "--steps", "1", "--tokenizer", str(shared_data / "bert-uncased-vocab.txt")) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["vocab_size"] == 30522
