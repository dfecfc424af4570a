"""The ``fastpretrain`` command line: help lists the commands, ``corpus`` reports the
statistics of the corpus it was given, bad input exits 2 with a message before any long phase,
outputs take the umask's mode, and Ctrl-C saves what was trained and exits 130."""

import os
import random
import re
import signal
import stat
import subprocess
import sys
import time

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
    assert "argument --window: expected an int in [1, 1048576], got 0" in capsys.readouterr().err


def test_corpus_flags_are_word2vecs(capsys):
    """corpus's vocabulary and batch flags are Word2VecConfig's, checked by it, with the command's own defaults."""
    with pytest.raises(SystemExit):
        main(["corpus", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "pairs or examples per batch (default 16384)" in out and "1 skip-gram pairs, 0 CBOW examples (default 1)" in out
    assert "passes over the corpus (default 1)" in out and "--vector-size" not in out
    with pytest.raises(SystemExit):
        main(["corpus", "--negative", "0"])
    assert "argument --negative: 0 needs hs=1" in capsys.readouterr().err


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


@pytest.fixture
def text8(tmp_path):
    path = tmp_path / "text8"
    path.write_text(" ".join(f"w{i % 23}" for i in range(3000)))
    return path


def train(corpus, out, *flags):
    return main(["word2vec", "train", "--corpus", str(corpus), "--min-count", "1", "--epochs", "1", "--vector-size",
                 "8", "--workers", "1", "--device", "cpu", "--out", str(out), *flags])  # fmt: skip


@pytest.mark.parametrize(
    "out,match",
    [("file/v.bin", "--out: cannot create .*'.*file' is a file, not a directory"),
     ("file/deeper/v.txt", "is a file, not a directory"), ("folder.bin", "--out: .*folder.bin' is a directory"),
     ("v.w2v", r"--out: .* has suffix '.w2v'; expected one of .bin \(word2vec binary\), .txt .*\.vec .*\.safetensors"),
     ("vectors", "has suffix '\\(none\\)'")],
)  # fmt: skip
def test_out_is_checked_before_training(tmp_path, text8, capsys, out, match):
    """A bad --out used to surface only after the whole run, losing it."""
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "folder.bin").mkdir()
    assert train(text8, tmp_path / out) == 2
    captured = capsys.readouterr()
    assert re.search(match, captured.err) and "training" not in captured.out
    assert not (tmp_path / "cache" / "corpora").exists(), "the corpus was read before --out was checked"


@pytest.mark.parametrize("suffix,binary", [(".vec", False), (".txt", False), (".bin", True)])
def test_vector_suffixes_pick_the_format(tmp_path, text8, suffix, binary):
    from fastpretrain.models import KeyedVectors

    out = tmp_path / f"v{suffix}"
    assert train(text8, out) == 0
    head = out.read_bytes()[:200]
    assert head.startswith(b"23 8\n") and (b"\x00" in head or not binary)
    assert len(KeyedVectors.load_word2vec_format(out, binary=binary)) == 23
    assert main(["word2vec", "eval", str(out)]) == 0


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_outputs_honour_the_umask(tmp_path, text8, mask, mode, suffix):
    """Atomic writes used to leave mkstemp's 0600 on every output."""
    old = os.umask(mask)
    try:
        assert train(text8, tmp_path / f"v{suffix}") == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / f"v{suffix}").stat().st_mode) == mode


def interrupt_at_step(monkeypatch, n):
    """Ctrl-C while training: KeyboardInterrupt from the n-th batch's update (the batch path, whose
    steps can be counted; tests/models/test_word2vec_hogwild.py sends the C++ loop a real SIGINT)."""
    from fastpretrain.models.word2vec import Word2Vec

    step, calls = Word2Vec.step, []
    monkeypatch.setattr(Word2Vec, "_engine", lambda self, engine: "batches")

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return step(self, *args)

    monkeypatch.setattr(Word2Vec, "step", interrupted)


def test_ctrl_c_saves_what_was_trained_and_exits_130(tmp_path, text8, monkeypatch, capsys):
    from fastpretrain.models import KeyedVectors

    interrupt_at_step(monkeypatch, 2)
    with pytest.raises(SystemExit) as exit_info:
        train(text8, tmp_path / "v.bin", "--batch-size", "256")
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert re.search(r"interrupted after [\d.]+% of training: saved the partly trained vectors to .*v.bin", err)
    assert len(KeyedVectors.load_word2vec_format(tmp_path / "v.bin")) == 23


