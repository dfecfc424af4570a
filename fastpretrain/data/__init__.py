"""Data side of pre-training: corpora and vocabularies (on the C++ engine), word2vec batches,
image datasets (folders, IDX, NumPy arrays, Fashion-MNIST) and MAE's augmentation."""

from fastpretrain.data.batches import Word2VecBatch, Word2VecBatches
from fastpretrain.data.corpus import Corpus, cache_root
from fastpretrain.data.datasets import resolve_corpus
from fastpretrain.data.images import ArrayDataset, IDXDataset, ImageFolder, RandomResizedCropFlip, fashion_mnist, image_dataset
from fastpretrain.data.vocab import HuffmanCodes, Vocab

__all__ = ["ArrayDataset", "Corpus", "HuffmanCodes", "IDXDataset", "ImageFolder", "RandomResizedCropFlip", "Vocab",
           "Word2VecBatch", "Word2VecBatches", "cache_root", "fashion_mnist", "image_dataset", "resolve_corpus"]  # fmt: skip
