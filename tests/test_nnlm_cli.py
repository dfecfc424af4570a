"""fastpretrain nnlm train|eval: a short run on a small corpus writes its files and held-out
perplexity; eval of the run reproduces it; bad flags and inputs exit 2 naming what is wrong."""

import json

import pytest

from fastpretrain.cli import main
from fastpretrain.models import NNLM

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = "\n\n".join(
    f"Doc {d}. The {w} sat on the mat with the {w}s. It was a {w} day, and the {w} ran home.\nAnother line {d}."
    for d, w in enumerate(["cat", "dog", "bird", "fish", "cow", "hen", "fox", "owl"] * 3)
)


def test_train_then_eval(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "run"
    args = ["nnlm", "train", "--corpus", str(corpus), "--model", "nnlm_tiny", "--vocab-size", "40", "--heldout", "0.2",
            "--block-length", "8", "--no-cased", "--num-sampled", "10", "--steps", "6", "--batch-size", "4", "--out-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    assert {"config.json", "model.safetensors", "vocab.txt", "eval.json"} <= {p.name for p in out.iterdir()}
    saved = json.loads((out / "eval.json").read_text())
    model = NNLM.from_pretrained(out)
    assert model.config.vocab_size == 40 and model.config.num_sampled == 10
    assert 1 < saved["perplexity"] < 100 and saved["tokens"] > 0
    capsys.readouterr()
    assert main(["nnlm", "eval", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"perplexity {saved['perplexity']:.2f}" in printed, printed


@pytest.mark.parametrize("flags,message", [
    (["--num-sampled", "-1"], "argument --num-sampled: expected an int >= 0, got -1"),
    (["--sampler", "zipf"], "--sampler"),
    (["--block-length", "0"], "--block-length"),
    (["--corpus", "/nonexistent/corpus.txt"], "--corpus: '/nonexistent/corpus.txt' does not exist"),
])  # fmt: skip
def test_bad_flags_exit_2(flags, message, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    args = ["nnlm", "train", "--corpus", str(corpus), "--out-dir", str(tmp_path / "run"), *flags]
    with pytest.raises(SystemExit) as e:
        code = main(args)
        raise SystemExit(code)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
