"""MLM masking on many draws: BERT's 15% selection and 80/10/10 split, and whole-word masking."""

import numpy as np
import pytest
from bert_corpus import FILLERS, SPECIALS, write_vocab

from fastpretrain.data import MlmMasking, load_wordpiece


@pytest.fixture
def tokenizer(tmp_path):
    return load_wordpiece(write_vocab(tmp_path / "vocab.txt"))


def test_80_10_10_split_on_many_draws(tokenizer):
    masking = MlmMasking.from_tokenizer(tokenizer)
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
