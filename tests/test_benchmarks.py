"""The GPU benchmark scripts still run (tiny --smoke shapes on CPU), and what they report agrees
with the baselines they time: a script that rots or measures a wrong result fails here."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


SMOKE_CASES = ("smoke", "smoke causal", "smoke padded")
SMOKE_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 4, "num_stages": 1}  # tune_attention.SMOKE_CONFIGS


def interpreted_smoke(monkeypatch, *args, fail: str) -> tuple[dict, str]:
    """:func:`smoke_result` with our kernels in the Triton interpreter, on a GPU machine too."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    return smoke_result(*args, fail=fail)


def benchmark_module(name: str, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module(name)


def test_bench_attention_smoke(tmp_path, monkeypatch):
    result, table = interpreted_smoke(monkeypatch, "bench_attention.py", "attention_cpu_smoke", tmp_path, "--repeats",
                                      "1", fail="flex")  # fmt: skip
    assert result["complete"] and result["ours_path"] == "the Triton interpreter"
    rows = {(r["case"], r["candidate"]): r for r in result["rows"]}
    peers = ("sdpa flash", "sdpa cudnn", "sdpa efficient", "flex")
    packed = ("ours varlen", "flex varlen", "torch varlen")
    assert len(rows) == len(result["rows"])
    assert set(rows) == {(c, n) for c in SMOKE_CASES for n in ("ours", *peers)} | {("smoke padded", n) for n in packed}
    for case in SMOKE_CASES:
        ours, flash = rows[(case, "ours")], rows[(case, "sdpa flash")]
        assert ours["valid"] and flash["valid"]
        assert set(ours["max_err"]) == {"out", "dq", "dk", "dv"} and max(ours["max_err"].values()) < 1e-5
        for p in ("fwd", "fwd_bwd"):  # on CPU SDPA's flash backend is the only peer that runs
            assert ours[f"best_peer_{p}"] == "sdpa flash"
            assert ours[f"{p}_vs_best_peer"] == pytest.approx(ours[f"{p}_tflops"] / flash[f"{p}_tflops"])
    varlen = rows[("smoke padded", "ours varlen")]
    assert varlen["valid"] and max(varlen["max_err"].values()) < 1e-5 and varlen["best_peer_fwd"] == "sdpa flash"
    assert all("injected failure" in rows[(c, "flex")]["error"] for c in SMOKE_CASES)
    assert "injected failure" in rows[("smoke padded", "flex varlen")]["error"]
    assert "only on CUDA" in rows[("smoke padded", "torch varlen")]["error"]
    assert "| smoke padded | flex varlen | error: RuntimeError: injected failure" in table
    assert "| smoke padded | ours varlen | ok (" in table


def test_attention_ratios_skip_invalid_and_error_rows(monkeypatch):
    add_ratios = benchmark_module("bench_attention", monkeypatch).add_ratios
    rows = [{"candidate": "ours", "valid": True, "fwd_tflops": 100.0, "fwd_bwd_tflops": 60.0},
            {"candidate": "ours varlen", "valid": False, "fwd_tflops": 900.0, "fwd_bwd_tflops": 900.0},
            {"candidate": "sdpa cudnn", "valid": False, "fwd_tflops": 400.0, "fwd_bwd_tflops": 300.0},
            {"candidate": "flex", "valid": True, "fwd_tflops": 50.0, "fwd_bwd_tflops": 120.0},
            {"candidate": "sdpa efficient", "valid": True, "fwd_tflops": 40.0, "fwd_bwd_tflops": 30.0},
            {"candidate": "sdpa flash", "error": "RuntimeError: No available kernel"}]  # fmt: skip
    add_ratios(rows)
    assert (rows[0]["fwd_vs_best_peer"], rows[0]["best_peer_fwd"]) == (2.0, "flex")
    assert (rows[0]["fwd_bwd_vs_best_peer"], rows[0]["best_peer_fwd_bwd"]) == (0.5, "flex")
    assert not any("fwd_vs_best_peer" in r for r in rows[1:])


def test_tune_attention_smoke(tmp_path, monkeypatch):
    verdicts = tmp_path / "attention_configs.json"
    verdicts.write_text(json.dumps({"rows": [
        {"case": "smoke causal", "kernel": "grad_kv", "config": SMOKE_CONFIG, "verdict": "spills"},
        {"case": "smoke causal", "kernel": "grad_q", "config": SMOKE_CONFIG, "verdict": "ok"},
        {"case": "smoke", "kernel": "grad_q", "config": {**SMOKE_CONFIG, "num_warps": 8}, "verdict": "shared memory"},
    ]}))  # fmt: skip
    result, table = interpreted_smoke(monkeypatch, "tune_attention.py", "attention_tuning_smoke", tmp_path,
                                      "--configs", str(verdicts), fail="forward")  # fmt: skip
    assert result["complete"]
    rows = {(r["case"], r["kernel"], json.dumps(r["config"])): r for r in result["rows"]}
    configs = ("default", SMOKE_CONFIG)
    assert len(rows) == len(result["rows"])
    assert set(rows) == {(c, k, json.dumps(cfg)) for c in SMOKE_CASES for k in ("forward", "grad_kv", "grad_q")
                         for cfg in configs}  # fmt: skip
    for (case, kernel, cfg), r in rows.items():
        if kernel == "forward":
            assert "injected failure" in r["error"]
        elif (case, kernel, cfg) == ("smoke causal", "grad_kv", json.dumps(SMOKE_CONFIG)):
            assert r["skipped"].startswith("spills") and "ms" not in r
        else:
            assert r["valid"] and r["ms"] > 0 and max(r["max_err"].values()) < 1e-5, r
            assert set(r["max_err"]) == {"grad_kv": {"dk", "dv"}, "grad_q": {"dq"}}[kernel]
            assert cfg == '"default"' or max(r["max_diff_vs_default"].values()) < 1e-5
    best = {(b["case"], b["kernel"]): b for b in result["best"]}
    assert best[("smoke", "grad_kv")]["best"] == SMOKE_CONFIG
    assert best[("smoke causal", "grad_kv")]["best"] is None and best[("smoke causal", "grad_kv")]["default_ms"] > 0
    assert best[("smoke padded", "forward")] == {"case": "smoke padded", "kernel": "forward", "default_ms": None,
                                                  "best": None, "best_ms": None}  # fmt: skip
    assert "| smoke causal | grad_kv | BLOCK_M=32 BLOCK_N=32 num_warps=4 num_stages=1 | | skipped: spills" in table


def test_tune_attention_rejects_configs_off_the_reference_or_the_default(monkeypatch):
    judge = benchmark_module("tune_attention", monkeypatch).judge

    def full(x):
        return {"dq": torch.full((4,), x)}

    reference, baseline = full(0.0), full(1e-3)  # allowed: 2 * 1e-3 + atol
    assert judge(full(1.5e-3), reference, baseline, None)["valid"]
    off = judge(full(3e-3), reference, baseline, None)
    assert not off["valid"] and off["reason"].startswith("dq: error 3.00e-03 vs the reference")
    apart = judge(full(1.5e-3), reference, baseline, full(-1.5e-3))
    assert not apart["valid"] and "differs from the default config's by 3.00e-03" in apart["reason"]
    assert not judge(full(float("nan")), reference, baseline, None)["valid"]


def test_tune_attention_best_is_the_fastest_valid_config(monkeypatch):
    best = benchmark_module("tune_attention", monkeypatch).best
    fast, slow = {**SMOKE_CONFIG, "num_warps": 8}, SMOKE_CONFIG
    row = {"case": "c", "kernel": "grad_q"}
    rows = [{**row, "config": "default", "valid": True, "ms": 3.0},
            {**row, "config": {**fast, "BLOCK_M": 64}, "valid": False, "reason": "dq: error"},
            {**row, "config": {**fast, "BLOCK_N": 64}, "error": "OutOfResources: shared memory"},
            {**row, "config": {**fast, "num_stages": 3}, "skipped": "spills (kernel_resources.py --sweep)"},
            {**row, "config": slow, "valid": True, "ms": 2.0},
            {**row, "config": fast, "valid": True, "ms": 1.0}]  # fmt: skip
    assert best(rows) == [{**row, "default_ms": 3.0, "best": fast, "best_ms": 1.0}]


def smoke_result(script, stem, out, *args, fail=None):
    """The JSON and markdown of ``benchmarks/<script> --smoke`` on CPU (one thread), with the rows
    whose fields contain ``fail`` made to raise (FASTPRETRAIN_BENCH_FAIL); stderr shown if it fails."""
    env = {k: v for k, v in os.environ.items() if k != "FASTPRETRAIN_BENCH_FAIL"}
    env.update({"OMP_NUM_THREADS": "1", **({"FASTPRETRAIN_BENCH_FAIL": fail} if fail else {})})
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--device", "cpu", "--out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / f"{stem}.json").read_text()), (out / f"{stem}.md").read_text()


