"""benchmarks/bench_points.py --smoke on CPU (ours through the Triton interpreter, which conftest
sets up): every case and candidate is a row, checked against the reference before timing;
quality_masked_points.py --smoke runs every stage."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_points_smoke(tmp_path, monkeypatch, one_thread):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_points

    monkeypatch.setattr(sys, "argv", ["bench_points.py", "--smoke", "--device", "cpu", "--out", str(tmp_path)])
    bench_points.main()
    result = json.loads((tmp_path / "points_cpu_smoke.json").read_text())
    rows = {(r["case"], r["pass"], r["candidate"]): r for r in result["rows"]}
    assert result["complete"] and len(rows) == 8
    for key, r in rows.items():
        assert r["valid"] is True and r["ms"] > 0, r
        if key[0].startswith("Chamfer"):
            assert set(r["max_err"]) == ({"loss", "d x", "d y"} if key[1] == "fwd+bwd" else {"loss"})
    assert rows[("FPS smoke B2 N37 M9", "fwd", "ours")]["speedup_vs_eager"] > 0
    table = (tmp_path / "points_cpu_smoke.md").read_text()
    assert table.count("| kNN smoke B1 M5 N11 k3 | fwd |") == 2 and table.count("| ok |") == 8


def test_quality_masked_points_smoke(tmp_path, monkeypatch, one_thread):
    """Both targets pre-train and are probed beside random init and the raw input; the table has their rows."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import quality_masked_points

    monkeypatch.setattr(sys, "argv", ["quality_masked_points.py", "--smoke", "--device", "cpu", "--out", str(tmp_path)])
    quality_masked_points.main()
    result = json.loads((tmp_path / "quality_masked_points_smoke.json").read_text())
    assert result["complete"] and not [r for r in result["rows"] if "error" in r]
    scored = {(r["target"], r["features"]) for r in result["rows"] if r["stage"] == "row"}
    assert scored == {(t, f) for t in ("chamfer", "geometry") for f in ("ours", "random init", "raw input")}
    table = (tmp_path / "quality_masked_points_smoke.md").read_text()
    assert "| geometry | raw input | 16 / 8 |" in table and "chamfer seed 0: 16 clouds x 48 points" in table
