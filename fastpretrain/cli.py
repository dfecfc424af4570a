"""``fastpretrain`` command line: ``fastpretrain <command> [options]``; ``--help`` on each."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm


def _at_least(low: float, kind: type = int):
    """argparse type: a number >= low, so typos fail before a long corpus read."""

    def parse(text: str):
        value = kind(text)
        if not value >= low:
            raise argparse.ArgumentTypeError(f"expected a value >= {low}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _corpus(args: argparse.Namespace) -> None:
    """Corpus engine statistics and batch throughput on a corpus."""
    from fastpretrain.data import Corpus, Word2VecBatches, resolve_corpus
    from fastpretrain.data.corpus import cache_root

    cache = Path(args.cache_dir) if args.cache_dir else cache_root()
    path = resolve_corpus(args.corpus, cache)
    t0 = time.perf_counter()
    corpus = Corpus.build(path, min_count=args.min_count, max_vocab_size=args.max_vocab_size, cache_dir=cache)
    load_s = time.perf_counter() - t0
    batches = Word2VecBatches(
        corpus, sg=args.sg, window=args.window, sample=args.sample, negative=args.negative,
        batch_size=args.batch_size, epochs=args.epochs, workers=args.workers, seed=args.seed,
    )  # fmt: skip
    vocab = corpus.vocab
    lengths = vocab.huffman().lengths
    keep = vocab.keep_probabilities(args.sample)
    kept = float((keep * vocab.counts).sum() / vocab.counts.sum())
    print(f"corpus       {path}")
    print(f"cache        {corpus.path}  ({load_s:.2f} s to read or encode)")
    print(f"tokens       {corpus.n_words:,} in vocabulary, {len(vocab):,} words with count >= {args.min_count}")
    print(f"top words    {', '.join(f'{w} ({c:,})' for w, c in zip(vocab.words[: args.top], vocab.counts.tolist()))}")
    print(f"subsampling  sample={args.sample:g} keeps {kept:.1%} of the tokens in expectation")
    print(f"huffman      code length mean {np.average(lengths, weights=vocab.counts):.2f}, max {lengths.max()}")

    examples = 0
    t0 = time.perf_counter()
    with tqdm(total=batches.total_words, unit="word", unit_scale=True, desc="batches", disable=None) as bar:
        for b in batches:
            examples += len(b)
            bar.update(round(b.progress * batches.total_words) - bar.n)
    seconds = time.perf_counter() - t0
    kind = "skip-gram pairs" if args.sg else "CBOW examples"
    print(
        f"throughput   {batches.total_words / seconds / 1e6:.1f} M words/s, {examples / seconds / 1e6:.1f} M {kind}/s "
        f"({args.workers} workers, window {args.window}, {args.negative} negatives, {args.epochs} epochs, {seconds:.2f} s)"
    )


def _add_corpus(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="vocabulary statistics and batch throughput of the C++ corpus engine",
                       description=_corpus.__doc__)  # fmt: skip
    p.add_argument("--corpus", default="wiki206",
                   help="text file (.xz/.bz2/.gz too), directory of text files, or 'wiki206' (default: the "
                        "206 Wikipedia articles shipped in gensim's wheel)")  # fmt: skip
    p.add_argument("--min-count", type=_at_least(1), default=5, help="drop words seen fewer times (default 5)")
    p.add_argument("--max-vocab-size", type=_at_least(1), default=None, help="keep at most this many words")
    p.add_argument("--sg", type=int, choices=(0, 1), default=1, help="1 skip-gram pairs (default), 0 CBOW examples")
    p.add_argument("--window", type=_at_least(1), default=5, help="maximum window; each center draws b ~ U[1, window]")
    p.add_argument("--sample", type=_at_least(0.0, float), default=1e-3, help="frequent-word subsampling threshold (0 disables)")
    p.add_argument("--negative", type=_at_least(0), default=5, help="negatives per pair or example (default 5)")
    p.add_argument("--batch-size", type=_at_least(1), default=16384, help="pairs or examples per batch")
    p.add_argument("--epochs", type=_at_least(1), default=1, help="passes over the corpus")
    p.add_argument("--workers", type=_at_least(1), default=os.cpu_count() or 1, help="C++ producer threads (default: all cores)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--top", type=_at_least(0), default=10, help="how many of the most frequent words to list")
    p.add_argument("--cache-dir", default=None, help="cache root (default $FASTPRETRAIN_CACHE or ~/.cache/fastpretrain)")
    p.set_defaults(run=_corpus)


PROBES = ("king", "france", "computer", "war", "music", "water", "good", "three")


def _eval_files(args: argparse.Namespace) -> dict[str, Path]:
    """Evaluation sets: the paths given, else the copies inside gensim's wheel, if installed."""
    files = {"analogies": args.questions, "wordsim353": args.wordsim, "simlex999": args.simlex}
    defaults = {"analogies": "questions-words.txt", "wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
    try:
        from gensim.test.utils import datapath
    except ImportError:
        datapath = None
    out = {}
    for name, given in files.items():
        if given:
            out[name] = Path(given)
        elif datapath is not None:
            out[name] = Path(datapath(defaults[name]))
    return out


def _report_vectors(kv, args: argparse.Namespace) -> None:
    """Nearest neighbours of a few probe words, analogy accuracy and similarity correlations."""
    from fastpretrain.eval import evaluate_word_analogies, evaluate_word_pairs

    probes = [w for w in PROBES if w in kv][:4] or kv.words[100:104]
    for word in probes:
        neighbours = ", ".join(f"{w} {s:.2f}" for w, s in kv.most_similar(positive=[word], topn=6))
        print(f"  {word:>10} -> {neighbours}")
    files = _eval_files(args)
    if not files:
        print("no evaluation sets: pass --questions/--wordsim/--simlex, or pip install 'fastpretrain[data]'")
    if "analogies" in files:
        result = evaluate_word_analogies(kv, files["analogies"], restrict_vocab=args.restrict_vocab)
        print(f"analogies    {result['total']:.1%} of {sum(s['correct'] + s['incorrect'] for s in result['sections'].values())}"
              f" questions (restrict_vocab {args.restrict_vocab}, {result['skipped']} skipped as out of vocabulary)")
    for name in ("wordsim353", "simlex999"):
        if name in files:
            result = evaluate_word_pairs(kv, files[name], restrict_vocab=args.restrict_vocab)
            print(f"{name:<12} Spearman {result['spearman']:.3f} ({result['oov_ratio']:.1f}% pairs out of vocabulary)")


def _word2vec_train(args: argparse.Namespace) -> None:
    """Train word vectors, save them, and show what they learned."""
    from fastpretrain.data import Corpus, resolve_corpus
    from fastpretrain.data.corpus import cache_root
    from fastpretrain.models.word2vec import Word2Vec

    cache = Path(args.cache_dir) if args.cache_dir else cache_root()
    path = resolve_corpus(args.corpus, cache)
    config = {k: getattr(args, k) for k in ("sg", "hs", "negative", "vector_size", "window", "sample", "min_count",
              "max_vocab_size", "alpha", "min_alpha", "epochs", "workers", "seed", "batch_size", "cbow_mean",
              "shared_negatives")}  # fmt: skip
    model = Word2Vec(device=args.device, **config)
    print(f"training {'skip-gram' if args.sg else 'CBOW'} with {'hierarchical softmax' if args.hs else ''}"
          f"{' and ' if args.hs and args.negative else ''}{f'{args.negative} negatives' if args.negative else ''}"
          f" on {path} ({model.device})")  # fmt: skip
    model.fit(Corpus.build(path, min_count=args.min_count, max_vocab_size=args.max_vocab_size, cache_dir=cache))
    out = Path(args.out)
    if out.suffix == ".safetensors":
        model.save(out)
    else:
        model.wv.save_word2vec_format(out, binary=out.suffix == ".bin")
    print(f"trained      {len(model.vocab):,} words x {args.vector_size} at {model.words_per_second / 1e6:.2f} M words/s,"
          f" final loss {model.final_loss:.3f}; saved {out}")
    _report_vectors(model.wv, args)


def _word2vec_eval(args: argparse.Namespace) -> None:
    """Evaluate saved word vectors (word2vec.c text/binary format or a .safetensors model)."""
    from fastpretrain.models.keyed_vectors import KeyedVectors
    from fastpretrain.models.word2vec import Word2Vec

    path = Path(args.vectors)
    kv = Word2Vec.load(path).wv if path.suffix == ".safetensors" else KeyedVectors.load_word2vec_format(path)
    print(f"vectors      {len(kv):,} words x {kv.vector_size} from {path}")
    _report_vectors(kv, args)


def _add_eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--questions", help="Google analogy file (default: questions-words.txt from gensim's wheel)")
    p.add_argument("--wordsim", help="WordSim-353 pairs (default: wordsim353.tsv from gensim's wheel)")
    p.add_argument("--simlex", help="SimLex-999 pairs (default: simlex999.txt from gensim's wheel)")
    p.add_argument("--restrict-vocab", type=_at_least(1), default=30000, help="evaluate the most frequent N words")


def _add_word2vec(sub: argparse._SubParsersAction) -> None:
    w2v = sub.add_parser("word2vec", help="train and evaluate word2vec (skip-gram / CBOW)")
    actions = w2v.add_subparsers(title="actions", metavar="<action>", required=True)
    p = actions.add_parser("train", help="train word vectors on a corpus", description=_word2vec_train.__doc__)
    p.add_argument("--corpus", default="wiki206", help="text file (.xz/.bz2/.gz), directory, or 'wiki206' (default)")
    p.add_argument("--out", default="vectors.bin", help=".bin: word2vec.c binary, .txt: text, .safetensors: full model")
    p.add_argument("--sg", type=int, choices=(0, 1), default=0, help="1 skip-gram, 0 CBOW (default)")
    p.add_argument("--hs", type=int, choices=(0, 1), default=0, help="1 hierarchical softmax")
    p.add_argument("--negative", type=_at_least(0), default=5, help="negatives per example (0 with --hs 1)")
    p.add_argument("--vector-size", type=_at_least(1), default=100)
    p.add_argument("--window", type=_at_least(1), default=5)
    p.add_argument("--sample", type=_at_least(0.0, float), default=1e-3, help="subsampling threshold (0 disables)")
    p.add_argument("--min-count", type=_at_least(1), default=5)
    p.add_argument("--max-vocab-size", type=_at_least(1), default=None)
    p.add_argument("--alpha", type=_at_least(0.0, float), default=None, help="initial lr (0.025 sg, 0.05 CBOW)")
    p.add_argument("--min-alpha", type=_at_least(0.0, float), default=None, help="final lr (default alpha * 1e-4)")
    p.add_argument("--cbow-mean", type=int, choices=(0, 1), default=1, help="1 mean of the context rows, 0 sum")
    p.add_argument("--shared-negatives", type=int, choices=(0, 1), default=0,
                   help="1: HogBatch skip-gram, a center's window shares its negatives (speed mode)")
    p.add_argument("--epochs", type=_at_least(1), default=5)
    p.add_argument("--workers", type=_at_least(1), default=os.cpu_count() or 1, help="corpus engine threads")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch-size", type=_at_least(1), default=None,
                   help="pairs or examples per update (default 1024 on CPU, 65536 on a GPU)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--cache-dir", default=None, help="cache root (default $FASTPRETRAIN_CACHE or ~/.cache/fastpretrain)")
    _add_eval_flags(p)
    p.set_defaults(run=_word2vec_train)
    p = actions.add_parser("eval", help="evaluate saved vectors", description=_word2vec_eval.__doc__)
    p.add_argument("vectors", help="vectors.bin / vectors.txt (word2vec.c formats) or model.safetensors")
    _add_eval_flags(p)
    p.set_defaults(run=_word2vec_eval)

_MAE_SIZES = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "decoder_embed_dim",
              "decoder_depth", "decoder_num_heads")  # fmt: skip


