"""What the benchmarks share: timing a call or a training step (bf16 autocast on CUDA, fused
AdamW), peak memory and copy bandwidth measured outside the timing, checking a candidate against
the fp32 reference before it is timed, the run metadata (device, versions, commit, date, command)
every result carries, and :class:`Results`, which rewrites the JSON + markdown after every row.

A run killed mid-way (a section timeout on the GPU box) keeps every finished row, with
``complete: false``; a candidate that raises becomes an error row and the run goes on. For tests,
``FASTPRETRAIN_BENCH_FAIL=<text>`` makes every row whose fields contain <text> raise."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from fastpretrain.atomic import atomic_write


def timed_ms(fn: Callable, device: torch.device, repeats: int, grad_to_none: list[torch.Tensor] | None = None) -> float:
    """Median ms of ``fn()`` after one warm-up call: triton's do_bench on CUDA, ``repeats`` timed
    calls elsewhere. The ``.grad`` of ``grad_to_none`` is reset before every call, so no timed
    call pays for gradient accumulation."""
    fn()
    if device.type == "cuda":
        import triton

        return triton.testing.do_bench(fn, warmup=25, rep=100, grad_to_none=grad_to_none, return_mode="median")
    times = []
    for _ in range(repeats):
        for t in grad_to_none or ():
            t.grad = None
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peak_mib(fn: Callable, device: torch.device, grad_to_none: list[torch.Tensor] | None = None) -> float | None:
    """MiB that one call of ``fn()`` allocates at its peak above what was allocated before it
    (CUDA; None elsewhere). Measured on its own, outside any timing loop."""
    if device.type != "cuda":
        return None
    for t in grad_to_none or ():
        t.grad = None
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def copy_gbs(device: torch.device, nbytes: int | None = None) -> float:
    """Device-to-device copy bandwidth (bytes read + written per second, in GB/s), measured now:
    the floor memory-bound ops are compared with (H100 ~3.0 TB/s, H200 ~4.3 TB/s)."""
    nbytes = nbytes or (1 << 30 if device.type == "cuda" else 1 << 26)
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = timed_ms(lambda: dst.copy_(src), device, repeats=5)
    return 2 * nbytes / (ms * 1e-3) / 1e9


def max_errors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> dict[str, float]:
    """max |got - want| per named output (in float32; NaN if any output is not finite where want is)."""
    out = {}
    for name, ref in want.items():
        diff = (got[name].float() - ref.float()).abs()
        out[name] = float("nan") if not torch.isfinite(got[name]).all() else diff.max().item()
    return out


def check(got: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], baseline: dict[str, torch.Tensor] | None,
          atol: float) -> dict:  # fmt: skip
    """A candidate's outputs and gradients against the fp32 ``reference``, before it is timed: each
    may be off by at most 2x what ``baseline`` (plain torch in the candidate's dtype) is, + atol,
    the flash-attention rule. Returns {"max_err": {...}, "valid": bool} to merge into the row."""
    errors = max_errors(got, reference)
    allowed = max_errors(baseline, reference) if baseline is not None else {k: 0.0 for k in errors}
    valid = all(e == e and e <= 2 * allowed[k] + atol for k, e in errors.items())
    return {"max_err": errors, "valid": valid}


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


def kernel_context(device: torch.device):
    """Ours through its Triton kernels: on CPU with TRITON_INTERPRET=1 in the interpreter
    (``kernels_on_cpu``), elsewhere as the ops dispatch (CUDA: the kernels; CPU: the references)."""
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        from fastpretrain.ops import kernels_on_cpu

        return kernels_on_cpu()
    return contextlib.nullcontext()


def speedup(rows: list[dict], row: dict, base: str, key: str, same: tuple[str, ...] = ("case", "pass")) -> float | None:
    """The time ``key`` of candidate ``base``'s row that matches ``row`` on the fields ``same``, over
    ``row``'s; None unless both rows are measured and valid."""
    match = [b for b in rows if b["candidate"] == base and all(b.get(f) == row.get(f) for f in same)]
    if not match or not all(r.get("valid") and r.get(key) for r in (row, match[0])):
        return None
    return match[0][key] / row[key]


def shown(value, spec: str) -> str:
    """``value`` formatted for a table, or – where there is none (no ratio; no peak memory off CUDA)."""
    return "–" if value is None else format(value, spec)


# |loss - loss_hf| allowed in a model step benchmark, relative to loss_hf, in the dtype the step is
# timed in. At init the losses sit near ln(V) (BERT) and ~1 (MAE), and bf16 autocast moves them
# little: on CPU, ours vs HF (and HF bf16 vs fp32) differ by <= 1.6e-4 relative for BERT-tiny to
# -small and MAE ViT-B/16, so 2e-3 is >10x that. fp32 differs by 0 to ~1e-6 (summation order). At
# init the check catches broken plumbing (weights, masks, heads); kernel accuracy is the tests' job.
LOSS_RTOL = {torch.bfloat16: 2e-3, torch.float32: 1e-4}


def step_dtype(device: torch.device) -> torch.dtype:
    """The dtype ``time_steps`` runs in: bf16 autocast on CUDA, fp32 elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def loss_check(loss: float, loss_hf: float, dtype: torch.dtype) -> dict:
    """{"loss", "loss_hf", "max_err": {"loss": |diff|}, "valid"}: the diff within LOSS_RTOL of dtype."""
    got, want = {"loss": torch.tensor(loss)}, {"loss": torch.tensor(loss_hf)}
    return {"loss": loss, "loss_hf": loss_hf, **check(got, want, None, atol=LOSS_RTOL[dtype] * abs(loss_hf))}


def add_ratios(rows: list[dict], key: str, base: str = "hf sdpa") -> None:
    """vs_<base> (ratio of the throughput ``key``) and memory_vs_<base> on every valid row of one
    shape, against its valid ``base`` row; rows that failed or disagree with HF get none."""
    tag = base.replace(" ", "_")
    valid = [r for r in rows if r.get("valid")]
    ref = next((r for r in valid if r["candidate"] == base), None)
    for r in valid if ref is not None else ():
        r[f"vs_{tag}"] = r[key] / ref[key]
        if r["peak_gib"] is not None:
            r[f"memory_vs_{tag}"] = r["peak_gib"] / ref["peak_gib"]


def commit() -> str:
    """The code's git commit: $FASTPRETRAIN_COMMIT (set by whoever copies a tree without .git to a
    GPU box), else ``git rev-parse`` (+ "-dirty" for uncommitted changes), else "unknown"."""
    if os.environ.get("FASTPRETRAIN_COMMIT"):
        return os.environ["FASTPRETRAIN_COMMIT"]
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def run_info(device: torch.device) -> dict:
    """Device, versions, commit, date and command of a result."""
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
    return {"device": name, "versions": versions, "commit": commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python", *sys.argv])}  # fmt: skip


def write_result(out_dir: str | os.PathLike, stem: str, result: dict, table: str, quiet: bool = False) -> None:
    """Write ``<stem>.json`` and ``<stem>.md`` (``table``) into ``out_dir``, each atomically; print the table."""
    if not quiet:
        print(table)
    with atomic_write(os.path.join(out_dir, f"{stem}.json"), "w") as f:
        json.dump(result, f, indent=1)
    with atomic_write(os.path.join(out_dir, f"{stem}.md"), "w") as f:
        f.write(table if table.endswith("\n") else table + "\n")


def report_head(result: dict, title: str) -> list[str]:
    """A quality report's first lines: ``# title`` with the run's tag, then device, torch, date, commit
    and command (and INCOMPLETE for a run that stopped early), each followed by a blank line."""
    run = (f"{result['device']}, torch {result['versions']['torch']}, {result['date']}, commit {result['commit']}; "
           f"`{result['command']}`" + ("" if result["complete"] else "; INCOMPLETE (run stopped early)"))  # fmt: skip
    return [f"# {title}{result['tag'].replace('_', ' ')}", "", run, ""]


def probe_table(rows: list[dict], column: str = "pool") -> list[str]:
    """The markdown table of a quality script's probe rows (``stage == "probe"``): features, their
    ``column`` (pool or layer), linear-probe and kNN accuracy, or the row's error."""
    lines = [f"| features | {column} | linear probe | kNN (k=20) |", "|---|---|---|---|"]
    for r in rows:
        if r["stage"] == "probe":
            scores = f"error: {r['error']} | |" if "error" in r else f"{r['linear']:.2%} | {r['knn']:.2%} |"
            lines.append(f"| {r['features']} | {r[column]} | {scores}")
    return lines


