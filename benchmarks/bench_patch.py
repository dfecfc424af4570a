"""``fastpretrain.patch`` on models people already have: a training step of the unpatched model
(HF with sdpa attention, timm with its fused SDPA path) vs the patched one vs the unpatched one
under torch.compile (and the patched one compiled), same weights, same batch, in one run:

- ``bert``: HF ``BertForMaskedLM`` BERT-base, B=32, S=512, lengths uniform in [128, 512] (padded:
  the varlen path), 15% of real tokens labelled;
- ``gpt2``: HF ``GPT2LMHeadModel`` 124M, B=16, S=1024, labels = input ids;
- ``vit_mae``: HF ``ViTMAEForPreTraining`` ViT-B/16 (decoder 512 x 8), 224 x 224, B=256;
- ``timm_vit``: timm ``vit_base_patch16_224``, B=256, cross-entropy over 1000 classes.

    python benchmarks/bench_patch.py --model bert        # GPU (run_gpu.sh --profile patch runs all four)
    python benchmarks/bench_patch.py --smoke             # tiny versions of all four on any device

bf16 autocast and fused AdamW on CUDA (``harness.time_steps``); dropout off in every model, so the
check is deterministic: before timing, each candidate's training-mode loss on the batch is checked
against the unpatched model's in the timed dtype (``valid``, ``harness.LOSS_RTOL``); invalid rows
keep their timing but get no ratio. Items/s (sequences or images) from the median step; peak
memory with only that candidate on the GPU. Goal: patched >= 1.5x unpatched, no more memory.
Writes benchmarks/results/patch_<model>.json/.md (patch_<model>_<device>_smoke.* for --smoke),
rewritten after every row; a failing candidate (out of memory, a compile error, timm absent) is an
error row and the others are still measured.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from harness import LOSS_RTOL, Results, add_ratios, kernel_context, loss_check, run_info, step_dtype, time_steps

import fastpretrain

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("bert", "gpt2", "vit_mae", "timm_vit")
BASE = {
    "bert": {"batch": 32, "seq": 512, "sizes": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                                                "intermediate_size": 3072, "vocab_size": 30522}},
    "gpt2": {"batch": 16, "seq": 1024, "sizes": {"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
                                                 "n_positions": 1024}},
    "vit_mae": {"batch": 256, "sizes": {"image_size": 224, "patch_size": 16, "hidden_size": 768,
                                        "num_hidden_layers": 12, "num_attention_heads": 12,
                                        "intermediate_size": 3072, "decoder_hidden_size": 512,
                                        "decoder_num_hidden_layers": 8, "decoder_num_attention_heads": 16,
                                        "decoder_intermediate_size": 2048}},
    "timm_vit": {"batch": 256, "sizes": {"img_size": 224, "patch_size": 16, "embed_dim": 768, "depth": 12,
                                         "num_heads": 12, "num_classes": 1000}},
}  # fmt: skip
SMOKE = {
    "bert": {"batch": 2, "seq": 16, "sizes": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                              "intermediate_size": 64, "vocab_size": 97}},
    "gpt2": {"batch": 2, "seq": 16, "sizes": {"n_embd": 32, "n_layer": 1, "n_head": 2, "vocab_size": 97,
                                              "n_positions": 16}},
    "vit_mae": {"batch": 2, "sizes": {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 1,
                                      "num_attention_heads": 2, "intermediate_size": 64, "decoder_hidden_size": 32,
                                      "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2,
                                      "decoder_intermediate_size": 64}},
    "timm_vit": {"batch": 2, "sizes": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2,
                                       "num_classes": 10}},
}  # fmt: skip
CANDIDATES = ("unpatched", "patched", "unpatched + compile", "patched + compile")


def build(model: str, sizes: dict, seed: int):
    """The unpatched model, dropout off, from ``seed``."""
    torch.manual_seed(seed)
    if model == "timm_vit":
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer(**sizes)
    import transformers

    no_dropout = {
        "bert": {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 512},
        "gpt2": {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0},
        "vit_mae": {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "mask_ratio": 0.75},
    }[model]
    config_class, model_class = {
        "bert": (transformers.BertConfig, transformers.BertForMaskedLM),
        "gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel),
        "vit_mae": (transformers.ViTMAEConfig, transformers.ViTMAEForPreTraining),
    }[model]
    return model_class._from_config(config_class(**sizes, **no_dropout), attn_implementation="sdpa")


def make_batch(model: str, case: dict, seed: int) -> dict:
    """The one batch every candidate trains on (CPU tensors)."""
    g = torch.Generator().manual_seed(seed)
    b, sizes = case["batch"], case["sizes"]
    if model in ("bert", "gpt2"):
        s = case["seq"]
        ids = torch.randint(1, sizes["vocab_size"], (b, s), generator=g)
        if model == "gpt2":
            return {"input_ids": ids, "labels": ids}
        lengths = torch.randint(s // 4, s + 1, (b,), generator=g)
        mask = (torch.arange(s)[None] < lengths[:, None]).long()
        labelled = (torch.rand(b, s, generator=g) < 0.15) & mask.bool()
        return {"input_ids": ids * mask, "attention_mask": mask, "labels": torch.where(labelled, ids, -100)}
    side = sizes["image_size" if model == "vit_mae" else "img_size"]
    pixels = torch.randn(b, 3, side, side, generator=g)
    if model == "vit_mae":
        return {"pixel_values": pixels, "noise": torch.rand(b, (side // sizes["patch_size"]) ** 2, generator=g)}
    return {"x": pixels, "y": torch.randint(0, sizes["num_classes"], (b,), generator=g)}


def loss_of(model, batch: dict) -> torch.Tensor:
    if "x" in batch:
        return torch.nn.functional.cross_entropy(model(batch["x"]), batch["y"])
    return model(**batch).loss


def measure(name: str, model_name: str, case: dict, batch: dict, device: torch.device, args) -> dict:
    """Check the candidate's loss against the unpatched model's (same weights, batch, dtype), then
    time its training step with only that candidate on the device."""
    dtype = step_dtype(device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    model = build(model_name, case["sizes"], args.seed).to(device).train()
    with torch.no_grad(), amp:
        loss_ref = loss_of(model, batch).item()
    report = str(fastpretrain.patch(model)) if name.startswith("patched") else None
    with torch.no_grad(), amp, kernel_context(device):
        loss = loss_of(model, batch).item()
    forward = torch.compile(model) if name.endswith("compile") else model
    with kernel_context(device):
        timing = time_steps(model, lambda: loss_of(forward, batch), device, args.steps, args.warmup)
    row = {"check_dtype": str(dtype).removeprefix("torch."), **loss_check(loss, loss_ref, dtype), **timing,
           "items_per_s": case["batch"] / timing["step_ms"] * 1e3}  # fmt: skip
    return {**row, "report": report} if report else row


def markdown(result: dict) -> str:
    case = result["case"]
    shape = f"B={case['batch']}" + (f", S={case['seq']}" if "seq" in case else "")
    title = f"# fastpretrain.patch: {result['model']} training step on {result['device']} ({result['date']}, "
    lines = [title + f"commit {result['commit']})",
             f"`{result['command']}`; {', '.join(f'{k} {v}' for k, v in result['versions'].items())}; {shape}."
             + ("" if result["complete"] else " INCOMPLETE (run stopped early)."),
             "", "| candidate | step ms | items/s | vs unpatched | peak GiB | memory vs unpatched | loss diff |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['candidate']} | error: {r['error']} | | | | | |")
            continue
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        ratio = f"{r['vs_unpatched']:.2f}x" if "vs_unpatched" in r else "-"
        mem = f"{r['memory_vs_unpatched']:.2f}x" if "memory_vs_unpatched" in r else "-"
        diff = f"{r['max_err']['loss']:.2g}" + ("" if r["valid"] else " INVALID")
        lines.append(f"| {r['candidate']} | {r['step_ms']:.1f} | {r['items_per_s']:,.1f} | {ratio} | {peak} | {mem} | "
                     f"{diff} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def run_model(model_name: str, device: torch.device, args) -> None:
    case = (SMOKE if args.smoke else BASE)[model_name]
    batch = {k: v.to(device) for k, v in make_batch(model_name, case, args.seed).items()}
    use_compile = device.type == "cuda" if args.compile is None else args.compile
    meta = {**run_info(device), "model": model_name, "case": case, "loss_rtol": LOSS_RTOL[step_dtype(device)]}
    stem = f"patch_{model_name}" + (f"_{device.type}_smoke" if args.smoke else "")
    results = Results(args.out, stem, meta, markdown)
    for name in CANDIDATES if use_compile else CANDIDATES[:2]:
        results.attempt({"candidate": name}, lambda name=name: measure(name, model_name, case, batch, device, args))
        add_ratios(results.rows, "items_per_s", base="unpatched")
        results.write()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    results.finish()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=(*MODELS, "all"), default="all")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="add the torch.compile rows (default on CUDA)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny models, B=2: checks the script")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if args.smoke:
        args.steps, args.warmup = 2, 1
    device = torch.device(args.device)
    for model_name in MODELS if args.model == "all" else (args.model,):
        run_model(model_name, device, args)


if __name__ == "__main__":
    main()
