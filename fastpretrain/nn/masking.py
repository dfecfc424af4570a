"""MAE's random patch masking, on the fused ops: :func:`random_masking` (or
:func:`masking_from_noise`) draws the kept subset, :func:`gather_visible` gathers the kept
patches with their positions added, :func:`unshuffle_tokens` fills the mask tokens back in for
the decoder (see :mod:`fastpretrain.ops` for their contracts)."""

from __future__ import annotations

from fastpretrain.ops.masking import (
    Masking,
    check_mask_ratio,
    gather_visible,
    masking_from_noise,
    num_kept,
    random_masking,
    unshuffle_tokens,
)

__all__ = ["Masking", "check_mask_ratio", "gather_visible", "masking_from_noise", "num_kept", "random_masking",
           "unshuffle_tokens"]  # fmt: skip
