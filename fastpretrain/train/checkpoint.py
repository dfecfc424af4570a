"""Checkpoints: ``out_dir/checkpoints/step_000123/`` holding ``model.safetensors`` (full weights)
and ``state.pt`` (optimizer, step, RNG states, data position, ...).

A checkpoint is written into a temporary directory that is renamed to its final name only when
complete, so a crash or a kill mid-write leaves the previous checkpoints as they were and
:func:`latest` never returns a partial one. Rank 0 reads and writes; the weights and optimizer
state are gathered to it (and scattered back) through torch.distributed.checkpoint.state_dict,
which handles plain, DDP, FSDP2 and compiled modules alike.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)  # fmt: skip

from fastpretrain.atomic import atomic_path

_STEP_DIR = re.compile(r"step_(\d+)")


def checkpoints_dir(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "checkpoints"


def latest(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``out_dir``, or None; temporary directories are ignored."""
    steps = _step_dirs(checkpoints_dir(out_dir))
    return steps[-1] if steps else None


def save(out_dir: str | os.PathLike, step: int, model_state: dict, state: dict, keep: int) -> Path:
    """Write checkpoint ``step`` atomically, then delete all but the newest ``keep``. Rank 0 only."""
    root = checkpoints_dir(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        with atomic_path(tmp / "model.safetensors") as path:
            save_file(_unshared(model_state), path)
        with atomic_path(tmp / "state.pt") as path:
            torch.save(state, path)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in _step_dirs(root)[:-keep]:
        trash = root / f".tmp-delete-{old.name}"
        os.replace(old, trash)  # a kill during rmtree leaves a temporary name, never a partial step_*
        shutil.rmtree(trash)
    return final


def load(path: str | os.PathLike) -> tuple[dict, dict]:
    """(weights, state) of the checkpoint directory ``path``."""
    path = Path(path)
    return load_file(path / "model.safetensors"), torch.load(path / "state.pt", weights_only=False)  # our own file


def gather(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full (unsharded) CPU weights and optimizer state; complete on rank 0, empty elsewhere
    under FSDP2. A collective: every rank calls it."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def scatter(model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optimizer_state: dict) -> None:
    """Load full states read on rank 0 into every rank's (possibly sharded) model and optimizer."""
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=dist.is_initialized())
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)


def _step_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and _STEP_DIR.fullmatch(p.name)), key=lambda p: int(p.name[5:])
    )


def _unshared(tensors: dict) -> dict:
    """Contiguous tensors with no two sharing memory (tied weights), as safetensors requires."""
    seen, out = set(), {}
    for name, t in tensors.items():
        t = t.detach().contiguous()
        out[name] = t.clone() if t.data_ptr() in seen else t
        seen.add(t.data_ptr())
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
