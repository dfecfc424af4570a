"""Hugging Face ViT (any ``ViT*`` model: ``ViTModel``, ``ViTForImageClassification``,
``ViTForMaskedImageModeling``) on fastpretrain's fused attention (see
:mod:`~fastpretrain.interop.patch_hf`). Its heads and losses are small and stay HF's."""

from __future__ import annotations

from fastpretrain.interop.patch import Patcher, check_wrapped
from fastpretrain.interop.patch_hf import patch_attention


def patch_vit(model, *, attention: bool = True, loss: bool = True, masking: bool = True, strict: bool = False):
    """Patch a Hugging Face ``ViT*`` model in place; returns the :class:`~fastpretrain.interop.patch.PatchReport`.

    Args:
        attention: swap the attention for the fused op (head widths in ``HEAD_DIMS``).
        loss, masking: unused (nothing of ViT's to fuse there; accepted so :func:`fastpretrain.patch`
            takes one set of options).
        strict: raise ValueError, changing nothing, if a part was refused (e.g. a head width).
    """
    check_wrapped(model)
    from transformers.models.vit import modeling_vit as hf

    if not isinstance(model, hf.ViTPreTrainedModel):
        raise TypeError(f"model: expected a Hugging Face ViT* model, got {type(model).__name__}")
    patcher = Patcher(model, "vit")
    if attention:
        patch_attention(patcher, model, (hf.ViTAttention,))
    if loss:
        patcher.leave("loss", "ViT's classifier and pixel losses are small; they stay HF's", refused=False)
    return patcher.finish(strict)
