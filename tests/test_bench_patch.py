"""benchmarks/bench_patch.py --smoke: tiny BERT, GPT-2, ViTMAE and timm ViT, unpatched vs patched
(our kernels in the Triton interpreter), each a complete result whose patched row passed the loss
check against the unpatched model and carries the patch report; timm's rows are errors naming
timm where it is absent."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_patch_smoke(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRITON_INTERPRET": "1"}
    env.pop("FASTPRETRAIN_BENCH_FAIL", None)
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_patch.py"), "--smoke", "--no-compile", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for model in ("bert", "gpt2", "vit_mae", "timm_vit"):
        result = json.loads((tmp_path / f"patch_{model}_cpu_smoke.json").read_text())
        table = (tmp_path / f"patch_{model}_cpu_smoke.md").read_text()
        assert result["complete"] is True and result["model"] == model
        rows = {r["candidate"]: r for r in result["rows"]}
        assert list(rows) == ["unpatched", "patched"]
        if model == "timm_vit" and importlib.util.find_spec("timm") is None:
            assert all("No module named 'timm'" in r["error"] for r in rows.values())
            continue
        assert rows["unpatched"]["valid"] and rows["unpatched"]["vs_unpatched"] == 1.0
        patched = rows["patched"]
        assert patched["valid"] and patched["loss"] == patched["loss"] and patched["vs_unpatched"] > 0
        assert patched["report"].startswith("fastpretrain.patch(") and "fused attention" in patched["report"]
        assert table.count("\n| ") == 3