def _normalisation(data: str, in_chans: int, mean, std) -> tuple[list[float], list[float]]:
    """The per-channel mean/std given, else Fashion-MNIST's, ImageNet's (3 channels) or 0.5/0.5."""
    from fastpretrain.data.images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, IMAGENET_MEAN, IMAGENET_STD

    if mean is not None and std is not None:
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError(f"mean, std: expected {in_chans} values each (in_chans), got {len(mean)} and {len(std)}")
        return list(mean), list(std)
    if data == "fashion-mnist" and in_chans == 1:
        return list(FASHION_MNIST_MEAN), list(FASHION_MNIST_STD)
    if in_chans == 3:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    return [0.5] * in_chans, [0.5] * in_chans


def _limit(dataset, n: int | None, seed: int):
    """A seeded random subset of n items (all when n is None or too large)."""
    from torch.utils.data import Subset
    import torch

    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].tolist())


def _mae_train(args: argparse.Namespace) -> None:
    """Pre-train a masked autoencoder; checkpoints through the Trainer, then model.safetensors and
    config.json in --out-dir."""
    import torch

    from fastpretrain.data.images import RandomResizedCropFlip, Resize, image_dataset
    from fastpretrain.models.mae import MAE, MODELS, MAEConfig, write_config
    from fastpretrain.train import Trainer, TrainConfig, cleanup, is_main, latest

    overrides = {k: getattr(args, k) for k in _MAE_SIZES if getattr(args, k) is not None}
    config = MODELS[args.model](mask_ratio=args.mask_ratio, norm_pix_loss=args.norm_pix_loss, **overrides).config
    train_config = TrainConfig.from_args(args)  # checks the flags before any data is read
    mean, std = _normalisation(args.data, config.in_chans, args.mean, args.std)
    transform = (RandomResizedCropFlip(config.img_size, scale=tuple(args.crop_scale), mean=mean, std=std)
                 if args.augment else Resize(config.img_size, mean, std))  # fmt: skip
    dataset = _limit(image_dataset(args.data, "train", transform, channels=config.in_chans), args.max_images, args.seed)
    torch.manual_seed(args.seed)
    model = MAE(config)
    if is_main():
        print(f"mae          {args.model}: {model.encoder.num_params() / 1e6:.2f} M encoder + "
              f"{(sum(p.numel() for p in model.parameters()) - model.encoder.num_params()) / 1e6:.2f} M decoder "
              f"parameters, {model.num_patches} patches of {config.patch_size}, mask ratio {config.mask_ratio}")
        print(f"data         {args.data}: {len(dataset):,} images, {'augmented' if args.augment else 'resized'}, "
              f"mean {mean} std {std}")
        write_config(Path(args.out_dir) / "config.json", config, mean=mean, std=std, data=str(args.data))
    try:
        history = Trainer(model, dataset, train_config).fit()
        if is_main():
            final = MAE(config)
            from safetensors.torch import load_file

            final.load_state_dict(load_file(latest(args.out_dir) / "model.safetensors"))
            path = final.save_pretrained(args.out_dir)
            loss = f"final loss {history[-1]['loss']:.4f}, " if history else ""
            print(f"trained      {loss}saved {path}")
    finally:
        cleanup()


