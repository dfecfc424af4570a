"""What the benchmarks share: timing a call or a training step (bf16 autocast on CUDA, fused
AdamW), the run metadata (device, versions, date, command) every result carries, and writing the
result as JSON + a markdown table."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

from fastpretrain.atomic import atomic_write


def timed_ms(fn: Callable, device: torch.device, repeats: int) -> float:
    """Median ms of ``fn()`` after one warm-up call: triton's do_bench on CUDA, ``repeats`` timed
    calls elsewhere."""
    fn()
    if device.type == "cuda":
        import triton

        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def time_steps(model: torch.nn.Module, loss_fn: Callable, device: torch.device, steps: int, warmup: int) -> dict:
    """Median ms of a training step of ``model`` (forward ``loss_fn()``, backward, fused AdamW) and the
    peak GiB allocated over the timed steps (CUDA only)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda" or None)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with amp:
            loss = loss_fn()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.train()
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"step_ms": 1e3 * statistics.median(times), "peak_gib": peak}


def run_info(device: torch.device) -> dict:
    """Device, versions, date and command of a result."""
    versions = {"torch": torch.__version__}
    for name in ("triton", "transformers", "tokenizers"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    return {"device": name, "versions": versions, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python", *sys.argv])}  # fmt: skip


def write_result(out_dir: str | os.PathLike, stem: str, result: dict, table: str) -> None:
    """Print ``table`` and write ``<stem>.json`` and ``<stem>.md`` into ``out_dir``, each atomically."""
    print(table)
    with atomic_write(os.path.join(out_dir, f"{stem}.json"), "w") as f:
        json.dump(result, f, indent=1)
    with atomic_write(os.path.join(out_dir, f"{stem}.md"), "w") as f:
        f.write(table if table.endswith("\n") else table + "\n")
