"""Batches of variable-length sequences for any model: packed back to back for the varlen attention
path (no pad tokens: BERT's sentence pairs, GPT's packed documents), or padded to the longest one.

An example is a dict of numpy arrays and numbers; what a field holds is told by its name, as BERT's
and HF's fields are named:

- ``input_ids`` [n] (required) and every other ``*_ids`` field: one value per token of the sequence;
- ``*_positions``: indices into the sequence (e.g. BERT's MLM positions), moved to index the batch;
- a number per sequence: stacked into [B] under the plural name (``nsp_label`` -> ``nsp_labels``, as
  HF's collator turns ``label`` into ``labels``);
- any other array (e.g. ``mlm_labels``): concatenated over the batch.

Integer fields become int64 tensors (what embeddings and cross-entropy index with).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def collate_packed(examples: Sequence[dict]) -> dict:
    """The sequences back to back, no padding: per-token fields [total]; ``position_ids`` [total]
    (each token's position in its sequence); ``cu_seqlens`` int32 [B + 1] (sequence starts, then the
    total); ``max_seqlen`` int; ``*_positions`` as rows of the packed batch; the rest as above."""
    lengths, kinds = _fields(examples)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    batch = {}
    for key, kind in kinds.items():
        values = [e[key] for e in examples]
        if kind == "position":
            values = [v + start for v, start in zip(values, starts)]
        batch[_batch_key(key, kind)] = _tensor(np.stack(values) if kind == "sequence" else np.concatenate(values))
    batch.setdefault("position_ids", _tensor(np.concatenate([np.arange(n) for n in lengths])))
    batch["cu_seqlens"] = torch.from_numpy(starts.astype(np.int32))
    batch["max_seqlen"] = int(lengths.max())
    return batch


def collate_padded(examples: Sequence[dict], pad_id: int = 0) -> dict:
    """The same batch padded to its longest sequence S: per-token fields [B, S] (``input_ids`` padded
    with ``pad_id``, the others with 0); ``attention_mask`` int64 [B, S] (1 = real token);
    ``*_positions`` as flat indices into [B * S]; the rest as :func:`collate_packed`."""
    lengths, kinds = _fields(examples)
    b, s = len(examples), int(lengths.max())
    batch = {}
    for key, kind in kinds.items():
        values = [e[key] for e in examples]
        if kind == "token":
            grid = np.full((b, s), pad_id if key == "input_ids" else 0, dtype=np.result_type(*values))
            for row, v in enumerate(values):
                grid[row, : len(v)] = v
            batch[key] = _tensor(grid)
        elif kind == "position":
            batch[key] = _tensor(np.concatenate([v + row * s for row, v in enumerate(values)]))
        else:
            batch[_batch_key(key, kind)] = _tensor(np.stack(values) if kind == "sequence" else np.concatenate(values))
    batch["attention_mask"] = torch.from_numpy((np.arange(s) < lengths[:, None]).astype(np.int64))
    return batch


def _fields(examples: Sequence[dict]) -> tuple[np.ndarray, dict[str, str]]:
    """(sequence lengths [B], {field: "token" | "position" | "sequence" | "other"}), checked."""
    if not examples:
        raise ValueError("examples: expected at least one example, got none")
    keys = list(examples[0])
    if "input_ids" not in keys:
        raise ValueError(f"examples: each example needs 'input_ids', got the fields {keys}")
    kinds = {key: _kind(key, examples[0][key]) for key in keys}
    lengths = np.array([len(e["input_ids"]) for e in examples])
    for i, e in enumerate(examples):
        if list(e) != keys:
            raise ValueError(f"examples: example {i} has the fields {list(e)}, example 0 has {keys}")
        for key in (k for k, kind in kinds.items() if kind == "token"):
            if np.shape(e[key]) != (lengths[i],):
                raise ValueError(f"examples: {key} of example {i} has shape {np.shape(e[key])}, "
                                 f"its input_ids ({lengths[i]},)")  # fmt: skip
    return lengths, kinds


def _kind(key: str, value) -> str:
    if np.ndim(value) == 0:
        return "sequence"
    if key.endswith("_ids"):
        return "token"
    return "position" if key.endswith("_positions") else "other"


def _batch_key(key: str, kind: str) -> str:
    return key + "s" if kind == "sequence" and not key.endswith("s") else key


def _tensor(array: np.ndarray) -> torch.Tensor:
    array = np.asarray(array)
    return torch.from_numpy(np.ascontiguousarray(array.astype(np.int64) if array.dtype.kind in "iu" else array))
