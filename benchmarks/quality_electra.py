"""Learning check: ELECTRA vs BERT (masked LM only, no NSP) at equal training compute on docs9m,
compared by the downstream probe the repo has for BERT: logistic regression on frozen [CLS] states
of held-out sentence pairs (does B continue A?), fitted on one half and scored on the other, the
examples fed unmasked (a downstream task has no [MASK]), for both models' encoders (ELECTRA's
discriminator exported as a BERT encoder) and a random-init one.

    python benchmarks/quality_electra.py --bert-tokens 2e6 --threads 2 --label cpu    # a CPU budget
    python benchmarks/quality_electra.py --size mini --bert-tokens 30e6 --label gpu   # the GPU check
    python benchmarks/quality_electra.py --smoke                                      # seconds

Equal compute means equal training FLOPs, counted analytically by each model's
``flops_per_item`` at the corpus's mean example length (matmul FLOPs of every layer and head,
forward + backward = 3 x forward; ELECTRA's count adds its generator's layers and head and the
forward-only logits it samples from): BERT trains on ``--bert-tokens`` real tokens, ELECTRA on as
many steps as the same FLOPs buy. Same discriminator / BERT size, data order, batch, optimizer
(AdamW (0.9, 0.999), decay 0.01, warm-up then linear decay, clipping 1.0) and seed. Wall time is
reported beside it. Writes benchmarks/results/quality_electra[_<label>].json/.md, rewritten after
each row (``complete: false`` until all are in).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
from harness import Results, run_info

from fastpretrain.data import BertExamples, collate_packed, load_wordpiece, read_documents, train_wordpiece
from fastpretrain.eval import UnmaskedExamples, evaluate_electra, evaluate_pretraining
from fastpretrain.models import ElectraConfig, ElectraForPreTraining, create_model
from fastpretrain.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def collate_mlm(examples):
    """Packed BERT batches without the NSP labels: BERT trains on masked LM only, as ELECTRA."""
    batch = collate_packed(examples)
    del batch["nsp_labels"]
    return batch


def corpus_of(args, work: Path) -> Path:
    """The corpus, or its first ``--documents`` documents written to ``work``."""
    if not args.documents:
        return Path(args.corpus)
    docs = []
    for doc in read_documents(args.corpus, progress=False):
        docs.append("\n".join(doc))
        if len(docs) == args.documents:
            break
    path = work / f"docs{args.documents}.txt"
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def tokenizer_for(args, corpus: Path):
    """``--vocab`` (default the BERT-uncased vocab.txt of ../shared/data), else a WordPiece trained on the corpus."""
    vocab = Path(args.vocab) if args.vocab else SHARED / "bert-uncased-vocab.txt"
    if vocab.is_file():
        return load_wordpiece(vocab), str(vocab.name)
    texts = (p for doc in read_documents(corpus, progress=False) for p in doc)
    return train_wordpiece(texts, vocab_size=args.vocab_size), f"WordPiece trained on the corpus ({args.vocab_size})"


def train(model, dataset, collate, steps: int, args) -> tuple[list[dict], float, torch.device]:
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = TrainConfig(out_dir=out_dir, steps=steps, batch_size=args.batch_size, lr=args.lr,
                          warmup_steps=round(args.warmup * steps), schedule="linear", betas=(0.9, 0.999),
                          weight_decay=0.01, clip_grad=1.0, seed=args.seed, device=args.device,
                          log_every=max(1, steps // 10), ckpt_every=10**9, keep_checkpoints=1)  # fmt: skip
        trainer = Trainer(model, dataset, cfg, collate_fn=collate)
        start = time.perf_counter()
        history = trainer.fit()
        return history, time.perf_counter() - start, trainer.device


def probe(encoder, heldout, args, device) -> float:
    """BERT's [CLS] probe of an encoder on the unmasked held-out pairs."""
    return evaluate_pretraining(encoder, UnmaskedExamples(heldout), max_examples=args.eval_examples,
                                device=device)["probe_accuracy"]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=str(SHARED / "docs9m.txt.xz"))
    p.add_argument("--documents", type=int, default=0, help="use only the corpus's first N documents (0: all)")
    p.add_argument("--vocab", default=None, help="vocab.txt (default ../shared/data/bert-uncased-vocab.txt)")
    p.add_argument("--vocab-size", type=int, default=8000, help="when training a WordPiece (no vocab.txt)")
    p.add_argument("--size", default="tiny", help="bert_<size>, and ELECTRA's discriminator of its sizes (tiny: CPU)")
    p.add_argument("--generator-size", type=float, default=0.25, help="ELECTRA's generator width / the discriminator's")
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bert-tokens", type=float, default=2e6, help="BERT's budget in real tokens; ELECTRA gets its FLOPs")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.06, help="warm-up, fraction of the steps")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--attention-dropout", type=float, default=0.0, help="0 on CPU: the reference draws its bits slowly")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-examples", type=int, default=2000)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--smoke", action="store_true", help="a few hundred documents and steps: seconds")
    p.add_argument("--label", default="", help="suffix of the result files, e.g. cpu")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    if args.smoke:
        args.documents, args.max_len, args.batch_size = args.documents or 200, 64, 8
        args.bert_tokens, args.eval_examples, args.label = 4e3, 40, args.label or "smoke"
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="quality_electra_"))
    corpus = corpus_of(args, work)
    tokenizer, vocab_source = tokenizer_for(args, corpus)
    build = lambda split: BertExamples.build(corpus, tokenizer, split=split, max_len=args.max_len, seed=args.seed,
                                             cache_dir=args.cache_dir, progress=not args.smoke)
    train_set, heldout = build("train"), build("heldout")
    mean_len = float(train_set.lengths().mean())
    fields = {"vocab_size": tokenizer.get_vocab_size(), "pad_token_id": tokenizer.token_to_id("[PAD]"),
              "hidden_dropout": args.dropout, "attention_dropout": args.attention_dropout}

    def fresh_bert():
        torch.manual_seed(args.seed)
        return create_model(f"bert_{args.size}", **fields)

    bert = fresh_bert()
    c = bert.config
    torch.manual_seed(args.seed)
    electra = ElectraForPreTraining(ElectraConfig(hidden_size=c.hidden_size, num_layers=c.num_layers, num_heads=c.num_heads,
                                                  intermediate_size=c.intermediate_size,
                                                  generator_size=args.generator_size, **fields))  # fmt: skip
    flops_bert, flops_electra = bert.flops_per_item(round(mean_len)), electra.flops_per_item(round(mean_len))
    tokens_per_step = args.batch_size * mean_len
    budget = args.bert_tokens * flops_bert
    steps = {"bert": math.ceil(args.bert_tokens / tokens_per_step),
             "electra": math.ceil(budget / (flops_electra * tokens_per_step))}  # fmt: skip
    settings = {**{k: v for k, v in vars(args).items() if k not in ("out", "cache_dir")}, "vocab": vocab_source,
                "steps": steps, "train_examples": len(train_set), "heldout_examples": len(heldout),
                "mean_length": mean_len, "flops_budget": budget, "flops_per_token": {"bert": flops_bert,
                "electra": flops_electra},
                "generator_hidden_size": electra.config.generator_config().hidden_size}  # fmt: skip
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else torch.device(args.device)
    meta = {**run_info(device), "label": args.label or "full budget", "settings": settings}
    results = Results(args.out, "quality_electra" + (f"_{args.label}" if args.label else ""), meta, markdown)

    def run_bert():
        history, seconds, dev = train(bert, train_set, collate_mlm, steps["bert"], args)
        masked = evaluate_pretraining(bert, heldout, max_examples=args.eval_examples, device=dev, probe=False)
        return {"steps": steps["bert"], "train_tokens": steps["bert"] * tokens_per_step,
                "train_flops": steps["bert"] * tokens_per_step * flops_bert, "train_seconds": seconds,
                "tokens_per_s": sum(r["items_per_s"] for r in history) / len(history),
                "train_loss_last": history[-1]["loss"], "mlm_accuracy": masked["mlm_accuracy"],
                "probe_accuracy": probe(bert, heldout, args, dev)}  # fmt: skip

    def run_electra():
        history, seconds, dev = train(electra, train_set, collate_packed, steps["electra"], args)
        scores = evaluate_electra(electra, heldout, max_examples=args.eval_examples, device=dev, seed=args.seed,
                                  probe=False)  # fmt: skip
        return {"steps": steps["electra"], "train_tokens": steps["electra"] * tokens_per_step,
                "train_flops": steps["electra"] * tokens_per_step * flops_electra, "train_seconds": seconds,
                "tokens_per_s": sum(r["items_per_s"] for r in history) / len(history),
                "train_loss_last": history[-1]["loss"], "mlm_accuracy": scores["mlm_accuracy"],
                "rtd_accuracy": scores["rtd_accuracy"], "all_original_accuracy": scores["all_original_accuracy"],
                "probe_accuracy": probe(electra.discriminator_as_bert(), heldout, args, dev)}  # fmt: skip

    def run_random():
        return {"probe_accuracy": probe(fresh_bert().to(device), heldout, args, device)}

    for name, run in (("BERT (MLM)", run_bert), ("ELECTRA", run_electra), ("random init", run_random)):
        print(results.attempt({"model": name}, run), flush=True)
    results.finish()


