"""Named corpora that work offline: made from text that installed packages ship (``wiki206``), or
found in the project's shared data folder (``corpus20m``, ``docs9m``), which :func:`find_data`
looks for in a few places and names them all when it is in none."""

from __future__ import annotations

import bz2
import os
import re
from pathlib import Path

from fastpretrain.atomic import atomic_write

DEFAULT_CORPUS = "wiki206"
_WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def data_roots() -> list[tuple[Path, str]]:
    """Where the shared data folder may be, first match wins: ``$FASTPRETRAIN_DATA``, ``../shared/data``
    beside the project checkout the package runs from (not inside a venv after ``pip install .``),
    ``../shared/data`` from the current directory, and the current directory itself."""
    roots = []
    if os.environ.get("FASTPRETRAIN_DATA"):
        roots.append((Path(os.environ["FASTPRETRAIN_DATA"]), "$FASTPRETRAIN_DATA"))
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        roots.append((checkout.parent / "shared" / "data", "beside the project checkout"))
    roots.append((Path.cwd().parent / "shared" / "data", "../shared/data from the current directory"))
    roots.append((Path.cwd(), "the current directory"))
    return roots


def find_data(name: str) -> Path:
    """``name`` (a file or folder, e.g. ``corpus20m.txt.xz``) in the first of :func:`data_roots`
    that holds it; FileNotFoundError listing every place tried otherwise."""
    roots = data_roots()
    for root, _ in roots:
        if (root / name).exists():
            return root / name
    tried = "; ".join(f"{root} ({why})" for root, why in roots)
    hint = "" if os.environ.get("FASTPRETRAIN_DATA") else "; set FASTPRETRAIN_DATA to the folder that holds it"
    raise FileNotFoundError(f"{name}: not found in the shared data folder; looked in {tried}{hint}")


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


DATASETS = {
    "wiki206": wiki206,
    "corpus20m": lambda cache: find_data("corpus20m.txt.xz"),
    "docs9m": lambda cache: find_data("docs9m.txt.xz"),
}


def resolve_corpus(name_or_path: str | os.PathLike, cache: Path) -> Path:
    """A path as given, or the file of a named dataset (see ``DATASETS``)."""
    if str(name_or_path) in DATASETS and not Path(name_or_path).exists():
        return DATASETS[str(name_or_path)](cache)
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(f"corpus: {str(path)!r} is neither a file, a directory nor one of {sorted(DATASETS)}")
    return path
