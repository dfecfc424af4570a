"""Block-size sweep of the three attention kernels, each on its own: the forward (``config=``), dK/dV
(``kv_config=``) and dQ (``q_config=``), over every (BLOCK_M, BLOCK_N, num_warps, num_stages) of
GRID, on the cases of bench_attention's shape table (dense; key padding as a mask), plus the
default config of each kernel.

    python benchmarks/tune_attention.py --cases "GPT-2"                # GPU, bf16: one case per call
    TRITON_INTERPRET=1 python benchmarks/tune_attention.py --smoke     # CPU, interpreter: seconds

Every config is checked before it is timed: its outputs (forward: out and lse; dK/dV: dk, dv; dQ:
dq) against plain torch in float32 (float64 for a float32 run), within 2x plain torch's own error
in the run's dtype + atol (harness.check), and against the default config's outputs within that
same bound. A config failing either is a row with ``valid: false`` and the reason, and is never
chosen. Configs that benchmarks/results/attention_configs.json (``kernel_resources.py --sweep``;
--configs for another file) marks as spilling, beyond shared memory or failing to compile, for the
same case name and kernel, are rows with ``skipped`` and are not run. A backward config is timed as
the whole backward call, the other backward kernel at its default.

Writes benchmarks/results/attention_tuning[_<cases>].json/.md (attention_tuning_smoke.* for
--smoke), rewritten after every row; the fastest valid config per case and kernel then goes into
kernels/attention.py's ``_config`` by hand (with the measurement cited in the commit).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
from functools import cached_property
from pathlib import Path

import torch
from bench_attention import ATOL, CASES, SMOKE, Case, make_inputs, plain_outputs, reference_dtype, select
from fastpretrain.kernels.attention import attention_backward, attention_forward
from harness import Results, check, max_errors, run_info, timed_ms

ROOT = Path(__file__).resolve().parents[1]
GRID = {"BLOCK_M": (32, 64, 128), "BLOCK_N": (32, 64, 128), "num_warps": (4, 8), "num_stages": (2, 3)}
SMOKE_CONFIGS = [{"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 4, "num_stages": 1}]  # not the interpreter's 16 x 16
OUTPUTS = {"forward": ("out", "lse"), "grad_kv": ("dk", "dv"), "grad_q": ("dq",)}
DEFAULT_CONFIGS = ROOT / "benchmarks/results/attention_configs.json"


def configs(smoke: bool) -> list[dict]:
    if smoke:
        return SMOKE_CONFIGS
    return [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]


def config_key(cfg: dict) -> tuple:
    return tuple(cfg[k] for k in GRID)


def compile_verdicts(path: Path) -> tuple[dict[tuple, str], set[str]]:
    """({(case, kernel, config key): verdict} for every non-ok row of ``kernel_resources.py --sweep``'s
    result, the case names it covers); empty when the file is absent."""
    if not path.exists():
        return {}, set()
    rows = json.loads(path.read_text())["rows"]
    bad = {(r["case"], r["kernel"], config_key(r["config"])): r["verdict"] for r in rows if r["verdict"] != "ok"}
    return bad, {r["case"] for r in rows}


def judge(got: dict, reference: dict, baseline: dict, default: dict | None) -> dict:
    """harness.check of ``got`` against the reference, then its distance to the default config's
    outputs within the same bound (2x plain torch's error + ATOL); ``reason`` says what failed."""
    verdict = check(got, reference, baseline, ATOL)
    bound = {n: 2 * e + ATOL for n, e in max_errors(baseline, reference).items()}
    reasons = [f"{n}: error {e:.2e} vs the reference > {bound[n]:.2e}" for n, e in verdict["max_err"].items()
               if not e <= bound[n]]  # fmt: skip
    if default is not None:
        verdict["max_diff_vs_default"] = max_errors(got, default)
        reasons += [f"{n}: differs from the default config's by {e:.2e} > {bound[n]:.2e}"
                    for n, e in verdict["max_diff_vs_default"].items() if not e <= bound[n]]  # fmt: skip
    verdict["valid"] = verdict["valid"] and not reasons
    if reasons:
        verdict["reason"] = "; ".join(reasons)
    return verdict


class Problem:
    """One case for the raw launchers: dense q, k, v and the output gradient (zero at padded query
    rows), and, computed on first use (a failure there is an error row), the reference and baseline
    outputs and the default forward whose (out, lse) every backward reads."""

    def __init__(self, case: Case, device: torch.device, dtype: torch.dtype):
        inputs = make_inputs(case, device, dtype)
        self.case, self.dtype, self.mask = case, dtype, inputs.mask
        self.q, self.k, self.v, self.grad = (t.detach() for t in (inputs.q, inputs.k, inputs.v, inputs.grad))
        self.args = (None, case.s, inputs.mask, case.causal, case.d**-0.5, 0.0, None)

    @cached_property
    def reference(self) -> dict:
        return self.plain(reference_dtype(self.dtype))

    @cached_property
    def baseline(self) -> dict:
        return self.plain(self.dtype)

    def plain(self, dtype: torch.dtype) -> dict:
        return plain_outputs(self.q, self.k, self.v, self.grad, self.case.causal, self.mask, dtype)

    @cached_property
    def default_forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return attention_forward(self.q, self.k, self.v, *self.args)

    def launch(self, kernel: str, cfg: dict | None):
        """The call that runs ``kernel`` with ``cfg`` (None: its default)."""
        if kernel == "forward":
            return lambda: attention_forward(self.q, self.k, self.v, *self.args, config=cfg)
        key = "kv_config" if kernel == "grad_kv" else "q_config"
        out, lse = self.default_forward
        return lambda: attention_backward(self.grad, self.q, self.k, self.v, out, lse, *self.args, **{key: cfg})

    def outputs(self, kernel: str, result: tuple) -> dict:
        """The outputs of ``kernel`` among a launch's results, by name."""
        named = dict(zip(("out", "lse") if kernel == "forward" else ("dq", "dk", "dv"), result))
        return {n: named[n] for n in OUTPUTS[kernel]}


def measure(problem: Problem, kernel: str, cfg: dict | None, default: dict, device, repeats: int) -> dict:
    """Check one config of ``kernel`` (also against ``default``, the default config's outputs, once
    known), then time it if valid. The default config's own valid outputs go into ``default``."""
    run = problem.launch(kernel, cfg)
    got = problem.outputs(kernel, run())
    names = OUTPUTS[kernel]
    reference, baseline = ({n: p[n] for n in names} for p in (problem.reference, problem.baseline))
    verdict = judge(got, reference, baseline, default or None)
    if not verdict["valid"]:
        return verdict
    if cfg is None:
        default.update(got)
    return {**verdict, "ms": timed_ms(run, device, repeats)}


def tune_case(results: Results, case: Case, device, dtype, cfgs: list[dict], verdicts: dict, repeats: int) -> None:
    """Rows of every kernel of ``case``: its default config, then each of ``cfgs`` (skipped where
    ``verdicts`` marks it for this case and kernel)."""
    problem = Problem(case, device, dtype)
    for kernel in OUTPUTS:
        default: dict = {}
        for cfg in [None, *cfgs]:
            row = {"case": case.name, "kernel": kernel, "config": cfg or "default"}
            known = verdicts.get((case.name, kernel, config_key(cfg))) if cfg else None
            if known:
                results.add({**row, "skipped": f"{known} (kernel_resources.py --sweep)"})
                continue
            results.attempt(row, lambda k=kernel, c=cfg, d=default: measure(problem, k, c, d, device, repeats))


def best(rows: list[dict]) -> list[dict]:
    """Per case and kernel: the default's ms and the fastest valid config with its ms (None if none)."""
    out = {}
    for r in rows:
        entry = out.setdefault((r["case"], r["kernel"]), {"case": r["case"], "kernel": r["kernel"], "default_ms": None,
                                                           "best": None, "best_ms": None})  # fmt: skip
        if not r.get("valid"):
            continue
        if r["config"] == "default":
            entry["default_ms"] = r["ms"]
        elif entry["best_ms"] is None or r["ms"] < entry["best_ms"]:
            entry["best"], entry["best_ms"] = r["config"], r["ms"]
    return list(out.values())


def config_text(cfg) -> str:
    return cfg if isinstance(cfg, str) else " ".join(f"{k}={cfg[k]}" for k in GRID)


def row_line(r: dict) -> str:
    head = f"| {r['case']} | {r['kernel']} | {config_text(r['config'])} |"
    if "error" in r:
        return f"{head} | error: {r['error'].replace('|', '/')} |"
    if "skipped" in r:
        return f"{head} | skipped: {r['skipped']} |"
    if not r["valid"]:
        return f"{head} | **rejected**: {r['reason']} |"
    return f"{head} {r['ms']:.3f} | ok (max err {max(r['max_err'].values()):.1e}) |"


def markdown(result: dict) -> str:
    lines = [f"# Attention block sizes on {result['device']} ({result['date']}, {result['dtype']})",
             f"`{result['command']}` (commit {result['commit']}); compile verdicts: {result['compile_verdicts']}. "
             "Backward ms is the whole backward call with the other backward kernel at its default."
             + ("" if result["complete"] else " **Incomplete run.**"), "",
             "| case | kernel | default ms | best ms | best config |", "|---|---|---|---|---|"]  # fmt: skip
    for b in best(result["rows"]):
        ms = [f"{b[k]:.3f}" if b[k] is not None else "–" for k in ("default_ms", "best_ms")]
        lines.append(f"| {b['case']} | {b['kernel']} | {ms[0]} | {ms[1]} | "
                     f"{config_text(b['best']) if b['best'] else 'no valid config'} |")  # fmt: skip
    lines += ["", "| case | kernel | config | ms | check |", "|---|---|---|---|---|"]
    lines += [row_line(r) for r in result["rows"]]
    return "\n".join(lines) + "\n"


def verdicts_note(path: Path, covered: set[str], cases: list[Case]) -> str:
    """Which compile verdicts the run skipped configs by (printed too: a case the file does not name
    has every config run)."""
    if not covered:
        return f"none ({path} is absent)"
    missing = [c.name for c in cases if c.name not in covered]
    note = str(path) + (f"; it has none for {', '.join(missing)}, whose configs all run" if missing else "")
    print(f"tune_attention: compile verdicts from {note}", file=sys.stderr)
    return note


def stem(smoke: bool, cases: str) -> str:
    """attention_tuning, with the --cases filter in the name, so one case per GPU call keeps every result."""
    if smoke:
        return "attention_tuning_smoke"
    slug = re.sub(r"[^a-z0-9]+", "-", cases.lower()).strip("-")
    return f"attention_tuning_{slug}" if slug else "attention_tuning"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda when present, cpu for --smoke")
    p.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None,
                   help="default: bfloat16 on CUDA, float32 elsewhere")  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="tiny shapes and one config: checks the script")
    p.add_argument("--cases", default="", help="comma-separated substrings of case names (default: all)")
    p.add_argument("--configs", type=Path, default=None,
                   help=f"kernel_resources.py --sweep's result, whose non-ok configs are skipped (default: "
                        f"{DEFAULT_CONFIGS.relative_to(ROOT)} when it exists)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=1, help="timed repeats off the GPU")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        p.error(f"the kernels run on {device.type} only in the Triton interpreter: set TRITON_INTERPRET=1")
    if args.configs is not None and not args.configs.exists():
        p.error(f"--configs: no such file {args.configs}")
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    table = SMOKE if args.smoke else CASES
    cases = select(table, args.cases)
    if not cases:
        p.error(f"--cases {args.cases!r} matches none of {[c.name for c in table]}")
    path = args.configs or DEFAULT_CONFIGS
    verdicts, covered = compile_verdicts(path)
    meta = {**run_info(device), "dtype": str(dtype), "reference_dtype": str(reference_dtype(dtype)), "atol": ATOL,
            "compile_verdicts": verdicts_note(path, covered, cases)}  # fmt: skip
    results = Results(args.out, stem(args.smoke, args.cases), meta, markdown)
    for case in cases:
        tune_case(results, case, device, dtype, configs(args.smoke), verdicts, args.repeats)
    results.result["best"] = best(results.rows)
    results.finish()


if __name__ == "__main__":
    main()
