"""WordPiece tokenizers: trained ones round-trip, carry the special tokens and are the same in every
run; vocab.txt reloads to the same ids, BertTokenizerFast's included; a vocabulary without BERT's
special tokens is refused."""

import pytest
from bert_corpus import SPECIALS, TEXTS

from fastpretrain.data import load_wordpiece, save_wordpiece, train_wordpiece
from fastpretrain.data.wordpiece import vocab_list


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
