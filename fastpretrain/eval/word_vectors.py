"""Word-vector evaluations with gensim's semantics, so numbers compare with gensim's: analogies
(questions-words.txt, word2vec.c's compute-accuracy) and similarity correlation (WordSim-353,
SimLex-999). All questions of a file are answered in one batched top-k on the vectors' device.

Case-insensitive matching upper-cases words, as gensim does (not lower-cases: they differ for a
few letters such as "ß"); of several case variants in the vocabulary the first, i.e. the most
frequent, stands for all of them.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from fastpretrain.models.keyed_vectors import KeyedVectors

_TOP = 5  # gensim looks at the 5 best answers, skipping case variants of the question words


def _vocab(kv: KeyedVectors, restrict_vocab: int | None, case_insensitive: bool) -> tuple[dict[str, int], torch.Tensor]:
    """gensim's lookup over the first ``restrict_vocab`` words (key -> index of the first word with
    that key), and each of those words' canonical index (the first word sharing its key)."""
    if restrict_vocab is not None and (not isinstance(restrict_vocab, int) or restrict_vocab < 1):
        raise ValueError(f"restrict_vocab: expected None or an int >= 1, got {restrict_vocab!r}")
    lookup: dict[str, int] = {}
    words = kv.words[:restrict_vocab]
    canon = [lookup.setdefault(w.upper() if case_insensitive else w, i) for i, w in enumerate(words)]
    return lookup, torch.tensor(canon, device=kv.vectors.device)


def evaluate_word_analogies(kv: KeyedVectors, path: str | os.PathLike, restrict_vocab: int | None = 300_000,
                            case_insensitive: bool = True, method: str = "add") -> dict:  # fmt: skip
    """Accuracy on "a b c d" questions (a is to b as c is to d) grouped by ": section" lines, as
    gensim's ``evaluate_word_analogies``: questions with a word outside the first
    ``restrict_vocab`` words are skipped; the answer is the best candidate among those words that
    is not (a case variant of) a, b or c, by 3CosAdd ("add", gensim's only method) or 3CosMul
    ("mul"). Returns {"total": accuracy, "sections": {name: {"correct", "incorrect",
    "accuracy"}}, "skipped": n}; "sections" holds only the file's sections (sections of the same
    name are merged), so summing it gives the total counts; an empty section has accuracy 0."""
    if method not in ("add", "mul"):
        raise ValueError(f"method: expected 'add' or 'mul', got {method!r}")
    lookup, canon = _vocab(kv, restrict_vocab, case_insensitive)
    names: list[str] = []
    questions: list[list[int]] = []
    section_of: list[int] = []
    skipped = 0
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            line = raw.decode("utf-8")
            if line.startswith(": "):
                names.append(line.lstrip(": ").strip())
                continue
            if not names:
                raise ValueError(f"{path}: line {line_no} comes before the first ': section' header")
            words = [w.upper() if case_insensitive else w for w in line.split()]
            if len(words) != 4:  # gensim skips malformed lines without counting them
                continue
            idx = [lookup.get(w) for w in words]
            if None in idx:
                skipped += 1
                continue
            questions.append(idx)
            section_of.append(len(names) - 1)
    correct = _answer(kv, torch.tensor(questions, device=kv.vectors.device).view(-1, 4), canon, method).cpu().numpy()
    section_of = np.array(section_of, dtype=np.int64)
    right = np.bincount(section_of, weights=correct, minlength=len(names)).astype(int)
    asked = np.bincount(section_of, minlength=len(names))
    sections: dict[str, dict] = {}
    for name, r, n in zip(names, right.tolist(), asked.tolist()):
        s = sections.setdefault(name, {"correct": 0, "incorrect": 0})
        s["correct"] += r
        s["incorrect"] += n - r
    for s in sections.values():
        s["accuracy"] = s["correct"] / max(1, s["correct"] + s["incorrect"])
    return {"total": float(correct.mean()) if len(correct) else 0.0, "sections": sections, "skipped": skipped}


def _answer(kv: KeyedVectors, q: torch.Tensor, canon: torch.Tensor, method: str) -> torch.Tensor:
    """Whether each question [a, b, c, expected] (vocabulary indices) is answered right."""
    n = len(canon)
    k = min(_TOP, n)
    if len(q) == 0:
        return torch.zeros(0, dtype=torch.bool)
    a, b, c = (F.normalize(kv.vectors[q[:, j]], dim=1) for j in range(3))
    asked = q[:, :3]
    if method == "add":  # gensim: unit(b) + unit(c) - unit(a), averaged, renormalised by nearest()
        top, scores = kv.nearest((b + c - a) / 3, k, restrict_vocab=n, exclude=asked)
    else:
        top, scores = kv.nearest_cosmul(torch.stack([b, c], 1), a[:, None], k, restrict_vocab=n, exclude=asked)
    found = scores > -torch.inf  # fewer than k candidates remain only in a tiny vocabulary
    cand = canon[top]
    usable = found & ~(cand[:, :, None] == asked[:, None, :]).any(-1)
    # gensim takes the first usable candidate, else (all are question words) the last one it saw
    last = (found.sum(1) - 1).clamp_min(0)
    pick = torch.where(usable.any(1), usable.int().argmax(1), last)
    return found.any(1) & (cand.gather(1, pick[:, None])[:, 0] == q[:, 3])


def evaluate_word_pairs(kv: KeyedVectors, path: str | os.PathLike, restrict_vocab: int | None = 300_000,
                        case_insensitive: bool = True, delimiter: str = "\t") -> dict:  # fmt: skip
    """Correlation of cosine similarity with human scores on "word1<TAB>word2<TAB>score" lines, as
    gensim's ``evaluate_word_pairs``: lines starting with '#' are comments, lines that do not parse
    (a header such as "word1 word2 SimLex999") are skipped, and pairs with a word outside the first
    ``restrict_vocab`` words are left out and counted in "oov_ratio" (percent of parsed pairs).
    Returns {"spearman", "pearson", "oov_ratio", "pairs": pairs used}."""
    lookup, _ = _vocab(kv, restrict_vocab, case_insensitive)
    gold: list[float] = []
    pairs: list[tuple[int, int]] = []
    oov = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            fields = [x.upper() if case_insensitive else x for x in line.split(delimiter)]
            try:
                a, b, score = fields
                score = float(score)
            except ValueError:
                continue
            if a not in lookup or b not in lookup:
                oov += 1
                continue
            gold.append(score)
            pairs.append((lookup[a], lookup[b]))
    if not pairs:
        raise ValueError(f"{path}: no usable pair: none of the form 'word1{delimiter!r}word2{delimiter!r}score' "
                         f"with both words among the first {restrict_vocab} words")  # fmt: skip
    rows = F.normalize(kv.vectors[torch.tensor(pairs, device=kv.vectors.device)], dim=2)
    model = (rows[:, 0] * rows[:, 1]).sum(1).cpu().numpy()
    return {
        "spearman": float(stats.spearmanr(gold, model).statistic),
        "pearson": float(stats.pearsonr(gold, model).statistic),
        "oov_ratio": 100.0 * oov / (len(gold) + oov),
        "pairs": len(gold),
    }
