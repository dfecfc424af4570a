"""Checkpoints: ``out_dir/checkpoints/step_000123/`` holding ``model.safetensors`` (full weights)
and ``state.pt`` (optimizer, step, RNG states, data position, ...).

A checkpoint is written into a temporary directory that is renamed to its final name only when
complete, so a crash, a kill or a full disk mid-write leaves the previous checkpoints as they were
and :func:`latest` never returns a partial one; temporary directories a kill left behind are
removed at the next start and after every save. A checkpoint that is unreadable all the same
(truncated by a copy, a bad disk) is set aside by :func:`load_latest`, which falls back to the
previous one. Rank 0 reads and writes; the weights and optimizer state are gathered to it (and
scattered back) through torch.distributed.checkpoint.state_dict, which handles plain, DDP, FSDP2
and compiled modules alike.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import warnings
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

from fastpretrain.atomic import atomic_path, creation_mode

_STEP_DIR = re.compile(r"step_(\d+)")
_TEMPORARY = ".tmp-"  # checkpoints being written or deleted
_SET_ASIDE = "corrupt-"  # unreadable checkpoints, kept for a look


def checkpoints_dir(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "checkpoints"


def latest(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``out_dir``, or None; temporary directories are ignored."""
    steps = _step_dirs(checkpoints_dir(out_dir))
    return steps[-1] if steps else None


def save(out_dir: str | os.PathLike, step: int, model_state: dict, state: dict, keep: int) -> Path:
    """Write checkpoint ``step`` atomically, then delete all but the newest ``keep``. Rank 0 only.
    A full disk raises OSError(ENOSPC) naming the file, with the previous checkpoints intact."""
    root = checkpoints_dir(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TEMPORARY}{final.name}-", dir=root))
    tmp.chmod(creation_mode(0o777))  # mkdtemp's private 0700 -> what mkdir gives under the umask
    writers = {"model.safetensors": lambda path: save_file(_unshared(model_state), path),
               "state.pt": lambda path: _torch_save(state, path)}  # fmt: skip
    try:
        for name, write in writers.items():
            try:
                with atomic_path(tmp / name) as path:
                    write(path)
            except Exception as e:
                if not _disk_full(e):
                    raise
                previous = latest(out_dir)
                kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
                raise OSError(errno.ENOSPC, f"checkpoint: no space left on device writing {final / name} "
                                            f"({shutil.disk_usage(root).free:,} bytes free); {kept}") from e  # fmt: skip
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in _step_dirs(root)[:-keep]:
        trash = root / f"{_TEMPORARY}delete-{old.name}"
        os.replace(old, trash)  # a kill during rmtree leaves a temporary name, never a partial step_*
        shutil.rmtree(trash)
    remove_stale(out_dir)
    return final


def remove_stale(out_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary directories that killed writers left in ``out_dir``'s checkpoints;
    returns them. Rank 0 only, while no save is under way."""
    root = checkpoints_dir(out_dir)
    stale = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(_TEMPORARY)) if root.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def load(path: str | os.PathLike) -> tuple[dict, dict]:
    """(weights, state) of the checkpoint directory ``path``; ValueError naming the file that
    cannot be read (missing, truncated, corrupt)."""
    path = Path(path)
    readers = {"model.safetensors": load_file, "state.pt": lambda f: torch.load(f, weights_only=False)}  # our own file
    loaded = []
    for name, read in readers.items():
        try:
            loaded.append(read(path / name))
        except Exception as e:
            raise ValueError(f"checkpoint: {path / name} is unreadable ({type(e).__name__}: {e})") from e
    return loaded[0], loaded[1]


def load_latest(out_dir: str | os.PathLike) -> tuple[Path, dict, dict] | None:
    """(path, weights, state) of the newest readable checkpoint in ``out_dir``, or None if it has
    none. Newer unreadable ones are renamed ``corrupt-step_N`` (so the run can write that step
    again) with a warning naming the bad file; if none is readable, ValueError naming them all."""
    root, errors = checkpoints_dir(out_dir), []
    for path in reversed(_step_dirs(root)):
        try:
            weights, state = load(path)
        except ValueError as e:
            errors.append((path, str(e)))
            continue
        for bad, error in errors:
            aside = Path(tempfile.mkdtemp(prefix=f"{_SET_ASIDE}{bad.name}-", dir=root))
            os.replace(bad, aside)
            warnings.warn(f"{error}; falling back to {path.name}, the newest intact checkpoint "
                          f"({bad.name} moved to {aside.name})", stacklevel=2)  # fmt: skip
        return path, weights, state
    if errors:
        raise ValueError(f"resume: no checkpoint in {root} is readable: " + "; ".join(e for _, e in errors))
    return None


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


def _torch_save(obj, path: Path) -> None:
    """torch.save through a Python file: a failed write is then an OSError with its errno, not the
    zip writer's "unexpected pos"."""
    with open(path, "wb") as f:
        torch.save(obj, f)


def _disk_full(error: BaseException | None) -> bool:
    """Whether ``error``, or one it arose from, is a full disk: OSError(ENOSPC), or the safetensors
    writer's message for it. (torch.save's zip writer raises its own error while an ENOSPC is in flight.)"""
    while error is not None:
        if getattr(error, "errno", None) == errno.ENOSPC or f"os error {errno.ENOSPC})" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
