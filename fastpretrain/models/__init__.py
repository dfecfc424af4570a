"""Model classes, one file per pre-training method, each size registered once: ``create_model(name,
**overrides)``, ``list_models(pattern)``; ``KeyedVectors`` holds trained word vectors."""

from fastpretrain.models.beit import BEiT, BEiTConfig
from fastpretrain.models.bert import BertConfig, BertForPreTraining
from fastpretrain.models.clip import CLIP, CLIPConfig
from fastpretrain.models.colorization import ColorizeConfig, IntensityColorizer
from fastpretrain.models.cpc import CPC, CPCConfig
from fastpretrain.models.electra import ElectraConfig, ElectraForPreTraining
from fastpretrain.models.elmo import ELMo, ELMoConfig
from fastpretrain.models.dvae import DVAE, DVAEConfig
from fastpretrain.models.gpt import GPT, GPTConfig
from fastpretrain.models.igpt import IGPTConfig, ImageGPT
from fastpretrain.models.inpainting import ContextEncoder, InpaintConfig
from fastpretrain.models.keyed_vectors import KeyedVectors
from fastpretrain.models.mae import MAE, MAEConfig
from fastpretrain.models.masked_groups import MaskedGroups, MaskedGroupsConfig
from fastpretrain.models.nnlm import NNLM, NNLMConfig
from fastpretrain.models.point_targets import Chamfer, Geometry  # registers the pointnet embedder and point targets
from fastpretrain.models.registry import create_model, list_models, model_class, model_config
from fastpretrain.models.simclr import SimCLR, SimCLRConfig
from fastpretrain.models.simmim import SimMIM, SimMIMConfig
from fastpretrain.models.vit import VisionTransformer, ViTConfig
from fastpretrain.models.word2vec import Word2Vec, Word2VecConfig

__all__ = ["BEiT", "BEiTConfig", "BertConfig", "BertForPreTraining", "CLIP", "CLIPConfig", "CPC", "CPCConfig",
           "ColorizeConfig", "ContextEncoder",
           "DVAE", "DVAEConfig", "ElectraConfig", "ElectraForPreTraining", "ELMo", "ELMoConfig", "GPT", "GPTConfig",
           "IGPTConfig", "ImageGPT", "InpaintConfig", "IntensityColorizer", "KeyedVectors", "MAE",
           "MAEConfig", "MaskedGroups", "MaskedGroupsConfig",
           "NNLM", "NNLMConfig", "SimCLR", "SimCLRConfig", "SimMIM", "SimMIMConfig", "ViTConfig", "VisionTransformer",
           "Word2Vec", "Word2VecConfig", "create_model", "list_models", "model_class", "model_config"]  # fmt: skip
