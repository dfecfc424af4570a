"""Packed and padded batches: BERT's examples give the same batch both ways with BERT's fields, GPT's
packed documents (input_ids alone) pack as the varlen path needs, and malformed examples are refused."""

import numpy as np
import pytest
import torch
from bert_corpus import write_corpus, write_vocab

from fastpretrain.data import BertExamples, collate_packed, collate_padded, load_wordpiece


def test_packed_batch_equals_padded_batch(tmp_path):
    tokenizer = load_wordpiece(write_vocab(tmp_path / "vocab.txt"))
    ds = BertExamples.build(write_corpus(tmp_path / "corpus.txt"), tokenizer, max_len=24, heldout=0.1,
                            cache_dir=tmp_path / "cache", progress=False)  # fmt: skip
    examples = [ds[i] for i in range(5)]
    packed, padded = collate_packed(examples), collate_padded(examples, pad_id=0)
    assert set(packed) == {"input_ids", "token_type_ids", "position_ids", "cu_seqlens", "max_seqlen", "mlm_positions",
                           "mlm_labels", "nsp_labels"}  # fmt: skip
    assert set(padded) == {"input_ids", "token_type_ids", "attention_mask", "mlm_positions", "mlm_labels", "nsp_labels"}
    lengths = [len(e["input_ids"]) for e in examples]
    assert packed["cu_seqlens"].tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist()
    assert packed["cu_seqlens"].dtype == torch.int32 and packed["max_seqlen"] == max(lengths)
    mask = padded["attention_mask"].bool()
    assert mask.sum(1).tolist() == lengths
    for key in ("input_ids", "token_type_ids"):
        assert torch.equal(packed[key], padded[key][mask])
    assert torch.equal(packed["position_ids"], torch.arange(mask.shape[1]).expand_as(mask)[mask])
    assert torch.equal(packed["input_ids"][packed["mlm_positions"]], padded["input_ids"].flatten()[padded["mlm_positions"]])
    assert torch.equal(packed["mlm_labels"], padded["mlm_labels"])
    assert torch.equal(packed["nsp_labels"], padded["nsp_labels"])


def test_packed_documents_of_a_causal_model():
    """GPT's packed documents: int32 token arrays (a memory-mapped corpus's slices), nothing else."""
    docs = [np.array([5, 6, 7], dtype=np.int32), np.array([9], dtype=np.int32), np.arange(10, 15, dtype=np.int32)]
    packed = collate_packed([{"input_ids": d} for d in docs])
    assert set(packed) == {"input_ids", "position_ids", "cu_seqlens", "max_seqlen"}
    assert packed["input_ids"].dtype == torch.int64 and packed["input_ids"].tolist() == [5, 6, 7, 9, 10, 11, 12, 13, 14]
    assert packed["position_ids"].tolist() == [0, 1, 2, 0, 0, 1, 2, 3, 4]
    assert packed["cu_seqlens"].tolist() == [0, 3, 4, 9] and packed["max_seqlen"] == 5
    padded = collate_padded([{"input_ids": d} for d in docs], pad_id=-1)
    assert padded["input_ids"].tolist() == [[5, 6, 7, -1, -1], [9, -1, -1, -1, -1], [10, 11, 12, 13, 14]]
    assert padded["attention_mask"].sum(1).tolist() == [3, 1, 5]


def test_fields_are_told_apart_by_name():
    """``*_ids`` per token, ``*_positions`` moved into the batch, numbers stacked under the plural
    name, other arrays concatenated, floats kept as floats."""
    examples = [
        {"input_ids": np.array([1, 2, 3]), "segment_ids": np.array([0, 0, 1]), "span_positions": np.array([0, 2]),
         "span_labels": np.array([7, 8]), "weight": np.float32(0.5)},
        {"input_ids": np.array([4, 5]), "segment_ids": np.array([0, 1]), "span_positions": np.array([1]),
         "span_labels": np.array([9]), "weight": np.float32(2.0)},
    ]  # fmt: skip
    packed = collate_packed(examples)
    assert packed["segment_ids"].tolist() == [0, 0, 1, 0, 1]
    assert packed["span_positions"].tolist() == [0, 2, 4] and packed["span_labels"].tolist() == [7, 8, 9]
    assert packed["weights"].dtype == torch.float32 and packed["weights"].tolist() == [0.5, 2.0]
    padded = collate_padded(examples)
    assert padded["segment_ids"].tolist() == [[0, 0, 1], [0, 1, 0]] and padded["span_positions"].tolist() == [0, 2, 4]


@pytest.mark.parametrize("examples,match", [
    ([], "at least one example"),
    ([{"ids": np.arange(3)}], "needs 'input_ids'"),
    ([{"input_ids": np.arange(3), "token_type_ids": np.zeros(2)}], r"token_type_ids of example 0 has shape \(2,\)"),
    ([{"input_ids": np.arange(3)}, {"input_ids": np.arange(2), "nsp_label": 1}], "example 1 has the fields"),
])  # fmt: skip
def test_malformed_examples_are_refused(examples, match):
    for collate in (collate_packed, collate_padded):
        with pytest.raises(ValueError, match=match):
            collate(examples)
