"""benchmarks/bench_bert.py still runs (--smoke on CPU): its models agree before timing (``valid``),
the vs-HF ratios come from valid rows only, and a failing candidate is an error row while the others
are still checked and timed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def bench_bert_smoke(out, fail=None):
    env = {k: v for k, v in os.environ.items() if k != "FASTPRETRAIN_BENCH_FAIL"}
    env.update({"OMP_NUM_THREADS": "1", **({"FASTPRETRAIN_BENCH_FAIL": fail} if fail else {})})
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_bert.py"), "--smoke", "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "bert_step_cpu_smoke.json").read_text()), (out / "bert_step_cpu_smoke.md").read_text()


def test_bench_bert_smoke(tmp_path):
    pytest.importorskip("transformers")
    result, md = bench_bert_smoke(tmp_path)
    assert result["complete"] is True and result["loss_rtol"] == 1e-4
    rows = {r["candidate"]: r for r in result["rows"]}
    assert list(rows) == ["ours", "hf sdpa"]
    ours, hf = rows.values()
    for r in rows.values():
        assert r["valid"] is True and r["check_dtype"] == "float32" and r["loss_hf"] == hf["loss"]
        assert r["max_err"]["loss"] == pytest.approx(abs(r["loss"] - r["loss_hf"])) and r["max_err"]["loss"] < 1e-4
        assert r["tokens_per_s"] == pytest.approx(r["real_tokens"] / r["step_ms"] * 1e3)
    assert ours["real_tokens"] == hf["real_tokens"] < hf["padded_tokens"]
    assert hf["vs_hf_sdpa"] == 1.0 and ours["vs_hf_sdpa"] == pytest.approx(ours["tokens_per_s"] / hf["tokens_per_s"])
    assert md.startswith("# BERT-tiny MLM + NSP training step") and len(md.splitlines()) == 5 + len(rows)
    assert not (tmp_path / "bert_step.json").exists()  # smoke never overwrites the GPU result


def test_bench_bert_error_rows(tmp_path):
    """With HF failing, ours is still checked and timed, and gets no ratio (its baseline is gone)."""
    pytest.importorskip("transformers")
    result, md = bench_bert_smoke(tmp_path, fail="hf sdpa")
    ours, hf = result["rows"]
    assert result["complete"] is True and (ours["candidate"], hf["candidate"]) == ("ours", "hf sdpa")
    assert hf["error"].startswith("RuntimeError: injected failure") and "tokens_per_s" not in hf
    assert ours["valid"] is True and ours["tokens_per_s"] > 0 and "vs_hf_sdpa" not in ours
    assert md.count("injected failure") == 1


def test_loss_check_tolerance_follows_the_timed_dtype():
    from bench_bert import loss_check

    assert loss_check(10.01, 10.0, torch.bfloat16)["valid"] and not loss_check(10.05, 10.0, torch.bfloat16)["valid"]
    assert loss_check(10.0005, 10.0, torch.float32)["valid"] and not loss_check(10.002, 10.0, torch.float32)["valid"]
    assert not loss_check(float("nan"), 10.0, torch.float32)["valid"]


def test_invalid_rows_get_no_ratio():
    """A candidate that disagrees with HF keeps its timing but gets no vs-HF ratio; with HF itself
    invalid, no row gets one."""
    from bench_bert import add_ratios

    def row(name, valid, tokens_per_s):
        return {"candidate": name, "valid": valid, "tokens_per_s": tokens_per_s, "peak_gib": None}

    rows = [row("ours", True, 300.0), row("hf sdpa", True, 100.0), row("ours + compile", False, 900.0),
            {"candidate": "hf sdpa + compile", "error": "OutOfMemoryError"}]
    add_ratios(rows, "tokens_per_s")
    assert [r.get("vs_hf_sdpa") for r in rows] == [3.0, 1.0, None, None]
    rows = [row("ours", True, 300.0), row("hf sdpa", False, 100.0)]
    add_ratios(rows, "tokens_per_s")
    assert all("vs_hf_sdpa" not in r for r in rows)
