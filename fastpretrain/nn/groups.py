"""The one hand-off between a modality and the masked-modeling recipe: a tokenizer turns a batch of
samples into ``L`` groups (1-D patches of a time series, frame spans of a spectrogram, point groups
of a cloud), each with its raw content and where it sits. The recipe masks whole groups, encodes,
and scores the masked ones; it never looks inside a modality."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Groups(NamedTuple):
    """A tokenized batch.

    values: float [B, L, G], each group's content flattened (a patch's C x P values, a span's
        frames x mels, a point group's k x 3 offsets from its centre); the raw-value target.
    positions: float [B, L, P], where each group sits (its index for 1-D sequences, P = 1; its
        centre for point groups, P = 3); the positional embedding reads these.
    """

    values: torch.Tensor
    positions: torch.Tensor


def check_groups(groups: Groups) -> Groups:
    """``groups`` itself, after checking both fields are float [B, L, *] tensors of one batch and length
    on one device (a ValueError naming the field otherwise)."""
    values, positions = groups
    for name, t in (("values", values), ("positions", positions)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() != 3:
            got = f"{t.dtype} tensor of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"groups.{name}: expected a float [B, L, *] tensor, got {got}")
    if positions.shape[:2] != values.shape[:2]:
        raise ValueError(f"groups.positions: expected [B, L] = {tuple(values.shape[:2])} like values, "
                         f"got {tuple(positions.shape[:2])}")  # fmt: skip
    if positions.device != values.device:
        raise ValueError(f"groups.positions: on {positions.device}, values on {values.device}")
    return groups


__all__ = ["Groups", "check_groups"]
