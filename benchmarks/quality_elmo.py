"""ELMo's quality on docs9m, CPU-sized: the biLM trained with our sampled softmax vs with the full
softmax at equal steps from the same weights (each direction's held-out perplexity, words/s), the
layer-0 word similarity (WordSim-353, SimLex-999) of the trained and of a random-init model, and a
contextual probe whose labels docs9m gives: are two held-out sentences consecutive in their
document, or is the second drawn from another document? Features of ELMo (the mean of its layers,
averaged over the sentence's words), of the random-init ELMo, and of word2vec averages (our
Word2Vec on the same training documents); a logistic-regression probe on [u, v, u*v, |u - v|].

    python benchmarks/quality_elmo.py --corpus ../shared/data/docs9m.txt.xz
    python benchmarks/quality_elmo.py --smoke --device cpu          # seconds, on the README

Writes benchmarks/results/quality_elmo_<device>.json/.md, rewritten after every row.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from harness import Results, run_info, shown

from fastpretrain.data import read_documents, split_sentences
from fastpretrain.data.word_lm import TokenBlocks, WordCorpus, tokenize
from fastpretrain.eval.cpc import sentence_pairs as next_sentence_pairs
from fastpretrain.eval.elmo import evaluate_bilm, sentence_layers, word_similarity
from fastpretrain.eval.probe import linear_probe
from fastpretrain.models import ELMo, Word2Vec, model_config

ROOT = Path(__file__).resolve().parents[1]
CPU = {"max_documents": 800, "vocab_size": 10_000, "steps": 600, "batch_size": 32, "block_length": 20,
       "lstm_dim": 256, "projection_dim": 64, "num_sampled": 512, "pairs": 1500, "eval_blocks": 300}  # fmt: skip
SMOKE = {"max_documents": 30, "vocab_size": 500, "steps": 4, "batch_size": 4, "block_length": 8, "lstm_dim": 16,
         "projection_dim": 8, "num_sampled": 32, "pairs": 40, "eval_blocks": 5}  # fmt: skip


def elmo(args, corpus, num_sampled: int) -> ELMo:
    torch.manual_seed(0)
    config = model_config("elmo_tiny", vocab_size=len(corpus.vocab), lstm_dim=args.lstm_dim,
                          projection_dim=args.projection_dim, num_sampled=num_sampled)  # fmt: skip
    return ELMo(config).set_vocabulary(corpus.vocab.words)


def train(args, corpus, num_sampled: int, device) -> tuple[ELMo, dict]:
    model = elmo(args, corpus, num_sampled).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    blocks = TokenBlocks(corpus.train, args.block_length, overlap=1)
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(0))
    start, words = time.perf_counter(), 0
    for step in range(args.steps):
        idx = order[(torch.arange(args.batch_size) + step * args.batch_size) % len(blocks)]
        out = model(torch.stack([blocks[int(i)] for i in idx]).to(device))
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        words += out["items"]
    seconds = time.perf_counter() - start
    heldout = TokenBlocks(corpus.heldout, args.block_length, overlap=1)
    result = evaluate_bilm(model, heldout, max_items=args.eval_blocks, device=device)
    return model, {**{k: result[k] for k in ("forward_perplexity", "backward_perplexity", "tokens")},
                   "words_per_s": words / seconds}  # fmt: skip


def sentence_pairs(args, corpus, source) -> tuple[list, list, np.ndarray]:
    """Held-out (first, second, label) pairs: label 1 for consecutive sentences of a document,
    0 for a first sentence with one from another held-out document; balanced, seeded."""
    held = set(corpus.heldout_documents)
    docs = [[tokenize(s, lowercase=False) for p in doc for s in split_sentences(p)]
            for i, doc in enumerate(read_documents(source, progress=False)) if i in held]  # fmt: skip
    return next_sentence_pairs(docs, args.pairs, seed=0)


def probe(u: torch.Tensor, v: torch.Tensor, labels: np.ndarray) -> dict:
    x = torch.cat([u, v, u * v, (u - v).abs()], 1).double()
    y = torch.from_numpy(labels)
    n = int(0.7 * len(y))
    return linear_probe(x[:n], y[:n], x[n:], y[n:], weight_decay=1e-3, max_iter=200, num_classes=2)


def elmo_features(model, sentences) -> torch.Tensor:
    return torch.stack([layers.mean(0).mean(0) for layers in sentence_layers(model.cpu(), sentences)])


def word2vec_features(model, sentences) -> torch.Tensor:
    wv = model.wv
    rows = []
    for s in sentences:
        ids = [wv.index(w) for w in s if w in wv]
        rows.append(wv.vectors[ids].mean(0) if ids else torch.zeros(wv.vector_size))
    return torch.stack(rows).float()


def markdown(result: dict) -> str:
    lines = [f"ELMo quality, {result['device']}: {result['setup']}", "",
             "| model | forward ppl | backward ppl | words/s | WordSim-353 ρ | SimLex-999 ρ | consecutive-sentence probe |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['model']} | {shown(r.get('forward_perplexity'), '.1f')} | "
                     f"{shown(r.get('backward_perplexity'), '.1f')} | {shown(r.get('words_per_s'), ',.0f')} | "
                     f"{shown(r.get('wordsim353'), '.3f')} | {shown(r.get('simlex999'), '.3f')} | "
                     f"{shown(r.get('probe_accuracy'), '.1%')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=None, help="docs9m (default for --smoke: the README)")
    p.add_argument("--eval-dir", default=str(ROOT.parent / "shared" / "data" / "eval"),
                   help="folder of wordsim353.tsv and simlex999.txt (skipped when absent)")  # fmt: skip
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    known, _ = p.parse_known_args()
    sizes = SMOKE if known.smoke else CPU
    for name, value in sizes.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    source = args.corpus or (ROOT / "README.md" if args.smoke else None)
    if source is None:
        p.error("--corpus: needed unless --smoke")
    corpus = WordCorpus.build(source, vocab_size=args.vocab_size, heldout=0.1 if args.smoke else 0.05, lowercase=False,
                              sentences=True, max_documents=args.max_documents)  # fmt: skip
    setup = (f"{len(corpus.train):,} training words of {source} (cased sentences), vocabulary {len(corpus.vocab):,}; "
             f"ELMo CNN {model_config('elmo_tiny').filter_counts} filters, 2 x {args.lstm_dim} LSTM -> "
             f"{args.projection_dim}, {args.steps} steps of {args.batch_size} x {args.block_length} words, AdamW 2e-3; "
             f"probe on {2 * args.pairs} held-out sentence pairs (70% train)")  # fmt: skip
    stem = f"quality_elmo_{device.type}{'_smoke' if args.smoke else ''}"
    results = Results(args.out, stem, {**run_info(device), "setup": setup, "sizes": vars(args)}, markdown)
    firsts, seconds, labels = sentence_pairs(args, corpus, source)
    similarity = [f for f in (Path(args.eval_dir) / "wordsim353.tsv", Path(args.eval_dir) / "simlex999.txt")
                  if f.is_file()]  # fmt: skip

    def quality(model) -> dict:
        row = {f.stem: word_similarity(model, f)["spearman"] for f in similarity}
        row["probe_accuracy"] = probe(elmo_features(model, firsts), elmo_features(model, seconds), labels)["test_acc"]
        return row

    trained = {}
    for name, num_sampled in ((f"ELMo, sampled softmax {args.num_sampled}", args.num_sampled),
                              ("ELMo, full softmax", 0)):  # fmt: skip
        print(f"== {name}", flush=True)

        def measure(n=num_sampled, name=name):
            model, row = train(args, corpus, n, device)
            trained[name] = model
            return {**row, **quality(model)}

        results.attempt({"model": name, "num_sampled": num_sampled}, measure)
    results.attempt({"model": "ELMo, random init"}, lambda: quality(elmo(args, corpus, args.num_sampled)))

    def word2vec_row() -> dict:
        import re

        words = [corpus.vocab.words[i] for i in corpus.train]
        text = " ".join(words)
        sentences = [s.split() for s in re.split(r" </s> ?", text) if s]
        w2v = Word2Vec(vector_size=2 * args.projection_dim, window=5, min_count=1, epochs=5, sg=0, workers=1,
                       seed=0).fit(sentences, progress=False)  # fmt: skip
        u, v = word2vec_features(w2v, firsts), word2vec_features(w2v, seconds)
        return {"probe_accuracy": probe(u, v, labels)["test_acc"]}

    results.attempt({"model": "word2vec average (CBOW, same documents)"}, word2vec_row)
    results.finish()


if __name__ == "__main__":
    main()
