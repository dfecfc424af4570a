"""The layer library, on fastpretrain's ops, with torch.nn / timm constructor and forward conventions:
attention, MLP, DropPath, LayerScale, patch embedding, positions (sin-cos tables, relative bias, rotary), one configurable
:class:`TransformerBlock` with a KV cache for decoding, the ViT encoder stack, MAE's masking steps
and loss modules over the fused ops (the contrastive ones across ranks too). Models are built from these and
import nothing from ``fastpretrain.ops`` themselves."""

from fastpretrain.nn import functional
from fastpretrain.nn.attention import HEAD_DIMS, MultiheadSelfAttention, check_heads
from fastpretrain.nn.block import TransformerBlock
from fastpretrain.nn.conv import ChannelwiseFC, ConvDecoder, ConvEncoder
from fastpretrain.nn.contrastive import ClipLoss, NTXentLoss, SigLipLoss, gather_with_grad
from fastpretrain.nn.drop import DropPath
from fastpretrain.nn.groups import Groups, check_groups
from fastpretrain.nn.init import init_linear_and_norms
from fastpretrain.nn.kv_cache import KVCache, cached_block
from fastpretrain.nn.layer_scale import LayerScale
from fastpretrain.nn.lm_loss import LMHeadLoss
from fastpretrain.nn.losses import LinearCrossEntropyLoss, SampledSoftmax, SampledSoftmaxLoss
from fastpretrain.nn.masking import (
    Masking,
    check_mask_ratio,
    gather_visible,
    masking_from_noise,
    num_kept,
    random_masking,
    unshuffle_tokens,
)
from fastpretrain.nn.mlp import Mlp
from fastpretrain.nn.padding import Packed, repad, unpad
from fastpretrain.nn.patch_embed import PatchEmbed, patchify, unpatchify
from fastpretrain.nn.positions import RelativePositionBias, sincos_pos_embed_1d, sincos_pos_embed_2d
from fastpretrain.nn.rotary import RotarySelfAttention, apply_rotary, positions_in_sequences, rope_tables
from fastpretrain.nn.scalar_mix import ScalarMix
from fastpretrain.nn.vit_encoder import ViTEncoder, check_vit_args

__all__ = [
    "HEAD_DIMS",
    "ChannelwiseFC",
    "ClipLoss",
    "ConvDecoder",
    "ConvEncoder",
    "DropPath",
    "Groups",
    "KVCache",
    "LMHeadLoss",
    "LayerScale",
    "LinearCrossEntropyLoss",
    "Masking",
    "Mlp",
    "MultiheadSelfAttention",
    "NTXentLoss",
    "Packed",
    "PatchEmbed",
    "RelativePositionBias",
    "RotarySelfAttention",
    "SampledSoftmax",
    "SampledSoftmaxLoss",
    "ScalarMix",
    "SigLipLoss",
    "TransformerBlock",
    "ViTEncoder",
    "apply_rotary",
    "cached_block",
    "check_groups",
    "check_heads",
    "check_mask_ratio",
    "check_vit_args",
    "functional",
    "gather_visible",
    "gather_with_grad",
    "init_linear_and_norms",
    "masking_from_noise",
    "num_kept",
    "patchify",
    "positions_in_sequences",
    "random_masking",
    "repad",
    "rope_tables",
    "sincos_pos_embed_1d",
    "sincos_pos_embed_2d",
    "unpad",
    "unpatchify",
    "unshuffle_tokens",
]
