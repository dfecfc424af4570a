"""benchmarks/bench_infonce.py still runs (--smoke on CPU, ours through the interpreter), checks
every candidate against its float32 reference before timing it (the materialised loss, or ours in
float32 past the materialised limit), and keeps a failing candidate as an error row."""

import pytest
from test_benchmarks import smoke_result

CANDIDATES = ["ours", "eager", "eager + torch.compile"]
PASSES = ("fwd", "fwd+bwd")
CASES = {"smoke": "eager fp32", "smoke large": "ours fp32"}
STEM = "infonce_cpu_smoke"


def outputs(row):
    return {"loss"} | ({"d_query", "d_key", "d_scale"} if row["pass"] == "fwd+bwd" else set())


@pytest.mark.parametrize("fail", [None, "torch.compile"])
def test_bench_infonce_smoke(tmp_path, fail):
    result, md = smoke_result("bench_infonce.py", STEM, tmp_path, fail=fail)
    rows = result["rows"]
    assert result["complete"] is True
    assert [(r["case"], r["candidate"], r["pass"]) for r in rows] == [
        (c, cand, p) for c in CASES for p in PASSES for cand in CANDIDATES
    ]
    assert len([line for line in md.splitlines() if line.startswith("| ")]) == 1 + len(rows)
    for r in rows:
        assert r["reference"] == CASES[r["case"]]
        if fail and fail in r["candidate"]:
            assert "injected failure" in r["error"] and r["speedup_vs_eager"] is None
            continue
        assert r["valid"] is True and set(r["max_err"]) == outputs(r) and r["ms"] > 0 and r["peak_mib"] is None
        base = next(b for b in rows if (b["case"], b["pass"], b["candidate"]) == (r["case"], r["pass"], "eager"))
        assert r["speedup_vs_eager"] == pytest.approx(base["ms"] / r["ms"])
    assert all(e < 1e-5 for r in rows if r["candidate"] == "ours" for e in r["max_err"].values())
    assert not (tmp_path / "infonce.json").exists()  # smoke never overwrites the GPU result
