"""word2vec training speed on the GPU: our engine + fused kernels vs an eager PyTorch SGNS
(nn.Embedding(sparse=True) + SGD on the same batches), measured in the same run.

    python benchmarks/bench_word2vec.py --corpus ../shared/data/corpus20m.txt.xz
    python benchmarks/bench_word2vec.py --smoke     # CPU: a generated corpus, tiny sizes (checks the script)

Rows: the eager baseline's pairs/s on batches already on the device; our kernel alone on the same
batches (pairs/s, GB/s of row traffic, ratio to eager); end-to-end words/s (words read before
subsampling, as word2vec.c counts) of ``Word2Vec.fit`` on a corpus built beforehand, then Google
analogies. Every kernel specialization (a full batch and an odd-sized one, like an epoch's last)
is compiled before any timed region. On CPU (--smoke) the updates run in the Triton interpreter
when TRITON_INTERPRET=1, else in the torch reference. Writes
benchmarks/results/word2vec_b<batch>_g<block_n>_p<programs per SM>.json/.md (word2vec_<device>_smoke.*
for --smoke), rewritten after every row.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from itertools import islice
from pathlib import Path

import fastpretrain.kernels.word2vec as kernels
import numpy as np
import torch
from harness import Results, run_info, timed_ms

from fastpretrain.data import Corpus, Word2VecBatches
from fastpretrain.models.word2vec import Word2Vec
from fastpretrain.ops import kernels_on_cpu, word2vec_ns_update_

ROOT = Path(__file__).resolve().parents[1]
SMOKE = dict(vector_size=16, window=2, negative=3, sample=1e-3, batch_size=256, workers=1, block_n=64, batches=3,
             repeats=2)  # fmt: skip


def smoke_corpus(path: Path) -> Path:
    """A generated text of 2,000 words over 40 Zipf-distributed words, 20 to a line."""
    rng = np.random.default_rng(0)
    p = 1 / np.arange(1, 41)
    ids = rng.choice(40, size=2000, p=p / p.sum())
    path.write_text("\n".join(" ".join(f"w{i}" for i in line) for line in ids.reshape(-1, 20)) + "\n")
    return path


def update_path(device: torch.device) -> str:
    """Which implementation the updates run on this device."""
    if device.type == "cuda":
        return "triton"
    return "triton interpreter" if os.environ.get("TRITON_INTERPRET") == "1" else "torch reference"


def odd_size(n: int) -> int:
    """An odd batch size below n, as an epoch's last batch may have: N not a multiple of 16, which
    would be a new compile if the kernels specialized on N."""
    return n - 1 - n % 2


def staged_batches(corpus, args, n, device):
    """The first n skip-gram batches, moved to the device: (inputs [N,1], targets [N], negatives [N,K])."""
    batches = Word2VecBatches(corpus, sg=1, window=args.window, sample=args.sample, negative=args.negative,
                              batch_size=args.batch_size, workers=args.workers, seed=1)  # fmt: skip
    to = lambda a: torch.from_numpy(a).to(device)
    return [(to(b.contexts).unsqueeze(1), to(b.centers), to(b.negatives)) for b in islice(batches, n)]


def cycling(staged):
    """A step function's batches: the staged ones in turn, forever."""
    i = iter(range(10**12))
    return lambda: staged[next(i) % len(staged)]


def time_kernel(staged, v, d, device, repeats) -> dict:
    """Median ms per batch of the fused update on staged batches, after compiling it for a full
    and an odd-sized batch."""
    syn0, syn1 = (torch.rand(v, d, device=device) - 0.5) / d, torch.zeros(v, d, device=device)
    inputs, targets, negatives = staged[0]
    for n in (len(targets), odd_size(len(targets))):
        word2vec_ns_update_(syn0, syn1, inputs[:n], targets[:n], negatives[:n], 0.025)
    batch = cycling(staged)
    return {"ms_per_batch": timed_ms(lambda: word2vec_ns_update_(syn0, syn1, *batch(), 0.025), device, repeats)}


