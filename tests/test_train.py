"""The trainer in one CPU process: resume equality, atomic checkpoints, stop signals, nan/inf
handling, gradient accumulation, schedules, metrics, and the failure modes: a changed model on
resume, corrupt and stale checkpoints, a full disk, bad input."""

import argparse
import errno
import json
import os
import random
import signal
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from fastpretrain.train import (
    Interrupted,
    TrainConfig,
    Trainer,
    add_train_args,
    checkpoint,
    latest,
    lr_at,
    mfu,
    peak_flops,
)


class Regression(nn.Module):
    """Linear -> GELU -> Dropout -> Linear on a synthetic target; dropout makes resume depend on
    the restored RNG state. ``hook(call)`` runs at the start of every forward (1-based count)."""

    def __init__(self, dropout: float = 0.1, hook=None, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.hook, self.calls = hook, 0

    def forward(self, x, y):
        self.calls += 1
        loss = F.mse_loss(self.net(x), y)
        return loss if self.hook is None else self.hook(self.calls, loss)


class Augmented(Dataset):
    """(x + noise, y) with the noise drawn from NumPy's and Python's global RNGs, as augmentations
    do: a resume that dropped either RNG state would see other inputs than the straight run."""

    def __init__(self, data: TensorDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        x, y = self.data[i]
        noise = np.random.standard_normal(4) + random.random()
        return x + 0.05 * torch.as_tensor(noise, dtype=x.dtype), y


def dataset(n: int = 64, augmented: bool = True) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    data = TensorDataset(x, (x**2).sum(1, keepdim=True))
    return Augmented(data) if augmented else data


def trainer(out_dir, model_seed: int = 0, dropout: float = 0.1, hook=None, hidden: int = 16, model_config=None,
            augmented: bool = True, **config) -> Trainer:  # fmt: skip
    torch.manual_seed(model_seed)
    defaults = dict(steps=12, batch_size=8, lr=1e-2, warmup_steps=2, log_every=1, ckpt_every=100)
    return Trainer(Regression(dropout, hook, hidden), dataset(augmented=augmented),
                   TrainConfig(out_dir=str(out_dir), **{**defaults, **config}), model_config=model_config)  # fmt: skip


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
    same loss curve, across an epoch boundary (8 batches an epoch), with dropout (torch's RNG) and
    input noise (NumPy's and Python's)."""
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


def test_resume_with_loader_workers_equals_uninterrupted(tmp_path):
    """With DataLoader workers the augmentations run in the workers, whose RNGs no checkpoint holds:
    each batch is fetched under RNGs seeded for it, so a resumed run (and another worker count)
    sees the same inputs as the straight run."""
    straight = trainer(tmp_path / "straight", num_workers=2)
    straight_rows = straight.fit()
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer(tmp_path / "resumed", ckpt_every=5, hook=crash_at(7), num_workers=2).fit()
    resumed = trainer(tmp_path / "resumed", model_seed=123, ckpt_every=5, resume=True, num_workers=1)
    resumed_rows = resumed.fit()
    assert_same_params(params(resumed), params(straight))
    assert [r["loss"] for r in resumed_rows] == [r["loss"] for r in straight_rows[5:]]
    inputs = [next(iter(trainer(tmp_path / f"w{w}", num_workers=w).data))[0] for w in (1, 2)]
    assert torch.equal(*inputs)
    zero = next(iter(trainer(tmp_path / "w0", num_workers=0, augmented=False).data))[0]
    assert not torch.equal(inputs[0], zero)  # the noise was added


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_after_the_step_with_a_checkpoint(tmp_path, sig, capsys):
    """A signal is not a finished run: fit() checkpoints, says so and raises Interrupted, whose
    exit status is the shell's for that signal (130, 143)."""

    def send(call, loss):
        if call == 5:
            os.kill(os.getpid(), sig)
        return loss

    before = signal.getsignal(sig)
    t = trainer(tmp_path / "run", hook=send)
    with pytest.raises(Interrupted) as stopped:
        t.fit()
    assert stopped.value.code == 128 + sig and (stopped.value.signal, stopped.value.step) == (sig, 5)
    assert t.history[-1]["step"] == 5 and latest(tmp_path / "run").name == "step_000005"
    assert f"interrupted by {signal.Signals(sig).name} at step 5 of 12, not complete" in capsys.readouterr().err
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


@pytest.mark.parametrize("clip_grad", [1.0, 1e9])
def test_grad_accumulation_equals_a_larger_batch(tmp_path, clip_grad):
    """grad_accum=2 x batch 4 sees the items of batch 8 and must give the same gradient, not only
    the same update: AdamW and clipping are blind to a gradient twice too large, the pre-clip norm
    logged every step is not."""
    accum = trainer(tmp_path / "a", dropout=0.0, augmented=False, batch_size=4, grad_accum=2, clip_grad=clip_grad)
    whole = trainer(tmp_path / "b", dropout=0.0, augmented=False, clip_grad=clip_grad)
    accum_rows, whole_rows = accum.fit(), whole.fit()
    for key, rtol in (("grad_norm", 1e-5), ("loss", 1e-6)):
        torch.testing.assert_close([r[key] for r in accum_rows], [r[key] for r in whole_rows], rtol=rtol, atol=0)
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


def test_cuda_device_that_is_not_there(tmp_path, monkeypatch):
    """A CUDA device the machine lacks is a ValueError naming device, before anything is built or written."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="device: 'cuda:3' asked for, but only 1 CUDA devices are available"):
        Trainer(Regression(), dataset(16), TrainConfig(out_dir=str(tmp_path / "run"), batch_size=8, device="cuda:3"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match="device: 'cuda' asked for, but no CUDA device is available"):
        Trainer(Regression(), dataset(16), TrainConfig(out_dir=str(tmp_path / "run"), batch_size=8, device="cuda"))
    assert not (tmp_path / "run").exists()


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
        trainer(tmp_path, steps=4)  # the constructor refuses, before a caller writes its run files


def test_resume_refuses_another_model_config_naming_the_fields(tmp_path):
    """The check runs in the constructor, so nothing of the run is touched; the message names
    each field that differs."""
    trainer(tmp_path, steps=2, model_config={"hidden": 16, "act": "gelu"}).fit()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=r"resume: the model config differs from the checkpoint .*step_000002's: "
                                         r"act 'gelu' there, 'relu' here; hidden 16 there, 32 here\. Resume with"):  # fmt: skip
        trainer(tmp_path, steps=4, hidden=32, model_config={"hidden": 32, "act": "relu"}, resume=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    resumed = trainer(tmp_path, steps=4, model_config={"hidden": 16, "act": "gelu"}, resume=True)
    assert resumed.step == 2


def test_resume_refuses_other_weights_naming_them(tmp_path):
    """Without a model_config, the weights' shapes tell: a clear error, not set_model_state_dict's."""
    trainer(tmp_path, steps=2).fit()
    with pytest.raises(ValueError, match=r"resume: the model differs from the checkpoint .*'s weights: "
                                         r"net.0.bias \(16,\) there, \(32,\) here; net.0.weight \(16, 4\) there, "
                                         r"\(32, 4\) here; net.3.weight \(1, 16\) there, \(1, 32\) here\. "):  # fmt: skip
        trainer(tmp_path, steps=4, hidden=32, resume=True)


def _crash_after_checkpoint(tmp_path, steps: int = 18) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer(tmp_path / "run", steps=steps, ckpt_every=6, hook=crash_at(13)).fit()
    assert [p.name for p in sorted((tmp_path / "run" / "checkpoints").iterdir())] == ["step_000006", "step_000012"]


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("bad", ["model.safetensors", "state.pt"])
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, bad):
    """A truncated file in the latest checkpoint: a warning naming it, the checkpoint set aside
    (not deleted), and the run resumed from the previous one ends as the uninterrupted run."""
    _crash_after_checkpoint(tmp_path)
    _truncate(tmp_path / "run" / "checkpoints" / "step_000012" / bad)
    with pytest.warns(UserWarning, match=rf"checkpoint: .*step_000012/{bad} is unreadable .*falling back to "
                                         r"step_000006.*moved to corrupt-step_000012-"):  # fmt: skip
        resumed = trainer(tmp_path / "run", steps=18, ckpt_every=6, resume=True)
    assert resumed.step == 6
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names[0].startswith("corrupt-step_000012-") and names[1:] == ["step_000006"]
    resumed.fit()
    straight = trainer(tmp_path / "straight", steps=18)
    straight.fit()
    assert_same_params(params(resumed), params(straight))


def test_no_readable_checkpoint_is_an_error_naming_every_file(tmp_path):
    _crash_after_checkpoint(tmp_path)
    _truncate(tmp_path / "run" / "checkpoints" / "step_000012" / "state.pt")
    (tmp_path / "run" / "checkpoints" / "step_000006" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"resume: no checkpoint in .* is readable: checkpoint: .*step_000012/state.pt "
                                         r"is unreadable .*; checkpoint: .*step_000006/model.safetensors is unreadable"):  # fmt: skip
        trainer(tmp_path / "run", steps=18, ckpt_every=6, resume=True)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_000006", "step_000012"]


def test_stale_temporary_directories_are_removed(tmp_path):
    """What killed writers leave (.tmp-step_*, .tmp-delete-*) goes at the next start and after
    every successful save."""
    root = tmp_path / "checkpoints"

    def stray(name):
        (root / name).mkdir(parents=True)
        (root / name / "model.safetensors").write_bytes(b"partial")

    def stray_at_step_3(call, loss):
        if call == 3:  # after the checkpoint of step 2, before that of step 4
            stray(".tmp-step_000003-y")
        return loss

    stray(".tmp-step_000004-x")
    stray(".tmp-delete-step_000002")
    t = trainer(tmp_path, steps=4, ckpt_every=2, hook=stray_at_step_3)
    assert sorted(p.name for p in root.iterdir()) == []
    t.fit()
    assert sorted(p.name for p in root.iterdir()) == ["step_000002", "step_000004"]


class FullDisk:
    """A file whose disk fills after ``room`` bytes: write raises OSError(ENOSPC), as write(2) does."""

    def __init__(self, f, room: int = 64) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def torch_save_on_a_full_disk(obj, to, *args, **kwargs):
    """torch.save as it behaves on a full disk: given a path, its zip writer's RuntimeError (seen
    on a real one); given a file, the file's OSError."""
    if not hasattr(to, "write"):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    TORCH_SAVE(obj, FullDisk(to), *args, **kwargs)


def save_file_raising(exc):
    def save_file(tensors, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise exc

    return save_file


TORCH_SAVE = torch.save
FULL_DISK = {
    "oserror": ("model.safetensors", checkpoint, "save_file", save_file_raising(OSError(errno.ENOSPC, "No space"))),
    "safetensors": ("model.safetensors", checkpoint, "save_file", save_file_raising(SafetensorError(
        "Error while serializing: I/O error: No space left on device (os error 28)"))),  # its message on a real one
    "torch": ("state.pt", torch, "save", torch_save_on_a_full_disk),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FULL_DISK))
def test_disk_full_says_so_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, case):
    """The second checkpoint's write hits a full disk (faked as each writer fails on a real one):
    an OSError(ENOSPC) naming the file, no partial checkpoint, the first intact, the run resumable."""
    bad, module, name, full = FULL_DISK[case]
    real, calls = getattr(module, name), []

    def writer(obj, to, *args, **kwargs):
        calls.append(to)
        return (full if len(calls) == 2 else real)(obj, to, *args, **kwargs)

    monkeypatch.setattr(module, name, writer)
    with pytest.raises(OSError) as error:
        trainer(tmp_path / "run", ckpt_every=6).fit()
    monkeypatch.undo()
    message = str(error.value)
    assert error.value.errno == errno.ENOSPC, message
    assert f"checkpoint: no space left on device writing {tmp_path}/run/checkpoints/step_000012/{bad}" in message
    assert "the previous checkpoint" in message and "step_000006 is intact" in message
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_000006"]
    resumed = trainer(tmp_path / "run", ckpt_every=6, resume=True)
    assert resumed.step == 6
    resumed.fit()
    assert_same_params(params(resumed), params(_straight(tmp_path)))


@pytest.mark.parametrize("change", [{"batch_size": 4}, {"grad_accum": 2}, {"seed": 1}])
def test_resume_with_another_batch_or_seed_warns(tmp_path, change):
    trainer(tmp_path, steps=2).fit()
    key, value = next(iter(change.items()))
    old = {"batch_size": 8, "grad_accum": 1, "seed": 0}[key]
    with pytest.warns(UserWarning, match=rf"resume: {key} {old} -> {value} since the checkpoint: .* items a step"):
        trainer(tmp_path, steps=4, resume=True, **change)


def test_resume_with_the_same_batch_does_not_warn(tmp_path):
    trainer(tmp_path, steps=2).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer(tmp_path, steps=4, resume=True, ckpt_every=3, log_every=2)


def test_warmup_longer_than_the_run_warns():
    with pytest.warns(UserWarning, match=r"warmup_steps: 2000 is more than steps \(1000\): the learning rate stops at"):
        TrainConfig(steps=1000, warmup_steps=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrainConfig(steps=1000, warmup_steps=1000)


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
    # a command's recipe replaces the defaults, in the flags and in their help
    parser = add_train_args(argparse.ArgumentParser(), lr=1e-4, betas=(0.9, 0.999), out_dir="runs/bert")
    assert TrainConfig.from_args(parser.parse_args([])) == TrainConfig(lr=1e-4, betas=(0.9, 0.999), out_dir="runs/bert")
    text = " ".join(parser.format_help().split())
    assert "peak learning rate (default 0.0001)" in text and "AdamW betas (default 0.9 0.999)" in text
    assert "(default runs/bert)" in text and "0.0003" not in text


def test_mae_cli_refused_resume_keeps_config_json(tmp_path, capsys):
    """``mae train --resume`` with another --embed-dim used to overwrite config.json before the
    checkpoint was refused, so the run's checkpoints no longer loaded: now it exits 2 naming the
    field, and config.json is as it was."""
    from fastpretrain.cli import main

    np.savez(tmp_path / "toy.npz", images=np.random.default_rng(0).integers(0, 255, (32, 8, 8), dtype=np.uint8))
    sizes = ["--img-size", "8", "--patch-size", "4", "--in-chans", "1", "--depth", "1", "--num-heads", "2",
             "--decoder-embed-dim", "32", "--decoder-depth", "1", "--decoder-num-heads", "2"]  # fmt: skip
    run = ["mae", "train", "--data", str(tmp_path / "toy.npz"), *sizes, "--batch-size", "16", "--device", "cpu",
           "--out-dir", str(tmp_path / "run")]  # fmt: skip
    assert main([*run, "--embed-dim", "32", "--steps", "2"]) == 0
    config = (tmp_path / "run" / "config.json").read_bytes()
    capsys.readouterr()
    assert main([*run, "--embed-dim", "64", "--steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "error: resume: the model config differs from the checkpoint" in err and "embed_dim 32 there, 64 here" in err
    assert (tmp_path / "run" / "config.json").read_bytes() == config