def assert_measured(result, md, time_key, baseline, errors):
    """Every row is in the table; error rows are the injected ones and get no speedup; the others are
    valid and timed, with max_err naming exactly the outputs and gradients ``errors(row)`` lists, and
    the baseline's time over theirs as speedup (None where the baseline row is an error)."""
    rows = result["rows"]
    assert result["complete"] is True
    assert len([line for line in md.splitlines() if line.startswith("| ")]) == 1 + len(rows)
    assert md.count("injected failure") == sum("error" in r for r in rows)
    for r in rows:
        if "error" in r:
            assert "injected failure" in r["error"] and r["speedup_vs_eager"] is None and time_key not in r
            continue
        assert r["valid"] is True and set(r["max_err"]) == errors(r) and 0 < r[time_key] < 60e3, r
        assert r["peak_mib"] is None  # peak memory is measured on CUDA only
        base = next(b for b in rows if b["pass"] == r["pass"] and b["candidate"] == baseline
                    and b.get("case") == r.get("case"))  # fmt: skip
        want = None if "error" in base else pytest.approx(base[time_key] / r[time_key])
        assert r["speedup_vs_eager"] == want


PASSES = ("fwd", "fwd+bwd")
CE_CANDIDATES = ["ours", "eager", "eager + torch.compile"]


