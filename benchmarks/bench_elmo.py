"""ELMo training steps: our sampled softmax (candidates drawn on the device, fused op) vs the same
model with an eager full softmax, and vs AllenNLP's sampled-softmax design (candidates drawn on the
CPU in a NumPy loop and copied to the device, the loss in eager torch), in one run.

    python benchmarks/bench_elmo.py                 # GPU: elmo_small, vocabulary 100k, 8192 candidates, B 128 x 20
    python benchmarks/bench_elmo.py --smoke --device cpu

Batches are Zipfian word ids (log-uniform over the frequency-sorted vocabulary, as real text is) of
synthetic words, so throughput is that of real text with no corpus to carry. Every candidate
trains the same model from the same weights: AdamW, bf16 autocast on CUDA; words/s counts the
predicted words of both directions' targets once (B x L), timed after warm-up with the device
synchronised; peak memory on CUDA. Each row first checks its loss on a shared batch against the
eager full softmax's (the sampled ones must be finite and within the range a sampled estimate
takes; the full one equal). Writes benchmarks/results/elmo_<device>.json/.md, rewritten per row.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from harness import Results, run_info, shown

from fastpretrain.data.samplers import Candidates, LogUniformSampler
from fastpretrain.models import create_model
from fastpretrain.ops import sampled_softmax_loss_reference

ROOT = Path(__file__).resolve().parents[1]
GPU = {"model": "elmo_small", "vocab_size": 100_000, "num_sampled": 8192, "batch_size": 128, "block_length": 20,
       "steps": 30, "warmup": 5}  # fmt: skip
SMOKE = {"model": "elmo_tiny", "vocab_size": 500, "num_sampled": 64, "batch_size": 4, "block_length": 8, "steps": 3,
         "warmup": 1}  # fmt: skip


class NumpyLogUniform:
    """AllenNLP's candidate sampling, in our sampler's interface: log-uniform ids drawn on the CPU
    with NumPy until S distinct ones are seen, expected counts from the number of tries (TF's
    formula), then copied to the device."""

    def __init__(self, num_classes: int, seed: int = 0) -> None:
        self.num_classes, self.rng = num_classes, np.random.default_rng(seed)
        self.log_range = math.log(num_classes + 1)

    def to(self, device):
        self.device = torch.device(device)
        return self

    def _q(self, ids: np.ndarray) -> np.ndarray:
        return np.log((ids + 2) / (ids + 1)) / self.log_range

    def candidates(self, num_sampled: int, targets: torch.Tensor, unique: bool = True) -> Candidates:
        seen: dict[int, None] = {}
        tries = 0
        while len(seen) < num_sampled:
            draws = np.floor(np.exp(self.rng.random(num_sampled) * self.log_range)).astype(np.int64) - 1
            for x in np.clip(draws, 0, self.num_classes - 1).tolist():  # the Python loop of AllenNLP's _choice
                tries += 1
                seen.setdefault(x, None)
                if len(seen) == num_sampled:
                    break
        sampled = np.fromiter(seen, dtype=np.int64)
        count = lambda ids: -np.expm1(tries * np.log1p(-self._q(ids)))
        targets_cpu = targets.cpu().numpy()  # the host sync AllenNLP's design pays
        move = lambda a, dtype: torch.from_numpy(a.astype(dtype)).to(self.device, non_blocking=True)
        return Candidates(move(sampled, np.int32), move(count(targets_cpu), np.float32),
                          move(count(sampled), np.float32), torch.tensor(tries))  # fmt: skip


class EagerSampledLoss(torch.nn.Module):
    """The sampled softmax loss in eager torch (our op's reference: gather, matmul, logsumexp)."""

    def forward(self, hidden, weight, targets, sampled, log_q_targets, log_q_sampled, bias=None):
        return sampled_softmax_loss_reference(hidden, weight, targets, sampled, log_q_targets, log_q_sampled, bias)


class EagerFullLoss(torch.nn.Module):
    """F.cross_entropy over the materialised [N, V] logits."""

    def forward(self, hidden, weight, targets, bias=None):
        return F.cross_entropy((hidden @ weight.T + bias).float(), targets, reduction="none")


def build(args, candidate: str, device: torch.device):
    torch.manual_seed(0)
    sampled = candidate != "eager full softmax"
    model = create_model(args.model, vocab_size=args.vocab_size, num_sampled=args.num_sampled if sampled else 0)
    model.set_vocabulary([f"w{i}" for i in range(args.vocab_size)])
    if candidate == "eager full softmax":
        model.output.full_loss = EagerFullLoss()
    elif candidate == "allennlp design":
        model.output.sampler = NumpyLogUniform(args.vocab_size)
        model.output.sampled_loss = EagerSampledLoss()
    return model.to(device)


def batches(args, device: torch.device, n: int) -> list[torch.Tensor]:
    sampler = LogUniformSampler(args.vocab_size, device, seed=1)
    return [sampler(args.batch_size, args.block_length + 1).long() for _ in range(n)]


def measure(args, candidate: str, device: torch.device, data: list[torch.Tensor], reference: float | None) -> dict:
    model = build(args, candidate, device)
    amp = {"device_type": device.type, "dtype": torch.bfloat16, "enabled": device.type == "cuda"}
    with torch.no_grad(), torch.autocast(**amp):
        check = float(model(data[0])["loss"])  # training mode: the candidate's own (sampled) loss
    if not math.isfinite(check) or (reference is not None and not 0 < check < reference + 1.0):
        raise RuntimeError(f"loss check: {check} on the shared batch (eager full softmax {reference})")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    words = 0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, words = time.perf_counter(), 0
        with torch.autocast(**amp):
            out = model(data[step % len(data)])
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        words += out["items"]
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"loss_check": check, "words_per_s": words / seconds, "ms_per_step": 1e3 * seconds / args.steps,
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}  # fmt: skip


