"""Documents and sentences from plain text, for the sentence-pair objectives (BERT's NSP).

A corpus is a text file (plain or .xz/.bz2/.gz) or a directory of them; each non-blank line is a
paragraph and a blank line ends a document (each file also ends one). Sentences come from a small
rule-based splitter, :func:`split_sentences`, good enough for English prose and free of models.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator

from fastpretrain.data.text_files import open_text, text_files
from fastpretrain.progress import Progress

# A run of terminal punctuation, optional closing quotes/brackets, whitespace, then what can open
# a sentence (an upper-case letter or digit, maybe after an opening quote or bracket).
_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")
# Words after which a period does not end a sentence (compared lower-case, without the period).
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc e.g i.e no nos fig figs gen col lt sgt capt cmdr rev hon gov sen rep "
    "u.s u.k inc ltd co corp mt ft jan feb mar apr jun jul aug sep sept oct nov dec art sec ch vol pp p cf al".split()
)


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph: split after ``.``, ``!`` or ``?`` (and closing quotes or brackets)
    followed by whitespace and an upper-case letter or digit, except after a listed abbreviation
    (``Mr.``, ``Dr.``, ``e.g.`` ...) or a single-letter initial (``J. Smith``)."""
    sentences, start = [], 0
    for m in _BOUNDARY.finditer(text):
        before = text[start : m.start()].split()
        word = before[-1].lstrip("\"'(\u201c\u2018[").lower() if before else ""
        if m.group().startswith(".") and (word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())):
            continue
        sentences.append(text[start : m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def read_documents(source: str | os.PathLike, *, progress: bool = True) -> Iterator[list[str]]:
    """The documents of a corpus, each a list of its paragraphs (non-blank lines, stripped), in
    file order; empty documents are skipped. Raises FileNotFoundError for a missing path.
    ``progress``: a bar on a terminal, log lines on stderr otherwise."""
    files = text_files(source)
    total = sum(f.stat().st_size for f in files)
    with Progress(total, "reading documents", "B", enabled=progress) as bar:
        for f in files:
            document: list[str] = []
            done = 0
            with open_text(f) as (raw, stream):
                text = io.TextIOWrapper(stream, encoding="utf-8")
                try:
                    for line in text:
                        line = line.strip()
                        if line:
                            document.append(line)
                        elif document:
                            yield document
                            document = []
                        if raw.tell() - done >= 1 << 20:
                            bar.update(raw.tell() - done)
                            done = raw.tell()
                    bar.update(raw.tell() - done)
                finally:
                    text.detach()  # the stream is open_text's to close
            if document:
                yield document
