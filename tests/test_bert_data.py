"""BERT data: WordPiece tokenizers, sentence splitting, sentence-pair examples, MLM masking, packing."""

import lzma
import re

import numpy as np
import pytest
import torch
from bert_corpus import FILLERS, SPECIALS, origin, write_corpus, write_vocab

from fastpretrain.data import (
    BertExamples, MlmMasking, collate_packed, collate_padded, load_wordpiece, save_wordpiece, split_sentences,
    train_wordpiece,
)  # fmt: skip
from fastpretrain.data.wordpiece import vocab_list

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "To be, or not to be: that is the question.",
    "All that glitters is not gold; the dog sleeps, the fox runs.",
] * 20


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.txt"), load_wordpiece(write_vocab(tmp_path / "vocab.txt"))


def build(corpus, tmp_path, **kw):
    path, tokenizer = corpus
    kw = {"max_len": 24, "heldout": 0.1, "cache_dir": tmp_path / "cache", "progress": False, **kw}
    return BertExamples.build(path, tokenizer, **kw)


def assert_fair_coin(labels, sigmas: float = 4.0) -> None:
    """The mean of n Bernoulli(1/2) labels lies within ``sigmas`` binomial standard deviations
    (0.5 / sqrt(n)) of 1/2: a false alarm 6e-5 of the time at 4, and the bound shrinks with n."""
    bound = sigmas * 0.5 / np.sqrt(len(labels))
    assert abs(np.mean(labels) - 0.5) < bound, f"rate {np.mean(labels):.4f} of {len(labels)} is 0.5 +- {bound:.4f}"


def test_trained_wordpiece_round_trips_and_has_the_special_tokens():
    tok = train_wordpiece(TEXTS, vocab_size=120, progress=False)
    assert [tok.token_to_id(t) for t in SPECIALS] == [0, 1, 2, 3, 4]
    text = "the quick brown fox jumps over the lazy dog."
    assert tok.decode(tok.encode(text, add_special_tokens=False).ids) == text
    pieces = tok.encode("foxes jumping", add_special_tokens=False).tokens  # unseen words: pieces, not [UNK]
    assert "[UNK]" not in pieces and any(p.startswith("##") for p in pieces)
    pair = tok.encode("the fox", "the dog")
    assert pair.tokens[0] == "[CLS]" and pair.tokens.count("[SEP]") == 2 and pair.type_ids[-1] == 1


def test_trained_wordpiece_is_the_same_in_every_run():
    """HF's trainer alone numbers the "##" pieces in hash-map order, which changed the vocabulary
    from call to call (and from run to run); a cut alphabet must not bring it back either."""
    texts = TEXTS + ["Zebras, quokkas and yaks graze; wolves howl at the moon.", "Naïve café owners serve crêpes."]
    runs = {tuple(vocab_list(train_wordpiece(texts, vocab_size=160, limit_alphabet=limit, progress=False)))
            for limit in (20, 1000) for _ in range(4)}  # fmt: skip
    assert len(runs) == 2
    tok = train_wordpiece(texts, vocab_size=160, limit_alphabet=20, progress=False)
    assert len({p.removeprefix("##") for p in vocab_list(tok) if len(p.removeprefix("##")) == 1}) == 20


def test_trained_wordpiece_equals_its_vocab_txt(tmp_path):
    tok = train_wordpiece(TEXTS, vocab_size=120, progress=False)
    reloaded = load_wordpiece(save_wordpiece(tok, tmp_path / "tok") / "vocab.txt")
    for text in [TEXTS[0], "Foxes JUMPING over dogs!", "the fox"]:
        assert tok.encode(text, "a dog").ids == reloaded.encode(text, "a dog").ids


def test_long_phases_log_progress_lines(corpus, tmp_path, capsys):
    """Without a TTY the progress bars are off: WordPiece training and example building still say
    what they do, and how far they got."""
    train_wordpiece(TEXTS, vocab_size=120)
    build(corpus, tmp_path, progress=True)
    build(corpus, tmp_path, progress=True, split="heldout")
    err = capsys.readouterr().err
    assert "[wordpiece] training 120 pieces on 80 texts" in err and "[wordpiece] trained" in err
    assert "[bert examples] building examples of 24 tokens" in err and "tokenized 60 documents" in err
    assert re.search(r"\[bert examples\] train: [\d,]+ examples from 54 documents", err)
    assert "[bert examples] heldout examples of" in err and "from the cache" in err


