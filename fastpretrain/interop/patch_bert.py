"""Hugging Face BERT (any ``Bert*`` model) on fastpretrain's ops: self- and cross-attention on the
fused attention (see :mod:`~fastpretrain.interop.patch_hf`), and for ``BertForMaskedLM`` /
``BertForPreTraining`` in training mode with labels, the MLM head on the masked tokens only with the
fused linear cross-entropy (the [N, 30522] logits are never formed; ``logits`` is then None, as in
Liger-Kernel). Eval mode, or no labels, runs HF's head and returns logits as before."""

from __future__ import annotations

from torch import nn

from fastpretrain.interop.patch import Patcher, check_wrapped
from fastpretrain.interop.patch_hf import bind_args, hf_output, kernel_loss_rows, patch_attention
from fastpretrain.nn import LinearCrossEntropyLoss


def mlm_loss(predictions, sequence_output, labels):
    """HF's MLM loss (mean cross-entropy over labels != -100) through BERT's prediction head, fused."""
    hidden, flat = sequence_output.flatten(0, 1), labels.flatten().to(sequence_output.device)
    rows = kernel_loss_rows(flat)
    if rows is not None:
        hidden, flat = hidden[rows], flat[rows]
    decoder = predictions.decoder
    return LinearCrossEntropyLoss()(predictions.transform(hidden), decoder.weight, flat, decoder.bias)


def _masked_lm_forward(self, *args, **kwargs):
    from transformers.modeling_outputs import MaskedLMOutput

    named = bind_args(self, args, kwargs)
    labels = named.pop("labels", None)
    if labels is None or not self.training:
        return type(self).forward(self, *args, **kwargs)
    return_dict = named.pop("return_dict", None)
    outputs = self.bert(**named, return_dict=True)
    loss = mlm_loss(self.cls.predictions, outputs[0], labels)
    out = MaskedLMOutput(loss=loss, logits=None, hidden_states=outputs.hidden_states, attentions=outputs.attentions)
    return hf_output(out, return_dict, self.config)


def _pretraining_forward(self, *args, **kwargs):
    from transformers.models.bert.modeling_bert import BertForPreTrainingOutput

    named = bind_args(self, args, kwargs)
    labels, nsp_labels = named.pop("labels", None), named.pop("next_sentence_label", None)
    if labels is None or nsp_labels is None or not self.training:
        return type(self).forward(self, *args, **kwargs)
    return_dict = named.pop("return_dict", None)
    outputs = self.bert(**named, return_dict=True)
    sequence_output, pooled_output = outputs[:2]
    nsp_logits = self.cls.seq_relationship(pooled_output)
    nsp_loss = nn.functional.cross_entropy(nsp_logits.view(-1, 2), nsp_labels.view(-1))
    loss = mlm_loss(self.cls.predictions, sequence_output, labels) + nsp_loss
    out = BertForPreTrainingOutput(loss=loss, prediction_logits=None, seq_relationship_logits=nsp_logits,
                                   hidden_states=outputs.hidden_states, attentions=outputs.attentions)  # fmt: skip
    return hf_output(out, return_dict, self.config)


def patch_bert(model, *, attention: bool = True, loss: bool = True, masking: bool = True, strict: bool = False):
    """Patch a Hugging Face ``Bert*`` model in place; returns the :class:`~fastpretrain.interop.patch.PatchReport`.

    Args:
        attention: swap self- and cross-attention for the fused op (head widths in ``HEAD_DIMS``).
        loss: fuse the MLM head and its loss (``BertForMaskedLM``, ``BertForPreTraining``).
        masking: unused (BERT has no MAE masking; accepted so :func:`fastpretrain.patch` takes one set of options).
        strict: raise ValueError, changing nothing, if a part was refused (e.g. a head width).
    """
    check_wrapped(model)
    from transformers.models.bert import modeling_bert as hf

    if not isinstance(model, hf.BertPreTrainedModel):
        raise TypeError(f"model: expected a Hugging Face Bert* model, got {type(model).__name__}")
    patcher = Patcher(model, "bert")
    if attention:
        patch_attention(patcher, model, (hf.BertSelfAttention, hf.BertCrossAttention))
    if loss:
        heads = {hf.BertForMaskedLM: _masked_lm_forward, hf.BertForPreTraining: _pretraining_forward}
        forward = heads.get(type(model))
        decoder = getattr(getattr(getattr(model, "cls", None), "predictions", None), "decoder", None)
        if forward is None:
            patcher.leave(
                "loss",
                f"{type(model).__name__} has no MLM head (fused: BertForMaskedLM, BertForPreTraining)",
                refused=False,
            )
        elif not isinstance(decoder, nn.Linear):
            patcher.leave("cls.predictions.decoder", f"is a {type(decoder).__name__}, not the nn.Linear HF builds")
        else:
            patcher.bind(model, forward)
            patcher.done("fused linear cross-entropy on the masked tokens (training mode with labels)",
                         "cls.predictions + loss")  # fmt: skip
    return patcher.finish(strict)
