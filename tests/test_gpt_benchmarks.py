"""The GPT benchmark scripts on CPU: bench_gpt.py --smoke writes a complete result whose rows all
agree with HF's loss from the same weights (the packed row too, checked on the dense rows), and a
failing candidate is an error row while the others are measured; quality_gpt.py --smoke trains
packed and unpacked from the same weights and reports both held-out perplexities; quality_igpt.py
--smoke probes both objectives and the raw pixels (Fashion-MNIST from the shared data folder)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, stem: str, out: Path, *args: str, fail: str | None = None) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FASTPRETRAIN_BENCH_FAIL", "TRITON_INTERPRET")}
    env.update({"OMP_NUM_THREADS": "1", **({"FASTPRETRAIN_BENCH_FAIL": fail} if fail else {})})
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--device", "cpu", "--out", str(out), *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=ROOT / "benchmarks")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / f"{stem}.json").read_text()), (out / f"{stem}.md").read_text()


def test_bench_gpt_smoke(tmp_path):
    result, md = run("bench_gpt.py", "gpt_step_cpu_smoke", tmp_path, fail="ours packed")
    assert result["complete"] and [r["candidate"] for r in result["rows"]] == ["hf sdpa", "ours", "ours packed"]
    hf, ours, packed = result["rows"]
    assert hf["valid"] and ours["valid"] and ours["max_err"]["loss"] < 1e-4 * hf["loss_hf"]
    assert ours["tokens"] == 2 * 64 and ours["vs_hf_sdpa"] > 0
    assert "injected failure" in packed["error"] and "| ours packed | error: RuntimeError: injected failure" in md


def test_quality_gpt_smoke(tmp_path):
    result, md = run("quality_gpt.py", "quality_gpt_smoke", tmp_path)
    assert result["complete"] and [r["training"] for r in result["rows"]] == ["packed", "unpacked"]
    for r in result["rows"]:
        assert r["train_tokens"] == result["settings"]["steps"] * 4 * 32
        assert 1 < r["heldout_ppl_packed"] < 400 and 1 < r["heldout_ppl_unpacked"] < 400
    assert isinstance(result["packed_lower_on_packed_eval"], bool) and "at equal training tokens" in md


def test_quality_igpt_smoke(tmp_path, shared_data):
    result, md = run("quality_igpt.py", "quality_igpt_smoke", tmp_path)
    rows = {r["features"]: r for r in result["rows"]}
    assert result["complete"] and set(rows) == {"raw pixels (8x8)", "igpt ar", "igpt bert"}
    assert rows["raw pixels (8x8)"]["linear"] > 0.5  # 10 classes: pixels alone are far above chance
    for name in ("igpt ar", "igpt bert"):
        assert 0 <= rows[name]["linear"] <= 1 and rows[name]["train_loss_last"] > 0 and rows[name]["probe_layer"] == 1
    assert "| igpt ar |" in md
