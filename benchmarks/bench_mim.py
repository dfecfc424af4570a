"""Masked image modeling training steps, ViT-B/16 at 224 x 224, bf16 autocast, fused AdamW, random
pixels of the real shape (throughput does not depend on content), in one run:

- ``--model beit``: ours (fused attention with the relative position bias as its differentiable
  additive bias, fused linear cross-entropy on the masked patches) vs Hugging Face
  ``BeitForMaskedImageModeling`` (sdpa and eager attention) with the same weights (``beit_from_hf``);
  each candidate's loss on the same mask and codes is checked against HF sdpa's first (``valid``).
- ``--model simmim``: ours on the Triton kernels vs the same model on the eager pure-torch path
  (``use_kernels(False)``: materialised softmax attention), the baseline being the eager one.

    python benchmarks/bench_mim.py --model beit            # GPU
    python benchmarks/bench_mim.py --model simmim --smoke  # a tiny model on any device (checks the script)

Images/s from the median step; peak memory from ``torch.cuda.max_memory_allocated``. Writes
benchmarks/results/mim_step_<model>.json/.md (``_<device>_smoke`` for --smoke), rewritten after
every row; a candidate that fails is an error row.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import torch
from harness import LOSS_RTOL, Results, add_ratios, loss_check, run_info, step_dtype, time_steps

from fastpretrain.models import SimMIM
from fastpretrain.ops import use_kernels

ROOT = Path(__file__).resolve().parents[1]
BASE = dict(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, vocab_size=8192)  # fmt: skip
SMOKE = dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=128, vocab_size=64)  # fmt: skip
BASELINE = {"beit": "hf sdpa", "simmim": "simmim eager"}


def beit_twins(sizes: dict, seed: int):
    """(ours, HF) BEiT with the same initial weights (shared relative position bias, layer scale 0.1)."""
    import transformers

    from fastpretrain.interop.hf_beit import beit_from_hf_model

    torch.manual_seed(seed)
    config = transformers.BeitConfig(**sizes, use_mask_token=True, use_shared_relative_position_bias=True,
                                     use_relative_position_bias=False, use_absolute_position_embeddings=False,
                                     layer_scale_init_value=0.1, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0, drop_path_rate=0.0)  # fmt: skip
    hf = {impl: transformers.BeitForMaskedImageModeling._from_config(config, attn_implementation=impl)
          for impl in ("sdpa", "eager")}  # fmt: skip
    hf["eager"].load_state_dict(hf["sdpa"].state_dict())
    return beit_from_hf_model(hf["sdpa"]), hf


def beit_loss(model, imgs, tokens, mask) -> torch.Tensor:
    if hasattr(model, "lm_head") and hasattr(model, "encoder"):
        return model(imgs, tokens, mask)["loss"]
    return model(pixel_values=imgs, bool_masked_pos=mask, labels=tokens[mask]).loss


def measure_beit(name: str, sizes: dict, inputs: tuple, device: torch.device, args) -> dict:
    ours, hf = beit_twins(sizes, args.seed)
    dtype = step_dtype(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        ref = hf["sdpa"].to(device).eval()
        loss_hf = beit_loss(ref, *inputs).item()
        ref.cpu()
        model = (ours if name == "ours" else hf[name.removeprefix("hf ")]).to(device)
        loss = beit_loss(model.eval(), *inputs).item()
    del ours, hf
    timing = time_steps(model, lambda: beit_loss(model, *inputs), device, args.steps, args.warmup)
    return {**loss_check(loss, loss_hf, dtype), **timing, "images_per_s": args.batch / timing["step_ms"] * 1e3}


def measure_simmim(name: str, sizes: dict, inputs: tuple, device: torch.device, args) -> dict:
    torch.manual_seed(args.seed)
    model = SimMIM(img_size=sizes["image_size"], patch_size=sizes["patch_size"], embed_dim=sizes["hidden_size"],
                   depth=sizes["num_hidden_layers"], num_heads=sizes["num_attention_heads"],
                   mask_patch_size=2 * sizes["patch_size"]).to(device)  # fmt: skip
    imgs, _, mask = inputs
    dtype = step_dtype(device)
    path = use_kernels(False) if name == "simmim eager" else contextlib.nullcontext()
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    with torch.no_grad(), amp:
        model.eval()
        with use_kernels(False):
            loss_eager = model(imgs, mask=mask)["loss"].item()
        with path:
            loss = model(imgs, mask=mask)["loss"].item()
    with path:
        timing = time_steps(model, lambda: model(imgs, mask=mask)["loss"], device, args.steps, args.warmup)
    return {**loss_check(loss, loss_eager, dtype), **timing, "images_per_s": args.batch / timing["step_ms"] * 1e3}


def markdown(result: dict) -> str:
    sizes, base = result["sizes"], result["baseline"]
    tag = base.replace(" ", "_")
    lines = [f"# {result['model']} pre-training step on {result['device']} ({result['date']}, commit {result['commit']})",
             f"`{result['command']}`; {', '.join(f'{k} {v}' for k, v in result['versions'].items())}; "
             f"image {sizes['image_size']}, patch {sizes['patch_size']}, width {sizes['hidden_size']}, "
             f"B={result['batch']}." + ("" if result["complete"] else " INCOMPLETE (run stopped early)."),
             "", f"| candidate | step ms | images/s | vs {base} | peak GiB | memory vs {base} | loss diff |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['candidate']} | error: {r['error']} | | | | | |")
            continue
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        ratio = f"{r[f'vs_{tag}']:.2f}x" if f"vs_{tag}" in r else "-"
        mem = f"{r[f'memory_vs_{tag}']:.2f}x" if f"memory_vs_{tag}" in r else "-"
        diff = f"{r['max_err']['loss']:.2g}" + ("" if r["valid"] else " INVALID")
        lines.append(f"| {r['candidate']} | {r['step_ms']:.1f} | {r['images_per_s']:,.0f} | {ratio} | {peak} | {mem} | "
                     f"{diff} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("beit", "simmim"), default="beit")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="a tiny model, B=4: checks the script")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device)
    sizes = SMOKE if args.smoke else BASE
    if args.smoke:
        args.batch, args.steps, args.warmup = 4, 2, 1
    g = torch.Generator().manual_seed(args.seed)
    grid = sizes["image_size"] // sizes["patch_size"]
    imgs = torch.randn(args.batch, 3, sizes["image_size"], sizes["image_size"], generator=g).to(device)
    tokens = torch.randint(0, sizes["vocab_size"], (args.batch, grid * grid), generator=g).to(device)
    mask = (torch.rand(args.batch, grid * grid, generator=g) < 0.4).to(device)
    mask[:, 0] = True
    base = BASELINE[args.model]
    meta = {**run_info(device), "model": args.model, "sizes": sizes, "batch": args.batch, "baseline": base,
            "loss_rtol": LOSS_RTOL[step_dtype(device)]}  # fmt: skip
    stem = f"mim_step_{args.model}" + (f"_{device.type}_smoke" if args.smoke else "")
    results = Results(args.out, stem, meta, markdown)
    names = ["ours", "hf sdpa", "hf eager"] if args.model == "beit" else ["ours", "simmim eager"]
    measure = measure_beit if args.model == "beit" else measure_simmim
    for name in names:
        results.attempt({"candidate": name, "batch": args.batch},
                        lambda name=name: measure(name, sizes, (imgs, tokens, mask), device, args))  # fmt: skip
        add_ratios(results.rows, "images_per_s", base=base)
        results.write()
    results.finish()


if __name__ == "__main__":
    main()
