"""Every kernel variant the library launches on a GPU, compiled for Hopper (sm_90a) on the CPU:
registers, spills, shared memory, warpgroup MMA (HGMMA) use and occupancy, per variant.

    python benchmarks/kernel_resources.py                     # writes benchmarks/results/kernel_resources.json/.md
    python benchmarks/kernel_resources.py --only attention --jobs 16

The variants are not listed by hand: each workload below calls the public ops on CPU tensors of a
real pre-training shape (../shared/BENCHMARKS.md's table, the BERT / GPT / MAE heads, word2vec)
inside ``hopper.recorded_launches``, so the launchers choose their GPU configs and the JIT records
each specialization it would compile (see benchmarks/hopper.py). ``tests/kernels/test_hopper_compile.py``
runs this script and fails on a compile error, a spill or shared memory beyond the H100/H200
limit. Run with TRITON_INTERPRET unset.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from fastpretrain.kernels import attention as attention_kernels
from harness import run_info, write_result
from hopper import SMEM_PER_BLOCK, Launch, compile_launches, recorded_launches
from tune_attention import GRID

from fastpretrain import ops

ROOT = Path(__file__).resolve().parents[1]
HALF = (torch.bfloat16, torch.float16)
# (name, B, H, Hk, S, D, mode): the attention shape table, the other head dims, and what BERT and GPT train with.
ATTENTION = [
    ("BERT-base S512", 4, 12, 12, 512, 64, "dense"),
    ("BERT-base S512 dropout", 4, 12, 12, 512, 64, "dropout"),
    ("BERT-base padded", 4, 12, 12, 512, 64, "padded"),
    ("BERT-base packed", 4, 12, 12, 512, 64, "varlen"),
    ("BERT-base packed dropout", 4, 12, 12, 512, 64, "varlen dropout"),
    ("GPT-2 causal S1024", 2, 12, 12, 1024, 64, "causal"),
    ("GPT-2 packed documents", 2, 12, 12, 1024, 64, "varlen causal"),
    ("GQA causal S512", 2, 12, 4, 512, 64, "causal"),
    ("MAE encoder S50", 8, 12, 12, 50, 64, "dense"),
    ("MAE decoder S197 D32", 8, 16, 16, 197, 32, "dense"),
    ("long S8192 D128", 1, 16, 16, 8192, 128, "dense"),
    ("long causal S8192 D128", 1, 16, 16, 8192, 128, "causal"),
    ("D16 S256", 2, 4, 4, 256, 16, "dense"),
    ("D96 S256", 2, 4, 4, 256, 96, "dense"),
    ("BEiT-B S197 relative position bias", 8, 12, 12, 197, 64, "bias"),
    ("BEiT-B S197 bias per image", 8, 12, 12, 197, 64, "bias batched"),
]

# name: (sg, hs, shared negatives (HogBatch), negative, d), window 5: the word2vec updates trained with.
WORD2VEC = {"sg-ns d200": (1, 0, 0, 10, 200), "cbow-ns d100": (0, 0, 0, 5, 100), "sg-hs d200": (1, 1, 0, 0, 200),
            "cbow-hs d100": (0, 1, 0, 0, 100), "sg-ns HogBatch d200": (1, 0, 1, 10, 200),
            "sg-ns d300": (1, 0, 0, 5, 300)}  # fmt: skip


def _leaf(*shape, dtype=torch.float32):
    return torch.randn(*shape).to(dtype).requires_grad_()


def attention_workload(b, h, hk, s, d, mode, dtype) -> Callable[[], None]:
    def run():
        p = 0.1 if "dropout" in mode else 0.0
        causal = "causal" in mode
        if mode.startswith("varlen"):
            lengths = torch.linspace(s // 2, s, b).long()
            cu = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).int()
            q, k, v = (
                _leaf(int(cu[-1]), h, d, dtype=dtype),
                _leaf(int(cu[-1]), hk, d, dtype=dtype),
                _leaf(int(cu[-1]), hk, d, dtype=dtype),
            )
            out = ops.attention_varlen(q, k, v, cu, s, causal=causal, dropout_p=p)
        else:
            q, k, v = _leaf(b, h, s, d, dtype=dtype), _leaf(b, hk, s, d, dtype=dtype), _leaf(b, hk, s, d, dtype=dtype)
            mask = torch.arange(s)[None, :] < torch.linspace(s // 2, s, b).long()[:, None] if mode == "padded" else None
            bias = None  # BEiT's relative position bias: float32 (a parameter under autocast), with its gradient
            if "bias" in mode:
                bias = _leaf(*((b, h, s, s) if "batched" in mode else (h, s, s)))
            out = ops.attention(q, k, v, causal=causal, key_padding_mask=mask, dropout_p=p, attn_bias=bias)
        out.backward(torch.ones_like(out))

    return run


def cross_entropy_workload(n, d, v, bias, dtype) -> Callable[[], None]:
    def run():
        hidden, weight = _leaf(n, d, dtype=dtype), _leaf(v, d, dtype=dtype)
        b = _leaf(v, dtype=dtype) if bias else None
        ops.linear_cross_entropy(hidden, weight, torch.randint(0, v, (n,)), b).backward()

    return run


def infonce_workload(n, d, mode, dtype) -> Callable[[], None]:
    """A contrastive batch: CLIP's symmetric loss, SimCLR's (n = 2 x views) or SigLIP's, learnable scale."""

    def run():
        q, k = _leaf(n, d, dtype=dtype), _leaf(n, d, dtype=dtype)
        scale = torch.tensor(14.3, requires_grad=True)
        if mode == "siglip":
            loss = ops.siglip_loss(q, k, scale, torch.tensor(-10.0, requires_grad=True))
        elif mode == "simclr":
            targets, exclude = ops.simclr_targets(n // 2)
            loss = ops.infonce_loss(q, q, scale, targets=targets, exclude=exclude)
        else:
            loss = ops.infonce_loss(q, k, scale, symmetric=True)
        loss.backward()

    return run


def masking_workload(b, length, d, dd, ratio, dtype, param_dtype) -> Callable[[], None]:
    """MAE's encoder gather and decoder unshuffle, params in ``param_dtype`` (float32 under autocast)."""

    def run():
        ops.random_masking(b, length, ratio)  # recorded only: its outputs stay unwritten, so take valid ids here
        keep = int(length * (1 - ratio))  # MAE's rule, as ops.random_masking
        ids_shuffle = torch.rand(b, length).argsort(1)
        ids_keep, ids_restore = ids_shuffle[:, :keep], ids_shuffle.argsort(1)
        x, pos = _leaf(b, length, d, dtype=dtype), _leaf(1, length, d, dtype=param_dtype)
        ops.gather_visible(x, pos, ids_keep).sum().backward()
        y, token = _leaf(b, 1 + keep, dd, dtype=dtype), _leaf(1, 1, dd, dtype=param_dtype)
        ops.unshuffle_tokens(y, token, _leaf(1, 1 + length, dd, dtype=param_dtype), ids_restore).sum().backward()

    return run


def points_workload(b, n, m, k, dtype) -> Callable[[], None]:
    """Point-MAE's grouping (FPS of m centres from n points, their k nearest points) and its Chamfer
    loss on the groups (every group of k predicted points against its k true points)."""

    def run():
        p = torch.randn(b, n, 3).to(dtype)
        ops.farthest_point_sample(p, m)
        centres = torch.randn(b, m, 3).to(dtype)  # recorded only: the sampled indices stay unwritten
        ops.knn_points(centres, p, k)
        pred, true = _leaf(b * m, k, 3, dtype=dtype), _leaf(b * m, k, 3, dtype=dtype)
        ops.chamfer_distance(pred, true).backward()

    return run


def sampled_softmax_workload(n, d, v, s, bias, dtype) -> Callable[[], None]:
    def run():
        hidden, weight = _leaf(n, d, dtype=dtype), _leaf(v, d, dtype=dtype)
        b = _leaf(v, dtype=dtype) if bias else None
        log_q = torch.full((v,), -float(torch.log(torch.tensor(float(v)))))
        targets, sampled = torch.randint(0, v, (n,)), torch.randint(0, v, (s,))
        ops.sampled_softmax_loss(hidden, weight, targets, sampled, log_q[targets], log_q[sampled], b).sum().backward()

    return run


def word2vec_workload(sg, hs, shared, window, negative, d, v=71_000, n=65536) -> Callable[[], None]:
    """One batch of the update word2vec trains with (skip-gram / CBOW, negative sampling / HS / HogBatch)."""

    def run():
        syn0, syn1 = torch.zeros(v, d), torch.zeros(v, d)
        c = 1 if sg else 2 * window
        inputs = torch.randint(0, v, (n, c), dtype=torch.int32)
        targets = torch.randint(0, v, (n,), dtype=torch.int32)
        lengths = torch.full((n,), c, dtype=torch.int32)
        if shared:
            negatives = torch.randint(0, v, (n, negative), dtype=torch.int32)
            ops.word2vec_shared_ns_update_(syn0, syn1, torch.randint(0, v, (n, 2 * window), dtype=torch.int32), targets,
                                           negatives, 0.025)  # fmt: skip
        elif hs:
            depth = 20
            codes = torch.randint(0, 2, (v, depth), dtype=torch.int8)
            points = torch.randint(0, v - 1, (v, depth), dtype=torch.int32)
            ops.word2vec_hs_update_(syn0, syn1, inputs, targets, codes, points, torch.full((v,), depth, dtype=torch.int32),
                                    0.025, lengths=lengths)  # fmt: skip
        else:
            negatives = torch.randint(0, v, (n, negative), dtype=torch.int32)
            ops.word2vec_ns_update_(syn0, syn1, inputs, targets, negatives, 0.025, lengths=lengths)

    return run


def workloads() -> dict[str, tuple[str, Callable[[], None]]]:
    """name -> (family, run)."""
    out = {}
    for dtype in HALF:
        t = str(dtype).removeprefix("torch.")
        for name, *shape in ATTENTION:
            out[f"attention {name} {t}"] = ("attention", attention_workload(*shape, dtype))
        for name, shape in (("BERT MLM", (4915, 768, 30522)), ("GPT-2 LM", (16384, 768, 50257))):
            for bias in (True, False):
                out[f"cross_entropy {name}{' bias' * bias} {t}"] = (
                    "cross_entropy",
                    cross_entropy_workload(*shape, bias, dtype),
                )
        for param_dtype in (dtype, torch.float32):
            label = "params fp32" if param_dtype == torch.float32 else "params same"
            out[f"masking MAE B256 L196 {t} {label}"] = (
                "masking",
                masking_workload(256, 196, 768, 512, 0.75, dtype, param_dtype),
            )
        out[f"masking MAE Fashion-MNIST L49 {t}"] = (
            "masking",
            masking_workload(256, 49, 192, 128, 0.75, dtype, torch.float32),
        )
        for name, n, d, mode in (("CLIP B32768 D512", 32768, 512, "clip"), ("SimCLR B4096 D128", 8192, 128, "simclr"),
                                 ("SigLIP B16384 D768", 16384, 768, "siglip")):  # fmt: skip
            out[f"infonce {name} {t}"] = ("infonce", infonce_workload(n, d, mode, dtype))
        for bias in (True, False):
            out[f"sampled_softmax NNLM{' bias' * bias} {t}"] = (
                "sampled_softmax",
                sampled_softmax_workload(8192, 512, 100_000, 8192, bias, dtype),
            )
    out["points Point-MAE B32 N1024 M64 k32 float32"] = ("points", points_workload(32, 1024, 64, 32, torch.float32))
    out["points FPS B8 N8192 M512 float32"] = ("points", lambda: ops.farthest_point_sample(torch.randn(8, 8192, 3), 512))
    out["attention BERT-base S512 float32"] = ("attention", attention_workload(4, 12, 12, 512, 64, "dense", torch.float32))
    for name, (sg, hs, shared, negative, d) in WORD2VEC.items():
        out[f"word2vec {name}"] = ("word2vec", word2vec_workload(sg, hs, shared, 5, negative, d))
    return out


def record(names: list[str]) -> list[Launch]:
    """The launches of the named workloads, each specialization once."""
    table = workloads()
    current = [""]
    launches, seen = [], set()
    for name in names:
        current[0] = name
        with recorded_launches(current) as got:
            table[name][1]()
        for launch in got:
            if launch.spec not in seen:
                seen.add(launch.spec)
                launches.append(launch)
    return launches


def sweep_launches(names: list[str]) -> list[tuple[str, dict, Launch]]:
    """(attention case, config, launch) of every GRID config of every attention kernel, bf16: what
    tune_attention.py would time, recorded so that configs which spill never reach a GPU."""
    cases = {name: shape for name, *shape in ATTENTION}
    out = []
    for name in names:
        b, h, hk, s, d, mode = cases[name]
        causal, p = "causal" in mode, 0.1 if "dropout" in mode else 0.0
        seed = torch.zeros(1, dtype=torch.int64) if p else None
        mask, cu = None, None
        lengths = torch.linspace(s // 2, s, b).long()
        if mode.startswith("varlen"):
            cu = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).int()
            q, kv = (
                torch.empty(int(cu[-1]), h, d, dtype=torch.bfloat16),
                torch.empty(int(cu[-1]), hk, d, dtype=torch.bfloat16),
            )
        else:
            q, kv = torch.empty(b, h, s, d, dtype=torch.bfloat16), torch.empty(b, hk, s, d, dtype=torch.bfloat16)
            mask = torch.arange(s)[None, :] < lengths[:, None] if mode == "padded" else None
        common = (cu, s, mask, causal, d**-0.5, p, seed)
        for values in itertools.product(*GRID.values()):
            cfg = dict(zip(GRID, values))
            if cfg["BLOCK_M"] * cfg["BLOCK_N"] >= 4096 * cfg["num_warps"]:
                continue  # a 128 x 128 tile on 4 warps spills for sure, and ptxas takes minutes to say so
            with recorded_launches([name]) as got:
                out_, lse = attention_kernels.attention_forward(q, kv, kv, *common, config=cfg)
                attention_kernels.attention_backward(out_, q, kv, kv, out_, lse, *common, kv_config=cfg, q_config=cfg)
            out += [(name, cfg, launch) for launch in got]
    return out


def sweep_markdown(result: dict) -> str:
    lines = [f"# Attention block configs compiled for Hopper (sm_90a) on the CPU ({result['date']})",
             f"`{result['command']}`, bf16, triton {result['versions'].get('triton')}: every config of "
             "tune_attention.py's grid, per kernel; only spill-free configs within the shared memory limit are timed on a GPU.", "",
             "| case | kernel | BLOCK_M | BLOCK_N | warps | stages | regs | spills | smem KiB | occupancy | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        c = r["config"]
        cells = (
            ("", "", "", "")
            if "error" in r
            else (r["registers"], r["spills"], f"{r['shared_bytes'] / 1024:.0f}", f"{r['occupancy']:.0%}")
        )
        lines.append(f"| {r['case']} | {r['kernel']} | {c['BLOCK_M']} | {c['BLOCK_N']} | {c['num_warps']} | {c['num_stages']} | "
                     + " | ".join(map(str, cells)) + f" | {r['verdict']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def verdict(r: dict) -> str:
    """'ok', or what the gate fails on."""
    if "error" in r:
        return "compile error"
    if r["spills"] > 0 or r["local_bytes"] > 0:
        return "spills"
    if r["shared_bytes"] > SMEM_PER_BLOCK:
        return "shared memory"
    return "ok"


def markdown(result: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# Kernel resources for Hopper (sm_90a), compiled on the CPU ({versions}, {result['date']})",
             f"`{result['command']}`: {len(result['rows'])} variants in {result['seconds']:.0f} s. Registers per "
             "thread, spills (local-memory loads/stores in the SASS), shared memory per block, warpgroup MMA (HGMMA) and mma.sync (HMMA) "
             "instructions in the SASS, and the occupancy those allow on an H100/H200 SM.", "",
             "| kernel | workload | warps | stages | regs | spills | smem KiB | dots | HGMMA | HMMA | blocks/SM | occupancy | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        head = f"| {r['kernel']} | {r['workload']} |"
        if "error" in r:
            lines.append(f"{head} | | | | | | | | | | {r['verdict']}: {r['error'][:120]} |")
            continue
        lines.append(f"{head} {r['num_warps']} | {r['num_stages']} | {r['registers']} | {r['spills']} | "
                     f"{r['shared_bytes'] / 1024:.1f} | {','.join(r['dot_dtypes']) or '-'} | {r['hgmma']} | {r['hmma']} | "
                     f"{r['blocks_per_sm']} | {r['occupancy']:.0%} | {r['verdict']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated families or workload substrings (default: all)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compile processes")
    p.add_argument("--list", action="store_true", help="print the workloads and exit")
    p.add_argument("--sweep", default="", help="instead: compile tune_attention.py's whole config grid for these "
                   "comma-separated attention cases (e.g. 'BERT-base packed dropout,GPT-2 causal S1024')")  # fmt: skip
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    table = workloads()
    names = [n for n, (family, _) in table.items()
             if not args.only or any(s.strip() and (s.strip() == family or s.strip() in n) for s in args.only.split(","))]  # fmt: skip
    if args.list:
        print("\n".join(names))
        return
    start = time.perf_counter()
    info = run_info(torch.device("cpu"))
    info["device"] = "sm_90a (H100/H200), compiled on the CPU"
    if args.sweep:
        swept = sweep_launches([n.strip() for n in args.sweep.split(",")])
        rows = []
        for (case, cfg, launch), r in zip(swept, compile_launches([s for _, _, s in swept], args.jobs)):
            rows.append(
                {"case": case, "kernel": launch.kernel.removeprefix("_").removesuffix("_kernel"), "config": cfg, **r}
            )
            rows[-1]["verdict"] = verdict(rows[-1])
        result = {**info, "seconds": time.perf_counter() - start, "rows": rows}
        write_result(args.out, "attention_configs", result, sweep_markdown(result))
        return
    launches = record(names)
    print(f"kernel_resources: {len(launches)} variants from {len(names)} workloads; compiling with {args.jobs} jobs",
          file=sys.stderr)  # fmt: skip
    results = compile_launches(launches, args.jobs)
    rows = []
    for launch, r in zip(launches, results):
        row = {"kernel": f"{launch.module.rsplit('.', 1)[-1]}.{launch.kernel}", "workload": launch.workload,
               "options": {k: launch.options[k] for k in ("num_warps", "num_stages") if k in launch.options}, **r}  # fmt: skip
        row["verdict"] = verdict(row)
        rows.append(row)
    result = {**info, "seconds": time.perf_counter() - start, "rows": rows}
    write_result(args.out, "kernel_resources", result, markdown(result))
    bad = [r for r in rows if r["verdict"] != "ok"]
    print(
        f"kernel_resources: {len(rows)} variants, {len(bad)} failing the gate, {result['seconds']:.0f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
