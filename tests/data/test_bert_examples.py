"""BERT's sentence-pair examples: their structure, next-sentence origin and rate, held-out split, masks,
determinism, the fallback for unmarked documents, progress lines and bad input."""

import lzma
import re

import numpy as np
import pytest
from bert_corpus import TEXTS, origin, write_corpus, write_vocab

from fastpretrain.data import BertExamples, load_wordpiece, train_wordpiece


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


def test_examples_are_deterministic_by_seed(corpus, tmp_path):
    a, b = build(corpus, tmp_path / "a", seed=3), build(corpus, tmp_path / "b", seed=3)
    c = build(corpus, tmp_path / "c", seed=4)
    assert np.array_equal(a.index, b.index) and np.array_equal(a.tokens, b.tokens)
    for key in ("input_ids", "mlm_positions"):
        assert np.array_equal(a[7][key], b[7][key])
    assert not (np.array_equal(a.index, c.index) and np.array_equal(a[7]["input_ids"], c[7]["input_ids"]))


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
