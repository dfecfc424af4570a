"""benchmarks/quality_cpc.py --smoke still runs on docs9m and reports every row: the trained and the
random-init CPC (held-out loss next to chance, probe accuracy) and the byte-histogram baseline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS9M = ROOT.parent / "shared" / "data" / "docs9m.txt.xz"


@pytest.mark.skipif(not DOCS9M.is_file(), reason=f"needs {DOCS9M} (../shared/DATA.md)")
def test_quality_cpc_smoke(tmp_path):
    script = ROOT / "benchmarks" / "quality_cpc.py"
    cmd = [sys.executable, str(script), "--smoke", "--device", "cpu", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "quality_cpc_cpu_smoke.json").read_text())
    md = (tmp_path / "quality_cpc_cpu_smoke.md").read_text()
    rows = {r["model"]: r for r in result["rows"]}
    names = ["CPC (trained), encoder z", "CPC random init, encoder z", "byte histogram"]
    assert result["complete"] and list(rows) == names
    assert not any("error" in r for r in rows.values())
    for name in ("CPC (trained), encoder z", "CPC random init, encoder z"):
        r = rows[name]
        assert 0 < r["heldout_loss"] < 3 * r["chance_loss"] and f"({r['chance_loss']:.3f})" in md
    assert rows["CPC (trained), encoder z"]["windows_per_s"] > 0
    for r in rows.values():
        assert 0 <= r["probe_accuracy"] <= 1 and f"{r['probe_accuracy']:.1%} |" in md
