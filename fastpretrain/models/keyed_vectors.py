"""Trained word vectors as a gensim-like ``KeyedVectors``: similarity queries run as one batched
cosine top-k in torch on the vectors' own device (the GPU for large vocabularies), chunked so no
more than ``_SCORE_BUDGET`` scores exist at once. word2vec.c's text and binary formats are for
interchange with gensim and the C tools; ``save``/``load`` keep everything in one safetensors file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from fastpretrain.atomic import atomic_path, atomic_write

_SCORE_BUDGET = 1 << 25  # scores (queries x candidates) materialised at once by a top-k search
_FORMAT = "fastpretrain.KeyedVectors/1"
# A query term as gensim's most_similar takes it: a word, a row index, a vector (1-D array or
# tensor), or (any of these, weight).
Key = str | int | np.ndarray | torch.Tensor
Term = Key | tuple[Key, float]


class KeyedVectors:
    """``words[i]`` owns row ``vectors[i]``; words are expected sorted by descending frequency (as
    word2vec and gensim sort them), which is what ``restrict_vocab`` (the first N words) relies on."""

    def __init__(self, words: Sequence[str], vectors: torch.Tensor | np.ndarray, counts: np.ndarray | None = None):
        self.words: list[str] = list(words)  # read-only: index order of the rows
        if not self.words:
            raise ValueError("words: must not be empty")
        self._index: dict[str, int] = {}
        for i, word in enumerate(self.words):
            if not isinstance(word, str):
                raise TypeError(f"words: entry {i} is {type(word).__name__}, expected str")
            if self._index.setdefault(word, i) != i:
                raise ValueError(f"words: duplicate word {word!r} at indices {self._index[word]} and {i}")
        if isinstance(vectors, np.ndarray):
            vectors = torch.from_numpy(vectors)
        if not isinstance(vectors, torch.Tensor) or not vectors.is_floating_point():
            got = getattr(vectors, "dtype", type(vectors).__name__)
            raise TypeError(f"vectors: expected a floating-point torch.Tensor, got {got}")
        if vectors.dim() != 2 or vectors.shape[0] != len(self.words) or vectors.shape[1] == 0:
            raise ValueError(f"vectors: expected shape [{len(self)}, d] (one row per word), got {list(vectors.shape)}")
        self.vectors = vectors.detach().float()  # shares memory when already float32
        finite = torch.isfinite(self.vectors).all(dim=1)
        if not bool(finite.all()):
            row = int((~finite).nonzero()[0])
            raise ValueError(f"vectors: row {row} (word {self.words[row]!r}) holds NaN or inf")
        if counts is not None:
            counts = np.asarray(counts)
            if counts.shape != (len(self),) or counts.dtype.kind not in "iu" or (counts < 0).any():
                raise ValueError(f"counts: expected {len(self)} non-negative integers, got {counts.dtype} {counts.shape}")
            counts = counts.astype(np.int64, copy=False)
        self.counts = counts

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __getitem__(self, word: str) -> torch.Tensor:
        return self.vectors[self.index(word)]

    def __repr__(self) -> str:
        return f"KeyedVectors({len(self)} words x {self.vector_size} on {self.vectors.device})"

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    def index(self, word: str) -> int:
        """Row of ``word``; KeyError naming it when it is not in the vocabulary."""
        try:
            return self._index[word]
        except KeyError:
            raise KeyError(f"word {word!r} is not in the vocabulary ({len(self)} words)") from None

    def to(self, device: str | torch.device) -> KeyedVectors:
        return KeyedVectors(self.words, self.vectors.to(device), self.counts)

    # ---- batched search -------------------------------------------------------------------------

    def nearest(self, queries: torch.Tensor | Sequence[str], k: int = 10, restrict_vocab: int | None = None,
                exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Cosine top-k of each query among the first ``restrict_vocab`` words: (indices [Q, k],
        scores [Q, k]) on the vectors' device, best first. ``queries`` are rows [Q, d] or words (a
        word is then its own best hit unless excluded). ``exclude`` [Q, m] holds word indices never
        returned for that query (-1 pads); k is capped at the candidate count, and where fewer than
        k candidates remain the tail has score -inf."""
        q = self._rows(queries, "queries")
        if q.dim() != 2 or q.shape[1] != self.vector_size:
            raise ValueError(f"queries: expected shape [Q, {self.vector_size}], got {list(q.shape)}")
        n = self._n_candidates(restrict_vocab)
        cand = self.vectors[:n]
        norms = torch.linalg.vector_norm(cand, dim=1).clamp_min(1e-12)
        q = F.normalize(q, dim=1)
        return self._topk(lambda rows: (q[rows] @ cand.T) / norms, len(q), k, n, exclude, 1)

    def nearest_cosmul(self, positive: torch.Tensor, negative: torch.Tensor, k: int = 10,
                       restrict_vocab: int | None = None, exclude: torch.Tensor | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """3CosMul top-k (Levy & Goldberg 2014, as gensim): for query rows positive [Q, p, d] and
        negative [Q, m, d] (m may be 0), score = prod((1 + cos(w, pos)) / 2) /
        (prod((1 + cos(w, neg)) / 2) + 1e-6). Same outputs and arguments as ``nearest``."""
        pos, neg = self._rows(positive, "positive"), self._rows(negative, "negative")
        if pos.dim() != 3 or pos.shape[1] == 0 or pos.shape[2] != self.vector_size:
            raise ValueError(f"positive: expected shape [Q, p >= 1, {self.vector_size}], got {list(pos.shape)}")
        if neg.dim() != 3 or neg.shape[0] != pos.shape[0] or neg.shape[2] != self.vector_size:
            raise ValueError(f"negative: expected shape [{pos.shape[0]}, m, {self.vector_size}], got {list(neg.shape)}")
        n = self._n_candidates(restrict_vocab)
        cand = self.vectors[:n]
        norms = torch.linalg.vector_norm(cand, dim=1).clamp_min(1e-12)
        pos, neg = F.normalize(pos, dim=2), F.normalize(neg, dim=2)

        def scores(rows: slice) -> torch.Tensor:
            shifted = [((1 + (t[rows] @ cand.T) / norms) / 2).prod(dim=1) for t in (pos, neg)]
            return shifted[0] / (shifted[1] + 1e-6)

        return self._topk(scores, len(pos), k, n, exclude, pos.shape[1] + neg.shape[1] + 1)

    def _topk(self, scores: Callable[[slice], torch.Tensor], n_queries: int, k: int, n: int,
              exclude: torch.Tensor | None, width: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Run ``scores`` over chunks of queries (each chunk x n x width within the budget)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k: expected an int >= 1, got {k!r}")
        k, device = min(int(k), n), self.vectors.device
        if exclude is not None:
            exclude = torch.as_tensor(exclude, device=device).long()
            if exclude.dim() != 2 or exclude.shape[0] != n_queries:
                raise ValueError(f"exclude: expected shape [{n_queries}, m], got {list(exclude.shape)}")
        chunk = max(1, _SCORE_BUDGET // (n * width))
        indices, values = [torch.empty(0, k, dtype=torch.long, device=device)], [torch.empty(0, k, device=device)]
        for start in range(0, n_queries, chunk):
            rows = slice(start, min(start + chunk, n_queries))
            s = scores(rows)
            if exclude is not None:
                ex = exclude[rows]
                keep = (ex >= 0) & (ex < n)
                r = torch.arange(len(ex), device=device)[:, None].expand_as(ex)
                s[r[keep], ex[keep]] = -torch.inf
            v, i = s.topk(k, dim=1)
            indices.append(i)
            values.append(v)
        return torch.cat(indices), torch.cat(values)

    def _rows(self, x: torch.Tensor | Sequence[str], name: str) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x.to(self.vectors.device, torch.float32)
        if isinstance(x, str) or not all(isinstance(w, str) for w in x):
            raise TypeError(f"{name}: expected a tensor or a list of words, got {type(x).__name__}")
        return self.vectors[[self.index(w) for w in x]]

    def _n_candidates(self, restrict_vocab: int | None) -> int:
        if restrict_vocab is None:
            return len(self)
        if isinstance(restrict_vocab, bool) or not isinstance(restrict_vocab, (int, np.integer)) or restrict_vocab < 1:
            raise ValueError(f"restrict_vocab: expected None or an int >= 1, got {restrict_vocab!r}")
        return min(int(restrict_vocab), len(self))

    # ---- gensim's queries -----------------------------------------------------------------------

    def most_similar(self, positive: Term | Sequence[Term] | None = (), negative: Term | Sequence[Term] | None = (),
                     topn: int | None = 10, restrict_vocab: int | None = None,
                     ) -> list[tuple[str, float]] | np.ndarray:  # fmt: skip
        """3CosAdd as gensim: cosine to the normalised weighted mean of the terms, where a word (or a
        row index) stands for its unit vector and a vector for itself, with weight +1 (positive),
        -1 (negative) or the one of a (term, weight) pair. Input words are never returned.
        ``topn=None``: every candidate's similarity, a numpy array in vocabulary order (as gensim)."""
        if _no_results(topn):
            return []
        terms = [_weighted(t, 1.0) for t in _as_list(positive)] + [_weighted(t, -1.0) for t in _as_list(negative)]
        if not terms:
            raise ValueError("positive, negative: both empty, nothing to compare with")
        rows = [self._term(t, "positive" if w > 0 else "negative") for t, w in terms]
        weight = torch.tensor([w for _, w in terms], device=self.vectors.device)
        mean = (weight[:, None] * torch.stack([r for r, _ in rows])).sum(0)
        if float(weight.abs().sum()) > 0:
            mean = mean / weight.abs().sum()
        if topn is None:
            return self._all_scores(*self.nearest(mean[None], len(self), restrict_vocab))
        exclude = torch.tensor([[i for _, i in rows if i is not None] or [-1]], device=self.vectors.device)
        return self._results(*self.nearest(mean[None], topn, restrict_vocab, exclude=exclude))

    def most_similar_cosmul(self, positive: Key | Sequence[Key] | None = (), negative: Key | Sequence[Key] | None = (),
                            topn: int | None = 10, restrict_vocab: int | None = None,
                            ) -> list[tuple[str, float]] | np.ndarray:  # fmt: skip
        """3CosMul as gensim (Levy & Goldberg 2014), with words, row indices or vectors as terms.
        Unlike gensim 4.4: ``restrict_vocab`` limits the candidates as in ``most_similar`` (gensim
        ignores it here), and a vector counts by its direction (gensim uses it unnormalised, which
        takes 3CosMul's terms out of [0, 1]; for unit vectors the two agree)."""
        if _no_results(topn):
            return []
        pos = [self._term(t, "positive") for t in _as_list(positive)]
        neg = [self._term(t, "negative") for t in _as_list(negative)]
        if not pos:
            raise ValueError("positive: 3CosMul needs at least one positive term")
        empty = self.vectors.new_zeros(0, self.vector_size)
        rows = [torch.stack([r for r, _ in terms])[None] if terms else empty[None] for terms in (pos, neg)]
        if topn is None:
            return self._all_scores(*self.nearest_cosmul(*rows, len(self), restrict_vocab))
        exclude = torch.tensor([[i for _, i in pos + neg if i is not None] or [-1]], device=self.vectors.device)
        return self._results(*self.nearest_cosmul(*rows, topn, restrict_vocab, exclude))

    def similar_by_vector(self, vector: np.ndarray | torch.Tensor, topn: int | None = 10,
                          restrict_vocab: int | None = None) -> list[tuple[str, float]] | np.ndarray:  # fmt: skip
        """The words nearest to a vector: ``most_similar(positive=[vector])``, as gensim."""
        return self.most_similar(positive=[vector], topn=topn, restrict_vocab=restrict_vocab)

    def similar_by_word(self, word: str, topn: int | None = 10,
                        restrict_vocab: int | None = None) -> list[tuple[str, float]] | np.ndarray:  # fmt: skip
        """The words nearest to a word: ``most_similar(positive=[word])``, as gensim."""
        return self.most_similar(positive=[word], topn=topn, restrict_vocab=restrict_vocab)

    def _term(self, term: Key, name: str) -> tuple[torch.Tensor, int | None]:
        """(unit vector, row) of a word or row index; (the vector itself, None) of a vector."""
        if isinstance(term, (str, int, np.integer)) and not isinstance(term, bool):
            i = self.index(term) if isinstance(term, str) else int(term)
            if not 0 <= i < len(self):
                raise KeyError(f"{name}: index {i} is outside the vocabulary ({len(self)} words)")
            return F.normalize(self.vectors[i], dim=0), i
        if not isinstance(term, (np.ndarray, torch.Tensor)):
            raise TypeError(f"{name}: expected a word, a row index, a vector or a (term, weight) pair, "
                            f"got {type(term).__name__}")  # fmt: skip
        numbers = term.dtype.kind in "fiu" if isinstance(term, np.ndarray) else term.dtype in _NUMBER_DTYPES
        if term.ndim != 1 or len(term) != self.vector_size or not numbers:
            raise ValueError(f"{name}: a vector must be numbers of shape [{self.vector_size}], got {term.dtype} "
                             f"{list(term.shape)}")  # fmt: skip
        v = torch.from_numpy(term.astype(np.float32)) if isinstance(term, np.ndarray) else term
        v = v.to(self.vectors.device, torch.float32)
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"{name}: the vector holds NaN or inf")
        return v, None

    def _all_scores(self, indices: torch.Tensor, scores: torch.Tensor) -> np.ndarray:
        """Top-k results over every candidate, back in vocabulary order."""
        out = np.empty(indices.shape[1], dtype=np.float32)
        out[indices[0].cpu().numpy()] = scores[0].cpu().numpy()
        return out

    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity of two words."""
        return float(F.normalize(self[w1], dim=0) @ F.normalize(self[w2], dim=0))

    def analogy(self, a: str, b: str, c: str, method: str = "add", topn: int = 1) -> list[tuple[str, float]]:
        """"a is to b as c is to ?": positive=[b, c], negative=[a] with 3CosAdd ("add") or 3CosMul ("mul")."""
        if method not in ("add", "mul"):
            raise ValueError(f"method: expected 'add' or 'mul', got {method!r}")
        search = self.most_similar if method == "add" else self.most_similar_cosmul
        return search(positive=[b, c], negative=[a], topn=topn)

    def _results(self, indices: torch.Tensor, scores: torch.Tensor) -> list[tuple[str, float]]:
        return [(self.words[i], s) for i, s in zip(indices[0].tolist(), scores[0].tolist()) if s != -float("inf")]

    # ---- files ----------------------------------------------------------------------------------

    def save_word2vec_format(self, path: str | os.PathLike, binary: bool = False) -> None:
        """word2vec.c's format, written atomically: header "V d\\n", then per word either
        "word v1 ... vd\\n" (text, %.9g: float32 round-trips exactly) or "word " + d little-endian
        float32 + "\\n" (binary, as word2vec.c; gensim omits the "\\n", and both readers accept both)."""
        for i, word in enumerate(self.words):
            if not word or " " in word or "\n" in word:
                raise ValueError(f"words: word {i} ({word!r}) is empty or holds a space or newline, "
                                 "which the word2vec format cannot store; use save() instead")  # fmt: skip
        data = self.vectors.cpu().numpy().astype("<f4", copy=False)
        row_format = " ".join(["%.9g"] * self.vector_size)
        with atomic_write(path, "wb") as f:
            f.write(f"{len(self)} {self.vector_size}\n".encode())
            for word, row in zip(self.words, data):
                if binary:
                    f.write(word.encode() + b" " + row.tobytes() + b"\n")
                else:
                    f.write(f"{word} {row_format % tuple(row.tolist())}\n".encode())

    @classmethod
    def load_word2vec_format(cls, path: str | os.PathLike, binary: bool | None = None,
                             device: str | torch.device = "cpu") -> KeyedVectors:  # fmt: skip
        """Read word2vec.c's text or binary format (UTF-8 words). ``binary=None`` decides by the
        file name: a ``.bin`` suffix means binary, anything else text. Malformed or truncated files
        raise ValueError naming the path and the line (text) or word index (binary)."""
        path = Path(path)
        binary = path.suffix == ".bin" if binary is None else binary
        data = path.read_bytes()
        end = data.find(b"\n")
        try:
            n_words, dim = (int(x) for x in data[: max(end, 0)].split())
            if n_words < 1 or dim < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}: line 1 should be the header 'n_words dim', got {data[: max(end, 0)][:80]!r}") from None
        words, vectors = (_read_binary if binary else _read_text)(data, end + 1, n_words, dim, path)
        try:
            return cls(words, torch.from_numpy(vectors).to(device))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Our full format, one safetensors file written atomically (a temp file beside it, then
        renamed): tensors "vectors" (and "counts"), the word list as JSON in the metadata."""
        path = Path(path)
        tensors = {"vectors": self.vectors.cpu().contiguous()}
        if self.counts is not None:
            tensors["counts"] = torch.from_numpy(self.counts)
        metadata = {"format": _FORMAT, "words": json.dumps(self.words, ensure_ascii=False)}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> KeyedVectors:
        """Read a file written by ``save``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: {str(path)!r} does not exist")
        try:
            with safe_open(str(path), "pt") as f:
                metadata = f.metadata() or {}
                if metadata.get("format") != _FORMAT:
                    raise ValueError(f"{path}: not a KeyedVectors file (metadata format {metadata.get('format')!r})")
                vectors = f.get_tensor("vectors")
                counts = f.get_tensor("counts").numpy() if "counts" in f.keys() else None
        except SafetensorError as e:
            raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
        return cls(json.loads(metadata["words"]), vectors.to(device), counts)


_NUMBER_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
                  torch.int64, torch.uint8)  # fmt: skip


def _as_list(x) -> list:
    """gensim's positive/negative: None, one word or index, one vector, a 2-D array of vectors, or a list."""
    if x is None:
        return []
    if isinstance(x, (str, int, np.integer)) or (isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 1):
        return [x]
    if isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim != 2:
        raise ValueError(f"positive, negative: an array of vectors must be 2-D, got shape {list(x.shape)}")
    return list(x)


def _weighted(term, weight: float) -> tuple[Key, float]:
    """(term, weight): a bare term gets the default weight; a pair keeps its own (finite) one."""
    if isinstance(term, (str, int, np.integer, np.ndarray, torch.Tensor)):
        return term, weight
    if not isinstance(term, (tuple, list)) or len(term) != 2:
        raise TypeError(f"expected a word, a row index, a vector or a (term, weight) pair, got {term!r:.80}")
    w = term[1]
    if isinstance(w, bool) or not isinstance(w, (int, float, np.number)) or not np.isfinite(w):
        raise ValueError(f"weight of {term[0]!r:.40}: expected a finite number, got {w!r}")
    return term[0], float(w)


def _no_results(topn) -> bool:
    """gensim returns [] for topn < 1 and all scores for None; anything else must be an int."""
    if topn is None:
        return False
    if isinstance(topn, bool) or not isinstance(topn, (int, np.integer)):
        raise ValueError(f"topn: expected an int or None, got {topn!r}")
    return topn < 1


def _read_binary(data: bytes, pos: int, n_words: int, dim: int, path: Path) -> tuple[list[str], np.ndarray]:
    """One pass over the bytes: each word up to its space, then frombuffer on its dim floats."""
    words, vectors, width = [], np.empty((n_words, dim), np.float32), 4 * dim
    for i in range(n_words):
        while data.startswith(b"\n", pos):  # word2vec.c ends rows with "\n", gensim does not
            pos += 1
        space = data.find(b" ", pos)
        if space <= pos or space + 1 + width > len(data):
            raise ValueError(f"{path}: truncated or malformed at word {i} of {n_words} (header '{n_words} {dim}'; "
                             "is it really the binary format?)")  # fmt: skip
        try:
            words.append(data[pos:space].decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"{path}: word {i} is not valid UTF-8: {data[pos:space][:80]!r}") from None
        vectors[i] = np.frombuffer(data, "<f4", dim, space + 1)
        pos = space + 1 + width
    if data[pos:].strip():
        raise ValueError(f"{path}: bytes after word {n_words - 1}, more than the header's {n_words} words")
    return words, vectors


def _read_text(data: bytes, pos: int, n_words: int, dim: int, path: Path) -> tuple[list[str], np.ndarray]:
    """One line per word: the word up to the first space, then dim floats."""
    try:
        lines = data[pos:].decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        line_no = data.count(b"\n", 0, pos + e.start) + 1
        raise ValueError(f"{path}: line {line_no} is not valid UTF-8") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != n_words:
        raise ValueError(f"{path}: header announces {n_words} words but {len(lines)} lines follow")
    words, vectors = [], np.empty((n_words, dim), np.float32)
    for i, line in enumerate(lines):
        word, _, values = line.rstrip().partition(" ")
        fields = values.split()
        try:
            if not word or len(fields) != dim:
                raise ValueError
            vectors[i] = np.array(fields, dtype=np.float32)
        except ValueError:
            raise ValueError(f"{path}: line {i + 2} should be a word and {dim} numbers, "
                             f"got word {word!r} and {len(fields)} fields: {values[:60]!r}") from None  # fmt: skip
        words.append(word)
    return words, vectors