def _eval_splits(data: str, transform, channels: int, test_fraction: float, seed: int):
    """(train, test): the source's own splits (fashion-mnist, folders with train/ and test/ or val/),
    else a seeded random split holding out ``test_fraction``."""
    import torch
    from torch.utils.data import Subset

    from fastpretrain.data.images import image_dataset

    path = Path(data)
    if data == "fashion-mnist" or (path.is_dir() and (path / "train").is_dir()):
        return image_dataset(data, "train", transform, channels), image_dataset(data, "test", transform, channels)
    full = image_dataset(data, "train", transform, channels)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed)).tolist()
    n_test = max(1, round(len(full) * test_fraction))
    if n_test >= len(full):
        raise ValueError(f"test_fraction: {test_fraction} leaves no training images of {len(full)}")
    return Subset(full, perm[n_test:]), Subset(full, perm[:n_test])


def _mae_eval(args: argparse.Namespace) -> None:
    """Linear-probe and kNN accuracy of a pre-trained MAE encoder on frozen features, next to a
    randomly initialised encoder of the same size and the raw pixels; optionally a reconstruction grid."""
    import json

    import torch

    from fastpretrain.data.images import Resize
    from fastpretrain.eval.probe import evaluate_features, extract_features
    from fastpretrain.models.mae import MAE, save_reconstruction_grid

    model = MAE.from_pretrained(args.checkpoint)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    config = model.config
    saved = Path(args.checkpoint)
    saved = saved if saved.is_dir() else saved.parent
    extras = next((json.loads(p.read_text()) for p in (saved / "config.json", saved.parent.parent / "config.json")
                   if p.is_file()), {})  # fmt: skip
    mean, std = (args.mean, args.std) if args.mean is not None else (extras.get("mean"), extras.get("std"))
    mean, std = _normalisation(args.data, config.in_chans, mean, std)
    train, test = _eval_splits(args.data, Resize(config.img_size, mean, std), config.in_chans, args.test_fraction, args.seed)
    train, test = _limit(train, args.max_train, args.seed), _limit(test, args.max_test, args.seed + 1)
    print(f"data         {args.data}: probe on {len(train):,} train / {len(test):,} held-out test images, "
          f"{args.pool} pooling")
    encoders = [("mae", model)]
    if args.baselines:
        torch.manual_seed(args.seed)
        encoders += [("random init", MAE(config).to(device)), ("raw pixels", None)]
    print(f"{'features':<14} {'linear probe':>12} {f'kNN k={args.k}':>10}")
    results = {}
    for name, encoder in encoders:
        kw = dict(pool=args.pool, batch_size=args.batch_size, device=device)
        scores = evaluate_features(extract_features(encoder, train, **kw), extract_features(encoder, test, **kw),
                                   k=args.k, max_iter=args.probe_iters)  # fmt: skip
        results[name] = scores
        print(f"{name:<14} {scores['linear']:>12.2%} {scores['knn']:>10.2%}")
    if args.reconstruction:
        images = torch.stack([test[i][0] for i in range(min(args.num_images, len(test)))])
        path = save_reconstruction_grid(model, images, args.reconstruction, mean=mean, std=std, seed=args.seed)
        print(f"reconstruction grid (original / masked / reconstruction): {path}")
    if args.json:
        from fastpretrain.atomic import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump({"checkpoint": str(args.checkpoint), "data": args.data, "pool": args.pool, "results": results}, f, indent=2)


