"""benchmarks/quality_masked.py --smoke runs every stage on a real UCR / UEA dataset and reports its
rows (ours, random init, raw input) in the JSON and the markdown table; --stage copies the data."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastpretrain.data.timeseries import INSTALL_HINT, shipped_datasets

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "quality_masked.py"


@pytest.mark.skipif(importlib.util.find_spec("aeon") is None or "BasicMotions" not in shipped_datasets(),
                    reason=f"no UCR / UEA files installed: {INSTALL_HINT}")  # fmt: skip
def test_quality_masked_smoke(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        importlib.import_module("quality_masked").stage(["BasicMotions"], tmp_path / "ucr")
    finally:
        sys.path.remove(str(SCRIPT.parent))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--data-dir", str(tmp_path / "ucr"),
           "--series", "BasicMotions", "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "quality_masked_smoke.json").read_text())
    md = (tmp_path / "quality_masked_smoke.md").read_text()
    assert result["complete"] and not any("error" in r for r in result["rows"])
    rows = [r for r in result["rows"] if r["stage"] == "row"]
    assert [(r["recipe"], r["features"]) for r in rows] == [(recipe, f) for recipe in ("mae", "span")
                                                             for f in ("ours", "random init", "raw input")]  # fmt: skip
    pretrain = next(r for r in result["rows"] if r["stage"] == "pretrain")
    assert (pretrain["train"], pretrain["test"], pretrain["channels"], pretrain["groups"]) == (40, 40, 6, 13)
    for r in rows:
        assert 0 <= r["linear"] <= 1
        assert f"| {r['recipe']} | {r['features']} | {r['linear']:.1%} | {r['knn']:.1%} |" in md
