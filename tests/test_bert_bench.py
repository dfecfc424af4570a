"""benchmarks/bench_bert.py still runs (--smoke on CPU) and its models agree before timing."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_bert_smoke(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_bert.py"), "--smoke", "--device", "cpu", "--out", str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    result = json.loads((tmp_path / "bert_step_cpu_smoke.json").read_text())
    rows = {r["candidate"]: r for r in result["rows"]}
    assert set(rows) == {"ours", "hf sdpa"}
    assert all(r["tokens_per_s"] > 0 and r["loss_diff_vs_hf"] < 1e-4 for r in rows.values())
    assert rows["ours"]["real_tokens"] == rows["hf sdpa"]["real_tokens"] < rows["hf sdpa"]["padded_tokens"]
    assert (tmp_path / "bert_step_cpu_smoke.md").read_text().startswith("# BERT-tiny MLM + NSP training step")
