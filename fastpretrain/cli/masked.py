"""``fastpretrain masked train|eval``: masked modeling of any tokenized modality (time series, audio
frames, point groups) on the shared skeleton; each modality's data, tokenizer and probe come from
:mod:`fastpretrain.data.modalities`, the model flags from :class:`~fastpretrain.models.MaskedGroupsConfig`."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import ClassVar

import torch

from fastpretrain.cli.args import at_least
from fastpretrain.cli.errors import renamed
from fastpretrain.cli.flags import FlagError
from fastpretrain.cli.model_command import ModelCommand, TrainData
from fastpretrain.data.modalities import get_modality, modality_names
from fastpretrain.models import MaskedGroups


@contextlib.contextmanager
def modality_errors(modality) -> Iterator[None]:
    """Errors of the modality's code that name one of its arguments name the flag it came from."""
    with contextlib.ExitStack() as stack:
        for flag in set(modality.flags.values()):
            stack.enter_context(renamed(flag, *[a for a, f in modality.flags.items() if f == flag]))
        yield


class MaskedCommand(ModelCommand):
    name, model_class, default_model = "masked", MaskedGroups, "masked_groups_tiny"
    help = "masked modeling of time series, audio frames or point groups (Ti-MAE, HuBERT, Point-MAE)"
    train_help = ("pre-train a masked-groups model on one modality; checkpoints through the Trainer, then "
                  "model.safetensors and config.json (with the modality and its tokenizer settings) in --out-dir")  # fmt: skip
    eval_help = ("linear-probe and kNN accuracy of the encoder's mean-pooled frozen features on the modality's "
                 "labelled data, next to a randomly initialised model of the same size and the raw input")  # fmt: skip
    recipe: ClassVar[dict] = {"out_dir": "runs/masked", "lr": 1e-3, "weight_decay": 0.05, "warmup_steps": 0}
    derived = ("group_dim", "pos_dim")
    model_help: ClassVar[dict] = {
        "position": "positional embedding: sincos (fixed, of the group index) or mlp (learned, on P-dim centres)",
        "embedder": "group values embedder (linear, or one a modality registers)",
        "embed_dim": "encoder width", "depth": "encoder blocks", "num_heads": "encoder attention heads",
        "decoder_embed_dim": "decoder width", "decoder_depth": "decoder blocks",
        "decoder_num_heads": "decoder attention heads", "mlp_ratio": "MLP hidden width over block width",
        "qkv_bias": "biases in the q, k, v projections", "layer_norm_eps": "LayerNorm epsilon",
        "encoder": "visible (MAE: only kept groups are encoded; random masking) or full (mask tokens)",
        "masking": "random (fixed count), span (wav2vec 2.0) or block (BEiT, on a block_rows grid)",
        "mask_ratio": "random / block: fraction of groups masked", "mask_prob": "span: fairseq's mask_prob",
        "span_length": "span: groups per span", "block_rows": "block: rows of the groups' grid",
        "min_block": "block: smallest block, in groups", "target": "what is predicted: values, clusters, ...",
        "norm_values": "values: regress per-group normalised values", "num_clusters": "clusters: codebook size",
    }  # fmt: skip

    def add_data_flags(self, p: argparse.ArgumentParser) -> None:
        names = modality_names()
        p.add_argument("--modality", choices=names, default="timeseries",
                       help=f"{', '.join(names)} (default timeseries)")  # fmt: skip
        for name in names:
            modality = get_modality(name)
            modality.add_flags(p.add_argument_group(f"{name} data ({modality.help})"))

    def model_overrides(self, args: argparse.Namespace) -> dict:
        """The modality's preferred fields (its masking, target, positions), then those given."""
        return {**get_modality(args.modality).defaults, **super().model_overrides(args)}

    def data(self, args: argparse.Namespace, config) -> TrainData:
        modality = get_modality(args.modality)
        with modality_errors(modality):
            settings = modality.settings(args)
            data = modality.train_data(args, settings)
        sample = data.collate_fn([data.dataset[0]])
        return TrainData(data.dataset, data.collate_fn, model_fields={"group_dim": data.group_dim, "pos_dim": data.pos_dim},
                         run={"modality": modality.name, "tokenizer": settings, **data.run}, lines=data.lines,
                         extras={"length": sample["values"].shape[1]})  # fmt: skip

    def describe(self, model: MaskedGroups) -> str:
        c = model.config
        return (f", groups of {c.group_dim} values, {c.position} positions, {c.encoder} encoder, {c.masking} "
                f"masking, {c.target} target")  # fmt: skip

    def flops_per_item(self, model: MaskedGroups, data: TrainData) -> float:
        return model.flops_per_sample(data.extras["length"])

    def add_eval_flags(self, p: argparse.ArgumentParser) -> None:
        for name in modality_names():
            get_modality(name).add_eval_flags(p.add_argument_group(f"{name} data"))
        p.add_argument("--k", type=at_least(1), default=5, help="kNN neighbours (default 5: UCR train sets are small)")
        p.add_argument("--probe-iters", type=at_least(1), default=300,
                       help="L-BFGS iterations of the linear probe (default 300)")  # fmt: skip
        p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                       help="also a randomly initialised model and the raw input (default on)")  # fmt: skip
        p.add_argument("--batch-size", type=at_least(1), default=256, help="samples per forward (default 256)")
        p.add_argument("--seed", type=at_least(0), default=0, help="seed of the random-init baseline (default 0)")
        p.add_argument("--json", default=None, help="also write the accuracies to this JSON file")

    def evaluate(self, args: argparse.Namespace, model: MaskedGroups, run: dict, device: torch.device) -> None:
        import json

        from fastpretrain.atomic import atomic_write, check_writable
        from fastpretrain.eval.masked import probe_rows

        if args.json:
            check_writable("--json", args.json)
        if "modality" not in run or "tokenizer" not in run:
            raise FlagError("argument checkpoint: its config.json has no modality / tokenizer (not a masked train run)")
        modality = get_modality(run["modality"])
        with modality_errors(modality):
            train, test = modality.probe_data(args, run["tokenizer"], run)
        print(f"data         {run['modality']}: probe on {len(train.labels):,} train / {len(test.labels):,} test "
              f"items, {int(train.labels.max()) + 1} classes, mean-pooled group tokens")  # fmt: skip
        rows = probe_rows(model, modality, run["tokenizer"], train, test, baselines=args.baselines, k=args.k,
                          max_iter=args.probe_iters, batch_size=args.batch_size, seed=args.seed, device=device)  # fmt: skip
        print(f"{'features':<14} {'linear probe':>12} {f'kNN k={args.k}':>10}")
        for name, scores in rows.items():
            print(f"{name:<14} {scores['linear']:>12.2%} {scores['knn']:>10.2%}")
        if args.json:
            with atomic_write(args.json, "w") as f:
                json.dump({"checkpoint": str(args.checkpoint), "modality": run["modality"], "results": rows}, f,
                          indent=2)  # fmt: skip


add_commands = MaskedCommand().add_commands
