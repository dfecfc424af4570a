"""The trainer under ``torchrun --nproc_per_node 2`` on gloo (CPU): DDP and FSDP2 runs, stopped
by a signal on one rank and resumed, end with the weights of one process on the whole batches.

This file is also the torchrun worker: ``python -m torch.distributed.run ... test_train_distributed.py
OUT_DIR PARALLEL STOP_AT RESUME``.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from fastpretrain.train import TrainConfig, Trainer, checkpoint, cleanup, latest

STEPS, BATCH = 8, 4  # per-rank batch; the single process takes 2 * BATCH


class Blocks(nn.Module):
    """Residual MLP blocks in an nn.ModuleList (what FSDP2 shards one by one), then a head."""

    def __init__(self, stop_at: int = 0) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 16)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(16), nn.Linear(16, 16), nn.GELU()) for _ in range(2))
        self.head = nn.Linear(16, 1)
        self.stop_at, self.calls = stop_at, 0

    def forward(self, x, y):
        self.calls += 1
        if self.calls == self.stop_at and int(os.environ.get("RANK", 0)) == 1:  # one rank only: all must stop
            os.kill(os.getpid(), signal.SIGINT)
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return F.mse_loss(self.head(h), y)


def make_trainer(out_dir, batch_size: int, parallel: str = "ddp", stop_at: int = 0, resume: bool = False) -> Trainer:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=g)  # 48 / 8 = 6 batches an epoch: the run crosses an epoch
    torch.manual_seed(0)
    config = TrainConfig(out_dir=str(out_dir), steps=STEPS, batch_size=batch_size, lr=1e-2, warmup_steps=2,
                         grad_accum=2, parallel=parallel, log_every=1, resume=resume)  # fmt: skip
    return Trainer(Blocks(stop_at), TensorDataset(x, (x**2).sum(1, keepdim=True)), config)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_ranks_stopped_and_resumed_equal_one_process(tmp_path, parallel):
    pytest.importorskip("torch.distributed.fsdp", reason="FSDP2 needs torch >= 2.6")
    out = tmp_path / "torchrun"
    stopped = torchrun(out, parallel, stop_at=6)  # rank 1 gets SIGINT in the second micro-step of step 3
    assert stopped.returncode != 0, "an interrupted run must not exit 0"
    assert "interrupted by SIGINT at step 3 of 8, not complete" in stopped.stderr  # rank 0 heard it from rank 1
    assert latest(out).name == "step_000003"
    assert torchrun(out, parallel, resume=True).returncode == 0
    assert latest(out).name == f"step_{STEPS:06d}"

    single = make_trainer(tmp_path / "single", 2 * BATCH, parallel)
    rows = single.fit()
    weights = checkpoint.load(latest(out))[0]
    assert weights.keys() == single.model.state_dict().keys()
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(weights[name], value, atol=1e-6, rtol=1e-5, msg=name)
    logged = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["step"] for r in logged] == list(range(1, STEPS + 1))
    torch.testing.assert_close([r["loss"] for r in logged], [r["loss"] for r in rows], atol=1e-5, rtol=1e-5)
    assert all(r["items_per_s"] > 0 for r in logged)


def torchrun(out_dir, parallel: str, stop_at: int = 0, resume: bool = False) -> subprocess.CompletedProcess:
    """The worker under torchrun; fails the test on any exit but 0 or an interruption's 130."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(out_dir), parallel, str(stop_at), str(int(resume))]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    interrupted = "exitcode  : 130" in done.stderr or done.returncode == 130
    assert done.returncode == 0 or interrupted, done.stdout[-3000:] + done.stderr[-5000:]
    return done


if __name__ == "__main__":
    out_dir, parallel, stop_at, resume = sys.argv[1:5]
    try:
        make_trainer(out_dir, BATCH, parallel, int(stop_at), bool(int(resume))).fit()
    finally:
        cleanup()
