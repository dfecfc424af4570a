"""benchmarks/harness.py: a result file rewritten after every row (a run killed mid-way keeps what
it finished), error rows instead of a lost run, the fp32-reference check that marks a candidate
invalid before it is timed, and no gradient accumulation inside timed calls."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from harness import Results, check, commit, run_info, timed_ms


def table(result):
    return "\n".join(f"{r['name']}: {r.get('ms', r.get('error'))}" for r in result["rows"])


def read(path):
    return json.loads(path.read_text())


def test_results_are_written_after_every_row(tmp_path):
    results = Results(tmp_path, "bench", {"device": "cpu"}, table)
    assert read(tmp_path / "bench.json") == {"device": "cpu", "complete": False, "rows": []}
    results.add({"name": "a", "ms": 1.0})
    on_disk = read(tmp_path / "bench.json")
    assert on_disk["rows"] == [{"name": "a", "ms": 1.0}] and on_disk["complete"] is False
    assert (tmp_path / "bench.md").read_text() == "a: 1.0\n"
    results.finish()
    assert read(tmp_path / "bench.json")["complete"] is True
    assert not list(tmp_path.glob("*.tmp"))


def test_a_failing_candidate_is_an_error_row_and_the_run_goes_on(tmp_path, monkeypatch):
    results = Results(tmp_path, "bench", {}, table)

    def broken():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB")

    results.attempt({"name": "big"}, broken)
    results.attempt({"name": "small"}, lambda: {"ms": 2.0})
    monkeypatch.setenv("FASTPRETRAIN_BENCH_FAIL", "small")
    results.attempt({"name": "small again"}, lambda: {"ms": 3.0})
    rows = read(tmp_path / "bench.json")["rows"]
    assert rows[0] == {"name": "big", "error": "OutOfMemoryError: CUDA out of memory. Tried to allocate 80 GiB"}
    assert rows[1] == {"name": "small", "ms": 2.0}
    assert rows[2]["error"].startswith("RuntimeError: injected failure") and "ms" not in rows[2]


def test_check_applies_the_flash_attention_rule():
    ref = {"out": torch.zeros(4), "grad": torch.zeros(4)}
    baseline = {"out": torch.full((4,), 0.01), "grad": torch.full((4,), 0.1)}
    ok = check({"out": torch.full((4,), 0.02), "grad": torch.full((4,), 0.2)}, ref, baseline, atol=1e-6)
    assert ok["valid"] and ok["max_err"] == pytest.approx({"out": 0.02, "grad": 0.2})
    assert not check({"out": torch.full((4,), 0.03), "grad": torch.zeros(4)}, ref, baseline, atol=1e-6)["valid"]
    assert not check({"out": torch.tensor([0.0, float("nan"), 0, 0]), "grad": torch.zeros(4)}, ref, baseline, 1.0)[
        "valid"
    ]
    assert check({"out": torch.full((4,), 1e-7), "grad": torch.zeros(4)}, ref, None, atol=1e-6)["valid"]


def test_timed_calls_start_without_gradients():
    w = torch.ones(3, requires_grad=True)
    seen = []

    def step():
        seen.append(w.grad is None)
        (w * 2).sum().backward()

    timed_ms(step, torch.device("cpu"), repeats=3, grad_to_none=[w])
    assert seen == [True, True, True, True]  # the warm-up call, then every timed call
    assert torch.equal(w.grad, torch.full((3,), 2.0))


def test_run_info_names_the_commit(monkeypatch):
    monkeypatch.setenv("FASTPRETRAIN_COMMIT", "abc123")
    assert commit() == "abc123" and run_info(torch.device("cpu"))["commit"] == "abc123"
    monkeypatch.delenv("FASTPRETRAIN_COMMIT")
    assert commit() != "abc123"
