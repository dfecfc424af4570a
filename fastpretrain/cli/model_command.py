"""``fastpretrain <model> train|eval``: the skeleton the models' commands share. A model's command
line is a :class:`ModelCommand` subclass naming its model class, default size and training recipe,
with its data and its evaluation; flags come from the model's and the Trainer's config dataclasses.

train: the flags make the TrainConfig and the model config (``model_config(--model, **the fields
given)``), each checked once, before any data is read; the command builds its data; the model is
built once and trained by the Trainer; the run folder gets ``config.json`` before the first step
(so every checkpoint loads with ``from_pretrained``) and ``model.safetensors`` at the end.
eval: ``from_pretrained`` on a run folder, its weights or one of its checkpoints, then the
command's metrics.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from fastpretrain.cli.device import pick_device
from fastpretrain.cli.errors import loading
from fastpretrain.cli.flags import add_config_flags, build_config, config_values, flag_errors
from fastpretrain.models import list_models, model_config
from fastpretrain.models.registry import CONFIG, WEIGHTS, write_config
from fastpretrain.train import TrainConfig, Trainer, add_train_args, cleanup, is_main, latest


@dataclass
class TrainData:
    """A command's training data, as the skeleton uses it."""

    dataset: object
    collate_fn: Callable | None = None
    model_fields: dict = field(default_factory=dict)  # model config fields the data decides (BERT's vocabulary)
    run: dict = field(default_factory=dict)  # kept in config.json for eval (normalisation, corpus settings)
    lines: tuple[str, ...] = ()  # printed before training
    save: Callable[[Path], None] | None = None  # writes the data's own run files (a tokenizer) into out_dir
    extras: dict = field(default_factory=dict)  # for the command's own later steps


