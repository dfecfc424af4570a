"""CPC quality on docs9m, CPU-sized: does contrastive prediction of the next sentences (k = 1..K
steps ahead, InfoNCE against every sentence of the batch) give sentence vectors that tell whether
sentence B follows sentence A in held-out documents? The trained model's held-out CPC loss (next to
chance, log of the keys) and a next-sentence linear probe on its encoder's z, against the same
model at random init and a bag-of-bytes baseline (each sentence's byte histogram), all on the same
pairs: A with its successor, or with a sentence of another held-out document (chance 50%).

    python benchmarks/quality_cpc.py --corpus ../shared/data/docs9m.txt.xz --threads 2   # the CPU run
    python benchmarks/quality_cpc.py --smoke --device cpu                                # seconds

Writes benchmarks/results/quality_cpc_<device>[_smoke].json/.md, rewritten after every row.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from harness import Results, run_info, shown

from fastpretrain.data.sentence_windows import SentenceWindows, document_sentences
from fastpretrain.eval.cpc import heldout_loss, next_sentence_probe, sentence_pairs
from fastpretrain.eval.probe import linear_probe
from fastpretrain.models import create_model

ROOT = Path(__file__).resolve().parents[1]
DOCS9M = ROOT.parent / "shared" / "data" / "docs9m.txt.xz"
CPU = {"model": "cpc_text_mini", "max_documents": 1500, "steps": 300, "batch_size": 32, "pairs": 1500}
SMOKE = {"model": "cpc_text_tiny", "max_documents": 60, "steps": 4, "batch_size": 4, "pairs": 40}


def train(args, windows: SentenceWindows, device) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    model = create_model(args.model).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(0))
    first, start = None, time.perf_counter()
    for step in range(args.steps):
        idx = order[(torch.arange(args.batch_size) + step * args.batch_size) % len(windows)]
        loss = model(windows.windows[idx].to(device))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        first = loss.item() if first is None else first
    seconds = time.perf_counter() - start
    speed = args.steps * args.batch_size / seconds
    return model, {"first_loss": first, "last_loss": loss.item(), "windows_per_s": speed}


def byte_histograms(sentences: list[str]) -> torch.Tensor:
    rows = [np.bincount(np.frombuffer(s.encode("utf-8"), dtype=np.uint8), minlength=256) for s in sentences]
    x = torch.from_numpy(np.stack(rows)).double()
    return x / x.sum(1, keepdim=True).clamp_min(1)


def bytes_probe(firsts, seconds, labels) -> dict:
    u, v = byte_histograms(firsts), byte_histograms(seconds)
    x, y = torch.cat([u, v, u * v, (u - v).abs()], 1), torch.from_numpy(labels)
    n = int(0.7 * len(y))
    return linear_probe(x[:n], y[:n], x[n:], y[n:], weight_decay=1e-3, max_iter=200, num_classes=2)


def markdown(result: dict) -> str:
    lines = [f"CPC quality, {result['device']}: {result['setup']}", "",
             "| features | first / last train loss | held-out CPC loss (chance) | windows/s | next-sentence probe |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} | | | |")
            continue
        train_loss = f"{r['first_loss']:.3f} / {r['last_loss']:.3f}" if "first_loss" in r else "–"
        heldout = f"{r['heldout_loss']:.3f} ({r['chance_loss']:.3f})" if "heldout_loss" in r else "–"
        lines.append(f"| {r['model']} | {train_loss} | {heldout} | {shown(r.get('windows_per_s'), ',.0f')} | "
                     f"{shown(r.get('probe_accuracy'), '.1%')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=str(DOCS9M), help="docs9m (default ../shared/data/docs9m.txt.xz)")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    p.add_argument("--tag", default="", help="appended to the result file names")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    known, _ = p.parse_known_args()
    sizes = SMOKE if known.smoke else CPU
    for name, value in sizes.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = create_model(args.model).config
    train_docs = document_sentences(args.corpus, "train", args.max_documents)
    held_docs = document_sentences(args.corpus, "heldout", args.max_documents)
    windows = SentenceWindows(train_docs, config.window, config.sentence_len)
    held = SentenceWindows(held_docs, config.window, config.sentence_len)
    firsts, seconds, labels = sentence_pairs(held_docs, args.pairs)
    setup = (f"{args.model} ({config.conv_layers} convs of {config.conv_dim}, z {config.z_dim}, GRU {config.context_dim}, "
             f"K {config.prediction_steps}), windows of {config.window} sentences x {config.sentence_len} bytes; "
             f"{len(windows):,} training windows from {len(train_docs):,} documents of the first {args.max_documents:,} "
             f"of {Path(args.corpus).name} (every tenth held out); {args.steps} steps of {args.batch_size} windows, "
             f"AdamW {args.lr:g}, {args.threads} thread(s); held-out loss over {len(held):,} windows in batches of "
             f"{args.batch_size}; probe: logistic regression on [u, v, u*v, |u-v|] of {len(labels):,} held-out "
             f"pairs, 70% train / 30% test")  # fmt: skip
    stem = f"quality_cpc_{device.type}{'_smoke' if args.smoke else ''}{args.tag}"
    results = Results(args.out, stem, {**run_info(device), "setup": setup, "sizes": vars(args)}, markdown)

    def quality(model) -> dict:
        loss = heldout_loss(model, held, args.batch_size, device)
        probe = next_sentence_probe(model, firsts, seconds, labels)
        return {"heldout_loss": loss["loss"], "chance_loss": loss["chance"], "probe_accuracy": probe["test_acc"],
                "probe_train_accuracy": probe["train_acc"]}  # fmt: skip

    def trained() -> dict:
        model, row = train(args, windows, device)
        return {**row, **quality(model)}

    def random_init() -> dict:
        torch.manual_seed(0)
        return quality(create_model(args.model).to(device))

    results.attempt({"model": "CPC (trained), encoder z"}, trained)
    results.attempt({"model": "CPC random init, encoder z"}, random_init)
    byte_row = {"model": "byte histogram"}
    results.attempt(byte_row, lambda: {"probe_accuracy": bytes_probe(firsts, seconds, labels)["test_acc"]})
    results.finish()


if __name__ == "__main__":
    main()
