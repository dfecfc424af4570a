"""Data side of pre-training: corpora and vocabularies (on the C++ engine), word2vec batches."""

from fastpretrain.data.batches import Word2VecBatch, Word2VecBatches
from fastpretrain.data.corpus import Corpus, cache_root
from fastpretrain.data.datasets import resolve_corpus
from fastpretrain.data.vocab import HuffmanCodes, Vocab

__all__ = ["Corpus", "HuffmanCodes", "Vocab", "Word2VecBatch", "Word2VecBatches", "cache_root", "resolve_corpus"]
