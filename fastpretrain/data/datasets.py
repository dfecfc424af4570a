"""Named corpora that work offline, made from text that installed packages ship."""

from __future__ import annotations

import bz2
import os
import re
from pathlib import Path

from fastpretrain.atomic import atomic_write

DEFAULT_CORPUS = "wiki206"
_WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def wiki206(cache: Path) -> Path:
    """text8-style file (lowercase a-z words, one line) of the 206 Wikipedia articles inside
    gensim's wheel, about 0.47M words; made once into ``cache``."""
    path = cache / "datasets" / "wiki206.txt"
    if path.is_file():
        return path
    try:
        from gensim.corpora.wikicorpus import extract_pages, filter_wiki
        from gensim.test.utils import datapath
    except ImportError:
        raise ImportError(
            "the default corpus 'wiki206' is made from text in gensim's wheel: pip install 'fastpretrain[data]', "
            "or pass a corpus file with --corpus PATH"
        ) from None
    with bz2.open(datapath(_WIKI_DUMP)) as dump:
        pages = [filter_wiki(text) for _, text, _ in extract_pages(dump)]
    words = re.findall(r"[a-z]+", " ".join(pages).lower())
    with atomic_write(path, "w", encoding="ascii") as f:
        f.write(" ".join(words))
    return path


DATASETS = {"wiki206": wiki206}


def resolve_corpus(name_or_path: str | os.PathLike, cache: Path) -> Path:
    """A path as given, or the file of a named dataset (see ``DATASETS``)."""
    if str(name_or_path) in DATASETS and not Path(name_or_path).exists():
        return DATASETS[str(name_or_path)](cache)
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(f"corpus: {str(path)!r} is neither a file, a directory nor one of {sorted(DATASETS)}")
    return path
