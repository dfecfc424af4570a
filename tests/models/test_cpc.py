"""CPC on text: the loss is k-step-ahead InfoNCE written out in float64 (value and every gradient),
a synthetic sequence whose next sentence is predictable is learnt far below chance, the sentence
windows keep documents apart and hold every tenth out, and the CLI trains, evaluates (reproducing
its held-out loss) and refuses bad flags naming them."""

import json
import math
import re

import numpy as np
import pytest
import torch

from fastpretrain.cli import main
from fastpretrain.data.sentence_windows import SentenceWindows, document_sentences, sentence_bytes
from fastpretrain.models import CPC, create_model

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_loss(z, ctx, weights):
    """Mean over k of the mean over (b, t < S - k) of -log softmax_j((W_k c_bt) . z_j) at j = (b, t + k)."""
    b, s, _ = z.shape
    keys = z.reshape(b * s, -1)
    steps = []
    for k, w in enumerate(weights, start=1):
        terms = []
        for i in range(b):
            for t in range(s - k):
                logits = keys @ (w @ ctx[i, t])
                terms.append(torch.logsumexp(logits, 0) - logits[i * s + t + k])
        steps.append(torch.stack(terms).mean())
    return torch.stack(steps).mean()


def test_loss_is_k_step_infonce_written_out():
    torch.manual_seed(0)
    model = create_model("cpc_text_tiny", window=5, prediction_steps=3)
    windows = torch.randint(0, 256, (3, 5, 32), dtype=torch.uint8)
    z, ctx = model.encode_windows(windows)
    torch.testing.assert_close(model(windows)["loss"], model.step_losses(z, ctx).mean())
    z, ctx = z.detach().requires_grad_(), ctx.detach().requires_grad_()
    loss = model.step_losses(z, ctx).mean()
    loss.backward()
    z64, ctx64 = z.detach().double().requires_grad_(), ctx.detach().double().requires_grad_()
    w64 = [p.weight.detach().double().requires_grad_() for p in model.predictors]
    expected = reference_loss(z64, ctx64, w64)
    expected.backward()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z.grad.double(), z64.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(ctx.grad.double(), ctx64.grad, rtol=1e-4, atol=1e-7)
    for p, w in zip(model.predictors, w64, strict=True):
        torch.testing.assert_close(p.weight.grad.double(), w.grad, rtol=1e-4, atol=1e-7)


def test_a_predictable_sequence_is_learnt():
    """Windows of 4 sentences walking a fixed cycle of 64 random strings from a random start: the next
    sentences follow from the current one, so the loss can fall far below log(32 keys)."""
    rng = np.random.default_rng(0)
    cycle = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz "), 24)) for _ in range(64)]
    torch.manual_seed(0)
    model = create_model("cpc_text_tiny", z_dim=64, context_dim=64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        starts = rng.integers(0, 64, 8)
        windows = torch.from_numpy(np.stack([[sentence_bytes(cycle[(a + t) % 64], 32) for t in range(4)]
                                             for a in starts]))  # fmt: skip
        loss = model(windows)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * math.log(32), loss.item()


def test_windows_stay_inside_documents(tmp_path):
    corpus = tmp_path / "docs.txt"
    docs = [[f"Doc {d} says {i}." for i in range(5 + d % 3)] for d in range(12)]
    corpus.write_text("\n\n".join(" ".join(doc) for doc in docs) + "\n")
    train, held = document_sentences(corpus, "train"), document_sentences(corpus, "heldout")
    assert held == [docs[9]] and train == docs[:9] + docs[10:]
    windows = SentenceWindows(train, 3, 16)
    assert len(windows) == sum(len(d) // 3 for d in train)
    assert bytes(windows[0][1]).rstrip(b"\0") == b"Doc 0 says 1." and windows[1][0][4] == ord("1")
    with pytest.raises(ValueError, match="documents: no document has 9 sentences"):
        SentenceWindows(train, 9, 16)


def write_corpus(path, n_docs=30):
    rng = np.random.default_rng(1)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "light", "north", "green", "quiet"]
    docs = []
    for d in range(n_docs):
        sentences = [" ".join(rng.choice(words, 5)).capitalize() + f" {d}." for _ in range(9)]
        docs.append(" ".join(sentences))
    path.write_text("\n\n".join(docs) + "\n")
    return path


def test_cli_trains_and_evaluation_reproduces_its_loss(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "docs.txt")
    run = tmp_path / "run"
    assert main(["cpc", "train", "--corpus", str(corpus), "--model", "cpc_text_tiny", "--batch-size", "4", "--steps",
                 "3", "--warmup-steps", "0", "--device", "cpu", "--out-dir", str(run)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "27 training documents, 54 windows of 4 sentences x 32 bytes" in out
    trained = float(re.search(r"held-out     CPC loss ([0-9.]+)", out).group(1))
    assert CPC.from_pretrained(run).config == create_model("cpc_text_tiny").config
    summary = tmp_path / "metrics.json"
    assert main(["cpc", "eval", str(run), "--batch-size", "4", "--pairs", "20", "--probe-iters", "5", "--device", "cpu",
                 "--json", str(summary)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    metrics = json.loads(summary.read_text())
    assert f"CPC loss {trained:.4f} over 6 windows" in out and round(metrics["heldout_loss"], 4) == trained
    assert metrics["chance_loss"] == pytest.approx(math.log(16))
    assert "next sentence cpc" in out and "random_init" in out and 0 <= metrics["next_sentence_cpc"] <= 1
    with pytest.raises(SystemExit) as exit_info:
        main(["cpc", "eval", str(run), "--pairs", "1"])
    assert exit_info.value.code == 2 and "argument --pairs: expected a value >= 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, flag",
    [(["train", "--window", "2"], "--window"), (["train", "--corpus", "missing.txt"], "--corpus"),
     (["train", "--max-documents", "0"], "--max-documents"), (["train", "--conv-layers", "6"], "--sentence-len")],
)  # fmt: skip
def test_bad_train_flags_exit_2_naming_them(tmp_path, capsys, argv, flag):
    base = ["--corpus", str(write_corpus(tmp_path / "docs.txt", 12)), "--model", "cpc_text_tiny", "--steps", "1",
            "--warmup-steps", "0", "--device", "cpu", "--out-dir", str(tmp_path / "run")]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        code = main(["cpc", *argv[:1], *base, *argv[1:]])
        raise SystemExit(code)
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.safetensors").exists()
