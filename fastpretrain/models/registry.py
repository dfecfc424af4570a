"""The model registry (timm's ``create_model`` / ``list_models``: one registration per size) and
the one on-disk format of every model: ``model.safetensors`` (the state dict) beside
``config.json`` (``"model"``: the model type, then every field of the config, then any of the
:data:`EXTRAS` a training run adds, such as its data normalisation), each written to a temporary
file and renamed. Loading checks the whole file before building anything: a missing, misspelled or
invalid field, or a weight that does not fit, is a ValueError naming the file and the field or key."""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fastpretrain.atomic import atomic_path, atomic_write

WEIGHTS, CONFIG = "model.safetensors", "config.json"
# What config.json may hold beside "model" and the config's fields: a run's additions (the MAE CLI's
# data source and normalisation; the masked CLI's modality and tokenizer settings). Any other name is
# refused on writing and on loading (a misspelled field).
EXTRAS = ("data", "mean", "std", "modality", "tokenizer")
_MODELS: dict[str, tuple[type, dict]] = {}


class Pretrained:
    """``save_pretrained`` / ``from_pretrained`` for a model class with a ``model_type`` name, a
    dataclass ``config_class`` and a ``config`` attribute, built as ``cls(config)``."""

    model_type: ClassVar[str]
    config_class: ClassVar[type]

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """``directory/model.safetensors`` and ``directory/config.json`` (extras already in it kept); the directory."""
        directory = Path(directory)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(directory / WEIGHTS) as tmp:
            save_file(tensors, tmp, metadata={"format": "pt"})
        write_config(directory / CONFIG, self.config)
        return directory

    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike, map_location="cpu"):
        """A model saved by :meth:`save_pretrained`: its folder or its ``model.safetensors``, or a
        Trainer checkpoint folder ``out_dir/checkpoints/step_N`` (config from ``out_dir/config.json``)."""
        file, config_file = _checkpoint_files(checkpoint)
        model = cls(_saved_config(cls, config_file))
        return model._load_checked(read_weights(file, map_location),
                                   f"checkpoint: {file} does not fit the config in {config_file}")  # fmt: skip

    def load_weights(self, weights, map_location="cpu"):
        """Load ``weights`` (a state dict, a ``model.safetensors`` or its folder) into this model,
        e.g. ``create_model(name).load_weights(dir)``. They are checked first: any missing,
        unexpected or mis-shaped tensor is a ValueError naming the file and the keys, and nothing is loaded."""
        if isinstance(weights, Mapping):
            return self._load_checked(weights, f"weights: the state dict does not fit this {type(self).__name__}")
        path = Path(weights)
        file = path / WEIGHTS if path.is_dir() else path
        return self._load_checked(read_weights(file, map_location, "weights"),
                                  f"weights: {file} does not fit this {type(self).__name__}")  # fmt: skip

    def _load_checked(self, state: Mapping, what: str):
        check_weights(state, self.state_dict(), what)
        self.load_state_dict(state)
        return self


def _checkpoint_files(checkpoint) -> tuple[Path, Path]:
    path = Path(checkpoint)
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint: no {WEIGHTS} at {str(path)!r}")
    candidates = [file.parent / CONFIG, file.parent.parent.parent / CONFIG]
    config_file = next((p for p in candidates if p.is_file()), None)
    if config_file is None:
        raise FileNotFoundError(f"checkpoint: no {CONFIG} beside {file} or in its run folder "
                                f"({', '.join(map(str, candidates))})")  # fmt: skip
    return file, config_file


def read_json(path: Path, argument: str = "checkpoint") -> dict:
    """The JSON object in ``path``; ValueError naming ``argument`` and the file if it is not one."""
    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{argument}: {path} is not valid JSON ({e})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{argument}: {path} holds a {type(saved).__name__}, expected a JSON object")  # noqa: TRY004
    return saved


def read_weights(file: Path, map_location="cpu", argument: str = "checkpoint") -> dict:
    """The tensors of the safetensors ``file``; FileNotFoundError or ValueError naming ``argument`` and the file."""
    if not Path(file).is_file():
        raise FileNotFoundError(f"{argument}: no weights file {str(file)!r}")
    try:
        return load_file(file, device=str(map_location))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{argument}: {file} is not a readable safetensors file ({e})") from None


