"""The ``--device`` flag of the commands that run a model outside the Trainer."""

from __future__ import annotations

import torch


def pick_device(name: str | None, flag: str = "--device") -> torch.device:
    """``name`` as a device (default: cuda when available, else cpu), or ValueError naming ``flag``."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{flag}: expected cpu, cuda or cuda:N, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{flag}: expected cpu, cuda or cuda:N, got {name!r}")
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and (device.index or 0) >= count:
        raise ValueError(f"{flag}: {name!r} asked for, but " + (f"only {count} CUDA devices are available" if count
                         else "no CUDA device is available"))  # fmt: skip
    return device
