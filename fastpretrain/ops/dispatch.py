"""Which path an op takes: CUDA tensors run the Triton kernels; CPU tensors run the pure-torch
reference, unless a test asks for the kernels with :func:`kernels_on_cpu` (they then run in the
Triton interpreter, which needs TRITON_INTERPRET=1 set before triton is first imported).
``use_kernels(False)`` forces the reference everywhere, CUDA included (for debugging, export, or
comparing against the kernels), as timm's ``use_fused_attn`` switch does for attention."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

import torch

from fastpretrain.kernels import target

_KERNELS_ON_CPU = contextvars.ContextVar("fastpretrain_kernels_on_cpu", default=False)
# Process-wide, not a context variable: the autograd engine runs CUDA backwards on its own threads.
_kernels_enabled = True


class use_kernels:
    """Allow (True, the default) or forbid (False) the Triton kernels in every op.

    Call it to set the switch (``use_kernels(False)``), or use it as a context manager to set it for
    a block and restore the previous value on exit (``with use_kernels(False): ...``), like
    ``torch.set_grad_enabled``. Forward and backward both follow it, so set it around the whole step.
    """

    def __init__(self, enabled: bool) -> None:
        global _kernels_enabled
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled: expected a bool, got {type(enabled).__name__}")
        self.previous = _kernels_enabled
        _kernels_enabled = enabled

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info) -> None:
        global _kernels_enabled
        _kernels_enabled = self.previous


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
    return _kernels_enabled and (target.on_gpu(t) or _KERNELS_ON_CPU.get())
