"""Hugging Face attention on fastpretrain's fused op, through transformers' own extension point:
an attention function and a mask function registered under ``"fastpretrain"`` in
``AttentionInterface`` / ``AttentionMaskInterface``, chosen per config by ``_attn_implementation``.
HF keeps its projections, caches and masks' bookkeeping; only softmax(q k^T) v changes.

The mask HF builds for it is its FlashAttention one: None, or the bool [B, Sk] padding mask. Padded
batches run dense with that key padding mask, or (eager, at least ``UNPAD_MIN_PADDING`` of the
tokens padding) unpadded to the varlen op, packed once per mask and reused by every layer; pad
positions then get a zero attention output (HF gives them attention over the real keys), which
nothing downstream of a pad token should read. What the op cannot do is refused by name: attention
weights (output_attentions=True), custom 4-d masks, packed sequences given by position_ids, masks
built from extra mask functions (sliding windows, block overlays), and a causal query block that is
shorter than the keys but longer than one token (chunked prefill against a KV cache).
"""

from __future__ import annotations

import inspect

import torch

from fastpretrain.nn import HEAD_DIMS, repad, unpad
from fastpretrain.ops import attention, attention_varlen

NAME = "fastpretrain"
UNPAD_MIN_PADDING = 0.125  # the padded fraction of a batch from which eager attention runs varlen (unmeasured on GPU)
_packing: list = [None, None, None]  # [mask, its _version, Packed or None]: the last mask's packing


def _plain_masks() -> tuple:
    from transformers.masking_utils import bidirectional_mask_function, causal_mask_function

    return causal_mask_function, bidirectional_mask_function


def hf_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, mask_function=None, attention_mask=None,
            **kwargs):  # fmt: skip
    """HF's FlashAttention mask (None or bool [B, Sk]), refusing masks that carry more than padding."""
    from transformers.masking_utils import flash_attention_mask

    if mask_function is not None and mask_function not in _plain_masks():
        raise ValueError(
            "attention_mask: this batch needs a mask beyond causal + padding (packed sequences from "
            "position_ids, a sliding window or a custom mask function), which fastpretrain's patched "
            "attention does not take; pass a plain [B, S] padding mask, or fastpretrain.unpatch(model)"
        )
    return flash_attention_mask(batch_size, q_length, kv_length, q_offset, kv_offset, attention_mask=attention_mask)


def _unpadding(mask: torch.Tensor):
    """The packing of a bool [B, S] mask when unpadding pays (eager, enough padding), else None;
    computed once per mask tensor (every layer gets the same one)."""
    if torch.compiler.is_compiling():
        return None
    if _packing[0] is mask and _packing[1] == mask._version:
        return _packing[2]
    padded = 1.0 - int(mask.sum()) / mask.numel()
    packed = unpad(mask[..., None], mask) if padded >= UNPAD_MIN_PADDING else None
    _packing[:] = [mask, mask._version, packed]
    return packed


def hf_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' attention function signature on fastpretrain's op: q [B, H, Sq, D], k, v
    [B, Hk, Sk, D] in, ([B, Sq, H, D], None) out (no attention weights)."""
    config = getattr(module, "config", None)
    if kwargs.get("output_attentions") or getattr(config, "output_attentions", False):
        raise ValueError("output_attentions: fastpretrain's fused attention computes no attention weights; "
                         "call fastpretrain.unpatch(model) to get them")  # fmt: skip
    for name in ("softcap", "sliding_window", "position_bias", "s_aux"):
        if kwargs.get(name) is not None:
            raise ValueError(f"{name}: fastpretrain's patched attention does not support it; "
                             f"call fastpretrain.unpatch(model)")  # fmt: skip
    causal = bool(getattr(module, "is_causal", False) if is_causal is None else is_causal)
    sq, sk = query.shape[2], key.shape[2]
    if causal and sq != sk:
        if sq != 1:
            raise ValueError(
                f"query: {sq} causal queries against {sk} keys (chunked prefill on a KV cache) is not "
                f"supported by fastpretrain's patched attention; call fastpretrain.unpatch(model)"
            )
        causal = False  # one new token sees every cached key
    mask = attention_mask
    if mask is not None:
        if mask.dim() != 2 or mask.shape != (query.shape[0], sk):
            raise ValueError(f"attention_mask: fastpretrain's patched attention takes a [B, S] padding mask, got "
                             f"a mask of shape {tuple(mask.shape)}")  # fmt: skip
        mask = mask.bool()
        packed = _unpadding(mask) if sq == sk else None
        if packed is not None:
            b, s = mask.shape
            rows = [t.transpose(1, 2).flatten(0, 1)[packed.indices] for t in (query, key, value)]
            out = attention_varlen(*rows, packed.cu_seqlens, packed.max_seqlen, causal=causal, dropout_p=dropout,
                                   scale=scaling)  # fmt: skip
            return repad(out, packed.indices, b, s), None
    out = attention(query, key, value, causal=causal, key_padding_mask=mask, dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2), None


def register() -> None:
    """Register the attention and mask functions with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, hf_attention)
    AttentionMaskInterface.register(NAME, hf_mask)


