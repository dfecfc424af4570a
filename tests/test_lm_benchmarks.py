"""The NNLM / ELMo benchmarks still run (--smoke on CPU, on the README as text) and report what
they measured: every candidate's row, the full softmax's the 1.0x baseline, a failing candidate
an error row that leaves the others."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def smoke(script, stem, out, fail=None):
    env = {k: v for k, v in os.environ.items() if k != "FASTPRETRAIN_BENCH_FAIL"}
    env.update({"OMP_NUM_THREADS": "1", **({"FASTPRETRAIN_BENCH_FAIL": fail} if fail else {})})
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / f"{stem}.json").read_text()), (out / f"{stem}.md").read_text()


@pytest.mark.parametrize("fail", [None, "with replacement"])
def test_bench_nnlm_smoke(tmp_path, fail):
    result, md = smoke("bench_nnlm.py", "nnlm_cpu_smoke", tmp_path, fail)
    rows = {r["candidate"]: r for r in result["rows"]}
    assert result["complete"] and list(rows) == ["full softmax", "sampled softmax, 32 unique",
                                                 "sampled softmax, 32 with replacement"]  # fmt: skip
    assert rows["full softmax"]["speedup_vs_full"] == 1.0
    for name, r in rows.items():
        if fail and fail in name:
            assert "injected failure" in r["error"] and r["speedup_vs_full"] is None
            continue
        assert 1 < r["heldout_perplexity"] < 2 * 800 and r["tokens_per_s"] > 0 and r["heldout_tokens"] > 0
        assert f"| {name} | {r['heldout_perplexity']:.1f} |" in md


@pytest.mark.parametrize("fail", [None, "allennlp"])
def test_bench_elmo_smoke(tmp_path, fail):
    result, md = smoke("bench_elmo.py", "elmo_cpu_smoke", tmp_path, fail)
    rows = {r["candidate"]: r for r in result["rows"]}
    assert result["complete"] and list(rows) == ["eager full softmax", "ours (sampled on device, fused)",
                                                 "allennlp design"]  # fmt: skip
    full = rows["eager full softmax"]
    assert full["vs_full"] == 1.0 and 0 < full["loss_check"] < 2 * np.log(500)
    for name, r in rows.items():
        if fail and fail in name:
            assert "injected failure" in r["error"] and r["vs_full"] is None
            assert rows["ours (sampled on device, fused)"]["vs_allennlp"] is None
            continue
        assert r["words_per_s"] > 0 and r["vs_full"] == pytest.approx(r["words_per_s"] / full["words_per_s"])
        assert 0 < r["loss_check"] < full["loss_check"] + 1 and f"| {name} | {r['words_per_s']:,.0f} |" in md


def test_numpy_sampler_is_tensorflows_unique_sampling(monkeypatch):
    """The AllenNLP-design peer draws what ours draws: distinct log-uniform ids, TF's expected counts."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from bench_elmo import NumpyLogUniform

    from fastpretrain.data import LogUniformSampler

    sampler = NumpyLogUniform(50).to("cpu")
    targets = torch.tensor([0, 7, 49])
    c = sampler.candidates(20, targets)
    assert len(set(c.sampled.tolist())) == 20 and int(c.num_tries) >= 20
    ours = LogUniformSampler(50)
    torch.testing.assert_close(c.true_expected_count, ours.expected_count(targets, c.num_tries, True))
    torch.testing.assert_close(c.sampled_expected_count, ours.expected_count(c.sampled, c.num_tries, True))


def test_quality_elmo_smoke(tmp_path):
    result, md = smoke("quality_elmo.py", "quality_elmo_cpu_smoke", tmp_path)
    rows = {r["model"]: r for r in result["rows"]}
    assert result["complete"] and len(rows) == 4 and not any("error" in r for r in rows.values())
    for name in ("ELMo, sampled softmax 32", "ELMo, full softmax"):
        r = rows[name]
        assert 1 < r["forward_perplexity"] < 2 * 500 and 1 < r["backward_perplexity"] < 2 * 500 and r["words_per_s"] > 0
    for r in rows.values():
        assert 0 <= r["probe_accuracy"] <= 1
    assert "| ELMo, random init | – | – | – |" in md