def test_vocab_txt_gives_bert_tokenizer_fast_ids(tmp_path):
    transformers = pytest.importorskip("transformers")
    save_wordpiece(train_wordpiece(TEXTS, vocab_size=150, progress=False), tmp_path / "tok")
    ours = load_wordpiece(tmp_path / "tok" / "vocab.txt")
    theirs = transformers.BertTokenizerFast(vocab=str(tmp_path / "tok" / "vocab.txt"))  # not vocab_file= (transformers 5)
    for text in ["The Quick brown Fox, naïve café!", "unseen words: zebra-like QUESTIONS?", TEXTS[2]]:
        assert ours.encode(text).ids == theirs(text)["input_ids"]
    assert ours.encode("a fox", "the dog").ids == theirs("a fox", "the dog")["input_ids"]


def test_vocab_without_special_tokens_is_rejected(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n")
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        load_wordpiece(tmp_path / "vocab.txt")


def test_sentence_splitter():
    text = 'Mr. Smith met Dr. J. Watson in the U.S. Army. "Run!" he said. Why? Because 3 men came. Then e.g. this one.'
    assert split_sentences(text) == ["Mr. Smith met Dr. J. Watson in the U.S. Army.", '"Run!" he said.', "Why?",
                                     "Because 3 men came.", "Then e.g. this one."]  # fmt: skip


def test_pairs_structure_segments_and_next_sentence_origin(corpus, tmp_path):
    ds = build(corpus, tmp_path)
    tok = corpus[1]
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    labels = []
    for i in range(len(ds)):
        ids, a_len, label = ds.pair(i)
        item = ds[i]
        assert 5 <= len(ids) <= 24
        assert ids[0] == cls and ids[a_len - 1] == sep and ids[-1] == sep and (ids == sep).sum() == 2
        assert (item["token_type_ids"] == (np.arange(len(ids)) >= a_len)).all()
        a = [origin(tok.id_to_token(int(t))) for t in ids[1 : a_len - 1]]
        b = [origin(tok.id_to_token(int(t))) for t in ids[a_len:-1]]
        a, b = [x for x in a if x], [x for x in b if x]
        assert len({d for d, _ in a}) <= 1 and len({d for d, _ in b}) <= 1  # each side from one document
        if a and b:
            if label == 0:  # B continues A in the same document
                assert a[0][0] == b[0][0] and a[-1][1] <= b[0][1]
            else:  # B from another document
                assert a[0][0] != b[0][0]
        labels.append(label)
    assert len(ds) > 300 and 0 < np.mean(labels) < 1


def test_random_next_rate_is_half(tmp_path):
    """Half the pairs take B from another document, checked on ~10,000 examples: 4 binomial
    standard deviations are +-0.02 there, and a 55% rate misses by twice that (+-0.1 on 412
    examples let it through)."""
    path = write_corpus(tmp_path / "big.txt", docs=600, sentences=30)
    tok = load_wordpiece(write_vocab(tmp_path / "vocab.txt", docs=600, sentences=30))
    ds = BertExamples.build(path, tok, max_len=16, heldout=0, cache_dir=tmp_path / "cache", progress=False)
    assert len(ds) > 9000
    assert_fair_coin(ds.index[:, 3])


def test_heldout_documents_are_disjoint_from_training(corpus, tmp_path):
    tok = corpus[1]
    docs = {}
    for split in ("train", "heldout"):
        ds = build(corpus, tmp_path, split=split)
        docs[split] = {origin(tok.id_to_token(int(t)))[0] for i in range(len(ds)) for t in ds.pair(i)[0]
                       if origin(tok.id_to_token(int(t)))}  # fmt: skip
    assert len(docs["heldout"]) == 6 and not docs["heldout"] & docs["train"]


def test_masking_rates_and_labels(corpus, tmp_path):
    ds = build(corpus, tmp_path)
    tok = corpus[1]
    specials = {tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]")}
    mask_id = tok.token_to_id("[MASK]")
    selected = candidates = masked = kept = 0
    for i in range(len(ds)):
        ids = ds.pair(i)[0]
        item = ds[i]
        pos = item["mlm_positions"]
        assert (np.diff(pos) > 0).all() and not any(int(ids[p]) in specials for p in pos)
        assert (item["mlm_labels"] == ids[pos]).all()  # labels are the original ids
        untouched = np.setdiff1d(np.arange(len(ids)), pos)
        assert (item["input_ids"][untouched] == ids[untouched]).all()
        selected += len(pos)
        candidates += sum(int(t) not in specials for t in ids)
        masked += (item["input_ids"][pos] == mask_id).sum()
        kept += (item["input_ids"][pos] == ids[pos]).sum()
    assert abs(selected / candidates - 0.15) < 0.02
    assert abs(masked / selected - 0.8) < 0.04 and abs(kept / selected - 0.1) < 0.03


def test_80_10_10_split_on_many_draws(corpus):
    masking = MlmMasking.from_tokenizer(corpus[1])
    rng = np.random.default_rng(0)
    ids = rng.integers(7, 7 + len(FILLERS), size=(400, 100))
    ids[:, 0] = 2
    ids[:, -1] = 3
    out = [masking(row, rng) for row in ids]
    sel = np.concatenate([row[p] for row, (_, p, _) in zip(ids, out)])
    new = np.concatenate([o[p] for o, p, _ in out])
    assert abs(len(sel) / (400 * 98) - 0.15) < 0.005
    assert abs((new == masking.mask_id).mean() - 0.8) < 0.015
    same = (new == sel).mean()  # 10% kept, plus random draws that hit the original (1/12 of 10%)
    assert abs(same - (0.1 + 0.1 / len(masking.random_ids))) < 0.015
    assert set(np.unique(new[(new != sel) & (new != masking.mask_id)])) <= set(masking.random_ids.tolist())


def test_whole_word_masking_selects_every_piece_of_a_word(tmp_path):
    vocab = SPECIALS + ["un", "##believ", "##able", "cat", "dog", "##s", "run", "##ning", "fast"]
    (tmp_path / "v.txt").write_text("\n".join(vocab))
    tok = load_wordpiece(tmp_path / "v.txt")
    text = " ".join(["unbelievable cats running fast dogs"] * 12)
    ids = np.array([2, *tok.encode(text, add_special_tokens=False).ids, 3])
    starts = np.array([not tok.id_to_token(int(t)).startswith("##") for t in ids])
    word = np.cumsum(starts)  # word number of each position
    whole = MlmMasking.from_tokenizer(tok, whole_word=True)
    plain = MlmMasking.from_tokenizer(tok)
    split_words = 0
    for seed in range(50):
        _, pos, _ = whole(ids, np.random.default_rng(seed))
        assert np.array_equal(np.flatnonzero(np.isin(word, word[pos])), pos)  # every piece of the chosen words
        assert abs(len(pos) - 0.15 * (len(ids) - 2)) <= 3
        _, pos, _ = plain(ids, np.random.default_rng(seed))
        split_words += not np.array_equal(np.flatnonzero(np.isin(word, word[pos])), pos)
    assert split_words > 40  # token-level masking does split words: the check above has teeth


def test_examples_are_deterministic_by_seed(corpus, tmp_path):
    a, b = build(corpus, tmp_path / "a", seed=3), build(corpus, tmp_path / "b", seed=3)
    c = build(corpus, tmp_path / "c", seed=4)
    assert np.array_equal(a.index, b.index) and np.array_equal(a.tokens, b.tokens)
    for key in ("input_ids", "mlm_positions"):
        assert np.array_equal(a[7][key], b[7][key])
    assert not (np.array_equal(a.index, c.index) and np.array_equal(a[7]["input_ids"], c[7]["input_ids"]))


def test_packed_batch_equals_padded_batch(corpus, tmp_path):
    ds = build(corpus, tmp_path)
    examples = [ds[i] for i in range(5)]
    packed, padded = collate_packed(examples), collate_padded(examples, pad_id=0)
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


def test_corpus_without_document_marks_falls_back_to_chunks(corpus, tmp_path):
    flat = tmp_path / "flat.txt.xz"  # the same sentences, no blank line: one document
    with lzma.open(flat, "wt") as f:
        f.write("\n".join(line for line in corpus[0].read_text().splitlines() if line))
    ds = BertExamples.build(flat, corpus[1], max_len=24, heldout=0.1, cache_dir=tmp_path / "cache", progress=False)
    assert len(ds) > 300
    assert_fair_coin(ds.index[:, 3])


def test_bad_input(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BertExamples.build(tmp_path / "missing.txt", corpus[1], cache_dir=tmp_path)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="holds no text"):
        BertExamples.build(tmp_path / "empty.txt", corpus[1], cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="max_len"):
        build(corpus, tmp_path, max_len=4)
    with pytest.raises(ValueError, match="split"):
        build(corpus, tmp_path, split="test")
