"""Torch ops on fastpretrain's Triton kernels, each with a pure-torch ``*_reference`` that is
both its spec and its CPU path (see ``dispatch`` for which path runs; ``use_kernels(False)``
forces the reference everywhere).

One contract for every op: a kernel file in ``fastpretrain.kernels`` and an op file here that
checks its arguments with ``checks`` (TypeError for types and dtypes, ValueError for shapes and
values), registers a ``torch.library.custom_op`` with ``register_fake`` and ``register_autograd``,
and defines ``<op>_reference`` (forward, differentiable) and ``<op>_backward_reference`` (the
explicit backward the CPU path runs); each op passes ``torch.library.opcheck``."""

from fastpretrain.ops.attention import (
    attention,
    attention_reference,
    attention_varlen,
    attention_varlen_reference,
)
from fastpretrain.ops.cross_entropy import linear_cross_entropy, linear_cross_entropy_reference
from fastpretrain.ops.dispatch import kernels_on_cpu, use_kernels
from fastpretrain.ops.infonce import (
    infonce_loss,
    infonce_loss_reference,
    siglip_loss,
    siglip_loss_reference,
    simclr_targets,
)
from fastpretrain.ops.masking import (
    Masking,
    gather_visible,
    gather_visible_reference,
    masking_from_noise,
    random_masking,
    unshuffle_tokens,
    unshuffle_tokens_reference,
)
from fastpretrain.ops.points import (
    KNN,
    chamfer_distance,
    chamfer_distance_reference,
    farthest_point_sample,
    farthest_point_sample_reference,
    knn_points,
    knn_points_reference,
)
from fastpretrain.ops.sampled_softmax import sampled_softmax_loss, sampled_softmax_loss_reference
from fastpretrain.ops.word2vec import (
    hs_update_reference,
    ns_update_reference,
    shared_ns_update_reference,
    word2vec_hs_update_,
    word2vec_ns_update_,
    word2vec_shared_ns_update_,
)

__all__ = [
    "attention",
    "attention_reference",
    "attention_varlen",
    "attention_varlen_reference",
    "chamfer_distance",
    "chamfer_distance_reference",
    "farthest_point_sample",
    "farthest_point_sample_reference",
    "Masking",
    "gather_visible",
    "gather_visible_reference",
    "hs_update_reference",
    "infonce_loss",
    "infonce_loss_reference",
    "kernels_on_cpu",
    "knn_points",
    "knn_points_reference",
    "KNN",
    "linear_cross_entropy",
    "linear_cross_entropy_reference",
    "masking_from_noise",
    "ns_update_reference",
    "random_masking",
    "sampled_softmax_loss",
    "sampled_softmax_loss_reference",
    "shared_ns_update_reference",
    "siglip_loss",
    "siglip_loss_reference",
    "simclr_targets",
    "unshuffle_tokens",
    "unshuffle_tokens_reference",
    "use_kernels",
    "word2vec_hs_update_",
    "word2vec_ns_update_",
    "word2vec_shared_ns_update_",
]
