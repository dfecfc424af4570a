"""benchmarks/quality_pretext.py --smoke: every task pre-trains, gets its held-out score and is probed
beside random init and the raw pixels, all in the JSON and the markdown table; a failing
pre-training leaves that task's probe an error row and the rest measured."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.usefixtures("shared_data")
def test_quality_pretext_smoke(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update({"OMP_NUM_THREADS": "1", "FASTPRETRAIN_BENCH_FAIL": "inpaint_adv"})
    cmd = [sys.executable, str(ROOT / "benchmarks" / "quality_pretext.py"), "--smoke", "--no-mae", "--threads", "1",
           "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "quality_pretext_smoke.json").read_text())
    md = (tmp_path / "quality_pretext_smoke.md").read_text()
    assert result["complete"] is True and "device" in result and "torch" in result["versions"]
    pre = {r["model"]: r for r in result["rows"] if r["stage"] == "pretrain"}
    assert list(pre) == ["inpaint", "inpaint_adv", "colorize"] and "error" in pre["inpaint_adv"]
    assert pre["inpaint"]["heldout_trivial"] > 0 and 0 <= pre["colorize"]["heldout_acc"] <= 1
    assert "held-out region L2" in md and "hidden-pixel bin accuracy" in md
    probes = [r for r in result["rows"] if r["stage"] == "probe"]
    assert [(r["features"], r["pool"]) for r in probes] == [("inpaint", "mean"), ("inpaint_adv", "mean"),
                                                            ("colorize", "mean"), ("random_init", "mean"),
                                                            ("raw_pixels", "pixels")]  # fmt: skip
    for r in probes:
        assert ("error" in r) == (r["features"] == "inpaint_adv"), r
        assert f"| {r['features']} | {r['pool']} |" in md
    assert all(0 <= r["linear"] <= 1 and 0 <= r["knn"] <= 1 for r in probes if "error" not in r)