class ModelCommand:
    """One model's ``train`` and ``eval``: subclasses set the attributes and write ``data`` and
    ``evaluate``; the other methods are hooks with defaults."""

    name: str  # fastpretrain <name> train|eval; --model is one of list_models(f"{name}_*")
    help: str
    model_class: type  # a registered model class (config_class, from_pretrained)
    default_model: str
    recipe: ClassVar[dict] = {}  # the command's TrainConfig defaults: out_dir and the method's optimizer settings
    model_help: ClassVar[dict] = {}  # help of the model config's fields
    derived: tuple[str, ...] = ()  # model config fields the data sets: no flag
    train_help = "pre-train"
    eval_help = "evaluate a trained model"
    checkpoint_help = ("a run folder (its model.safetensors, else its latest checkpoint), a model.safetensors, "
                       "or a checkpoint folder out_dir/checkpoints/step_N")  # fmt: skip

    def add_data_flags(self, parser: argparse.ArgumentParser) -> None:
        """The train command's data flags."""

    def data(self, args: argparse.Namespace, config) -> TrainData:
        """The training data for the model ``config`` (before the data's ``model_fields``)."""
        raise NotImplementedError

    def build(self, config, data: TrainData) -> nn.Module:
        """The model to train, before the Trainer loads any checkpoint (ELMo adds its vocabulary's characters)."""
        return self.model_class(config)

    def describe(self, model: nn.Module) -> str:
        """More about the model for the line printed before training."""
        return ""

    def flops_per_item(self, model: nn.Module, data: TrainData) -> float | None:
        """Training FLOPs per item for MFU; None: the model's ``flops_per_item()``."""
        return None

    def summary(self, trainer: Trainer, history: list[dict]) -> str:
        """What the ``trained`` line says before ``saved <out_dir>``."""
        return f"final loss {history[-1]['loss']:.4f}, " if history else ""

    def after_training(self, args: argparse.Namespace, model: nn.Module, data: TrainData, trainer: Trainer) -> None:
        """Rank 0, once the model is saved: held-out metrics, exports."""

    def add_eval_flags(self, parser: argparse.ArgumentParser) -> None:
        """The eval command's flags."""

    def load(self, checkpoint: Path) -> tuple[nn.Module, dict]:
        """The model at ``checkpoint`` and its run's settings (config.json's fields and extras)."""
        weights = run_weights(checkpoint)
        with loading("checkpoint", checkpoint):
            model = self.model_class.from_pretrained(weights)
            run = run_settings(weights)
        print(f"model        {weights}")
        return model, run

    def load_or_hf(self, checkpoint: Path, load_hf: Callable[[Path], nn.Module]) -> tuple[nn.Module, dict, Path]:
        """As :meth:`load` for ours (a run, its weights, a checkpoint), else a Hugging Face export
        (a config.json without our "model" field) through ``load_hf``; and the weights' path."""
        weights = run_weights(checkpoint)
        beside = (weights if weights.is_dir() else weights.parent) / CONFIG
        with loading("checkpoint", beside):
            hf = beside.is_file() and "model" not in json.loads(beside.read_text())
        if not hf:
            return (*ModelCommand.load(self, checkpoint), weights)
        with loading("checkpoint", beside.parent, "directory"):
            model = load_hf(beside.parent)
        print(f"model        {beside.parent} (Hugging Face)")
        return model, {}, weights

    def evaluate(self, args: argparse.Namespace, model: nn.Module, run: dict, device: torch.device) -> None:
        """Print (and write, if asked) the model's metrics."""
        raise NotImplementedError

    def add_commands(self, sub: argparse._SubParsersAction) -> None:
        """``fastpretrain <name> train`` and ``fastpretrain <name> eval``."""
        command = sub.add_parser(self.name, help=self.help, description=self.help)
        actions = command.add_subparsers(title="actions", metavar="<action>", required=True)
        p = actions.add_parser("train", help=self.train_help, description=self.train_help)
        models = list_models(f"{self.name}_*")
        p.add_argument("--model", choices=models, default=self.default_model, metavar="NAME",
                       help=f"registered size, one of {', '.join(models)} (default %(default)s)")  # fmt: skip
        self.add_data_flags(p)
        add_config_flags(p, self.model_class.config_class, title=f"model (unless given: the --model's values; "
                         f"shown: {self.default_model}'s)", base=model_config(self.default_model),
                         helps=self.model_help, exclude=self.derived)  # fmt: skip
        add_train_args(p, **self.recipe)
        p.set_defaults(run=self.train, parser=p)
        p = actions.add_parser("eval", help=self.eval_help, description=self.eval_help)
        p.add_argument("checkpoint", help=self.checkpoint_help)
        self.add_eval_flags(p)
        p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available)")
        p.set_defaults(run=self.eval, parser=p)
        self.add_actions(actions)

    def add_actions(self, actions: argparse._SubParsersAction) -> None:
        """More actions than train and eval (GPT's generate)."""

    def model_overrides(self, args: argparse.Namespace) -> dict:
        """The model config fields given on the command line (the others are the --model's)."""
        given = config_values(self.model_class.config_class, args, given=True)
        return {k: v for k, v in given.items() if k not in self.derived}  # a data flag may share a derived name

    def train(self, args: argparse.Namespace) -> None:
        train_config = build_config(TrainConfig, args)
        if train_config.device != "auto":
            with flag_errors(TrainConfig):
                pick_device(train_config.device, "device")
        with flag_errors(self.model_class.config_class):
            config = model_config(args.model, **self.model_overrides(args))
        data = self.data(args, config)
        if data.model_fields:
            config = replace(config, **data.model_fields)
        torch.manual_seed(train_config.seed)
        model = self.build(config, data)
        out = Path(train_config.out_dir)
        if is_main():
            print(f"model        {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters"
                  f"{self.describe(model)}")  # fmt: skip
            for line in data.lines:
                print(line)
        try:
            trainer = Trainer(model, data.dataset, train_config, collate_fn=data.collate_fn,
                              flops_per_item=self.flops_per_item(model, data), model_config=asdict(config))  # fmt: skip
            if is_main():  # only now: the Trainer refuses a --resume of another model before anything is written
                write_config(out / CONFIG, config, **data.run)
                if data.save is not None:
                    data.save(out)
            history = trainer.fit()
            if is_main():
                print(f"trained      {self.summary(trainer, history)}saved {save_weights(out)}")
                self.after_training(args, unwrap(trainer.model), data, trainer)
        finally:
            cleanup()

    def eval(self, args: argparse.Namespace) -> None:
        device = pick_device(args.device)
        model, run = self.load(Path(args.checkpoint))
        self.evaluate(args, model.to(device), run, device)


def run_weights(checkpoint: Path) -> Path:
    """``checkpoint``, or for a run folder with no model.safetensors yet (a run stopped early) its latest checkpoint."""
    if checkpoint.is_dir() and not (checkpoint / WEIGHTS).is_file() and latest(checkpoint) is not None:
        return latest(checkpoint)
    return checkpoint


def run_settings(weights: Path) -> dict:
    """The config.json ``from_pretrained`` reads for ``weights``: beside them, or in the run folder of a checkpoint."""
    file = weights / WEIGHTS if weights.is_dir() else weights
    for path in (file.parent / CONFIG, file.parent.parent.parent / CONFIG):
        if path.is_file():
            return json.loads(path.read_text())
    return {}


def save_weights(out_dir: Path) -> Path:
    """The last checkpoint's weights as ``out_dir/model.safetensors``, beside its config.json, so
    ``from_pretrained(out_dir)`` loads the trained model: a copy of the gathered file, whatever the
    parallelism, and no model built again."""
    from fastpretrain.atomic import atomic_path

    with atomic_path(out_dir / WEIGHTS) as tmp:
        shutil.copyfile(latest(out_dir) / WEIGHTS, tmp)
    return out_dir


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper."""
    return model.module if hasattr(model, "module") else model

