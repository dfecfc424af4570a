"""Which path an op takes: CUDA tensors run the Triton kernels; CPU tensors run the pure-torch
reference, unless a test asks for the kernels with :func:`kernels_on_cpu` (they then run in the
Triton interpreter, which needs TRITON_INTERPRET=1 set before triton is first imported)."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

import torch

from fastpretrain.kernels import target

_KERNELS_ON_CPU = contextvars.ContextVar("fastpretrain_kernels_on_cpu", default=False)


@contextlib.contextmanager
def kernels_on_cpu() -> Iterator[None]:
    """Run ops on CPU tensors through the Triton kernels (interpreted) instead of the reference."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("kernels_on_cpu needs TRITON_INTERPRET=1 set before triton is imported")
    token = _KERNELS_ON_CPU.set(True)
    try:
        yield
    finally:
        _KERNELS_ON_CPU.reset(token)


def use_kernel(t: torch.Tensor) -> bool:
    """True when an op on ``t`` should launch its Triton kernel."""
    return target.on_gpu(t) or _KERNELS_ON_CPU.get()
