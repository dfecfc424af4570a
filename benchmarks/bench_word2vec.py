"""word2vec training speed on the GPU: our engine + fused kernels vs an eager PyTorch SGNS
(nn.Embedding(sparse=True) + SGD on the same batches), measured in the same run.

    python benchmarks/bench_word2vec.py --corpus ../shared/data/corpus20m.txt.xz

Rows: end-to-end words/s (words read before subsampling, as word2vec.c counts) of one epoch
of ``Word2Vec.fit``; the kernel alone on batches already on the GPU (pairs/s and GB/s of row
traffic); the eager baseline's pairs/s on the same batches. Writes
benchmarks/results/word2vec_b<batch>_g<block_n>_p<programs per SM>.json/.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from itertools import islice
from pathlib import Path

import fastpretrain.kernels.sampled_softmax as kernels
import torch
import triton

from fastpretrain.data import Corpus, Word2VecBatches
from fastpretrain.models.word2vec import Word2Vec
from fastpretrain.ops import word2vec_ns_update_

ROOT = Path(__file__).resolve().parents[1]


def staged_batches(corpus, args, n):
    """The first n skip-gram batches, moved to the GPU: (inputs [N,1], targets [N], negatives [N,K])."""
    batches = Word2VecBatches(corpus, sg=1, window=args.window, sample=args.sample, negative=args.negative,
                              batch_size=args.batch_size, workers=args.workers, seed=1)  # fmt: skip
    out = []
    for b in islice(batches, n):
        to = lambda a: torch.from_numpy(a).cuda()  # noqa: E731
        out.append((to(b.contexts).unsqueeze(1), to(b.centers), to(b.negatives)))
    return out


def time_kernel(staged, v, d):
    """Median ms per batch of the fused update on staged batches."""
    syn0, syn1 = (torch.rand(v, d, device="cuda") - 0.5) / d, torch.zeros(v, d, device="cuda")
    i = iter(range(10**9))

    def step():
        inputs, targets, negatives = staged[next(i) % len(staged)]
        word2vec_ns_update_(syn0, syn1, inputs, targets, negatives, 0.025)

    return triton.testing.do_bench(step, warmup=50, rep=500, return_mode="median")


def time_eager(staged, v, d, steps):
    """ms per batch of the eager SGNS: sparse embeddings, logsigmoid loss, SGD."""
    emb_in = torch.nn.Embedding(v, d, sparse=True).cuda()
    emb_out = torch.nn.Embedding(v, d, sparse=True).cuda()
    opt = torch.optim.SGD(list(emb_in.parameters()) + list(emb_out.parameters()), lr=0.025)

    def step(batch):
        inputs, targets, negatives = batch
        l1 = emb_in(inputs[:, 0])
        pos = (l1 * emb_out(targets)).sum(-1)
        neg = torch.bmm(emb_out(negatives), l1.unsqueeze(-1)).squeeze(-1)
        loss = -(torch.nn.functional.logsigmoid(pos).sum() + torch.nn.functional.logsigmoid(-neg).sum())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for batch in staged[:5]:
        step(batch)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for k in range(steps):
        step(staged[k % len(staged)])
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3 / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=str(ROOT.parent / "shared/data/corpus20m.txt.xz"))
    p.add_argument("--vector-size", type=int, default=200)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=10)
    p.add_argument("--sample", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=65536)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--block-n", type=int, default=kernels.BLOCK_N, help="examples per group in the kernel")
    p.add_argument("--programs-per-sm", type=int, default=2, help="kernel programs per SM (examples in flight)")
    p.add_argument("--shared-negatives", type=int, choices=(0, 1), default=0,
                   help="end-to-end row in HogBatch mode (the kernel-only rows stay per-pair)")
    p.add_argument("--questions", default=str(ROOT.parent / "shared/data/eval/questions-words.txt"),
                   help="Google analogies, evaluated after training when the file exists")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_word2vec: needs a CUDA GPU; skipped")
    if not Path(args.corpus).exists():
        sys.exit(f"bench_word2vec: corpus {args.corpus} not found; skipped")
    kernels.BLOCK_N = args.block_n
    kernels.PROGRAMS = args.programs_per_sm * torch.cuda.get_device_properties(0).multi_processor_count
    corpus = Corpus.build(args.corpus, min_count=5)
    v, d = len(corpus.vocab), args.vector_size

    staged = staged_batches(corpus, args, 40)
    pairs = sum(len(t) for _, t, _ in staged) / len(staged)
    kernel_ms = time_kernel(staged, v, d)
    eager_ms = time_eager(staged, v, d, steps=40)
    rows_per_pair = 2 * (args.negative + 1) + 2  # each target row read + atomically added; input row twice
    kernel_gbs = pairs * rows_per_pair * d * 4 / (kernel_ms * 1e-3) / 1e9

    model = Word2Vec(sg=1, negative=args.negative, vector_size=d, window=args.window, sample=args.sample,
                     epochs=args.epochs, workers=args.workers, batch_size=args.batch_size, device="cuda",
                     shared_negatives=args.shared_negatives)  # fmt: skip
    analogies = None
    try:
        model.fit(corpus, progress=False)
    except FloatingPointError as e:  # a diverged configuration is a result too
        print(f"bench_word2vec: {e}")
        model.words_per_second, model.final_loss = float("nan"), float("nan")
    if Path(args.questions).exists() and model.final_loss == model.final_loss:
        from fastpretrain.eval import evaluate_word_analogies

        analogies = evaluate_word_analogies(model.wv, args.questions, restrict_vocab=30000)["total"]
    result = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "config": {**vars(args), "vocab": v, "corpus_words": corpus.n_words},
        "end_to_end_words_per_s": model.words_per_second,
        "final_loss": model.final_loss,
        "analogy_accuracy_restrict_30k": analogies,
        "kernel_pairs_per_s": pairs / (kernel_ms * 1e-3),
        "kernel_row_traffic_gb_per_s": kernel_gbs,
        "eager_pairs_per_s": pairs / (eager_ms * 1e-3),
        "kernel_vs_eager": eager_ms / kernel_ms,
    }
    table = "\n".join([
        f"# word2vec SGNS on {result['gpu']} (torch {result['torch']}, triton {result['triton']}, {result['date']})",
        f"`{result['command']}`: d={d}, window {args.window}, negative {args.negative}, sample {args.sample:g}, "
        f"batch {args.batch_size} pairs, {args.workers} engine threads, vocab {v:,}, kernel groups of "
        f"{args.block_n}, {args.programs_per_sm} programs per SM",
        "",
        "| what | ours | eager PyTorch | ratio |",
        "|---|---|---|---|",
        f"| update, pairs/s (batches on GPU) | {result['kernel_pairs_per_s'] / 1e6:.1f} M | "
        f"{result['eager_pairs_per_s'] / 1e6:.1f} M | {result['kernel_vs_eager']:.1f}x |",
        f"| end to end, words/s (engine + kernel, {args.epochs} epoch{', HogBatch' * args.shared_negatives}) | {model.words_per_second / 1e6:.1f} M | | |",
        f"| kernel row traffic | {kernel_gbs:.0f} GB/s | | |",
        f"| Google analogies after {args.epochs} epoch (restrict 30k) | "
        + (f"{analogies:.1%}" if analogies is not None else "not run") + " | | |",
    ])  # fmt: skip
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"word2vec_b{args.batch_size}_g{args.block_n}_p{args.programs_per_sm}" + ("_shared" * args.shared_negatives)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{name}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
