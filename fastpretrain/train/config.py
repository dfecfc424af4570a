"""TrainConfig: every knob of the trainer, validated on construction, with one CLI flag each."""

from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass, field, fields

import torch

from fastpretrain.checks import check_int

CHOICES = {
    "schedule": ("cosine", "linear", "constant"),
    "precision": ("auto", "bf16", "fp16", "fp32"),
    "parallel": ("ddp", "fsdp"),
    "nan_policy": ("stop", "skip"),
}


def _knob(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    out_dir: str = _knob("runs/train", "checkpoints and metrics go here")
    steps: int = _knob(1000, "optimizer steps to train")
    batch_size: int = _knob(32, "items per rank per micro-step")
    grad_accum: int = _knob(1, "micro-steps per optimizer step")
    lr: float = _knob(3e-4, "peak learning rate")
    min_lr: float = _knob(0.0, "learning rate at the end of the schedule")
    weight_decay: float = _knob(0.1, "AdamW decay on weights of dim >= 2 (none on biases and norms)")
    betas: tuple[float, float] = _knob((0.9, 0.95), "AdamW betas")
    warmup_steps: int = _knob(0, "linear warm-up steps")
    schedule: str = _knob("cosine", "decay from lr to min_lr after warm-up")
    clip_grad: float = _knob(1.0, "max gradient norm (0 disables clipping)")
    precision: str = _knob("auto", "auto: bf16 autocast on CUDA, fp32 on CPU; fp16 uses a GradScaler")
    compile: bool = _knob(False, "torch.compile the model")
    parallel: str = _knob("ddp", "under torchrun: DDP, or FSDP2 (fully_shard per block)")
    seed: int = _knob(0, "seed of the data order and of each rank's RNG (seed + rank)")
    num_workers: int = _knob(0, "DataLoader worker processes")
    log_every: int = _knob(10, "steps between metric rows (and log lines without a TTY)")
    ckpt_every: int = _knob(1000, "steps between checkpoints")
    keep_checkpoints: int = _knob(3, "how many of the latest checkpoints to keep")
    resume: bool = _knob(False, "continue from the latest checkpoint in out_dir (fresh start if none)")
    nan_policy: str = _knob("stop", "on a nan/inf loss: stop with an error, or skip the batch")
    max_skips: int = _knob(10, "with nan_policy=skip: stop after this many skipped batches")
    tensorboard: bool = _knob(False, "also log to TensorBoard (needs the tensorboard package)")
    device: str = _knob("auto", "auto: cuda:LOCAL_RANK when CUDA is available, else cpu")

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "log_every", "ckpt_every", "keep_checkpoints"):
            check_int(name, getattr(self, name), 1)
        for name in ("warmup_steps", "num_workers", "max_skips", "seed"):
            check_int(name, getattr(self, name), 0)
        if self.warmup_steps > self.steps:
            warnings.warn(f"warmup_steps: {self.warmup_steps} is more than steps ({self.steps}): the learning rate "
                          f"stops at {self.steps / self.warmup_steps:.0%} of lr and never decays", stacklevel=3)  # fmt: skip
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a float > 0, got {self.lr!r}")
        if not (isinstance(self.min_lr, (int, float)) and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"min_lr: expected 0 <= min_lr <= lr ({self.lr}), got {self.min_lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay: expected a float >= 0, got {self.weight_decay!r}")
        self.betas = tuple(self.betas)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas: expected two floats in [0, 1), got {self.betas!r}")
        if not self.clip_grad >= 0:
            raise ValueError(f"clip_grad: expected a float >= 0 (0 disables), got {self.clip_grad!r}")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError):
                raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}") from None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        """The config from flags added by :func:`add_train_args`."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def add_train_args(parser: argparse.ArgumentParser, **defaults) -> argparse.ArgumentParser:
    """One ``--flag`` per TrainConfig field (``--out-dir``, ``--grad-accum``, ``--no-compile``, ...);
    ``defaults`` (a command's recipe, e.g. ``lr=1e-4``) replace TrainConfig's, in the help too."""
    from fastpretrain.cli.flags import add_config_flags

    add_config_flags(parser, TrainConfig, title="training", defaults=defaults, choices=CHOICES)
    return parser
