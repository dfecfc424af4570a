"""The Hopper compile gate: every kernel variant the library launches on a GPU compiles for sm_90a
on this CPU (with the ptxas and cuobjdump Triton ships), spills no registers, fits the H100/H200
shared memory, and runs its bf16/fp16 tl.dot on warpgroup MMA. The compiles run in a subprocess
without TRITON_INTERPRET (benchmarks/kernel_resources.py); a second test shows the gate catching
a compile error and a spill on purpose-built kernels."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Triton's ptxas and cuobjdump ship for Linux")


def _compile_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    return env


def _launched_kernels() -> set[str]:
    """module.name of every top-level @triton.jit *_kernel in kernels/."""
    names = set()
    for path in (ROOT / "kernels").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_kernel") and node.decorator_list:
                names.add(f"{path.stem}.{node.name}")
    return names


def test_every_gpu_launch_compiles_for_hopper(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/kernel_resources.py"), "--jobs", str(os.cpu_count() or 1),
           "--out", str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, env=_compile_env(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "kernel_resources.json").read_text())["rows"]
    assert {r["kernel"] for r in rows} == _launched_kernels(), "a kernel has no workload in kernel_resources.py"
    failing = [
        f"{r['kernel']} [{r['workload']}]: {r['verdict']} {r.get('error', '')}" for r in rows if r["verdict"] != "ok"
    ]
    assert not failing, "\n".join(failing)
    no_wgmma = [f"{r['kernel']} [{r['workload']}]" for r in rows if r["wgmma_expected"] and r["hgmma"] == 0]
    assert not no_wgmma, "bf16/fp16 tl.dot without warpgroup MMA:\n" + "\n".join(no_wgmma)
    assert all(r["registers"] > 0 and r["num_warps"] >= 1 for r in rows)


PROBE = """
import sys
import torch
import triton
import triton.language as tl

sys.path.insert(0, {benchmarks!r})
from hopper import compile_launches, recorded_launches
from kernel_resources import verdict

NOT_CONSTEXPR = 3


@triton.jit
def fine_kernel(X, N, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(X + offs, tl.load(X + offs, mask=offs < N) * 2.0, mask=offs < N)


@triton.jit
def global_kernel(X, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(X + offs, tl.load(X + offs) * NOT_CONSTEXPR)


@triton.jit
def spilling_kernel(A, C, BLOCK: tl.constexpr):
    rows = tl.arange(0, BLOCK)
    a = tl.load(A + rows[:, None] * BLOCK + rows[None, :])
    tl.store(C + rows[:, None] * BLOCK + rows[None, :], tl.dot(a, a))  # a 128 x 128 fp32 result on one warp


x = torch.zeros(256)
with recorded_launches(["probe"]) as launches:
    fine_kernel[(1,)](x, 200, BLOCK=256)
    global_kernel[(1,)](x, BLOCK=256)
    spilling_kernel[(1,)](torch.zeros(128, 128, dtype=torch.float16), torch.zeros(128, 128), BLOCK=128, num_warps=1)
print({{launch.kernel: verdict(r) for launch, r in zip(launches, compile_launches(launches, jobs=1))}})
"""


def test_gate_reports_compile_errors_and_spills(tmp_path):
    """The gate's findings on kernels made to fail: a plain global in jit code, a tile too big for a warp's registers."""
    (tmp_path / "probe.py").write_text(PROBE.format(benchmarks=str(ROOT / "benchmarks")))
    env = {**_compile_env(), "FASTPRETRAIN_HOPPER_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, str(tmp_path / "probe.py")], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert verdicts == {"fine_kernel": "ok", "global_kernel": "compile error", "spilling_kernel": "spills"}
