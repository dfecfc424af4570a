"""fastpretrain elmo train|eval|embed: a short run writes its files, each direction's held-out
perplexity and layer-0 word similarity; eval reproduces them; embed writes per-word contextual
vectors (.npy + offsets, .safetensors) in which one word differs by context beyond layer 0; bad
flags exit 2 naming the flag."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from fastpretrain.cli import main
from fastpretrain.models import ELMo

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:LSTM with projections")]

TEXT = "\n\n".join(
    f"Doc {d}. The {w} sat on the bank of the river. It was a {w} day! The bank gave the {w} a loan.\nMore {d}."
    for d, w in enumerate(["cat", "dog", "bird", "fish", "cow", "hen", "fox", "owl"] * 3)
)
TINY = ["--model", "elmo_tiny", "--lstm-dim", "16", "--projection-dim", "8", "--filter-widths", "1", "2",
        "--filter-counts", "4", "4", "--num-sampled", "10"]  # fmt: skip


@pytest.fixture
def run(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("cat\tdog\t7.0\nbank\triver\t5.5\nloan\tbank\t8.0\nday\tfox\t1.0\n")
    out = tmp_path / "run"
    args = ["elmo", "train", "--corpus", str(corpus), "--vocab-size", "40", "--heldout", "0.2", "--block-length", "6",
            *TINY, "--steps", "4", "--batch-size", "4", "--out-dir", str(out), "--similarity", str(pairs)]  # fmt: skip
    assert main(args) == 0
    return out, pairs


def test_train_eval_embed(run, tmp_path, capsys):
    out, pairs = run
    assert {"config.json", "model.safetensors", "vocab.txt", "eval.json"} <= {p.name for p in out.iterdir()}
    saved = json.loads((out / "eval.json").read_text())
    model = ELMo.from_pretrained(out)
    assert model.config.vocab_size == 40 and model.config.filter_widths == (1, 2)
    assert model.char_table.any()  # the vocabulary's characters were saved with the weights
    assert 1 < saved["forward_perplexity"] < 100 and 1 < saved["backward_perplexity"] < 100
    assert saved["similarity_pairs"]["pairs"] == 4
    capsys.readouterr()
    assert main(["elmo", "eval", str(out), "--similarity", str(pairs)]) == 0
    printed = capsys.readouterr().out
    assert (f"forward {saved['forward_perplexity']:.2f}, backward {saved['backward_perplexity']:.2f}" in printed
            and f"spearman {saved['similarity_pairs']['spearman']:.3f}" in printed), printed  # fmt: skip
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("He sat on the bank of the river.\n\nShe asked the bank for a loan.\n")
    assert main(["elmo", "embed", str(out), "--input", str(sentences), "--out", str(tmp_path / "v.npy")]) == 0
    vectors, offsets = np.load(tmp_path / "v.npy"), np.load(tmp_path / "v.offsets.npy")
    assert vectors.shape == (17, 3, 16) and offsets.tolist() == [0, 9, 17]
    first, second = vectors[4], vectors[9 + 3]  # "bank" in each sentence
    assert np.array_equal(first[0], second[0]) and not np.allclose(first[1:], second[1:])
    assert main(["elmo", "embed", str(out), "--input", str(sentences), "--out", str(tmp_path / "v.safetensors"),
                 "--layer", "mean"]) == 0  # fmt: skip
    tensors = load_file(tmp_path / "v.safetensors")
    np.testing.assert_allclose(tensors["vectors"], vectors.mean(1), rtol=1e-6, atol=1e-6)
    assert tensors["offsets"].tolist() == [0, 9, 17]


@pytest.mark.parametrize("flags,message", [
    (["--out", "v.txt"], "--out: expected a .npy or .safetensors file"),
    (["--out", "v.npy", "--layer", "3"], "--layer: expected all, mean or a layer in 0..2, got '3'"),
    (["--out", "v.npy", "--input", "/nonexistent.txt"], "--input: '/nonexistent.txt' does not exist"),
])  # fmt: skip
def test_bad_embed_flags_exit_2(run, flags, message, tmp_path, capsys):
    out, _ = run
    sentences = tmp_path / "s.txt"
    sentences.write_text("A sentence.\n")
    args = ["elmo", "embed", str(out), "--input", str(sentences), *flags]
    args = [str(tmp_path / a) if a.startswith("v.") else a for a in args]
    assert main(args) == 2
    assert message in capsys.readouterr().err