def _add_mae(sub: argparse._SubParsersAction) -> None:
    from fastpretrain.models.mae import MODELS
    from fastpretrain.train.config import add_train_args

    mae = sub.add_parser("mae", help="pre-train and evaluate masked autoencoders (MAE)")
    actions = mae.add_subparsers(title="actions", metavar="<action>", required=True)
    data_help = "'fashion-mnist' (../shared/data or $FASTPRETRAIN_DATA), an image folder, an IDX images file, or .npy/.npz"
    p = actions.add_parser("train", help="pre-train an MAE on images", description=_mae_train.__doc__)
    p.add_argument("--data", default="fashion-mnist", help=data_help + " (default fashion-mnist)")
    p.add_argument("--model", choices=sorted(MODELS), default="mae_vit_fashion_mnist", help="size (default mae_vit_fashion_mnist)")
    for name in _MAE_SIZES:
        p.add_argument("--" + name.replace("_", "-"), type=_at_least(1), default=None, help=f"override the size's {name}")
    p.add_argument("--mask-ratio", type=float, default=0.75, help="fraction of patches masked (default 0.75)")
    p.add_argument("--norm-pix-loss", action=argparse.BooleanOptionalAction, default=False,
                   help="regress per-patch normalised pixels (MAE's better-features option)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="random resized crop + horizontal flip (default on)")
    p.add_argument("--crop-scale", type=float, nargs=2, default=(0.2, 1.0), help="crop area range (default 0.2 1.0)")
    p.add_argument("--mean", type=float, nargs="+", default=None, help="per-channel normalisation mean")
    p.add_argument("--std", type=float, nargs="+", default=None, help="per-channel normalisation std")
    p.add_argument("--max-images", type=_at_least(1), default=None, help="train on a seeded random subset of N images")
    add_train_args(p)
    p.set_defaults(run=_mae_train, out_dir="runs/mae", weight_decay=0.05, lr=1.5e-4, warmup_steps=0)
    p = actions.add_parser("eval", help="linear probe and kNN on frozen features", description=_mae_eval.__doc__)
    p.add_argument("checkpoint", help="a run folder (model.safetensors + config.json), the file, or checkpoints/step_N")
    p.add_argument("--data", default="fashion-mnist", help=data_help + " (default fashion-mnist)")
    p.add_argument("--pool", choices=("cls", "mean"), default="cls", help="features: the cls token or the patch mean")
    p.add_argument("--max-train", type=_at_least(1), default=10000, help="probe on a random N train images (default 10000)")
    p.add_argument("--max-test", type=_at_least(1), default=None, help="score on a random N test images (default all)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held out when the data has no test split")
    p.add_argument("--k", type=_at_least(1), default=20, help="kNN neighbours (default 20)")
    p.add_argument("--probe-iters", type=_at_least(1), default=300, help="L-BFGS iterations of the linear probe")
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                   help="also a randomly initialised encoder and the raw pixels (default on)")
    p.add_argument("--reconstruction", default=None, help="write a PNG grid of test reconstructions here")
    p.add_argument("--num-images", type=_at_least(1), default=8, help="images in the reconstruction grid")
    p.add_argument("--mean", type=float, nargs="+", default=None, help="normalisation mean (default: the run's)")
    p.add_argument("--std", type=float, nargs="+", default=None, help="normalisation std (default: the run's)")
    p.add_argument("--batch-size", type=_at_least(1), default=256)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the accuracies to this JSON file")
    p.set_defaults(run=_mae_eval)