def time_eager(staged, v, d, device, repeats) -> dict:
    """Median ms per batch of the eager SGNS: sparse embeddings, logsigmoid loss, SGD."""
    emb_in = torch.nn.Embedding(v, d, sparse=True).to(device)
    emb_out = torch.nn.Embedding(v, d, sparse=True).to(device)
    opt = torch.optim.SGD(list(emb_in.parameters()) + list(emb_out.parameters()), lr=0.025)
    batch = cycling(staged)

    def step():
        inputs, targets, negatives = batch()
        l1 = emb_in(inputs[:, 0])
        pos = (l1 * emb_out(targets)).sum(-1)
        neg = torch.bmm(emb_out(negatives), l1.unsqueeze(-1)).squeeze(-1)
        loss = -(torch.nn.functional.logsigmoid(pos).sum() + torch.nn.functional.logsigmoid(-neg).sum())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(4):
        step()
    return {"ms_per_batch": timed_ms(step, device, repeats)}


def pairs_per_s(timing: dict, pairs: float) -> dict:
    return {**timing, "pairs_per_s": pairs / (timing["ms_per_batch"] * 1e-3)}


def row_traffic_gbs(row: dict, d: int, negative: int) -> float:
    """GB/s of the kernel's row traffic: per pair, each target row is read and atomically added to,
    the input row read and added to once."""
    return row["pairs_per_s"] * (2 * (negative + 1) + 2) * d * 4 / 1e9


def warm_fit(model: Word2Vec, corpus: Corpus) -> None:
    """Run ``model.step`` on the first batch ``fit`` makes and on an odd-sized cut of it, so that
    every kernel specialization fit launches (an epoch's last batch included) is compiled before
    fit's clock starts. fit re-initialises the weights these steps change."""
    c = model.config
    batches = Word2VecBatches(corpus, sg=0 if c.shared_negatives else c.sg, window=c.window, sample=c.sample,
                              negative=0, batch_size=c.batch_size, workers=c.workers, seed=c.seed)  # fmt: skip
    model.build_vocab(corpus)
    b = next(iter(batches))
    for n in (len(b), odd_size(len(b))):
        model.step(b.centers[:n], b.contexts[:n], None if b.lengths is None else b.lengths[:n], c.alpha)


def end_to_end(corpus, args, device, questions) -> dict:
    """words/s and final loss of one ``fit`` (a diverged run raises), then Google analogies."""
    model = Word2Vec(sg=1, negative=args.negative, vector_size=args.vector_size, window=args.window,
                     sample=args.sample, epochs=args.epochs, workers=args.workers, batch_size=args.batch_size,
                     device=device, shared_negatives=args.shared_negatives)  # fmt: skip
    warm_fit(model, corpus)
    model.fit(corpus, progress=False)
    out = {"words_per_s": model.words_per_second, "final_loss": model.final_loss, "analogies_restrict_30k": None}
    if questions is not None and Path(questions).exists():
        from fastpretrain.eval import evaluate_word_analogies

        out["analogies_restrict_30k"] = evaluate_word_analogies(model.wv, questions, restrict_vocab=30000)["total"]
    return out


