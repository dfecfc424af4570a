"""Test setup: Triton kernels run in the interpreter on CPU tensors when no GPU is present.

TRITON_INTERPRET must be set before triton is first imported, so it happens here, at
collection time, before any test module imports fastpretrain.kernels.
"""

import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest
import torch

assert "triton" not in sys.modules, "triton was imported before conftest could set TRITON_INTERPRET"
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# A shell without job control starts `pytest &` with SIGINT ignored, and every child inherits that; the
# Ctrl-C tests (in process and in subprocesses) need Python's default, so restore it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# ../shared/data beside the checkout; FASTPRETRAIN_DATA points elsewhere (e.g. on the GPU box).
SHARED_DATA = Path(os.environ.get("FASTPRETRAIN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Each test gets its own corpus cache, so no test sees another's files."""
    monkeypatch.setenv("FASTPRETRAIN_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout; tests needing it skip in a user's clone."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it exists only beside the project's own checkout)")
    return SHARED_DATA


@pytest.fixture
def kernel_path():
    """(device, context) that runs ops through their Triton kernels: CUDA when present, else
    CPU tensors through the interpreter."""
    if torch.cuda.is_available():
        return torch.device("cuda"), contextlib.nullcontext
    from fastpretrain.ops import kernels_on_cpu

    return torch.device("cpu"), kernels_on_cpu


@pytest.fixture
def one_thread():
    """One intra-op thread: tiny tensors gain nothing from more, and on a shared 2-core machine lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