def _saved_config(cls, path: Path):
    """The config in config.json ``path`` for model class ``cls``: every field present, none
    unknown but :data:`EXTRAS`, each valid (ValueError naming the file and the field)."""
    saved = read_json(path)
    if saved.get("model") != cls.model_type:
        raise ValueError(f"checkpoint: {path} holds a {saved.get('model')!r} model, not {cls.model_type!r}"
                         + ("" if "model" in saved else " (no 'model' field: not a fastpretrain save_pretrained "
                            "folder; Hugging Face or timm weights convert with fastpretrain.interop)"))  # fmt: skip
    name, names = cls.config_class.__name__, [f.name for f in fields(cls.config_class)]
    unknown = sorted(set(saved) - set(names) - {"model", *EXTRAS})
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" nor an extra ({', '.join(EXTRAS)})"
        raise ValueError(f"checkpoint: {path}: {unknown[0]!r} is not a field of {name}{hint}")
    missing = [n for n in names if n not in saved]
    if missing:
        raise ValueError(f"checkpoint: {path} lacks the {name} field{'s' * (len(missing) > 1)} {', '.join(missing)}")
    try:
        return cls.config_class(**{n: saved[n] for n in names})
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint: {path}: {e}") from None


def check_weights(state: Mapping, expected: dict, what: str) -> None:
    """ValueError ``what`` listing missing and unexpected names and shape mismatches, if any."""
    problems = []
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} (config: {tuple(expected[k].shape)})"
              for k in expected if k in state and state[k].shape != expected[k].shape]  # fmt: skip
    for label, names in (("missing", missing), ("unexpected", unexpected), ("shape of", shapes)):
        if names:
            problems.append(f"{label} {', '.join(names[:4])}{f' and {len(names) - 4} more' if len(names) > 4 else ''}")
    if problems:
        raise ValueError(f"{what}: {'; '.join(problems)}")


def write_config(path: str | os.PathLike, config, **extra) -> None:
    """``config.json`` of a model's config: ``{"model": type, **fields, **extra}``, atomically,
    keeping the :data:`EXTRAS` already in the file (e.g. the data normalisation of a training run)."""
    classes = {cls.config_class: cls for cls, _ in _MODELS.values()}
    if type(config) not in classes:
        raise TypeError(f"config: expected the config of a registered model, got {type(config).__name__}")
    unknown = sorted(set(extra) - set(EXTRAS))
    if unknown:
        raise TypeError(f"{unknown[0]}: not a config.json extra (expected some of {', '.join(EXTRAS)})")
    path = Path(path)
    old = read_json(path) if path.is_file() else {}
    kept = {k: old[k] for k in EXTRAS if k in old}
    with atomic_write(path, "w") as f:
        json.dump({**kept, **extra, "model": classes[type(config)].model_type, **asdict(config)}, f, indent=2)


def register_model(name: str, cls: type, **defaults) -> None:
    """Register size ``name``: ``create_model(name)`` builds ``cls(cls.config_class(**defaults))``."""
    if name in _MODELS:
        raise ValueError(f"name: {name!r} is registered already")
    _MODELS[name] = (cls, defaults)


def _entry(name: str) -> tuple[type, dict]:
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        raise ValueError(f"name: no model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else
                         f"; registered: {', '.join(sorted(_MODELS))}"))  # fmt: skip
    return _MODELS[name]


def model_class(name: str) -> type:
    """The model class registered ``name`` builds (its ``config_class`` is the config's type)."""
    return _entry(name)[0]


def model_config(name: str, **overrides):
    """The config of registered model ``name`` with ``overrides`` (config fields) applied."""
    cls, defaults = _entry(name)
    known = {f.name for f in fields(cls.config_class)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"{unknown[0]}: not a field of {cls.config_class.__name__} (model {name!r})")
    return cls.config_class(**{**defaults, **overrides})


def create_model(name: str, **overrides) -> torch.nn.Module:
    """A new model of registered size ``name`` (see :func:`list_models`), config fields overridden by ``overrides``."""
    return _entry(name)[0](model_config(name, **overrides))


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the shell-style ``pattern``, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))
