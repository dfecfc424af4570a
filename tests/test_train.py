"""The trainer in one CPU process: resume equality, atomic checkpoints, stop signals, nan/inf
handling, gradient accumulation, schedules, metrics and bad input."""

import argparse
import json
import os
import signal
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from fastpretrain.train import TrainConfig, Trainer, add_train_args, checkpoint, latest, lr_at, mfu, peak_flops


class Regression(nn.Module):
    """Linear -> GELU -> Dropout -> Linear on a synthetic target; dropout makes resume depend on
    the restored RNG state. ``hook(call)`` runs at the start of every forward (1-based count)."""

    def __init__(self, dropout: float = 0.1, hook=None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Dropout(dropout), nn.Linear(16, 1))
        self.hook, self.calls = hook, 0

    def forward(self, x, y):
        self.calls += 1
        loss = F.mse_loss(self.net(x), y)
        return loss if self.hook is None else self.hook(self.calls, loss)


def dataset(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x**2).sum(1, keepdim=True))


def trainer(out_dir, model_seed: int = 0, dropout: float = 0.1, hook=None, **config) -> Trainer:
    torch.manual_seed(model_seed)
    defaults = dict(steps=12, batch_size=8, lr=1e-2, warmup_steps=2, log_every=1, ckpt_every=100)
    return Trainer(Regression(dropout, hook), dataset(), TrainConfig(out_dir=str(out_dir), **{**defaults, **config}))


def params(t: Trainer) -> dict:
    return {k: v.detach().clone() for k, v in t.model.state_dict().items()}


def assert_same_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def losses(out_dir) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, open(os.path.join(out_dir, "metrics.jsonl")))]


def crash_at(step: int):
    def hook(call, loss):
        if call == step:
            raise RuntimeError("simulated crash")
        return loss

    return hook


def test_resume_after_crash_equals_uninterrupted(tmp_path):
    """2N steps straight vs N (checkpoint) + crash at N+3 + resume: bitwise-equal weights and the
    same loss curve, across an epoch boundary (8 batches an epoch), with dropout."""
    straight = trainer(tmp_path / "straight")
    straight_rows = straight.fit()
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer(tmp_path / "resumed", ckpt_every=6, hook=crash_at(9)).fit()
    assert latest(tmp_path / "resumed").name == "step_000006"
    resumed = trainer(tmp_path / "resumed", model_seed=123, ckpt_every=6, resume=True)
    resumed_rows = resumed.fit()
    assert_same_params(params(resumed), params(straight))
    assert [r["step"] for r in resumed_rows] == list(range(7, 13))
    assert [r["loss"] for r in resumed_rows] == [r["loss"] for r in straight_rows[6:]]
    # rows 7 and 8 of the crashed run were dropped: the file holds one clean curve
    assert losses(tmp_path / "resumed") == losses(tmp_path / "straight")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_after_the_step_with_a_checkpoint(tmp_path, sig):
    def send(call, loss):
        if call == 5:
            os.kill(os.getpid(), sig)
        return loss

    before = signal.getsignal(sig)
    rows = trainer(tmp_path / "run", hook=send).fit()
    assert rows[-1]["step"] == 5 and latest(tmp_path / "run").name == "step_000005"
    assert signal.getsignal(sig) is before
    resumed = trainer(tmp_path / "run", resume=True)
    resumed.fit()
    assert_same_params(params(resumed), params(_straight(tmp_path)))


def _straight(tmp_path) -> Trainer:
    t = trainer(tmp_path / "straight")
    t.fit()
    return t


