"""torch.distributed plumbing: process group from torchrun's environment, DDP or FSDP2 wrapping,
gradient-sync control for accumulation. Without torchrun (no WORLD_SIZE) everything is a no-op."""

from __future__ import annotations

import contextlib
import gc
import os

import torch
import torch.distributed as dist
from torch import nn


def setup(device: str = "auto") -> tuple[int, int, torch.device]:
    """(rank, world_size, device). Under torchrun, joins the process group (nccl on CUDA, gloo on
    CPU) once; the device is cuda:LOCAL_RANK when CUDA is available."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank if dev.index is None else dev.index)
        count = torch.cuda.device_count()
        if dev.index >= count:
            raise ValueError(f"device: {device!r} asked for, but " + (f"only {count} CUDA devices are available"
                             if count else "no CUDA device is available"))  # fmt: skip
        torch.cuda.set_device(dev)
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", device_id=dev if dev.type == "cuda" else None)
    return rank(), world_size(), dev


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0, the rank that logs and writes checkpoints."""
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group; call once at the end of a torchrun script. Garbage is collected
    first: torch's distributed state-dict helpers leave reference cycles that hold the wrapped
    model, and through it the process group, which freed only at interpreter exit, after the
    group's threads, ends the process with std::terminate (SIGABRT) in about one run in three."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def wrap(model: nn.Module, parallel: str, device: torch.device) -> nn.Module:
    """DDP, or FSDP2: ``fully_shard`` on every module held in an nn.ModuleList (the blocks of
    a transformer), then on the root. Returns ``model`` unchanged in a single process."""
    if world_size() == 1:
        return model
    if parallel == "ddp":
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    from torch.distributed.fsdp import fully_shard

    for t in model.state_dict().values():  # DDP broadcasts rank 0's weights; fully_shard does not
        dist.broadcast(t, src=0)
    for blocks in [m for m in model.modules() if isinstance(m, nn.ModuleList)]:
        for block in blocks:
            fully_shard(block)
    return fully_shard(model)


def grad_sync(model: nn.Module, enabled: bool):
    """Context in which backward all-reduces gradients only if ``enabled`` (the last micro-step
    of an accumulation); DDP's no_sync, FSDP2's set_requires_gradient_sync."""
    if enabled:
        return contextlib.nullcontext()
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):
        return _fsdp_no_sync(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _fsdp_no_sync(model):
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
