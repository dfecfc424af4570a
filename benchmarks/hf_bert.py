"""Shared by bench_bert.py and quality_bert.py: Hugging Face ``BertForPreTraining`` behind our
batch interface (padded batches from ``collate_padded``), built with the same initial weights as ours."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastpretrain.interop.hf import bert_config_to_hf, bert_from_hf_model
from fastpretrain.models import BertConfig, BertForPreTraining


class HFPretraining(nn.Module):
    """``model(**padded_batch)`` for a ``transformers.BertForPreTraining``: with labels
    {"loss" (HF's MLM + NSP), "items", "mlm_loss", "nsp_loss"}, without {"mlm_logits" at
    ``mlm_positions``, "nsp_logits", "cls_hidden"}, as :class:`BertForPreTraining` returns."""

    def __init__(self, hf) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, input_ids, token_type_ids, attention_mask, mlm_positions, mlm_labels=None, nsp_labels=None):
        if mlm_labels is None:
            out = self.hf(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                          output_hidden_states=True)  # fmt: skip
            return {"mlm_logits": out.prediction_logits.flatten(0, 1)[mlm_positions],
                    "nsp_logits": out.seq_relationship_logits, "cls_hidden": out.hidden_states[-1][:, 0]}  # fmt: skip
        labels = torch.full((input_ids.numel(),), -100, dtype=torch.long, device=input_ids.device)
        labels[mlm_positions] = mlm_labels
        out = self.hf(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                      labels=labels.view_as(input_ids), next_sentence_label=nsp_labels)  # fmt: skip
        nsp_loss = F.cross_entropy(out.seq_relationship_logits.float(), nsp_labels).detach()
        return {"loss": out.loss, "items": attention_mask.sum(), "mlm_loss": out.loss.detach() - nsp_loss, "nsp_loss": nsp_loss}


def twin_models(config: BertConfig, seed: int, attn_implementation: str = "sdpa") -> tuple[BertForPreTraining, HFPretraining]:
    """(ours, HF) holding the same initial weights: HF's initialisation under ``seed``, converted."""
    import transformers

    torch.manual_seed(seed)
    fields = {k: v for k, v in bert_config_to_hf(config).items() if k != "model_type"}
    hf = transformers.BertForPreTraining._from_config(transformers.BertConfig(**fields), attn_implementation=attn_implementation)
    return bert_from_hf_model(hf), HFPretraining(hf)
