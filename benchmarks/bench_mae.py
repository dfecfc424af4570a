"""MAE pre-training step: ours (visible-only encoder on the fused masking ops and fused attention)
vs Hugging Face ``ViTMAEForPreTraining`` with sdpa attention, eager and torch.compile'd, in one run:
ViT-B/16 at 224 x 224, batch 256, bf16 autocast, fused AdamW, random pixels of the real shape
(throughput does not depend on content).

    python benchmarks/bench_mae.py              # GPU
    python benchmarks/bench_mae.py --smoke      # a tiny MAE on any device (checks the script)

Both models hold the same weights (HF's initialisation, converted with ``mae_from_hf``); before
timing, each candidate's loss on the same noise, in the timed dtype, is checked against HF's
(``valid``, the tolerance of ``bench_bert.LOSS_RTOL``); invalid rows keep their timing but get no
vs-HF ratio. A compiled candidate is checked on its eager model. Images/s from the median step;
peak memory from ``torch.cuda.max_memory_allocated`` with only that candidate on the GPU. Anchors
(H100, torch 2.11): HF sdpa 3,128 img/s, HF sdpa + compile 3,929 img/s; goal >= 2x HF sdpa, no
more memory. Writes benchmarks/results/mae_step.json/.md (mae_step_<device>_smoke.* for --smoke),
rewritten after every row; a candidate that fails (out of memory, a compile error) is an error row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from harness import LOSS_RTOL, Results, add_ratios, loss_check, run_info, step_dtype, time_steps

from fastpretrain.interop.hf import mae_config_from_hf, mae_from_hf
from fastpretrain.models import MAE

ROOT = Path(__file__).resolve().parents[1]
BASE = dict(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, decoder_hidden_size=512, decoder_num_hidden_layers=8,
            decoder_num_attention_heads=16, decoder_intermediate_size=2048, mask_ratio=0.75)  # fmt: skip
SMOKE = dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=256, decoder_hidden_size=64, decoder_num_hidden_layers=1,
             decoder_num_attention_heads=2, decoder_intermediate_size=256, mask_ratio=0.75)  # fmt: skip


def twins(sizes: dict, seed: int):
    """(ours, HF) with the same initial weights."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.ViTMAEConfig(**sizes, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    hf = transformers.ViTMAEForPreTraining._from_config(config, attn_implementation="sdpa")
    ours = MAE(mae_config_from_hf(config))
    ours.load_state_dict(mae_from_hf(hf.state_dict()))
    return ours, hf


def loss_of(model, imgs, noise=None) -> torch.Tensor:
    if isinstance(model, MAE):
        return model(imgs, noise=noise)["loss"]
    return model(pixel_values=imgs, noise=noise).loss


def measure(name: str, sizes: dict, imgs: torch.Tensor, noise: torch.Tensor, device: torch.device, args) -> dict:
    """Check one candidate's loss against HF's (same weights and noise, eval mode), then time its
    training step with only that candidate on the device."""
    ours, hf = twins(sizes, args.seed)
    dtype = step_dtype(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        loss_hf = loss_of(hf.to(device).eval(), imgs, noise).item()
        hf.cpu()
        model = (ours if name.startswith("ours") else hf).to(device)
        loss = loss_of(model.eval(), imgs, noise).item()
    del ours, hf
    forward = torch.compile(model) if name.endswith("compile") else model
    timing = time_steps(model, lambda: loss_of(forward, imgs), device, args.steps, args.warmup)
    return {"check_dtype": str(dtype).removeprefix("torch."), **loss_check(loss, loss_hf, dtype), **timing,
            "images_per_s": args.batch / timing["step_ms"] * 1e3}  # fmt: skip


def markdown(result: dict) -> str:
    sizes = result["sizes"]
    lines = [f"# MAE pre-training step on {result['device']} ({result['date']}, commit {result['commit']})",
             f"`{result['command']}`; {', '.join(f'{k} {v}' for k, v in result['versions'].items())}; "
             f"image {sizes['image_size']}, patch {sizes['patch_size']}, width {sizes['hidden_size']}, "
             f"B={result['batch']}." + ("" if result["complete"] else " INCOMPLETE (run stopped early)."),
             "", "| candidate | step ms | images/s | vs HF sdpa | peak GiB | memory vs HF | loss diff vs HF |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['candidate']} | error: {r['error']} | | | | | |")
            continue
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        ratio = f"{r['vs_hf_sdpa']:.2f}x" if "vs_hf_sdpa" in r else "-"
        mem = f"{r['memory_vs_hf_sdpa']:.2f}x" if "memory_vs_hf_sdpa" in r else "-"
        diff = f"{r['max_err']['loss']:.2g}" + ("" if r["valid"] else " INVALID")
        lines.append(f"| {r['candidate']} | {r['step_ms']:.1f} | {r['images_per_s']:,.0f} | {ratio} | {peak} | {mem} | "
                     f"{diff} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="add torch.compile rows (default on CUDA)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="a tiny MAE, B=4: checks the script")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    device = torch.device(args.device)
    sizes = SMOKE if args.smoke else BASE
    if args.smoke:
        args.batch, args.steps, args.warmup = 4, 2, 1
    use_compile = device.type == "cuda" if args.compile is None else args.compile
    g = torch.Generator().manual_seed(args.seed)
    imgs = torch.randn(args.batch, 3, sizes["image_size"], sizes["image_size"], generator=g).to(device)
    noise = torch.rand(args.batch, (sizes["image_size"] // sizes["patch_size"]) ** 2, generator=g).to(device)
    meta = {**run_info(device), "sizes": sizes, "batch": args.batch, "loss_rtol": LOSS_RTOL[step_dtype(device)]}
    results = Results(args.out, f"mae_step_{device.type}_smoke" if args.smoke else "mae_step", meta, markdown)
    for name in ["ours", "hf sdpa"] + (["ours + compile", "hf sdpa + compile"] if use_compile else []):
        timed = lambda name=name: measure(name, sizes, imgs, noise, device, args)
        results.attempt({"candidate": name, "batch": args.batch}, timed)
        add_ratios(results.rows, "images_per_s")
        results.write()
    results.finish()


if __name__ == "__main__":
    main()