BERT_RUN = "bert_run.json"  # in a training run's out_dir: the model config and the data settings


def _bert_data(args: argparse.Namespace, tokenizer, split: str, settings: dict):
    from fastpretrain.data import BertExamples

    return BertExamples.build(settings["corpus"], tokenizer, split=split, max_len=settings["max_len"],
                              heldout=settings["heldout"], seed=settings["data_seed"],
                              mlm_probability=settings["mlm_probability"], whole_word=settings["whole_word"],
                              cache_dir=args.cache_dir)  # fmt: skip


def _bert_report(model, dataset, args: argparse.Namespace, pad_id: int, device) -> dict:
    from functools import partial

    from fastpretrain.data import collate_packed, collate_padded
    from fastpretrain.eval import evaluate_pretraining

    collate = partial(collate_padded, pad_id=pad_id) if args.padded else collate_packed
    result = evaluate_pretraining(model, dataset, batch_size=args.eval_batch_size, max_examples=args.eval_examples,
                                  collate_fn=collate, device=device)  # fmt: skip
    print(f"held-out     {result['examples']:,} examples, {result['mlm_tokens']:,} masked tokens")
    print(f"mlm          loss {result['mlm_loss']:.4f}  accuracy {result['mlm_accuracy']:.2%}")
    print(f"nsp          loss {result['nsp_loss']:.4f}  accuracy {result['nsp_accuracy']:.2%}")
    print(f"probe        [CLS] logistic regression on held-out NSP: accuracy {result['probe_accuracy']:.2%}")
    return result


