"""timm's ``VisionTransformer`` on fastpretrain's fused attention: each block's ``Attention``
(qkv, optional q/k norms, scale norm and output gate, as timm has them) runs softmax(q k^T) v in the
fused op instead of ``F.scaled_dot_product_attention``. Other attention classes (``DiffAttention``,
rotary variants) and head widths outside ``HEAD_DIMS`` are left as they are, with the reason; an
``attn_mask`` at call time is refused (ViT's own forward passes none)."""

from __future__ import annotations

from torch import nn

from fastpretrain.interop.patch import Patcher, check_wrapped
from fastpretrain.nn import HEAD_DIMS
from fastpretrain.ops import attention


def _attention_forward(self, x, attn_mask=None, is_causal=False):
    if attn_mask is not None:
        raise ValueError("attn_mask: fastpretrain's patched timm attention takes no mask; "
                         "call fastpretrain.unpatch(model) to pass one")  # fmt: skip
    b, n, _ = x.shape
    gate = getattr(self, "gate", None)
    gate = gate(x).sigmoid() if gate is not None else None
    q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = self.q_norm(q), self.k_norm(k)
    out = attention(q, k, v, causal=bool(is_causal), dropout_p=self.attn_drop.p if self.training else 0.0,
                    scale=self.scale)  # fmt: skip
    out = out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
    out = getattr(self, "norm", nn.Identity())(out)
    if gate is not None:
        out = out * gate
    return self.proj_drop(self.proj(out))


def patch_timm_vit(model, *, attention: bool = True, loss: bool = True, masking: bool = True, strict: bool = False):
    """Patch a timm ``VisionTransformer`` in place; returns the :class:`~fastpretrain.interop.patch.PatchReport`.

    Args:
        attention: swap each block's attention for the fused op.
        loss, masking: unused (timm's ViT has neither to fuse; accepted so :func:`fastpretrain.patch`
            takes one set of options).
        strict: raise ValueError, changing nothing, if a part was refused (e.g. a head width).
    """
    check_wrapped(model)
    from timm.models import vision_transformer as tv

    if not isinstance(model, tv.VisionTransformer):
        raise TypeError(f"model: expected a timm VisionTransformer, got {type(model).__name__}")
    patcher = Patcher(model, "timm_vit")
    if attention:
        for path, module in model.named_modules():
            if not path.endswith(".attn"):
                continue
            if type(module) is not tv.Attention:
                patcher.leave(path, f"{type(module).__name__} is not timm's plain Attention")
            elif module.head_dim not in HEAD_DIMS:
                patcher.leave(path, f"head dim {module.head_dim}; the fused attention takes {HEAD_DIMS}")
            else:
                patcher.bind(module, _attention_forward)
                patcher.done("fused attention", path)
    return patcher.finish(strict)