def markdown(result: dict) -> str:
    c = result["config"]
    lines = [f"# word2vec SGNS on {result['device']} ({result['date']}, commit {result['commit']})",
             f"`{result['command']}`; {', '.join(f'{k} {v}' for k, v in result['versions'].items())}; updates: "
             f"{result['update_path']}; d={c['vector_size']}, window {c['window']}, negative {c['negative']}, "
             f"sample {c['sample']:g}, batch {c['batch_size']} pairs, {c['workers']} engine threads, vocab "
             f"{c['vocab']:,}, kernel groups of {c['block_n']}, {c['programs_per_sm']} programs per SM"
             + ("" if result["complete"] else "; INCOMPLETE (run stopped early)"), "",
             "| candidate | what | result | vs eager |", "|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['candidate']} | {r['what']} | error: {r['error']} | |")
        elif "pairs_per_s" in r:
            ratio = f"{r['vs_eager']:.3g}x" if "vs_eager" in r else ""
            traffic = f", {r['row_traffic_gb_per_s']:.3g} GB/s of rows" if "row_traffic_gb_per_s" in r else ""
            speed = f"{r['pairs_per_s'] / 1e6:.3g} M pairs/s{traffic}"
            lines.append(f"| {r['candidate']} | {r['what']} | {speed} | {ratio} |")
        else:
            analogies = r["analogies_restrict_30k"]
            lines.append(f"| {r['candidate']} | {r['what']} | {r['words_per_s'] / 1e6:.3g} M words/s, final loss "
                         f"{r['final_loss']:.3f}, analogies (30k) "
                         f"{'not run' if analogies is None else f'{analogies:.1%}'} | |")  # fmt: skip
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=None, help="default: ../shared/data/corpus20m.txt.xz (--smoke: a generated one)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--vector-size", type=int, default=200)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=10)
    p.add_argument("--sample", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=65536)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batches", type=int, default=40, help="batches staged on the device for the update rows")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per update row off CUDA")
    p.add_argument("--block-n", type=int, default=kernels.BLOCK_N, help="examples per group in the kernel")
    p.add_argument("--programs-per-sm", type=int, default=2, help="kernel programs per SM (examples in flight)")
    p.add_argument("--shared-negatives", type=int, choices=(0, 1), default=0,
                   help="end-to-end row in HogBatch mode (the update rows stay per-pair)")
    p.add_argument("--questions", default=None,
                   help="Google analogies, evaluated after training when the file exists (default: "
                        "../shared/data/eval/questions-words.txt; --smoke: none)")  # fmt: skip
    p.add_argument("--smoke", action="store_true", help=f"CPU-sized settings {SMOKE} on a generated corpus")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    elif args.questions is None:
        args.questions = str(ROOT.parent / "shared/data/eval/questions-words.txt")
    return args


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if device.type != "cuda" and not args.smoke:
        sys.exit("bench_word2vec: needs a CUDA GPU (or --smoke); skipped")
    with contextlib.ExitStack() as stack:
        cache = None
        if args.smoke:  # the generated corpus and its encoding live and die with the run
            cache = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            args.corpus = args.corpus or str(smoke_corpus(cache / "smoke.txt"))
        args.corpus = args.corpus or str(ROOT.parent / "shared/data/corpus20m.txt.xz")
        if not Path(args.corpus).exists():
            sys.exit(f"bench_word2vec: corpus {args.corpus} not found; skipped")
        if update_path(device) == "triton interpreter":
            stack.enter_context(kernels_on_cpu())
        run(args, device, Corpus.build(args.corpus, min_count=5, cache_dir=cache, progress=False))


def run(args: argparse.Namespace, device: torch.device, corpus: Corpus) -> None:
    kernels.BLOCK_N = args.block_n
    if device.type == "cuda":
        kernels.PROGRAMS = args.programs_per_sm * torch.cuda.get_device_properties(device).multi_processor_count
    v, d = len(corpus.vocab), args.vector_size
    settings = {key: value for key, value in vars(args).items() if key not in ("out", "smoke")}
    config = {**settings, "vocab": v, "corpus_words": corpus.n_words}
    stem = f"word2vec_{device.type}_smoke" if args.smoke else (
        f"word2vec_b{args.batch_size}_g{args.block_n}_p{args.programs_per_sm}" + "_shared" * args.shared_negatives)
    meta = {**run_info(device), "update_path": update_path(device), "config": config}
    results = Results(args.out, stem, meta, markdown)

    staged = staged_batches(corpus, args, args.batches, device)
    pairs = sum(len(t) for _, t, _ in staged) / len(staged)
    eager = results.attempt({"candidate": "eager pytorch", "what": "update, batches on device"},
                            lambda: pairs_per_s(time_eager(staged, v, d, device, args.repeats), pairs))  # fmt: skip

    def kernel() -> dict:
        row = pairs_per_s(time_kernel(staged, v, d, device, args.repeats), pairs)
        row["row_traffic_gb_per_s"] = row_traffic_gbs(row, d, args.negative)
        if "error" not in eager:
            row["vs_eager"] = row["pairs_per_s"] / eager["pairs_per_s"]
        return row

    results.attempt({"candidate": "ours kernel", "what": "update, batches on device"}, kernel)
    mode = f"engine + kernel, {args.epochs} epoch(s)" + (", HogBatch" if args.shared_negatives else "")
    fit = lambda: end_to_end(corpus, args, device, args.questions)
    results.attempt({"candidate": "ours end to end", "what": mode}, fit)
    results.finish()


if __name__ == "__main__":
    main()