def _bert_train(args: argparse.Namespace) -> None:
    """Pre-train BERT (MLM + NSP) on a corpus; evaluate on held-out documents; export for HF."""
    import json
    from dataclasses import asdict
    from functools import partial

    import torch

    from fastpretrain.atomic import atomic_write
    from fastpretrain.data import collate_packed, collate_padded, load_wordpiece, read_documents, save_wordpiece, train_wordpiece
    from fastpretrain.models import BertConfig, BertForPreTraining
    from fastpretrain.train import Trainer, TrainConfig, is_main

    config = TrainConfig.from_args(args)
    out = Path(config.out_dir)
    corpus = Path(args.corpus)
    if not corpus.exists():
        raise FileNotFoundError(f"corpus: {str(corpus)!r} does not exist")
    saved = out / "tokenizer"
    if (saved / "tokenizer.json").is_file():  # a resumed run keeps its tokenizer
        tokenizer = load_wordpiece(saved)
    elif args.tokenizer:
        tokenizer = load_wordpiece(args.tokenizer, lowercase=not args.cased)
    else:
        paragraphs = (p for doc in read_documents(corpus) for p in doc)
        tokenizer = train_wordpiece(paragraphs, vocab_size=args.vocab_size, lowercase=not args.cased)
    settings = {"corpus": str(corpus.resolve()), "max_len": args.max_len, "heldout": args.heldout,
                "data_seed": args.data_seed, "mlm_probability": args.mlm_probability, "whole_word": args.whole_word}  # fmt: skip
    train = _bert_data(args, tokenizer, "train", settings)
    pad_id = tokenizer.token_to_id("[PAD]")
    bert = BertConfig.from_size(args.size, vocab_size=tokenizer.get_vocab_size(), pad_token_id=pad_id,
                                max_position_embeddings=max(512, args.max_len), pre_norm=args.pre_norm,
                                hidden_dropout=args.dropout, attention_dropout=args.attention_dropout)  # fmt: skip
    model = BertForPreTraining(bert)
    if is_main():
        save_wordpiece(tokenizer, saved)
        with atomic_write(out / BERT_RUN, "w") as f:
            json.dump({"model": asdict(bert), "data": settings}, f, indent=1)
    print(f"bert-{args.size}  {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, vocabulary "
          f"{bert.vocab_size:,}, {len(train):,} training examples of at most {args.max_len} tokens", file=sys.stderr)  # fmt: skip
    collate = partial(collate_padded, pad_id=pad_id) if args.padded else collate_packed
    mean_len = float(train.lengths().mean())
    trainer = Trainer(model, train, config, collate_fn=collate, flops_per_item=model.flops_per_item(round(mean_len)))
    history = trainer.fit()
    if not is_main():
        return
    if history:
        last = history[-1]
        print(f"trained      {trainer.step} steps; last window: loss {last['loss']:.4f}, mlm {last.get('mlm_loss', float('nan')):.4f}, "
              f"nsp accuracy {last.get('nsp_accuracy', float('nan')):.2%}, {last['items_per_s']:,.0f} tokens/s")  # fmt: skip
    raw = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    if args.heldout > 0:
        result = _bert_report(raw, _bert_data(args, tokenizer, "heldout", settings), args, pad_id, trainer.device)
        with atomic_write(out / "eval.json", "w") as f:
            json.dump(result, f, indent=1)
    if not bert.pre_norm:
        with torch.no_grad():
            export = raw.save_pretrained(out / "hf", tokenizer)
        print(f"exported     {export} (transformers.BertForPreTraining.from_pretrained loads it)")


