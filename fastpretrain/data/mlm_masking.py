"""BERT's masked-LM corruption of one token sequence, drawn from a numpy Generator, so a dataset can
seed it per example (the same masks in every epoch and on every rank)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from fastpretrain.data.wordpiece import CONTINUATION, special_ids, vocab_list


@dataclass(frozen=True)
class MlmMasking:
    """BERT's masked-LM corruption: ``probability`` of the non-special tokens are selected (at
    least one), of which 80% become [MASK], 10% a random non-special token, 10% stay. With
    ``whole_word``, whole words are selected (a piece and the ``##`` pieces after it), skipping a
    word that would overshoot the count, as Google's whole-word masking does."""

    mask_id: int
    selectable: np.ndarray  # bool [V]: may be selected (all but [CLS], [SEP], [PAD], [MASK])
    continuation: np.ndarray  # bool [V]: a "##" piece
    random_ids: np.ndarray  # int32: what a random replacement draws from (no special token)
    probability: float = 0.15
    whole_word: bool = False

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer, probability: float = 0.15, whole_word: bool = False) -> MlmMasking:
        if not 0.0 < probability < 1.0:
            raise ValueError(f"mlm_probability: expected a float in (0, 1), got {probability!r}")
        ids = special_ids(tokenizer)
        pieces = vocab_list(tokenizer)
        selectable = np.ones(len(pieces), dtype=bool)
        selectable[[ids[t] for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]")]] = False
        continuation = np.array([p.startswith(CONTINUATION) for p in pieces], dtype=bool)
        special = np.zeros(len(pieces), dtype=bool)
        special[[i for i in ids.values() if i is not None]] = True
        random_ids = np.flatnonzero(~special).astype(np.int32)
        return cls(ids["[MASK]"], selectable, continuation, random_ids, probability, bool(whole_word))

    def __call__(self, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(corrupted ids, selected positions ascending, original ids there) of one sequence."""
        candidates = np.flatnonzero(self.selectable[ids])
        count = max(1, round(len(candidates) * self.probability))
        if self.whole_word:
            positions = self._whole_words(ids, candidates, count, rng)
        else:
            positions = np.sort(rng.choice(candidates, size=min(count, len(candidates)), replace=False))
        labels = ids[positions]
        out = ids.copy()
        r = rng.random(len(positions))
        out[positions[r < 0.8]] = self.mask_id
        random = positions[r >= 0.9]
        out[random] = rng.choice(self.random_ids, size=len(random))
        return out, positions, labels

    def _whole_words(self, ids, candidates, count, rng) -> np.ndarray:
        follows = np.zeros(len(candidates), dtype=bool)  # continues the word of the previous candidate
        follows[1:] = self.continuation[ids[candidates[1:]]] & (np.diff(candidates) == 1)
        starts = np.flatnonzero(~follows)
        ends = np.append(starts[1:], len(candidates))
        chosen, total = [], 0
        for w in rng.permutation(len(starts)):
            size = ends[w] - starts[w]
            if total + size > count:
                continue
            chosen.append(candidates[starts[w] : ends[w]])
            total += size
            if total == count:
                break
        if not chosen:  # every word is longer than the count: take the shortest one
            w = np.argmin(ends - starts)
            chosen.append(candidates[starts[w] : ends[w]])
        return np.sort(np.concatenate(chosen))