class Results:
    """One benchmark's result, rewritten (JSON and markdown, atomically) after every row.

    ``result`` starts as ``{**meta, "complete": False, "rows": []}``; :meth:`finish` sets
    ``complete`` and prints the table. ``markdown(result)`` renders the table at every write, so
    it must cope with error rows (they hold "error" instead of measurements).
    """

    def __init__(self, out_dir: str | os.PathLike, stem: str, meta: dict, markdown: Callable[[dict], str]):
        self.out_dir, self.stem, self.markdown = out_dir, stem, markdown
        self.result = {**meta, "complete": False, "rows": []}
        self.write()

    @property
    def rows(self) -> list[dict]:
        return self.result["rows"]

    def write(self) -> None:
        write_result(self.out_dir, self.stem, self.result, self.markdown(self.result), quiet=True)

    def add(self, row: dict) -> dict:
        self.rows.append(row)
        self.write()
        return row

    def attempt(self, row: dict, measure: Callable[[], dict]) -> dict:
        """Add ``row`` with the fields ``measure()`` returns, or, if it raises, with ``error`` (the
        exception's first line; the traceback goes to stderr) so that the run goes on."""
        try:
            injected = os.environ.get("FASTPRETRAIN_BENCH_FAIL")
            if injected and any(injected in str(v) for v in row.values()):
                raise RuntimeError(f"injected failure (FASTPRETRAIN_BENCH_FAIL={injected})")
            row.update(measure())
        except Exception as e:  # noqa: BLE001 - one failing candidate must not lose the other rows
            traceback.print_exc(file=sys.stderr)
            row["error"] = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return self.add(row)

    def finish(self) -> dict:
        self.result["complete"] = True
        self.write()
        print(self.markdown(self.result))
        return self.result
