"""Contrastive losses across ranks: under ``torchrun --nproc_per_node 2`` on gloo (CPU), with DDP,
CLIP's, SimCLR's and SigLIP's losses over features gathered with their gradient give the loss and
every gradient (encoder weights, the learnable temperature / scale and bias, the input features) of
one process on the whole batch; through the references and through the Triton kernels (interpreter).

This file is also the torchrun worker: ``python -m torch.distributed.run ... test_contrastive_distributed.py OUT``.
"""

import contextlib
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from torch import nn

from fastpretrain.nn import ClipLoss, NTXentLoss, SigLipLoss
from fastpretrain.ops import kernels_on_cpu
from fastpretrain.train.distributed import cleanup

PER_RANK, WORLD = 5, 2  # odd per-rank batch, so no block size divides it
LOSSES = {"clip": ClipLoss, "simclr": NTXentLoss, "siglip": SigLipLoss}
LEARNED = {"clip": {"loss.logit_scale"}, "simclr": set(), "siglip": {"loss.logit_scale", "loss.logit_bias"}}


class Towers(nn.Module):
    """Two linear encoders and a contrastive loss: image [B, 8] and text [B, 5] (or a second view) to 6-d."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.image, self.text = nn.Linear(8, 6), nn.Linear(5 if kind != "simclr" else 8, 6)
        self.loss = LOSSES[kind]()

    def forward(self, a, b):
        return self.loss(self.image(a), self.text(b))


def batch(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(WORLD * PER_RANK, 8, generator=g), torch.randn(WORLD * PER_RANK, 5 if kind != "simclr" else 8,
                                                                      generator=g)  # fmt: skip


def step(kind: str, a: torch.Tensor, b: torch.Tensor, parallel: bool) -> dict[str, torch.Tensor]:
    """One forward and backward: the loss, every parameter's gradient and the inputs' gradients."""
    model = Towers(kind)
    run = nn.parallel.DistributedDataParallel(model) if parallel else model
    a, b = a.clone().requires_grad_(), b.clone().requires_grad_()
    loss = run(a, b)
    loss.backward()
    out = {"loss": loss.detach(), "a": a.grad, "b": b.grad}
    return out | {name: p.grad for name, p in model.named_parameters() if p.requires_grad}


def worker(out_path: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
    results = {}
    for path in ("reference", "kernels"):
        for kind in LOSSES:
            a, b = batch(kind)
            with kernels_on_cpu() if path == "kernels" else contextlib.nullcontext():
                got = step(kind, a[rows], b[rows], parallel=True)
            dist.all_reduce(got["loss"])
            got["loss"] /= WORLD  # the mean of the ranks' losses is the whole batch's
            for name in ("a", "b"):  # inputs get no DDP averaging: scale by 1 / world as DDP does the weights
                parts = [torch.empty_like(got[name]) for _ in range(WORLD)]
                dist.all_gather(parts, got[name] / WORLD)
                got[name] = torch.cat(parts)
            results[f"{kind} {path}"] = got
    if rank == 0:
        torch.save(results, out_path)
    cleanup()  # collects the DDP wrappers' cycles before the group goes (else SIGABRT at exit, now and then)


def test_two_ranks_equal_one_process_on_the_whole_batch(tmp_path):
    out = tmp_path / "ranks.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD), __file__,
           str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRITON_INTERPRET": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    ranks = torch.load(out)
    for kind in LOSSES:
        want = step(kind, *batch(kind), parallel=False)
        assert LEARNED[kind] <= want.keys()
        for path in ("reference", "kernels"):
            got = ranks[f"{kind} {path}"]
            assert got.keys() == want.keys()
            for name, value in want.items():
                torch.testing.assert_close(got[name], value, atol=1e-6, rtol=1e-5, msg=f"{kind} {path}: {name}")


def test_single_process_modules_match_the_ops():
    """Without a process group the modules are the plain ops (CLIP symmetric, SimCLR's 2N - 1, SigLIP)."""
    pytest.importorskip("torch.distributed")
    for kind in LOSSES:
        a, b = batch(kind)
        model = Towers(kind)
        x, y = model.image(a), model.text(b)
        n = x.shape[0]
        if kind == "clip":
            z = model.loss.logit_scale.exp() * nn.functional.normalize(x) @ nn.functional.normalize(y).T
            labels = torch.arange(n)
            want = (nn.functional.cross_entropy(z, labels) + nn.functional.cross_entropy(z.T, labels)) / 2
        elif kind == "simclr":
            v = nn.functional.normalize(torch.cat([x, y]))
            z = (v @ v.T / 0.5).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
            want = nn.functional.cross_entropy(z, (torch.arange(2 * n) + n) % (2 * n))
        else:
            z = 10 * nn.functional.normalize(x) @ nn.functional.normalize(y).T - 10
            want = -nn.functional.logsigmoid((2 * torch.eye(n) - 1) * z).sum() / n
        torch.testing.assert_close(model.loss(x, y), want, msg=kind)


if __name__ == "__main__":
    worker(sys.argv[1])
