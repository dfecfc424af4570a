"""Hugging Face GPT-2 (any ``GPT2*`` model) on fastpretrain's ops: causal self-attention (and
cross-attention) on the fused attention (see :mod:`~fastpretrain.interop.patch_hf`; one-token
decoding steps on a KV cache work, chunked prefill is refused), and for ``GPT2LMHeadModel`` in
training mode with labels, the LM head and HF's shifted causal-LM loss in the fused linear
cross-entropy (``num_items_in_batch`` from HF ``Trainer`` honoured as HF's loss does; ``logits`` is
then None, as in Liger-Kernel). Eval mode, or no labels, runs HF's head and returns logits."""

from __future__ import annotations

import torch
from torch import nn

from fastpretrain.interop.patch import Patcher, check_wrapped
from fastpretrain.interop.patch_hf import bind_args, hf_output, kernel_loss_rows, patch_attention
from fastpretrain.nn import LinearCrossEntropyLoss


def causal_lm_loss(lm_head: nn.Linear, hidden_states, labels, num_items_in_batch=None, shift_labels=None,
                   ignore_index: int = -100):  # fmt: skip
    """HF's ``ForCausalLMLoss`` on ``lm_head(hidden_states)``, fused: labels shifted left by one
    (or ``shift_labels`` as given), the sum over labelled tokens divided by ``num_items_in_batch``
    when given, else their mean."""
    if shift_labels is None:
        shift_labels = nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    hidden, flat = hidden_states.flatten(0, 1), shift_labels.flatten().to(hidden_states.device)
    rows = kernel_loss_rows(flat, ignore_index)
    if rows is not None:
        hidden, flat = hidden[rows], flat[rows]
    rows_loss = LinearCrossEntropyLoss(ignore_index, reduction="sum")(hidden, lm_head.weight, flat, lm_head.bias)
    if num_items_in_batch is None:
        return rows_loss / (flat != ignore_index).sum()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(rows_loss.device)
    return rows_loss / num_items_in_batch


def _lm_forward(self, *args, **kwargs):
    from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions

    named = bind_args(self, args, kwargs)
    labels = named.pop("labels", None)
    if labels is None or not self.training:
        return type(self).forward(self, *args, **kwargs)
    return_dict = named.pop("return_dict", None)
    named.pop("logits_to_keep", None)
    named["use_cache"] = False
    outputs = self.transformer(**named, return_dict=True)
    loss = causal_lm_loss(self.lm_head, outputs.last_hidden_state, labels, named.get("num_items_in_batch"),
                          named.get("shift_labels"))  # fmt: skip
    out = CausalLMOutputWithCrossAttentions(loss=loss, logits=None, cache=None, hidden_states=outputs.hidden_states,
                                            attentions=outputs.attentions,
                                            cross_attentions=outputs.cross_attentions)  # fmt: skip
    return hf_output(out, return_dict, self.config)


def patch_gpt2(model, *, attention: bool = True, loss: bool = True, masking: bool = True, strict: bool = False):
    """Patch a Hugging Face ``GPT2*`` model in place; returns the :class:`~fastpretrain.interop.patch.PatchReport`.

    Args:
        attention: swap the attention for the fused op (head widths in ``HEAD_DIMS``).
        loss: fuse the LM head and its loss (``GPT2LMHeadModel``).
        masking: unused (GPT-2 has no MAE masking; accepted so :func:`fastpretrain.patch` takes one set of options).
        strict: raise ValueError, changing nothing, if a part was refused (e.g. a head width).
    """
    check_wrapped(model)
    from transformers.models.gpt2 import modeling_gpt2 as hf

    if not isinstance(model, hf.GPT2PreTrainedModel):
        raise TypeError(f"model: expected a Hugging Face GPT2* model, got {type(model).__name__}")
    patcher = Patcher(model, "gpt2")
    if attention:
        patch_attention(patcher, model, (hf.GPT2Attention,))
    if loss:
        if type(model) is not hf.GPT2LMHeadModel:
            patcher.leave("loss", f"{type(model).__name__}'s loss is not fused (fused: GPT2LMHeadModel)", refused=False)
        elif not isinstance(model.lm_head, nn.Linear):
            patcher.leave("lm_head", f"is a {type(model.lm_head).__name__}, not the nn.Linear HF builds")
        else:
            patcher.bind(model, _lm_forward)
            patcher.done("fused linear cross-entropy, shifted labels (training mode with labels)", "lm_head + loss")
    return patcher.finish(strict)
