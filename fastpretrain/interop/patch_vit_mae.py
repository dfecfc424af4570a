"""Hugging Face ViTMAE (``ViTMAEModel``, ``ViTMAEForPreTraining``) on fastpretrain's ops: encoder
and decoder attention on the fused attention (see :mod:`~fastpretrain.interop.patch_hf`; the
decoder has its own config, switched on its own), and MAE's masking on the fused masking ops: the
embeddings' random masking becomes :func:`~fastpretrain.nn.masking_from_noise` plus
:func:`~fastpretrain.nn.gather_visible` (positions added in the same pass), the decoder's
append-unshuffle-add becomes :func:`~fastpretrain.nn.unshuffle_tokens`.

The noise is HF's own draw (``torch.rand(B, L)``, or the ``noise`` argument), so a patched model
masks the same patches as HF from the same RNG state (HF's argsort is not stable; ours is, so a
tie in the noise could order two patches differently). ``interpolate_pos_encoding=True`` calls run
HF's masking (the fused ops take the stored position table)."""

from __future__ import annotations

import torch

from fastpretrain.interop.patch import Patcher, check_wrapped
from fastpretrain.interop.patch_hf import patch_attention
from fastpretrain.nn import gather_visible, masking_from_noise, unshuffle_tokens


def _embeddings_forward(self, pixel_values, noise=None, interpolate_pos_encoding=False):
    height, width = pixel_values.shape[2:]
    if interpolate_pos_encoding or (height, width) != tuple(self.image_size):
        return type(self).forward(self, pixel_values, noise, interpolate_pos_encoding)
    patches = self.patch_embeddings(pixel_values)
    batch, length, _ = patches.shape
    if noise is None:
        noise = torch.rand(batch, length, device=patches.device)
    masking = masking_from_noise(noise, self.config.mask_ratio)
    pos = self.position_embeddings
    visible = gather_visible(patches, pos[:, 1:], masking.ids_keep)
    cls = (self.cls_token + pos[:, :1]).to(visible.dtype).expand(batch, -1, -1)
    return torch.cat((cls, visible), dim=1), masking.mask, masking.ids_restore


def _decoder_forward(self, hidden_states, ids_restore, interpolate_pos_encoding=False):
    from transformers.models.vit_mae.modeling_vit_mae import ViTMAEDecoderOutput

    if interpolate_pos_encoding:
        return type(self).forward(self, hidden_states, ids_restore, interpolate_pos_encoding)
    x = unshuffle_tokens(self.decoder_embed(hidden_states), self.mask_token, self.decoder_pos_embed, ids_restore)
    for layer in self.decoder_layers:
        x = layer(x)
    logits = self.decoder_pred(self.decoder_norm(x))
    return ViTMAEDecoderOutput(logits=logits[:, 1:, :])


def patch_vit_mae(model, *, attention: bool = True, loss: bool = True, masking: bool = True, strict: bool = False):
    """Patch a Hugging Face ``ViTMAE*`` model in place; returns the :class:`~fastpretrain.interop.patch.PatchReport`.

    Args:
        attention: swap encoder and decoder attention for the fused op (head widths in ``HEAD_DIMS``).
        masking: the fused random masking + gather (embeddings) and unshuffle (decoder).
        loss: unused (MAE's pixel loss is elementwise; accepted so :func:`fastpretrain.patch` takes one set of options).
        strict: raise ValueError, changing nothing, if a part was refused (e.g. a head width).
    """
    check_wrapped(model)
    from transformers.models.vit_mae import modeling_vit_mae as hf

    if not isinstance(model, hf.ViTMAEPreTrainedModel):
        raise TypeError(f"model: expected a Hugging Face ViTMAE* model, got {type(model).__name__}")
    patcher = Patcher(model, "vit_mae")
    if attention:
        patch_attention(patcher, model, (hf.ViTMAEAttention,))
    if masking:
        for path, module in model.named_modules():
            if isinstance(module, hf.ViTMAEEmbeddings):
                patcher.bind(module, _embeddings_forward)
                patcher.done("fused random masking + visible-token gather with positions", path)
            elif isinstance(module, hf.ViTMAEDecoder):
                patcher.bind(module, _decoder_forward)
                patcher.done("fused mask-token unshuffle with decoder positions", path)
    if loss:
        patcher.leave("loss", "MAE's normalised-pixel MSE is elementwise; it stays HF's", refused=False)
    return patcher.finish(strict)
