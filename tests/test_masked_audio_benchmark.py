"""benchmarks/quality_masked_audio.py --smoke runs every stage (synthesis, k-means, pre-training for
both targets, probes) on a 60-clip spoken-words set and reports its rows in the JSON and the markdown."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastpretrain.data.espeak import espeak_available

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not espeak_available(), reason="needs the espeakng-loader wheel")
def test_quality_masked_audio_smoke(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FASTPRETRAIN_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "quality_masked_audio.py"), "--smoke", "--device", "cpu",
           "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "quality_masked_audio_smoke.json").read_text())
    md = (tmp_path / "quality_masked_audio_smoke.md").read_text()
    assert result["complete"] and not any("error" in r for r in result["rows"])
    pretrain = [r for r in result["rows"] if r["stage"] == "pretrain"]
    assert [r["target"] for r in pretrain] == ["clusters", "values"]
    assert (pretrain[0]["train"], pretrain[0]["test"], pretrain[0]["groups"], pretrain[0]["group_dim"]) == (40, 20, 40, 80)
    rows = [r for r in result["rows"] if r["stage"] == "row"]
    assert [(r["target"], r["features"]) for r in rows] == [(t, f) for t in ("clusters", "values")
                                                            for f in ("ours", "random init", "raw input")]  # fmt: skip
    for r in rows:
        assert 0 <= r["linear"] <= 1 and f"| {r['target']} | {r['features']} | {r['linear']:.1%} | {r['knn']:.1%} |" in md
