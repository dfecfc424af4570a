"""Model classes, one file per pre-training method; ``KeyedVectors`` holds trained word vectors."""

from fastpretrain.models.bert import BertConfig, BertForPreTraining
from fastpretrain.models.keyed_vectors import KeyedVectors
from fastpretrain.models.mae import MAE, MAEConfig, save_reconstruction_grid
from fastpretrain.models.vit import ViTConfig, VisionTransformer
from fastpretrain.models.word2vec import Word2Vec, Word2VecConfig

__all__ = ["BertConfig", "BertForPreTraining", "KeyedVectors", "MAE", "MAEConfig", "ViTConfig", "VisionTransformer",
           "Word2Vec", "Word2VecConfig", "save_reconstruction_grid"]  # fmt: skip
