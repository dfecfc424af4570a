"""The one trainer of every model: ``Trainer(model, dataset, TrainConfig(...)).fit()``, on one
CPU or GPU, or under ``torchrun --nproc_per_node N`` with DDP or FSDP2."""

from fastpretrain.train.checkpoint import latest
from fastpretrain.train.config import TrainConfig, add_train_args
from fastpretrain.train.distributed import cleanup, is_main
from fastpretrain.train.metrics import PEAK_TFLOPS, mfu, peak_flops
from fastpretrain.train.schedule import lr_at
from fastpretrain.train.trainer import Interrupted, Trainer

__all__ = [
    "PEAK_TFLOPS",
    "Interrupted",
    "TrainConfig",
    "Trainer",
    "add_train_args",
    "cleanup",
    "is_main",
    "latest",
    "lr_at",
    "mfu",
    "peak_flops",
]