def markdown(result: dict) -> str:
    s = result["settings"]
    examples = min(s["eval_examples"], s["heldout_examples"])
    title = (f"# ELECTRA vs BERT at equal training FLOPs ({result['label']}) on {result['device']}, {result['date']}, "
             f"commit {result['commit']}")
    about = (f"bert_{s['size']} vs ELECTRA with that encoder as its discriminator (generator width "
             f"{s['generator_hidden_size']}), "
             f"max_len {s['max_len']}, batch {s['batch_size']}, lr {s['lr']}, seed {s['seed']}, dropout {s['dropout']} / "
             f"attention {s['attention_dropout']}; vocab: {s['vocab']}; {s['train_examples']:,} training examples "
             f"(mean {s['mean_length']:.1f} tokens). Budget {s['flops_budget']:.3g} training FLOPs each (analytic: "
             f"{s['flops_per_token']['bert'] / 1e6:.2f} MFLOP per token for BERT, "
             f"{s['flops_per_token']['electra'] / 1e6:.2f} for ELECTRA). Probe: logistic regression on frozen [CLS] "
             f"states of {examples} unmasked held-out pairs (is B the next sentence?), fit on one half, scored on the "
             "other; chance is ~50%.")
    header = ("| model | steps | train tokens | train FLOPs | train s | tokens/s | held-out MLM acc | RTD acc "
              "(all-original) | [CLS] probe acc |")
    lines = [title, f"`{result['command']}`", "", about, "", header, "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} | | | | | | | |")
        elif "steps" not in r:
            lines.append(f"| {r['model']} | 0 | | | | | | | {r['probe_accuracy']:.1%} |")
        else:
            rtd = f"{r['rtd_accuracy']:.2%} ({r['all_original_accuracy']:.2%})" if "rtd_accuracy" in r else ""
            lines.append(f"| {r['model']} | {r['steps']:,} | {r['train_tokens']:,.0f} | {r['train_flops']:.3g} | "
                         f"{r['train_seconds']:.0f} | {r['tokens_per_s']:,.0f} | {r['mlm_accuracy']:.2%} | {rtd} | "
                         f"{r['probe_accuracy']:.1%} |")  # fmt: skip
    lines += ["", "ELECTRA's MLM accuracy is its small generator's; BERT's is the model itself."]
    if not result["complete"]:
        lines += ["", "INCOMPLETE (run stopped early)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