def test_crash_mid_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    real, calls = checkpoint.save_file, []

    def save_file(tensors, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the second checkpoint dies half-written
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError("disk full (simulated)")
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    with pytest.raises(OSError, match="simulated"):
        trainer(tmp_path / "run", ckpt_every=6).fit()
    monkeypatch.undo()
    root = tmp_path / "run" / "checkpoints"
    assert [p.name for p in root.iterdir()] == ["step_000006"]
    # a killed process leaves its temporary directory behind; it is never taken for a checkpoint
    stray = root / ".tmp-step_000012-x"
    stray.mkdir()
    (stray / "model.safetensors").write_bytes(b"partial")
    assert latest(tmp_path / "run").name == "step_000006"
    assert checkpoint.load(latest(tmp_path / "run"))[1]["step"] == 6
    resumed = trainer(tmp_path / "run", ckpt_every=6, resume=True)
    resumed.fit()
    assert_same_params(params(resumed), params(_straight(tmp_path)))


def test_keeps_the_last_k_checkpoints(tmp_path):
    trainer(tmp_path, steps=8, ckpt_every=2, keep_checkpoints=2).fit()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000006", "step_000008"]


def test_grad_accumulation_equals_a_larger_batch(tmp_path):
    """grad_accum=2 x batch 4 sees the items of batch 8 and must give the same update."""
    accum, whole = (
        trainer(tmp_path / "a", dropout=0.0, batch_size=4, grad_accum=2),
        trainer(tmp_path / "b", dropout=0.0),
    )
    accum.fit(), whole.fit()
    for k, v in params(whole).items():
        torch.testing.assert_close(params(accum)[k], v, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_nonfinite_loss_stops_naming_the_step(tmp_path, bad):
    t = trainer(tmp_path, hook=lambda call, loss: loss * float(bad) if call == 3 else loss)
    with pytest.raises(FloatingPointError, match=f"loss is {bad} at step 3$"):
        t.fit()
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_nan_skip_counts_and_stops_after_max_skips(tmp_path):
    nan_at = lambda steps: lambda call, loss: loss * float("nan") if call in steps else loss  # noqa: E731
    t = trainer(tmp_path / "ok", hook=nan_at({2, 4}), nan_policy="skip", max_skips=2)
    rows = t.fit()
    assert t.skips == 2 and [r["skips"] for r in rows][:5] == [0, 1, 1, 2, 2]
    assert rows[1]["grad_norm"] is None and rows[2]["grad_norm"] is not None
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 5 \(2 batches skipped already, max_skips=2\)"):
        trainer(tmp_path / "bad", hook=nan_at({2, 4, 5}), nan_policy="skip", max_skips=2).fit()


@pytest.mark.parametrize(
    "config,match",
    [(dict(lr=-1e-3), "lr: expected a float > 0, got -0.001"), (dict(lr=0.0), "lr: expected a float > 0"),
     (dict(grad_accum=0), "grad_accum: expected an int >= 1, got 0"), (dict(steps=0), "steps: expected an int >= 1"),
     (dict(schedule="exp"), "schedule: expected one of .*cosine.*got 'exp'"), (dict(precision="fp8"), "precision: expected one of"),
     (dict(parallel="zero3"), "parallel: expected one of"), (dict(nan_policy="ignore"), "nan_policy: expected one of"),
     (dict(min_lr=1.0), r"min_lr: expected 0 <= min_lr <= lr \(0.0003\)"), (dict(betas=(0.9, 1.0)), "betas: expected two floats"),
     (dict(clip_grad=-1.0), "clip_grad: expected a float >= 0"), (dict(device="gpu"), "device: expected 'auto'")],
)  # fmt: skip
def test_bad_config(config, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**config)


@pytest.mark.parametrize(
    "data,match",
    [(TensorDataset(torch.empty(0, 4), torch.empty(0, 1)), "data: the dataset is empty"),
     (None, "data: expected a map-style Dataset"), (dataset(6), "data: 6 items are fewer than one global batch of 8")],
)  # fmt: skip
def test_bad_data(tmp_path, data, match):
    with pytest.raises(ValueError, match=match):
        Trainer(Regression(), data, TrainConfig(out_dir=str(tmp_path), batch_size=8))


def test_model_must_return_a_scalar_loss(tmp_path):
    with pytest.raises(TypeError, match=r"model: forward must return a scalar loss .* got a tensor of shape \(8, 1\)"):
        trainer(tmp_path, hook=lambda call, loss: loss.expand(8, 1)).fit()


def test_fresh_run_refuses_a_directory_with_checkpoints(tmp_path):
    trainer(tmp_path, steps=2).fit()
    with pytest.raises(ValueError, match="resume: .* already holds checkpoints \\(latest step_000002\\)"):
        trainer(tmp_path, steps=4).fit()


def test_resume_without_checkpoint_starts_fresh_and_says_so(tmp_path, capsys):
    """Documented choice: resume=True on an empty out_dir logs it and trains from step 0 (so a
    requeued job can always pass --resume)."""
    t = trainer(tmp_path / "run", resume=True)
    t.fit()
    assert "resume: no checkpoint in" in capsys.readouterr().err
    assert_same_params(params(t), params(_straight(tmp_path)))


def test_metrics_files_hold_extra_metrics(tmp_path):
    t = trainer(
        tmp_path, steps=4, log_every=2, hook=lambda call, loss: {"loss": loss, "items": 24, "acc": torch.tensor(0.25)}
    )
    rows = t.fit()
    assert [r["step"] for r in rows] == [2, 4] and all(r["acc"] == 0.25 for r in rows)
    assert [json.loads(line)["acc"] for line in open(tmp_path / "metrics.jsonl")] == [0.25, 0.25]
    header, *lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert header.split(",") == list(rows[0]) and len(lines) == 2


def test_fp16_gradscaler_state_is_checkpointed(tmp_path):
    trainer(tmp_path, steps=2, precision="fp16").fit()
    assert checkpoint.load(latest(tmp_path))[1]["scaler"]["scale"] > 0


def test_tensorboard_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        trainer(tmp_path, tensorboard=True).fit()


def test_schedules():
    kw = dict(lr=1.0, min_lr=0.1, warmup_steps=4, steps=14)
    assert [lr_at(s, schedule="cosine", **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(9, schedule="cosine", **kw) == pytest.approx(0.55) and lr_at(
        14, schedule="cosine", **kw
    ) == pytest.approx(0.1)
    assert lr_at(9, schedule="linear", **kw) == pytest.approx(0.55) and lr_at(
        6, schedule="linear", **kw
    ) == pytest.approx(0.82)
    assert lr_at(13, schedule="constant", **kw) == 1.0


def test_peak_flops_table_and_mfu(monkeypatch):
    cuda = torch.device("cuda", 0)
    for name, tflops in [("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H200", 989),
                         ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA L4", 121), ("NVIDIA L40S", 362),
                         ("NVIDIA GeForce RTX 4090", 165), ("Some Future GPU", None)]:  # fmt: skip
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert peak_flops(cuda) == (tflops and tflops * 1e12), name
    assert peak_flops(torch.device("cpu")) is None
    assert mfu(6e9, 1e4, 100e12, world_size=2) == pytest.approx(0.3)
    assert mfu(6e9, 1e4, None, world_size=1) is None and mfu(None, 1e4, 100e12, world_size=1) is None


def test_cli_flags_build_the_config():
    parser = add_train_args(argparse.ArgumentParser())
    assert TrainConfig.from_args(parser.parse_args([])) == TrainConfig()
    args = parser.parse_args("--lr 0.01 --grad-accum 4 --betas 0.8 0.9 --compile --schedule linear --out-dir o".split())
    c = TrainConfig.from_args(args)
    assert (c.lr, c.grad_accum, c.betas, c.compile, c.schedule, c.out_dir) == (0.01, 4, (0.8, 0.9), True, "linear", "o")
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp8"])
