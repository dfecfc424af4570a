"""The GPU benchmark scripts still run (tiny --smoke shapes on CPU), and what they report agrees
with the baselines they time: a script that rots or measures a wrong result fails here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_attention_smoke(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_attention.py"), "--smoke", "--device", "cpu",
           "--repeats", "1", "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads((tmp_path / "attention_cpu_smoke.json").read_text())
    ours = [r for r in result["rows"] if r["candidate"] == "ours"]
    assert [r["case"] for r in ours] == ["smoke", "smoke causal", "smoke padded"]
    assert all(r["max_abs_diff_vs_sdpa"] < 1e-5 for r in ours)
    assert any(r["candidate"] == "ours varlen" and r["fwd_tflops"] > 0 for r in result["rows"])
    assert (tmp_path / "attention_cpu_smoke.md").read_text().startswith("# Fused attention")


def test_bench_cross_entropy_smoke(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_cross_entropy.py"), "--smoke", "--device", "cpu",
           "--repeats", "1", "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = json.loads((tmp_path / "cross_entropy_cpu_smoke.json").read_text())["rows"]
    assert [r["candidate"] for r in rows] == ["ours", "eager", "eager + torch.compile"]
    assert all(r["loss_diff"] < 1e-4 and r["fwd_bwd_ms"] > 0 for r in rows)


def test_bench_mae_smoke(tmp_path):
    pytest.importorskip("transformers")
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_mae.py"), "--smoke", "--device", "cpu", "--out", str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rows = json.loads((tmp_path / "mae_step_cpu_smoke.json").read_text())["rows"]
    assert [r["candidate"] for r in rows] == ["ours", "hf sdpa"]
    assert all(r["loss_diff_vs_hf"] < 1e-5 and r["images_per_s"] > 0 for r in rows)
