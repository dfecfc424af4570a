"""What ``fastpretrain masked train|eval --modality NAME`` needs of a modality, and where each is
registered. A modality is a :class:`Modality` subclass named in :data:`MODALITIES` (name ->
``"module:Class"``, imported on first use, so a modality's module costs nothing until it is asked for):

- ``add_flags(group)`` / ``add_eval_flags(group)``: its ``masked train`` data and tokenizer flags,
  and its ``masked eval`` ones (names unique across modalities: every modality's flags sit in the
  one parser, each in its own group; an eval flag left None means the run's setting).
- ``settings(args)``: the tokenizer's settings from those flags, a JSON-able dict kept in the run's
  config.json (``"tokenizer"``) so eval tokenizes as training did; ``tokenizer(settings)`` builds it:
  a callable raw batch -> :class:`~fastpretrain.nn.Groups`.
- ``train_data(args, settings)``: :class:`ModalityData`, the pre-training dataset and the collate
  that turns its items into the model's dict batch (``values``, ``positions`` and any per-group field
  the target needs, such as ``clusters``), with ``group_dim`` / ``pos_dim`` and lines to print.
- ``probe_data(args, settings, run)``: (train, test) :class:`Labelled` raw inputs for the eval's
  probes; ``raw_features(inputs)``: the raw-input baseline's features (default: flattened).
- ``defaults``: model config fields the modality prefers unless given (``{"masking": "span",
  "encoder": "full"}``, ``{"position": "mlp"}``, ``{"target": "clusters"}``).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import torch

from fastpretrain.nn.groups import Groups, check_groups

MODALITIES: dict[str, str] = {
    "audio": "fastpretrain.data.audio:Audio",
    "timeseries": "fastpretrain.data.timeseries:TimeSeries",
    "points": "fastpretrain.data.points:Points",
}
_LOADED: dict[str, Modality] = {}


class Labelled(NamedTuple):
    """Raw inputs [N, ...] (what the tokenizer takes, batched) and int64 class labels [N]."""

    inputs: torch.Tensor
    labels: torch.Tensor


@dataclass
class ModalityData:
    """A modality's pre-training data as the CLI uses it."""

    dataset: object  # a map-style dataset of raw items
    collate_fn: Callable  # a list of items -> the model's dict batch
    group_dim: int  # G of the tokenizer's Groups
    pos_dim: int  # P
    lines: tuple[str, ...] = ()  # printed before training
    run: dict = field(default_factory=dict)  # more to keep in config.json ("data": the source)


class Modality:
    """One modality's part of the masked-modeling CLI (see the module docstring)."""

    name: ClassVar[str]
    help: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}
    flags: ClassVar[dict] = {"data": "--data", "path": "--data"}  # argument -> flag: errors naming it name the flag

    def add_flags(self, group: argparse._ArgumentGroup) -> None:
        """Its ``masked train`` flags."""

    def add_eval_flags(self, group: argparse._ArgumentGroup) -> None:
        """Its ``masked eval`` flags (the labelled data to probe on; default: the run's)."""

    def settings(self, args: argparse.Namespace) -> dict:
        raise NotImplementedError

    def tokenizer(self, settings: dict) -> Callable[[torch.Tensor], Groups]:
        raise NotImplementedError

    def train_data(self, args: argparse.Namespace, settings: dict) -> ModalityData:
        raise NotImplementedError

    def probe_data(self, args: argparse.Namespace, settings: dict, run: dict) -> tuple[Labelled, Labelled]:
        raise NotImplementedError

    def raw_features(self, inputs: torch.Tensor) -> torch.Tensor:
        """The raw-input baseline's features [N, F]."""
        return inputs.flatten(1).float()


def modality_names() -> list[str]:
    return sorted(MODALITIES)


def get_modality(name: str) -> Modality:
    """The registered modality ``name`` (its module imported on first use); ValueError naming the known ones."""
    if name not in MODALITIES:
        raise ValueError(f"modality: expected one of {', '.join(modality_names())}, got {name!r}")
    if name not in _LOADED:
        module, _, cls = MODALITIES[name].partition(":")
        modality = getattr(importlib.import_module(module), cls)()
        if not isinstance(modality, Modality) or modality.name != name:
            raise TypeError(f"{MODALITIES[name]}: expected a Modality subclass named {name!r}")
        _LOADED[name] = modality
    return _LOADED[name]


class GroupsCollate:
    """Items ``(raw, label)`` -> ``{"values", "positions"}``: the raw inputs stacked and tokenized."""

    def __init__(self, tokenizer: Callable[[torch.Tensor], Groups]) -> None:
        self.tokenizer = tokenizer

    def __call__(self, items) -> dict:
        values, positions = check_groups(self.tokenizer(torch.stack([torch.as_tensor(item[0]) for item in items])))
        return {"values": values, "positions": positions}


__all__ = ["MODALITIES", "GroupsCollate", "Labelled", "Modality", "ModalityData", "get_modality", "modality_names"]