def test_ctrl_c_before_any_training_says_nothing_was_saved(tmp_path, text8, monkeypatch, capsys):
    interrupt_at_step(monkeypatch, 1)
    with pytest.raises(SystemExit) as exit_info:
        train(text8, tmp_path / "v.bin")
    assert exit_info.value.code == 130 and not (tmp_path / "v.bin").exists()
    assert "interrupted before the first batch was trained: nothing was saved" in capsys.readouterr().err
    monkeypatch.setattr("fastpretrain.data.Corpus.build", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(SystemExit) as exit_info:
        train(text8, tmp_path / "v.bin")
    assert exit_info.value.code == 130 and not (tmp_path / "v.bin").exists()
    assert "interrupted while reading the corpus, before training: nothing was saved" in capsys.readouterr().err


def test_real_sigint_exits_130_without_a_traceback(tmp_path):
    """The whole path with a real signal: SIGINT to `python -m fastpretrain word2vec train`."""
    rng = random.Random(0)
    text = tmp_path / "zipf.txt"
    text.write_text(" ".join(f"w{rng.randrange(500)}" for _ in range(50_000)))
    out = tmp_path / "v.txt"
    cmd = [sys.executable, "-m", "fastpretrain", "word2vec", "train", "--corpus", str(text), "--min-count", "1",
           "--epochs", "100000", "--vector-size", "8", "--workers", "1", "--device", "cpu", "--out", str(out),
           "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout.readline().startswith("training")
        deadline = time.monotonic() + 120
        while not (tmp_path / "cache" / "corpora").is_dir() or list((tmp_path / "cache" / "corpora").glob(".build-*")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        time.sleep(2.0)  # into training
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "fastpretrain: interrupted after" in err
    assert out.read_text().startswith(f"{len(set(text.read_text().split()))} 8\n")


@pytest.mark.parametrize(
    "flags,match",
    [(["--min-count", "1e23"], "argument --min-count: invalid int value: '1e23'"),
     (["--min-count", str(10**23)], r"argument --min-count: expected an int in \[0, 9223372036854775807\]"),
     (["--batch-size", str(2**31)], "argument --batch-size: expected an int in"),
     (["--seed", "-1"], "argument --seed"), (["--window", str(2**21)], "argument --window"),
     (["--epochs", str(2**31)], "argument --epochs"), (["--max-final-vocab", "0"], "argument --max-final-vocab"),
     (["--shrink-windows", "2"], "argument --shrink-windows")],
)  # fmt: skip
def test_sizes_out_of_range_are_flag_errors(tmp_path, text8, capsys, flags, match):
    with pytest.raises(SystemExit) as exit_info:
        train(text8, tmp_path / "v.bin", *flags)
    assert exit_info.value.code == 2 and re.search(match, capsys.readouterr().err)


@pytest.mark.parametrize("name,match", [("v.w2v", "vectors: .* has suffix '.w2v'"), ("none.bin", "does not exist")])
def test_eval_names_bad_vector_paths(tmp_path, capsys, name, match):
    assert main(["word2vec", "eval", str(tmp_path / name)]) == 2
    assert re.search(match, capsys.readouterr().err)


@pytest.mark.parametrize("flag", ["--questions", "--wordsim", "--simlex"])
def test_missing_evaluation_files_fail_before_training(tmp_path, text8, capsys, flag):
    assert train(text8, tmp_path / "v.bin", flag, str(tmp_path / "gone.txt")) == 2
    captured = capsys.readouterr()
    assert f"error: {flag}: " in captured.err and "gone.txt' does not exist" in captured.err
    assert "training" not in captured.out and not (tmp_path / "v.bin").exists()


def test_shared_data_is_found_or_the_places_tried_are_named(tmp_path, monkeypatch):
    """Not a path inside the venv: $FASTPRETRAIN_DATA first, then beside the checkout, then the cwd."""
    from fastpretrain.data import find_data, resolve_corpus

    monkeypatch.setenv("FASTPRETRAIN_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        find_data("nope.txt.xz")
    message = str(error.value)
    assert message.startswith("nope.txt.xz: not found") and f"{tmp_path / 'data'} ($FASTPRETRAIN_DATA)" in message
    assert f"{tmp_path} (the current directory)" in message and "../shared/data from the current directory" in message
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "corpus20m.txt.xz").write_bytes(b"")
    assert resolve_corpus("corpus20m", tmp_path) == tmp_path / "data" / "corpus20m.txt.xz"


# --- flags generated from the config dataclasses -----------------------------------------------------------------


def one_line(text: str) -> str:
    return " ".join(text.split())


def help_of(*command: str) -> str:
    from fastpretrain.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])


@pytest.mark.parametrize(
    "command,expected",
    [(["mae", "train"], ["--out-dir OUT_DIR checkpoints and metrics go here (default runs/mae)",
                         "--lr LR peak learning rate (default 0.00015)", "(default 0.05)",
                         "--steps STEPS optimizer steps to train (default 1000)",
                         "--betas FLOAT FLOAT AdamW betas (default 0.9 0.95)",
                         "--mask-ratio MASK_RATIO fraction of patches masked, in [0, 1) (default 0.75)",
                         "--embed-dim EMBED_DIM encoder width (default 128)"]),
     (["bert", "train"], ["(default runs/bert)", "--lr LR peak learning rate (default 0.0001)",
                          "--betas FLOAT FLOAT AdamW betas (default 0.9 0.999)", "(default 10000)",
                          "decay from lr to min_lr after warm-up (default linear)", "--model NAME",
                          "(default bert_mini)",
                          "inside the attention op", "--hidden-size HIDDEN_SIZE width (default 256)"]),
     (["word2vec", "train"], ["--vector-size VECTOR_SIZE dimensions of the vectors (default 100)",
                              "--sample SAMPLE subsampling threshold of frequent words (0 disables) (default 0.001)",
                              "--ns-exponent NS_EXPONENT",
                              "--alpha ALPHA initial learning rate (default 0.025 skip-gram"])],
)  # fmt: skip
def test_help_shows_the_defaults_each_command_uses(capsys, command, expected):
    """`mae train --help` / `bert train --help` used to print the Trainer's generic lr 3e-4, 1000
    steps, betas (0.9, 0.95) and runs/train while the commands used their own."""
    help_of(*command)
    text = one_line(capsys.readouterr().out)
    for part in expected:
        assert part in text
    assert "0.0003" not in text and "runs/train" not in text


@pytest.mark.parametrize("command", [["mae", "train"], ["bert", "train", "--corpus", "c.txt"], ["word2vec", "train"]])
def test_flag_defaults_build_the_configs_the_help_names(command):
    """Every config field has one flag; left out, the command gets the recipe or the registered size."""
    from fastpretrain.cli import build_parser
    from fastpretrain.cli.flags import config_values
    from fastpretrain.models import Word2VecConfig
    from fastpretrain.train import TrainConfig

    args = build_parser().parse_args(command)
    if command[0] == "word2vec":
        assert Word2VecConfig(**config_values(Word2VecConfig, args)) == Word2VecConfig(sg=1, epochs=10)
        return
    recipes = {"mae": {"out_dir": "runs/mae", "lr": 1.5e-4, "weight_decay": 0.05, "warmup_steps": 0},
               "bert": {"out_dir": "runs/bert", "lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 0.01,
                        "schedule": "linear", "warmup_steps": 100, "steps": 10000, "batch_size": 32}}  # fmt: skip
    recipe = recipes[command[0]]
    assert TrainConfig.from_args(args) == TrainConfig(**recipe)
    assert args.model == {"mae": "mae_vit_fashion_mnist", "bert": "bert_mini"}[command[0]]
    assert args.run.__self__.model_overrides(args) == {}  # bert's --vocab-size is the WordPiece's, not a model flag


def test_generator_types_bools_tuples_choices_and_help():
    import argparse
    from dataclasses import dataclass, field

    from fastpretrain.cli.flags import FlagError, add_config_flags, build_config

    @dataclass
    class Toy:
        width: int = field(default=8, metadata={"help": "how wide"})
        rate: float = 0.5
        mode: str = field(default="a", metadata={"choices": ("a", "b")})
        fast: bool = False
        pair: tuple[float, float] = (0.1, 0.2)
        sizes: tuple[int, ...] = (1,)
        limit: int | None = None

        def __post_init__(self):
            if self.width < 1:
                raise ValueError(f"width: expected an int >= 1, got {self.width}")

    parser = argparse.ArgumentParser()
    helps = {"limit": "at most this (default: no limit)"}
    add_config_flags(parser, Toy, title="toy", defaults={"rate": 0.25}, helps=helps)
    assert build_config(Toy, parser.parse_args([])) == Toy(rate=0.25)
    args = parser.parse_args(["--width", "3", "--mode", "b", "--fast", "--pair", "1", "2", "--sizes", "4", "5", "6",
                              "--limit", "7"])  # fmt: skip
    expected = Toy(width=3, rate=0.25, mode="b", fast=True, pair=(1.0, 2.0), sizes=(4, 5, 6), limit=7)
    assert build_config(Toy, args) == expected
    assert build_config(Toy, parser.parse_args(["--no-fast"])).fast is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--width", "2.5"])
    with pytest.raises(FlagError, match=r"^argument --width: expected an int >= 1, got 0$"):
        build_config(Toy, parser.parse_args(["--width", "0"]))
    text = one_line(parser.format_help())
    assert "--width WIDTH how wide (default 8)" in text and "--rate RATE Toy.rate (default 0.25)" in text
    assert "--fast, --no-fast Toy.fast (default off)" in text and "--pair FLOAT FLOAT" in text
    assert "--limit LIMIT at most this (default: no limit)" in text


# --- the model command skeleton: checks before data, one model, clear errors -----------------------------------


@pytest.fixture
def toy_images(tmp_path):
    import numpy as np

    path = tmp_path / "toy.npz"
    np.savez(path, images=np.random.default_rng(0).integers(0, 255, (32, 8, 8), dtype=np.uint8))
    return path


def mae_train(images, out, *flags):
    sizes = ["--img-size", "8", "--patch-size", "4", "--in-chans", "1", "--embed-dim", "32", "--depth", "1",
             "--num-heads", "2", "--decoder-embed-dim", "32", "--decoder-depth", "1",
             "--decoder-num-heads", "2"]  # fmt: skip
    return main(["mae", "train", "--data", str(images), *sizes, "--batch-size", "16", "--steps", "2", "--device", "cpu",
                 "--out-dir", str(out), *flags])  # fmt: skip


@pytest.mark.parametrize(
    "flags,match",
    [(["--mask-ratio", "1.5"], r"argument --mask-ratio: expected a float in \[0, 1\), got 1.5"),
     (["--mask-ratio", "0.9"], "argument --mask-ratio: 0.9 keeps no patch of 4"),
     (["--decoder-embed-dim", "2"], "argument --decoder-embed-dim: expected an int >= 4"),
     (["--lr", "0"], "argument --lr: "), (["--betas", "0.9", "1"], "argument --betas: "),
     (["--device", "cuda:7"], "argument --device: 'cuda:7' asked for")],
)  # fmt: skip
def test_config_refusals_are_flag_errors_before_any_data_is_read(tmp_path, capsys, monkeypatch, flags, match):
    """The config's own check is the flag's one check, and it runs before the data is opened."""
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    with pytest.raises(SystemExit) as exit_info:
        mae_train(tmp_path / "missing.npz", tmp_path / "run", *flags)
    assert exit_info.value.code == 2 and re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_mae_train_builds_the_model_once(tmp_path, toy_images, monkeypatch):
    """cli/mae.py used to build the model three times (for training, and twice to save it)."""
    from fastpretrain.models import MAE

    built, init = [], MAE.__init__
    monkeypatch.setattr(MAE, "__init__", lambda self, *a, **k: built.append(1) or init(self, *a, **k))
    assert mae_train(toy_images, tmp_path / "run") == 0
    assert len(built) == 1
    assert MAE.from_pretrained(tmp_path / "run").config.embed_dim == 32


def test_bad_checkpoints_are_one_line_errors(tmp_path, toy_images, capsys):
    """Truncated weights, bad JSON, weights of another size, no run at all: exit 2, no traceback."""
    import json
    import shutil

    run = tmp_path / "run"
    assert mae_train(toy_images, run) == 0
    cases = {}
    for name in ("truncated", "json", "shapes", "field"):
        shutil.copytree(run, tmp_path / name)
        cases[name] = tmp_path / name
    (cases["truncated"] / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes()[:100])
    (cases["json"] / "config.json").write_text('{"model": "mae",')
    for name, key, value in (("shapes", "embed_dim", 64), ("field", "mlp_ratio", "x")):
        config = json.loads((cases[name] / "config.json").read_text())
        config[key] = value
        (cases[name] / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    for path in [*cases.values(), tmp_path / "nothing", toy_images]:
        assert main(["mae", "eval", str(path), "--data", str(toy_images), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fastpretrain: error: checkpoint: ") and err.count("\n") == 1, err


def test_ctrl_c_outside_the_trainer_exits_130(tmp_path, toy_images, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fastpretrain.data.images.image_dataset", interrupted)
    assert mae_train(toy_images, tmp_path / "run") == 130
    assert capsys.readouterr().err == "fastpretrain: interrupted\n"


def test_a_full_disk_at_the_final_save_is_one_line_and_keeps_the_checkpoint(tmp_path, toy_images, monkeypatch, capsys):
    import errno

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[1]))

    monkeypatch.setattr("fastpretrain.cli.model_command.shutil.copyfile", full)
    assert mae_train(toy_images, tmp_path / "run") == 2
    assert "fastpretrain: error: [Errno 28] No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert (tmp_path / "run" / "checkpoints" / "step_000002" / "model.safetensors").is_file()