def head_dim(module) -> int | None:
    """The head width of a transformers attention module."""
    for name in ("head_dim", "attention_head_size"):
        if isinstance(getattr(module, name, None), int):
            return getattr(module, name)
    return None


def refuse_output_attentions(module, args, kwargs):
    """Forward pre-hook: some HF models (GPT-2) take ``output_attentions`` without handing it to the
    attention function, which would then record None weights without a word."""
    if kwargs.get("output_attentions") or getattr(module.config, "output_attentions", False):
        raise ValueError("output_attentions: fastpretrain's fused attention computes no attention weights; "
                         "call fastpretrain.unpatch(model) to get them")  # fmt: skip


def dispatches(cls: type) -> bool:
    """Whether the attention class's forward looks its attention function up in HF's interface
    (older transformers hard-wire sdpa / eager classes, which ``_attn_implementation`` cannot reach)."""
    code = getattr(inspect.unwrap(cls.forward), "__code__", None)
    return code is not None and "ALL_ATTENTION_FUNCTIONS" in code.co_names


def patch_attention(patcher, model, attention_classes: tuple[type, ...]) -> None:
    """Switch every config whose attention modules all have supported head widths to the fused
    attention; the others are left with the reason. Each distinct config object is switched once
    (ViTMAE's decoder has its own). ``output_attentions=True`` is refused at every HF model in it."""
    import transformers

    try:
        register()
    except ImportError as e:
        patcher.leave(
            "attention", f"transformers {transformers.__version__} lacks the attention / mask interfaces ({e})"
        )
        return
    by_config: dict[int, tuple] = {}
    for path, module in model.named_modules():
        if isinstance(module, attention_classes):
            config = module.config
            entry = by_config.setdefault(id(config), (config, []))
            entry[1].append((path or type(module).__name__, module))
    if not by_config:
        patcher.leave("attention", f"no {'/'.join(c.__name__ for c in attention_classes)} module found")
    hooked = False
    for config, modules in by_config.values():
        bad = [(path, head_dim(m)) for path, m in modules if head_dim(m) not in HEAD_DIMS]
        where = f"{modules[0][0]} .. {modules[-1][0]} ({len(modules)} modules)"
        if bad:
            patcher.leave(where, f"head dim {bad[0][1]} at {bad[0][0]}; the fused attention takes {HEAD_DIMS}")
            continue
        direct = [type(m).__name__ for _, m in modules if not dispatches(type(m))]
        if direct:
            patcher.leave(where, f"{direct[0]} of transformers {transformers.__version__} does not dispatch through "
                                 f"AttentionInterface; a newer transformers does")  # fmt: skip
            continue
        was = config._attn_implementation
        patcher.set(config, "_attn_implementation", NAME)
        patcher.done(f"fused attention (was {was!r}; padded batches: key padding mask, "
                     f"varlen from {UNPAD_MIN_PADDING:.0%} padding in eager)", where)  # fmt: skip
        hooked = True
    if hooked:
        for module in model.modules():
            if isinstance(module, transformers.PreTrainedModel):
                patcher.hook(module, refuse_output_attentions)


def kernel_loss_rows(flat_labels: torch.Tensor, ignore_index: int = -100):
    """The rows a fused head loss runs on: only those with a label in eager mode (a host sync that
    pays: 15% of BERT's tokens are masked), every row under torch.compile (no data-dependent shapes;
    the op then skips the ignored ones' gradients)."""
    if torch.compiler.is_compiling():
        return None
    return (flat_labels != ignore_index).nonzero().flatten()


def bind_args(module, args, kwargs) -> dict:
    """The call's arguments by name, as the class's forward would take them."""
    bound = inspect.signature(type(module).forward).bind(module, *args, **kwargs)
    named = dict(bound.arguments)
    named.pop("self", None)
    named.update(named.pop("kwargs", {}))
    return named


def hf_output(output, return_dict, config):
    """``output`` as HF's ``can_return_tuple`` returns it: a tuple when ``return_dict`` (default:
    the config's) is False."""
    return_dict = getattr(config, "return_dict", True) if return_dict is None else return_dict
    return output if return_dict else output.to_tuple()
