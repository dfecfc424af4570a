"""Data side of pre-training, one file per purpose: text corpora (files and folders, the cached
corpus engine, documents and sentences, named corpora), vocabularies and WordPiece tokenizers,
byte-level BPE and GPT's tokenized documents cut into rows, word2vec batches from the engine's
stream, BERT's sentence-pair examples and MLM masking, packed or padded batches of variable-length
sequences for any model, id samplers with their log-probabilities, image datasets (folders, IDX,
NumPy arrays, Fashion-MNIST) and image transforms (MAE's augmentation)."""

from fastpretrain.data.bert_examples import BertExamples
from fastpretrain.data.bpe import EOT, gpt2_bpe_files, load_bpe, save_bpe, train_bpe
from fastpretrain.data.collate import collate_packed, collate_padded
from fastpretrain.data.corpus import Corpus, cache_root
from fastpretrain.data.datasets import find_data, resolve_corpus
from fastpretrain.data.documents import read_documents, split_sentences
from fastpretrain.data.image_transforms import Normalize, RandomResizedCropFlip, Resize
from fastpretrain.data.images import (
    ArrayDataset,
    IDXDataset,
    ImageFolder,
    fashion_mnist,
    image_dataset,
)  # fmt: skip
from fastpretrain.data.lm_rows import LMRows, TokenCache, collate_lm_rows, document_segments
from fastpretrain.data.mlm_masking import MlmMasking
from fastpretrain.data.samplers import AliasSampler, Candidates, LogUniformSampler, UniformSampler, UnigramSampler
from fastpretrain.data.vocab import HuffmanCodes, Vocab
from fastpretrain.data.word2vec_batches import Word2VecBatch, Word2VecBatches
from fastpretrain.data.wordpiece import load_wordpiece, save_wordpiece, train_wordpiece

__all__ = [
    "EOT", "AliasSampler", "ArrayDataset", "BertExamples", "Candidates", "Corpus", "HuffmanCodes", "IDXDataset",
    "ImageFolder", "LMRows", "LogUniformSampler", "MlmMasking", "Normalize", "RandomResizedCropFlip", "Resize",
    "TokenCache", "UniformSampler", "UnigramSampler", "Vocab", "Word2VecBatch", "Word2VecBatches", "cache_root",
    "collate_lm_rows", "collate_packed", "collate_padded", "document_segments", "fashion_mnist", "find_data",
    "gpt2_bpe_files", "image_dataset", "load_bpe", "load_wordpiece", "read_documents", "resolve_corpus", "save_bpe",
    "save_wordpiece", "split_sentences", "train_bpe", "train_wordpiece",
]  # fmt: skip