def _bert_eval(args: argparse.Namespace) -> None:
    """Evaluate a BERT run (its latest checkpoint) or a save_pretrained directory on held-out documents."""
    import json

    import torch
    from safetensors.torch import load_file

    from fastpretrain.data import load_wordpiece
    from fastpretrain.models import BertConfig, BertForPreTraining
    from fastpretrain.train import latest

    path = Path(args.model)
    run_file = path / BERT_RUN
    settings = {"corpus": None, "max_len": 128, "heldout": 0.01, "data_seed": 0, "mlm_probability": 0.15, "whole_word": False}
    if run_file.is_file():
        run = json.loads(run_file.read_text())
        settings.update(run["data"])
        checkpoint = latest(path)
        if checkpoint is None:
            raise FileNotFoundError(f"model: run {str(path)!r} has no checkpoint yet")
        model = BertForPreTraining(BertConfig(**run["model"]))
        model.load_state_dict(load_file(checkpoint / "model.safetensors"))
        tokenizer = load_wordpiece(path / "tokenizer")
        print(f"model        {checkpoint}")
    elif (path / "config.json").is_file():
        model = BertForPreTraining.from_pretrained(path)
        tokenizer = load_wordpiece(path)
        print(f"model        {path}")
    else:
        raise FileNotFoundError(f"model: {str(path)!r} is neither a bert train run ({BERT_RUN}) nor a save_pretrained directory")
    for key in ("corpus", "max_len", "heldout", "data_seed"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if settings["corpus"] is None:
        raise ValueError("corpus: pass --corpus (the model directory does not say which corpus it was trained on)")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dataset = _bert_data(args, tokenizer, "heldout", settings)
    _bert_report(model.to(device), dataset, args, tokenizer.token_to_id("[PAD]"), device)


def _add_bert_eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval-examples", type=_at_least(4), default=2000, help="held-out examples to evaluate (default 2000)")
    p.add_argument("--eval-batch-size", type=_at_least(1), default=64)
    p.add_argument("--padded", action="store_true", help="padded batches instead of packed ones (for comparison)")
    p.add_argument("--cache-dir", default=None, help="cache root of the built examples (default $FASTPRETRAIN_CACHE)")


def _add_bert(sub: argparse._SubParsersAction) -> None:
    from fastpretrain.models.bert import SIZES
    from fastpretrain.train import add_train_args

    bert = sub.add_parser("bert", help="pre-train and evaluate BERT (masked LM + next sentence prediction)")
    actions = bert.add_subparsers(title="actions", metavar="<action>", required=True)
    p = actions.add_parser("train", help="pre-train on a corpus", description=_bert_train.__doc__)
    p.add_argument("--corpus", required=True, help="text file (.xz/.bz2/.gz) or directory: a paragraph a line, "
                   "a blank line between documents")  # fmt: skip
    p.add_argument("--tokenizer", default=None, help="vocab.txt, tokenizer.json or a directory; default: train WordPiece on the corpus")
    p.add_argument("--vocab-size", type=_at_least(8), default=30522, help="WordPiece vocabulary when training one")
    p.add_argument("--cased", action="store_true", help="keep case and accents (default: uncased, as bert-base-uncased)")
    p.add_argument("--size", choices=tuple(SIZES), default="mini")
    p.add_argument("--max-len", type=_at_least(8), default=128, help="tokens per example, [CLS] and [SEP]s included")
    p.add_argument("--heldout", type=_at_least(0.0, float), default=0.01, help="fraction of documents held out for eval")
    p.add_argument("--data-seed", type=_at_least(0), default=0, help="seed of the pairs, the split and the masks")
    p.add_argument("--mlm-probability", type=float, default=0.15)
    p.add_argument("--whole-word", action="store_true", help="whole-word masking")
    p.add_argument("--pre-norm", action="store_true", help="pre-norm layers with a final LayerNorm (default post-norm)")
    p.add_argument("--dropout", type=_at_least(0.0, float), default=0.1, help="hidden dropout")
    p.add_argument("--attention-dropout", type=_at_least(0.0, float), default=0.1, help="dropout inside the attention op")
    _add_bert_eval_flags(p)
    add_train_args(p)
    # BERT's recipe: AdamW (0.9, 0.999), decay 0.01, warm-up then linear decay
    p.set_defaults(run=_bert_train, out_dir="runs/bert", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01,
                   schedule="linear", warmup_steps=100, steps=10000, batch_size=32, precision="auto")  # fmt: skip
    p = actions.add_parser("eval", help="held-out MLM / NSP metrics and a [CLS] probe", description=_bert_eval.__doc__)
    p.add_argument("model", help="a bert train --out-dir, or a save_pretrained directory (config.json + model.safetensors)")
    p.add_argument("--corpus", default=None, help="default: the run's corpus")
    p.add_argument("--max-len", type=_at_least(8), default=None)
    p.add_argument("--heldout", type=_at_least(0.0, float), default=None)
    p.add_argument("--data-seed", type=_at_least(0), default=None)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    _add_bert_eval_flags(p)
    p.set_defaults(run=_bert_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastpretrain", description=__doc__)
    sub = parser.add_subparsers(title="commands", metavar="<command>", required=True)
    _add_word2vec(sub)
    _add_mae(sub)
    _add_corpus(sub)
    _add_bert(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, ImportError, FloatingPointError) as e:
        print(f"fastpretrain: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
