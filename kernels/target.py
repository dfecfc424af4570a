"""Where a launch goes: a GPU, with its tuned block configs sized to the device's SM count, or the
Triton interpreter, with tiny blocks. Every launcher asks here, so that the Hopper compile gate
(``benchmarks/hopper.py``) can record, on a CPU-only machine, exactly the launches a GPU would
make: inside :func:`gpu_launches`, CPU tensors take the GPU configs of an ``sms``-SM device.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

H100_SMS = 132  # H100 SXM and H200 alike
_PRETENDED_SMS = contextvars.ContextVar("fastpretrain_pretended_sms", default=None)


def on_gpu(t: torch.Tensor) -> bool:
    """True when a launch on ``t`` takes the GPU configs."""
    return t.is_cuda or _PRETENDED_SMS.get() is not None


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (or of the pretended GPU)."""
    pretended = _PRETENDED_SMS.get()
    if pretended is not None:
        return pretended
    return torch.cuda.get_device_properties(device).multi_processor_count


@contextlib.contextmanager
def gpu_launches(sms: int = H100_SMS) -> Iterator[None]:
    """Launches on CPU tensors take the configs of an ``sms``-SM GPU (for recording, not running)."""
    token = _PRETENDED_SMS.set(sms)
    try:
        yield
    finally:
        _PRETENDED_SMS.reset(token)
