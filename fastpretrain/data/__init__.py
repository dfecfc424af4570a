"""Data side of pre-training: corpora and vocabularies (on the C++ engine), word2vec batches,
WordPiece tokenizers and BERT pre-training examples."""

from fastpretrain.data.batches import Word2VecBatch, Word2VecBatches
from fastpretrain.data.bert_examples import BertExamples, MlmMasking, collate_packed, collate_padded
from fastpretrain.data.corpus import Corpus, cache_root
from fastpretrain.data.datasets import resolve_corpus
from fastpretrain.data.text import read_documents, split_sentences
from fastpretrain.data.vocab import HuffmanCodes, Vocab
from fastpretrain.data.wordpiece import load_wordpiece, save_wordpiece, train_wordpiece

__all__ = [
    "BertExamples", "Corpus", "HuffmanCodes", "MlmMasking", "Vocab", "Word2VecBatch", "Word2VecBatches", "cache_root",
    "collate_packed", "collate_padded", "load_wordpiece", "read_documents", "resolve_corpus", "save_wordpiece",
    "split_sentences", "train_wordpiece",
]  # fmt: skip
