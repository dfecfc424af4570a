"""benchmarks/quality_electra.py --smoke still runs on docs9m and reports every row: BERT and ELECTRA
trained for the same FLOPs (ELECTRA's extra generator work buys it fewer steps), and the probe of
both encoders and a random-init one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS9M = ROOT.parent / "shared" / "data" / "docs9m.txt.xz"


@pytest.mark.skipif(not DOCS9M.is_file(), reason=f"needs {DOCS9M} (../shared/DATA.md)")
def test_quality_electra_smoke(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/quality_electra.py"), "--smoke", "--device", "cpu", "--threads", "1",
           "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "quality_electra_smoke.json").read_text())
    md = (tmp_path / "quality_electra_smoke.md").read_text()
    rows = {r["model"]: r for r in result["rows"]}
    assert result["complete"] and list(rows) == ["BERT (MLM)", "ELECTRA", "random init"]
    assert not any("error" in r for r in rows.values())
    bert, electra, s = rows["BERT (MLM)"], rows["ELECTRA"], result["settings"]
    assert s["flops_per_token"]["electra"] > s["flops_per_token"]["bert"] and electra["steps"] < bert["steps"]
    step_flops = s["batch_size"] * s["mean_length"] * s["flops_per_token"]["electra"]
    for r in (bert, electra):  # each within one step of the budget
        assert s["flops_budget"] <= r["train_flops"] < s["flops_budget"] + step_flops
        assert f"{r['probe_accuracy']:.1%} |" in md
    assert 0 < electra["all_original_accuracy"] < 1 and 0 <= electra["rtd_accuracy"] <= 1
    assert 0 <= rows["random init"]["probe_accuracy"] <= 1
