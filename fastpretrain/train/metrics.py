"""What a run reports: a tqdm bar on a TTY or plain log lines, metric rows in CSV and JSONL
(optionally TensorBoard), and MFU from a per-GPU table of peak FLOP/s."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

# Dense bf16/fp16 tensor-core peak, TFLOP/s, matched in order against torch.cuda.get_device_name().
PEAK_TFLOPS = (
    ("H100 PCIe", 756), ("H100 NVL", 835), ("H100", 989), ("H200", 989), ("B200", 2250), ("A100", 312),
    ("L40S", 362), ("A10G", 70), ("A10", 125), ("L4", 121), ("RTX 4090", 165), ("RTX 3090", 71),
)  # fmt: skip


def peak_flops(device: torch.device) -> float | None:
    """Peak dense bf16 FLOP/s of ``device``; None on CPU and on GPUs missing from the table."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops * 1e12 for key, tflops in PEAK_TFLOPS if key in name), None)


def mfu(flops_per_item: float | None, items_per_s: float, peak: float | None, world_size: int) -> float | None:
    """Model FLOPs utilisation: achieved training FLOP/s over the peak of all ``world_size`` GPUs."""
    if flops_per_item is None or peak is None:
        return None
    return flops_per_item * items_per_s / (peak * world_size)


class MetricsLog:
    """Rank 0's metric rows: ``metrics.jsonl`` and ``metrics.csv`` in ``out_dir`` (appended on
    resume, dropping rows past the resumed step), TensorBoard if asked, and progress."""

    def __init__(
        self, out_dir: str, *, start: int, steps: int, tensorboard: bool = False, enabled: bool = True
    ) -> None:
        self.enabled, self.dir = enabled, Path(out_dir)
        self.bar = tqdm(
            total=steps, initial=start, desc="train", unit="step", disable=not (enabled and sys.stderr.isatty())
        )
        self.tb = None
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        _truncate(self.dir / "metrics.jsonl", self.dir / "metrics.csv", after=start)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ImportError("tensorboard: True needs the tensorboard package: pip install tensorboard") from e
            self.tb = SummaryWriter(self.dir / "tensorboard")

    def step(self, step: int, loss: float) -> None:
        """Every step: advance the bar."""
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def log(self, row: dict) -> None:
        """Every log_every steps: one row to every sink, and a log line when there is no bar."""
        if not self.enabled:
            return
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        csv_path = self.dir / "metrics.csv"
        header = not csv_path.exists()
        with open(csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if header:
                writer.writeheader()
            writer.writerow(row)
        if self.tb is not None:
            for key, value in row.items():
                if key != "step" and value is not None:
                    self.tb.add_scalar(f"train/{key}", value, row["step"])
        if self.bar.disable:
            info(" ".join(f"{k} {_fmt(v)}" for k, v in row.items()))
        else:
            self.bar.set_postfix({k: _fmt(row[k]) for k in ("loss", "items_per_s") if k in row})

    def close(self) -> None:
        self.bar.close()
        if self.tb is not None:
            self.tb.close()


def info(message: str) -> None:
    """A log line (rank 0 calls it)."""
    print(f"[train] {message}", file=sys.stderr, flush=True)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _truncate(jsonl: Path, csv_path: Path, after: int) -> None:
    """Drop rows logged past step ``after`` (by a run that died after its last checkpoint)."""
    if jsonl.exists():
        rows = [line for line in jsonl.read_text().splitlines() if json.loads(line)["step"] <= after]
        jsonl.write_text("".join(r + "\n" for r in rows))
    if csv_path.exists():
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            fieldnames, rows = reader.fieldnames, [r for r in reader if int(r["step"]) <= after]
        if not rows:
            csv_path.unlink()
            return
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
