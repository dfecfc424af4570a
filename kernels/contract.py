"""What the kernels and their ops must agree on: supported sizes, bit widths, limits and output
layouts, owned here by the kernels. Plain torch, no triton, so that the ops (and their pure-torch
references) import it where triton is absent (macOS) and follow the kernels exactly."""

import torch

# --- attention.py ----------------------------------------------------------------------------------

HEAD_DIMS = (16, 32, 64, 96, 128)  # the head dims the attention kernels are compiled and tested for
DROPOUT_BITS = 24  # a key is kept when the top 24 bits of its Philox draw are >= p * 2**24


def dropout_threshold(dropout_p: float) -> int:
    """The integer the top DROPOUT_BITS bits of a Philox draw are compared with (keep if >=)."""
    return min(round(dropout_p * 2**DROPOUT_BITS), 2**DROPOUT_BITS)


def attention_out_like(t: torch.Tensor) -> torch.Tensor:
    """The layout of every attention output and gradient: packed [total, H, D] contiguous, and dense
    [B, H, S, D] as a transposed [B, S, H, D] buffer, so merging heads afterwards is free."""
    if t.dim() == 3:
        return torch.empty(t.shape, dtype=t.dtype, device=t.device)
    b, h, s, d = t.shape
    return torch.empty(b, s, h, d, dtype=t.dtype, device=t.device).transpose(1, 2)


# --- masking.py ------------------------------------------------------------------------------------

MAX_SORT = 4096  # the longest noise row the masking kernel sorts in one program; the op sorts longer ones in torch

# --- word2vec.py -----------------------------------------------------------------------------------

MAX_EXP = 6.0  # word2vec.c's clamp of the logit

# --- points.py -------------------------------------------------------------------------------------

MAX_FPS_POINTS = 8192  # the largest cloud the FPS kernel holds in registers; the op samples larger ones in torch
MAX_KNN_K = 64  # the most neighbours the kNN kernel keeps (its sorted tile is at least k wide)
