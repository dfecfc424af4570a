"""Data side of pre-training: corpora and vocabularies (on the C++ engine), word2vec batches,
WordPiece tokenizers and BERT pre-training examples, image datasets (folders, IDX, NumPy arrays,
Fashion-MNIST) and MAE's augmentation."""

from fastpretrain.data.batches import Word2VecBatch, Word2VecBatches
from fastpretrain.data.bert_examples import BertExamples, MlmMasking, collate_packed, collate_padded
from fastpretrain.data.corpus import Corpus, cache_root
from fastpretrain.data.datasets import find_data, resolve_corpus
from fastpretrain.data.images import ArrayDataset, IDXDataset, ImageFolder, RandomResizedCropFlip, fashion_mnist, image_dataset
from fastpretrain.data.text import read_documents, split_sentences
from fastpretrain.data.vocab import HuffmanCodes, Vocab
from fastpretrain.data.wordpiece import load_wordpiece, save_wordpiece, train_wordpiece

__all__ = [
    "ArrayDataset", "BertExamples", "Corpus", "HuffmanCodes", "IDXDataset", "ImageFolder", "MlmMasking",
    "RandomResizedCropFlip", "Vocab", "Word2VecBatch", "Word2VecBatches", "cache_root", "collate_packed",
    "collate_padded", "fashion_mnist", "find_data", "image_dataset", "load_wordpiece", "read_documents",
    "resolve_corpus", "save_wordpiece", "split_sentences", "train_wordpiece",
]  # fmt: skip
