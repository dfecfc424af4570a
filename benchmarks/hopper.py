"""Compile Triton kernels for Hopper (sm_90a) on a machine without a GPU, and read their resources.

Triton's wheel ships ptxas and cuobjdump, so everything up to the cubin runs on a CPU. Two steps:

1. :func:`recorded_launches` runs library code on CPU tensors as if on an H100/H200: the launchers
   pick their GPU block configs (``fastpretrain.kernels.target.gpu_launches``), and each launch is
   caught by Triton's JIT cache hook before anything compiles or runs, leaving its exact
   specialization (argument types, divisibility, constexprs, num_warps / num_stages): what a GPU
   run would compile, no more and no less.
2. :func:`compile_launches` compiles those specializations in parallel processes through
   ``JITFunction.preload`` against a stand-in driver whose target is sm_90a, then reads registers,
   spills (local-memory loads and stores in the SASS), shared memory and the tensor-core instructions off the cubin with cuobjdump.
   Results are cached on disk (``FASTPRETRAIN_HOPPER_CACHE``, default ~/.cache/fastpretrain-hopper) by kernel
   source hash + specialization + Triton version.

Needs TRITON_INTERPRET unset (the interpreter replaces @triton.jit at import time).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import triton
from fastpretrain.kernels import target
from triton.backends.compiler import GPUTarget

ARCH = 90
# Hopper per-SM limits (H100 and H200): registers, warps, blocks, shared memory per SM and the most one block may use.
REGS_PER_SM, WARPS_PER_SM, BLOCKS_PER_SM = 65536, 64, 32
SMEM_PER_SM, SMEM_PER_BLOCK, SMEM_RESERVED = 233472, 232448, 1024
TOOLS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
COMPILE_TIMEOUT_S = int(os.environ.get("FASTPRETRAIN_COMPILE_TIMEOUT_S", 180))
CACHE = Path(os.environ.get("FASTPRETRAIN_HOPPER_CACHE", Path.home() / ".cache" / "fastpretrain-hopper"))


class CompileOnlyDriver:
    """Stands in for Triton's CUDA driver: reports an sm_90a target and device 0, launches nothing."""

    def get_current_target(self) -> GPUTarget:
        return GPUTarget("cuda", ARCH, 32)

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: int | None = None) -> int:
        return 0


@dataclasses.dataclass
class Launch:
    """One specialization of one kernel, as the JIT would compile it."""

    module: str
    kernel: str
    spec: str  # Triton's serialized specialization (JITFunction.preload's input)
    workload: str  # the first library call that launched it

    @property
    def options(self) -> dict:
        return json.loads(self.spec)["options"]


def _use_compile_only_driver() -> None:
    """Point Triton at the stand-in driver (this process only compiles; it never goes back)."""
    triton.runtime.driver.set_active(CompileOnlyDriver())


@contextlib.contextmanager
def recorded_launches(workload: list[str]) -> Iterator[list[Launch]]:
    """Record (not run) every kernel launch inside; ``workload[0]`` names the calls being made."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("recorded_launches needs TRITON_INTERPRET unset (the interpreter never compiles)")
    launches: list[Launch] = []
    seen: set[str] = set()

    def hook(*, fn, compile, **_) -> bool:
        spec = compile["specialization_data"]
        if spec not in seen:
            seen.add(spec)
            launches.append(Launch(fn.module, fn.name, spec, workload[0]))
        return True  # skip the compile; the launch then returns without running

    knobs = triton.knobs.runtime
    old = knobs.jit_cache_hook
    knobs.jit_cache_hook = hook
    try:
        _use_compile_only_driver()
        with target.gpu_launches():
            yield launches
    finally:
        knobs.jit_cache_hook = old


def _jit_function(launch: Launch):
    module = __import__(launch.module, fromlist=[launch.kernel])
    return getattr(module, launch.kernel)


def _cache_key(launch: Launch) -> str:
    fn = _jit_function(launch)
    reader = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()  # this file decides what a result holds
    return hashlib.sha256(f"{triton.__version__}|{reader}|{fn.cache_key}|{launch.spec}".encode()).hexdigest()[:32]


def _tool(name: str, *args: str) -> str:
    return subprocess.run([str(TOOLS / name), *args], check=True, capture_output=True, text=True).stdout


def occupancy(regs: int, warps: int, smem: int) -> tuple[int, float]:
    """(blocks per SM, fraction of the SM's 64 warps active) under the register, warp, block and
    shared-memory limits; registers are allocated per warp in units of 256."""
    regs_per_warp = -(-regs * 32 // 256) * 256
    limits = [BLOCKS_PER_SM, WARPS_PER_SM // warps, REGS_PER_SM // (regs_per_warp * warps) if regs else BLOCKS_PER_SM]
    limits.append(SMEM_PER_SM // (smem + SMEM_RESERVED))
    blocks = max(0, min(limits))
    return blocks, blocks * warps / WARPS_PER_SM


def _dot_dtypes(ttir: str) -> list[str]:
    """Element types of the first operand of each tt.dot in the kernel's TTIR."""
    return sorted(set(re.findall(r"tt\.dot [^:]*: tensor<[0-9x]+x(\w+)", ttir)))


def _resources(launch: Launch) -> dict:
    """Compile one launch for sm_90a and read its resources off the cubin."""
    _use_compile_only_driver()
    kernel = _jit_function(launch).preload(launch.spec)
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        usage = _tool("cuobjdump", "--dump-resource-usage", f.name)
        sass = _tool("cuobjdump", "-sass", f.name)
    fields = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", usage))
    regs, stack = int(fields.get("REG", 0)), int(fields.get("STACK", 0))
    spills = len(re.findall(r"\b(?:STL|LDL)(?:\.\w+)*\s", sass))  # register spills go to local memory (the stack)
    smem = int(kernel.metadata.shared) + int(fields.get("SHARED", 0))
    warps = int(kernel.metadata.num_warps)
    blocks, occ = occupancy(regs, warps, smem)
    dots = _dot_dtypes(kernel.asm["ttir"])
    return {"registers": regs, "spills": spills, "local_bytes": int(fields.get("LOCAL", 0)), "stack_bytes": stack, "shared_bytes": smem, "num_warps": warps,
            "num_stages": int(kernel.metadata.num_stages), "blocks_per_sm": blocks, "occupancy": occ,
            "dot_dtypes": dots, "hgmma": len(re.findall(r"\bHGMMA\.", sass)), "hmma": len(re.findall(r"\bHMMA\.", sass)),
            "wgmma_expected": any(d in ("bf16", "f16") for d in dots)}  # fmt: skip


def _alarm(signum, frame):
    raise TimeoutError(f"compile took over {COMPILE_TIMEOUT_S} s")


def _compile_one(launch: Launch) -> dict:
    """Resources of one launch (from the cache when this source and specialization were compiled before).
    A compile that outlasts COMPILE_TIMEOUT_S is an error (subprocess.run kills its ptxas)."""
    path = CACHE / f"{_cache_key(launch)}.json"
    if path.exists():
        return json.loads(path.read_text())
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(COMPILE_TIMEOUT_S)
    try:
        result = _resources(launch)
    except Exception as e:  # noqa: BLE001 - a compile error is the gate's finding, reported per launch
        lines = str(e).strip().splitlines()
        return {"error": f"{type(e).__name__}: {lines[-1][:300] if lines else ''}"}
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


def compile_launches(launches: list[Launch], jobs: int) -> list[dict]:
    """Resources of each launch (same order), compiled in ``jobs`` processes."""
    if jobs <= 1:
        return [_compile_one(launch) for launch in launches]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_compile_one, launches, chunksize=1))
