"""MAE's random patch masking, on the fused ops: :func:`random_masking` (or
:func:`masking_from_noise`) draws the kept subset, :func:`gather_visible` gathers the kept
patches with their positions added, :func:`unshuffle_tokens` fills the mask tokens back in for
the decoder (see :mod:`fastpretrain.ops` for their contracts)."""

from __future__ import annotations

from fastpretrain.ops import Masking, gather_visible, masking_from_noise, random_masking, unshuffle_tokens


def num_kept(length: int, mask_ratio: float) -> int:
    """Patches kept of ``length`` at ``mask_ratio``: MAE's ``int(L * (1 - mask_ratio))``."""
    return int(length * (1 - mask_ratio))


def check_mask_ratio(mask_ratio, length: int) -> float:
    """``mask_ratio`` as a float in [0, 1) that keeps at least one of ``length`` patches (ValueError naming it)."""
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) or not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio: expected a float in [0, 1), got {mask_ratio!r}")
    if num_kept(length, mask_ratio) < 1:
        raise ValueError(f"mask_ratio: {mask_ratio} keeps no patch of {length}")
    return float(mask_ratio)


__all__ = ["Masking", "check_mask_ratio", "gather_visible", "masking_from_noise", "num_kept", "random_masking",
           "unshuffle_tokens"]  # fmt: skip