def markdown(result: dict) -> str:
    lines = [f"ELMo training step, {result['device']}: {result['setup']}", "",
             "| candidate | words/s | ms/step | peak GiB | vs eager full softmax | vs AllenNLP design |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['candidate']} | error: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['candidate']} | {shown(r['words_per_s'], ',.0f')} | {shown(r['ms_per_step'], '.1f')} | "
                     f"{shown(r['peak_gib'], '.2f')} | {shown(r.get('vs_full'), '.2f')}x | "
                     f"{shown(r.get('vs_allennlp'), '.2f')}x |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    known, _ = p.parse_known_args()
    sizes = SMOKE if known.smoke else GPU
    for name, value in sizes.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    setup = (f"{args.model}, vocabulary {args.vocab_size:,}, {args.num_sampled} candidates, batch {args.batch_size} x "
             f"{args.block_length} words, AdamW, {'bf16 autocast' if device.type == 'cuda' else 'fp32'}")  # fmt: skip
    stem = f"elmo_{'cpu' if device.type == 'cpu' else 'gpu'}{'_smoke' if args.smoke else ''}"
    results = Results(args.out, stem, {**run_info(device), "setup": setup, "sizes": vars(args)}, markdown)
    data = batches(args, device, 4)
    reference = None
    for candidate in ("eager full softmax", "ours (sampled on device, fused)", "allennlp design"):
        print(f"== {candidate}", flush=True)
        row = results.attempt({"candidate": candidate}, lambda c=candidate, r=reference: measure(args, c, device, data, r))
        if candidate == "eager full softmax" and "error" not in row:
            reference = row["loss_check"]
    rows = {r["candidate"]: r for r in results.rows if "error" not in r}
    for r in results.rows:
        for key, base in (("vs_full", "eager full softmax"), ("vs_allennlp", "allennlp design")):
            r[key] = r["words_per_s"] / rows[base]["words_per_s"] if "error" not in r and base in rows else None
    results.finish()


if __name__ == "__main__":
    main()