def ce_outputs(row):
    return {"loss"} | ({"d_hidden", "d_weight", "d_bias"} if row["pass"] == "fwd+bwd" else set())


def test_bench_cross_entropy_smoke(tmp_path):
    """Every candidate x pass is checked (loss and all three gradients) and timed; ours (the Triton
    kernels in the interpreter) agrees with the float32 eager head."""
    result, md = smoke_result("bench_cross_entropy.py", "cross_entropy_cpu_smoke", tmp_path)
    rows = result["rows"]
    assert [(r["case"], r["candidate"], r["pass"]) for r in rows] == [
        ("smoke", c, p) for p in PASSES for c in CE_CANDIDATES
    ]
    assert_measured(result, md, "ms", "eager", ce_outputs)
    assert all(e < 1e-5 for r in rows if r["candidate"] == "ours" for e in r["max_err"].values())
    assert not (tmp_path / "cross_entropy.json").exists()  # smoke never overwrites the GPU result


def test_bench_cross_entropy_error_rows(tmp_path):
    """A candidate that raises becomes an error row in every pass; the others are still checked and timed."""
    result, md = smoke_result("bench_cross_entropy.py", "cross_entropy_cpu_smoke", tmp_path, fail="torch.compile")
    failed = [("error" in r, r["candidate"]) for r in result["rows"]]
    assert failed == [(c == "eager + torch.compile", c) for _ in PASSES for c in CE_CANDIDATES]
    assert_measured(result, md, "ms", "eager", ce_outputs)


def sampled_outputs(row):
    return {"loss"} | ({"d_hidden", "d_weight"} if row["pass"] == "fwd+bwd" else set())


def test_bench_sampled_softmax_smoke(tmp_path):
    """Every candidate x pass is checked against its own float32 math and timed; with ours made to
    fail, its rows are error rows and the eager and full-softmax rows are still measured."""
    stem = "sampled_softmax_cpu_smoke"
    candidates = ["ours", "eager", "full softmax (F.cross_entropy)"]
    result, md = smoke_result("bench_sampled_softmax.py", stem, tmp_path)
    rows = result["rows"]
    assert [(r["candidate"], r["pass"]) for r in rows] == [(c, p) for p in PASSES for c in candidates]
    assert_measured(result, md, "ms", "eager", sampled_outputs)
    assert all(e < 1e-5 for r in rows if r["candidate"] == "ours" for e in r["max_err"].values())
    assert result["config"]["vocab"] < 1000 and result["device"].startswith("cpu")

    result, md = smoke_result("bench_sampled_softmax.py", stem, tmp_path, fail="ours")
    failed = [("error" in r, r["candidate"]) for r in result["rows"]]
    assert failed == [(c == "ours", c) for _ in PASSES for c in candidates]
    assert_measured(result, md, "ms", "eager", sampled_outputs)


def test_bench_mae_smoke(tmp_path):
    """Ours and HF agree on the loss (valid) and are timed, ours' ratio is over HF's images/s; with
    ours failing, its row is an error row and HF is still checked and timed."""
    pytest.importorskip("transformers")
    for fail in (None, "ours"):
        result, _ = smoke_result("bench_mae.py", "mae_step_cpu_smoke", tmp_path, fail=fail)
        ours, hf = result["rows"]
        assert result["complete"] is True and (ours["candidate"], hf["candidate"]) == ("ours", "hf sdpa")
        assert hf["valid"] is True and hf["max_err"]["loss"] == 0 and hf["vs_hf_sdpa"] == 1.0
        if fail:
            assert ours["error"].startswith("RuntimeError: injected failure") and "images_per_s" not in ours
            continue
        assert ours["valid"] is True and ours["max_err"]["loss"] < 1e-5 and ours["check_dtype"] == "float32"
        assert ours["images_per_s"] == pytest.approx(4 / ours["step_ms"] * 1e3)
        assert ours["vs_hf_sdpa"] == pytest.approx(ours["images_per_s"] / hf["images_per_s"])
