"""benchmarks/quality_mim.py --smoke: every stage (MAE, SimMIM, the dVAE tokenizer, BEiT, the probes)
runs and lands in the JSON and the markdown table; a failing pre-training leaves that model's probes
as error rows and the rest measured; benchmarks/bench_mim.py --smoke runs its candidates."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def smoke(out: Path, fail: str | None = None) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FASTPRETRAIN_BENCH_FAIL", "TRITON_INTERPRET")}
    env.update({"OMP_NUM_THREADS": "1", **({"FASTPRETRAIN_BENCH_FAIL": fail} if fail else {})})
    cmd = [sys.executable, str(ROOT / "benchmarks" / "quality_mim.py"), "--smoke", "--threads", "1", "--out", str(out)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "quality_mim_smoke.json").read_text()), (out / "quality_mim_smoke.md").read_text()


@pytest.mark.usefixtures("shared_data")
def test_quality_mim_smoke(tmp_path):
    result, md = smoke(tmp_path, fail="simmim")
    assert result["complete"] is True
    pre = {r["model"]: r for r in result["rows"] if r["stage"] == "pretrain"}
    assert set(pre) == {"mae", "simmim", "dvae tokenizer", "beit"} and "error" in pre["simmim"]
    assert 1 <= pre["dvae tokenizer"]["codes_used"] <= 512
    probes = [r for r in result["rows"] if r["stage"] == "probe"]
    assert [r["features"] for r in probes] == ["mae", "mae", "simmim", "simmim", "beit", "beit", "random_init",
                                               "random_init", "raw_pixels"]  # fmt: skip
    for r in probes:
        assert ("error" in r) == (r["features"] == "simmim"), r
        assert f"| {r['features']} | {r['layer']} |" in md
    assert all(0 <= r["linear"] <= 1 and 0 <= r["knn"] <= 1 for r in probes if "error" not in r)


def test_bench_mim_smoke(tmp_path):
    """The BEiT step benchmark's candidates all run, agree on the loss (same weights and inputs) and get
    a ratio (SimMIM's --model simmim shares the code but for the model built)."""
    pytest.importorskip("transformers")
    model, names = "beit", ["ours", "hf sdpa", "hf eager"]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_mim.py"), "--model", model, "--smoke", "--device", "cpu",
           "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"},
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / f"mim_step_{model}_cpu_smoke.json").read_text())
    rows = {r["candidate"]: r for r in result["rows"]}
    assert list(rows) == names and result["complete"]
    base = result["baseline"].replace(" ", "_")
    assert all(r["valid"] and r["images_per_s"] > 0 and f"vs_{base}" in r for r in rows.values()), rows
