"""Masked autoencoder (He et al. 2022), step by step as in facebookresearch/mae ``models_mae.py``:
``patchify`` / ``unpatchify``, ``random_masking``, ``forward_encoder`` (visible patches only),
``forward_decoder`` (lightweight, mask tokens), ``forward_loss`` (masked patches only, optionally
on per-patch normalised pixels).

The three masking steps are one fused op each (``fastpretrain.ops.masking``): ``random_masking``
(one sort per sample, no second argsort), ``gather_visible`` (the encoder's positional add fused
into the gather of visible patches) and ``unshuffle_tokens`` (mask tokens, unshuffle and the
decoder's positional add in one pass); MAE's argsort / gather code is their reference.

Sizes: :func:`mae_vit_tiny_patch16_dec512d8b` ... :func:`mae_vit_large_patch16_dec512d8b`, and
:func:`mae_vit_fashion_mnist` (28 x 28 grey images, 4 x 4 patches) for CPU-sized runs.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from fastpretrain.atomic import atomic_path, atomic_write
from fastpretrain.checks import check_int
from fastpretrain.models.vit import (
    Block,
    VisionTransformer,
    ViTConfig,
    check_heads,
    init_linear_and_norms,
    sincos_pos_embed_2d,
    vit_flops,
)  # fmt: skip
from fastpretrain.ops.masking import (
    Masking,
    gather_visible,
    masking_from_noise,
    num_kept,
    random_masking,
    unshuffle_tokens,
)  # fmt: skip

# --- the model ------------------------------------------------------------------------------------


@dataclass
class MAEConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False

    def __post_init__(self) -> None:
        check_int("decoder_embed_dim", self.decoder_embed_dim, 4)
        check_int("decoder_depth", self.decoder_depth, 0)
        check_int("decoder_num_heads", self.decoder_num_heads, 1)
        check_heads("decoder_num_heads", self.decoder_embed_dim, self.decoder_num_heads)
        if self.decoder_embed_dim % 4:
            raise ValueError(f"decoder_embed_dim: the sin-cos embedding needs a multiple of 4, got {self.decoder_embed_dim}")
        check_mask_ratio(self.mask_ratio, self.encoder_config().num_patches)

    def encoder_config(self) -> ViTConfig:
        """The encoder: a ViT without head, fixed sin-cos positions, pooling by the cls token."""
        return ViTConfig(img_size=self.img_size, patch_size=self.patch_size, in_chans=self.in_chans, num_classes=0,
                         embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                         qkv_bias=self.qkv_bias, pos_embed="sincos", layer_norm_eps=self.layer_norm_eps)  # fmt: skip


def check_mask_ratio(mask_ratio, length: int) -> float:
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) or not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio: expected a float in [0, 1), got {mask_ratio!r}")
    if num_kept(length, mask_ratio) < 1:
        raise ValueError(f"mask_ratio: {mask_ratio} keeps no patch of {length}")
    return float(mask_ratio)


class MAE(nn.Module):
    """``MAE(MAEConfig(...))``; ``model(imgs)`` -> ``{"loss": ...}`` for the Trainer (a second
    positional argument, the dataset's labels, is ignored). ``return_outputs=True`` adds the
    prediction [B, L, p*p*C], the mask [B, L] and the encoder's latent [B, 1 + K, D].

    ``self.encoder`` is a :class:`VisionTransformer` (no head): probe it with ``forward_features``
    on whole images. The decoder's names are MAE's (``decoder_embed``, ``mask_token``,
    ``decoder_pos_embed``, ``decoder_blocks``, ``decoder_norm``, ``decoder_pred``).
    """

    def __init__(self, config: MAEConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = MAEConfig(**{**(asdict(config) if config else {}), **overrides})
        self.encoder = VisionTransformer(c.encoder_config())
        self.num_patches, self.patch_size, self.in_chans = self.encoder.config.num_patches, c.patch_size, c.in_chans
        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, c.decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            Block(c.decoder_embed_dim, c.decoder_num_heads, c.mlp_ratio, c.qkv_bias, eps=c.layer_norm_eps)
            for _ in range(c.decoder_depth)
        )  # fmt: skip
        self.decoder_norm = nn.LayerNorm(c.decoder_embed_dim, eps=c.layer_norm_eps)
        self.decoder_pred = nn.Linear(c.decoder_embed_dim, c.patch_size**2 * c.in_chans)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """As MAE: sin-cos positions, N(0, .02) tokens, Xavier-uniform linears, zero biases."""
        self.encoder.init_weights()
        with torch.no_grad():
            grid = self.encoder.config.grid_size
            self.decoder_pos_embed.copy_(sincos_pos_embed_2d(self.config.decoder_embed_dim, grid)[None])
        nn.init.normal_(self.mask_token, std=0.02)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            init_linear_and_norms(module)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, L, p*p*C], each patch as (row, column, channel), as MAE."""
        p, c = self.patch_size, self.in_chans
        if imgs.dim() != 4 or imgs.shape[1] != c or imgs.shape[2] % p or imgs.shape[3] % p:
            raise ValueError(f"imgs: expected [B, {c}, H, W] with H and W multiples of {p}, got {tuple(imgs.shape)}")
        b, _, h, w = imgs.shape
        x = imgs.reshape(b, c, h // p, p, w // p, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, p*p*C] -> [B, C, H, W] for a square grid of L patches (inverse of :meth:`patchify`)."""
        p, c = self.patch_size, self.in_chans
        h = math.isqrt(x.shape[1])
        if x.dim() != 3 or h * h != x.shape[1] or x.shape[2] != p * p * c:
            raise ValueError(f"x: expected [B, L, {p * p * c}] with L a square, got {tuple(x.shape)}")
        x = x.reshape(x.shape[0], h, h, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, h * p, h * p)

    def random_masking(self, batch: int, mask_ratio: float, *, noise: torch.Tensor | None = None,
                       generator: torch.Generator | None = None, device=None) -> Masking:  # fmt: skip
        """Per-sample random masking of the L patches (``noise`` [B, L] fixes it, as in MAE / HF)."""
        mask_ratio = check_mask_ratio(mask_ratio, self.num_patches)
        if noise is not None:
            if tuple(noise.shape) != (batch, self.num_patches):
                raise ValueError(f"noise: expected shape {(batch, self.num_patches)}, got {tuple(noise.shape)}")
            return masking_from_noise(noise, mask_ratio)
        return random_masking(batch, self.num_patches, mask_ratio, generator=generator, device=device)

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, *, noise: torch.Tensor | None = None,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, Masking]:  # fmt: skip
        """Embed the patches, keep the visible ones (positions added in the gather), prepend the
        cls token, run the blocks: latent [B, 1 + K, D] and the masking used."""
        enc = self.encoder
        x = enc.patch_embed(imgs)
        masking = self.random_masking(x.shape[0], mask_ratio, noise=noise, generator=generator, device=x.device)
        x = gather_visible(x, enc.pos_embed[:, 1:], masking.ids_keep)
        cls = (enc.cls_token + enc.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls.to(x.dtype), x], dim=1)
        for block in enc.blocks:
            x = block(x)
        return enc.norm(x), masking

    def forward_decoder(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Latent [B, 1 + K, D] -> predicted pixels of every patch [B, L, p*p*C]."""
        x = self.decoder_embed(x)
        x = unshuffle_tokens(x, self.mask_token, self.decoder_pos_embed, ids_restore)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the masked patches only; with
        ``norm_pix_loss`` the target patches are normalised by their own mean and variance."""
        target = self.patchify(imgs).float()
        if self.config.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred.float() - target) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, labels=None, *, mask_ratio: float | None = None,
                noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                return_outputs: bool = False) -> dict:  # fmt: skip
        mask_ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        latent, masking = self.forward_encoder(imgs, mask_ratio, noise=noise, generator=generator)
        pred = self.forward_decoder(latent, masking.ids_restore)
        loss = self.forward_loss(imgs, pred, masking.mask)
        if return_outputs:
            return {"loss": loss, "pred": pred, "mask": masking.mask, "latent": latent, "ids_restore": masking.ids_restore}
        return {"loss": loss}

    def flops_per_item(self) -> float:
        """Training FLOPs per image: encoder on 1 + K tokens (patch embedding on all L), decoder on
        1 + L tokens, as :meth:`VisionTransformer.flops_per_item` counts them."""
        c, patches = self.config, self.num_patches
        patch_dim = c.patch_size**2 * c.in_chans
        enc = vit_flops(c.embed_dim, c.depth, c.mlp_ratio, 1 + num_kept(patches, c.mask_ratio), patches, patch_dim)
        dec = vit_flops(c.decoder_embed_dim, c.decoder_depth, c.mlp_ratio, 1 + patches, 0, 0)
        return enc + dec + 6.0 * (c.embed_dim * c.decoder_embed_dim + c.decoder_embed_dim * patch_dim) * (1 + patches)

    # --- saving ----------------------------------------------------------------------------------

    def save_pretrained(self, out_dir: str | os.PathLike) -> Path:
        """``out_dir/model.safetensors`` (config in its metadata) and ``out_dir/config.json``, atomically."""
        out_dir = Path(out_dir)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(out_dir / "model.safetensors") as tmp:
            save_file(tensors, tmp, metadata={"config": json.dumps(asdict(self.config)), "model": "mae"})
        write_config(out_dir / "config.json", self.config)
        return out_dir / "model.safetensors"

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, map_location="cpu") -> MAE:
        """A model saved by :meth:`save_pretrained` (the folder or its ``model.safetensors``), or a
        Trainer checkpoint folder ``out_dir/checkpoints/step_N`` (config from ``out_dir/config.json``)."""
        path = Path(path)
        file = path / "model.safetensors" if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"checkpoint: no model.safetensors at {str(path)!r}")
        with safe_open(str(file), "pt") as f:
            meta = f.metadata() or {}
        if "config" in meta:
            config = json.loads(meta["config"])
        else:
            candidates = [file.parent / "config.json", file.parent.parent.parent / "config.json"]
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                raise FileNotFoundError(f"checkpoint: {file} has no config in its metadata and no config.json "
                                        f"beside it or in the run folder ({', '.join(map(str, candidates))})")  # fmt: skip
            config = json.loads(found.read_text())
        known = {f.name for f in fields(MAEConfig)}
        model = cls(MAEConfig(**{k: v for k, v in config.items() if k in known}))
        model.load_state_dict(load_file(file, device=str(map_location)))
        return model


def write_config(path: str | os.PathLike, config: MAEConfig, **extra) -> None:
    """``config.json``: the MAEConfig fields, plus ``extra`` entries (e.g. the data normalisation)
    that :meth:`MAE.from_pretrained` ignores; atomically, keeping extras already in the file."""
    path = Path(path)
    old = json.loads(path.read_text()) if path.is_file() else {}
    with atomic_write(path, "w") as f:
        json.dump({**old, **extra, **asdict(config)}, f, indent=2)


# --- sizes ----------------------------------------------------------------------------------------


def _factory(name: str, embed_dim: int, depth: int, num_heads: int, **defaults):
    def make(**kw) -> MAE:
        return MAE(MAEConfig(**{**dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads), **defaults, **kw}))

    make.__name__ = make.__qualname__ = name
    make.__doc__ = f"MAE with a {embed_dim}/{depth}/{num_heads} (width/depth/heads) encoder; MAEConfig fields as keywords."
    return make


mae_vit_tiny_patch16_dec512d8b = _factory("mae_vit_tiny_patch16_dec512d8b", 192, 12, 3)
mae_vit_small_patch16_dec512d8b = _factory("mae_vit_small_patch16_dec512d8b", 384, 12, 6)
mae_vit_base_patch16_dec512d8b = _factory("mae_vit_base_patch16_dec512d8b", 768, 12, 12)
mae_vit_large_patch16_dec512d8b = _factory("mae_vit_large_patch16_dec512d8b", 1024, 24, 16)
# Fashion-MNIST (28 x 28 grey, 7 x 7 patches of 4): a 4-block, 128-wide encoder and a 2-block, 128-wide decoder.
mae_vit_fashion_mnist = _factory("mae_vit_fashion_mnist", 128, 4, 4, img_size=28, patch_size=4, in_chans=1,
                                 decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4)  # fmt: skip

MODELS = {f.__name__: f for f in (mae_vit_fashion_mnist, mae_vit_tiny_patch16_dec512d8b, mae_vit_small_patch16_dec512d8b,
                                  mae_vit_base_patch16_dec512d8b, mae_vit_large_patch16_dec512d8b)}  # fmt: skip


# --- Hugging Face interop (ViTMAEForPreTraining) --------------------------------------------------

# Our names <- transformers >= 5 names (vit.layers.i.attention.{q,k,v,o}_proj, ...); transformers 4
# checkpoints (vit.encoder.layer.i.attention.attention.query, ...) are first renamed to these.
_HF_RENAMES = [
    (r"vit\.embeddings\.cls_token", "encoder.cls_token"),
    (r"vit\.embeddings\.position_embeddings", "encoder.pos_embed"),
    (r"vit\.embeddings\.patch_embeddings\.projection\.", "encoder.patch_embed.proj."),
    (r"vit\.layers\.(\d+)\.", r"encoder.blocks.\1."),
    (r"vit\.layernorm\.", "encoder.norm."),
    (r"decoder\.decoder_layers\.(\d+)\.", r"decoder_blocks.\1."),
    (r"decoder\.(mask_token|decoder_pos_embed|decoder_embed\.|decoder_norm\.|decoder_pred\.)", r"\1"),
]
_HF_BLOCK = [("attention.o_proj.", "attn.proj."), ("layernorm_before.", "norm1."), ("layernorm_after.", "norm2."),
             ("mlp.fc1.", "mlp.fc1."), ("mlp.fc2.", "mlp.fc2.")]  # fmt: skip
_HF_V4 = [("attention.attention.query.", "attention.q_proj."), ("attention.attention.key.", "attention.k_proj."),
          ("attention.attention.value.", "attention.v_proj."), ("attention.output.dense.", "attention.o_proj."),
          ("intermediate.dense.", "mlp.fc1."), ("output.dense.", "mlp.fc2.")]  # fmt: skip


def mae_from_hf(state_dict: dict) -> dict:
    """HF ``ViTMAEForPreTraining`` weights (transformers 4 or 5 names) -> our :class:`MAE`'s; the
    q/k/v projections are concatenated into our fused ``qkv``. Unknown keys raise ValueError."""
    sd = {}
    for key, value in state_dict.items():
        key = key.replace("vit.encoder.layer.", "vit.layers.")
        for old, new in _HF_V4:
            key = key.replace(old, new)
        sd[key] = value
    out, qkv, unknown = {}, {}, []
    for key, value in sd.items():
        new = key
        for pattern, repl in _HF_RENAMES:
            new = re.sub("^" + pattern, repl, new)
        m = re.match(r"^((?:encoder\.blocks|decoder_blocks)\.\d+\.)(.*)$", new)
        if m:
            prefix, rest = m.groups()
            qm = re.match(r"attention\.([qkv])_proj\.(weight|bias)$", rest)
            if qm:
                qkv.setdefault((prefix, qm.group(2)), {})[qm.group(1)] = value
                continue
            for old, repl in _HF_BLOCK:
                if rest.startswith(old):
                    new = prefix + repl + rest[len(old):]
                    break
            else:
                unknown.append(key)
                continue
        elif new == key:
            unknown.append(key)
            continue
        out[new] = value
    for (prefix, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"state_dict: {prefix} has {sorted(parts)} of the q/k/v {kind}s, expected all three")
        out[f"{prefix}attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    if unknown:
        raise ValueError(f"state_dict: keys with no counterpart in our MAE: {', '.join(unknown[:5])}")
    return out


def mae_to_hf(state_dict: dict, layout: str | None = None) -> dict:
    """Our MAE weights -> HF ``ViTMAEForPreTraining`` names: ``layout="v5"`` (transformers >= 5)
    or ``"v4"`` (transformers 4 and the hub's checkpoints); default: the installed transformers'."""
    if layout is None:
        try:
            import transformers

            layout = "v4" if int(transformers.__version__.split(".")[0]) < 5 else "v5"
        except ImportError:
            layout = "v4"
    if layout not in ("v4", "v5"):
        raise ValueError(f"layout: expected 'v4' or 'v5', got {layout!r}")
    inverse = [("encoder.cls_token", "vit.embeddings.cls_token"), ("encoder.pos_embed", "vit.embeddings.position_embeddings"),
               ("encoder.patch_embed.proj.", "vit.embeddings.patch_embeddings.projection."), ("encoder.norm.", "vit.layernorm."),
               ("mask_token", "decoder.mask_token"), ("decoder_pos_embed", "decoder.decoder_pos_embed"),
               ("decoder_embed.", "decoder.decoder_embed."), ("decoder_norm.", "decoder.decoder_norm."),
               ("decoder_pred.", "decoder.decoder_pred.")]  # fmt: skip
    out = {}
    for key, value in state_dict.items():
        m = re.match(r"^(encoder\.blocks|decoder_blocks)\.(\d+)\.(.*)$", key)
        if m:
            where, i, rest = m.groups()
            prefix = f"vit.layers.{i}." if where == "encoder.blocks" else f"decoder.decoder_layers.{i}."
            if rest.startswith("attn.qkv."):
                kind = rest.rsplit(".", 1)[1]
                for name, part in zip("qkv", value.chunk(3)):
                    out[f"{prefix}attention.{name}_proj.{kind}"] = part
                continue
            new = next((prefix + hf + rest[len(ours):] for hf, ours in _HF_BLOCK if rest.startswith(ours)), None)
        else:
            new = next((hf + key[len(ours):] for ours, hf in inverse if key.startswith(ours)), None)
        if new is None:
            raise ValueError(f"state_dict: {key!r} has no counterpart in ViTMAEForPreTraining")
        out[new] = value
    if layout == "v4":
        renamed = {}
        for key, value in out.items():
            key = key.replace("vit.layers.", "vit.encoder.layer.")
            for v4, v5 in _HF_V4:
                key = key.replace(v5, v4)
            renamed[key] = value
        out = renamed
    return out


def mae_config_from_hf(hf_config) -> MAEConfig:
    """The MAEConfig of a transformers ``ViTMAEConfig`` (sizes, eps, mask ratio, norm_pix_loss)."""
    c = hf_config
    if c.hidden_act != "gelu" or c.intermediate_size * c.decoder_hidden_size != c.decoder_intermediate_size * c.hidden_size:
        raise ValueError("hf_config: only exact GELU and the same MLP ratio in encoder and decoder are supported")
    return MAEConfig(img_size=c.image_size, patch_size=c.patch_size, in_chans=c.num_channels, embed_dim=c.hidden_size,
                     depth=c.num_hidden_layers, num_heads=c.num_attention_heads, decoder_embed_dim=c.decoder_hidden_size,
                     decoder_depth=c.decoder_num_hidden_layers, decoder_num_heads=c.decoder_num_attention_heads,
                     mlp_ratio=c.intermediate_size / c.hidden_size, qkv_bias=c.qkv_bias, layer_norm_eps=c.layer_norm_eps,
                     mask_ratio=c.mask_ratio, norm_pix_loss=bool(c.norm_pix_loss))  # fmt: skip


# --- visualisation --------------------------------------------------------------------------------


@torch.no_grad()
def save_reconstruction_grid(model: MAE, images: torch.Tensor, path: str | os.PathLike, *, mask_ratio: float | None = None,
                             mean=None, std=None, seed: int = 0, scale: int | None = None) -> Path:  # fmt: skip
    """A PNG of three rows: the images, the images with the masked patches greyed out, and the
    reconstruction (predicted pixels in the masked patches, the visible ones pasted back).

    ``mean``/``std``: the per-channel normalisation the images carry (undone for display).
    Predictions of a ``norm_pix_loss`` model are mapped back with each patch's own mean and std.
    Written atomically with PIL; ``scale`` (default: so a cell is >= 96 pixels) enlarges small images.
    """
    from PIL import Image

    if images.dim() != 4 or images.shape[0] < 1:
        raise ValueError(f"images: expected a batch [B, C, H, W], got shape {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    images = images.to(device, torch.float32)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = model(images, mask_ratio=mask_ratio, generator=generator, return_outputs=True)
    model.train(was_training)
    pred = out["pred"].float()
    if model.config.norm_pix_loss:
        target = model.patchify(images)
        pred = pred * (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5 + target.mean(dim=-1, keepdim=True)
    mask = model.unpatchify(out["mask"].unsqueeze(-1).expand(-1, -1, pred.shape[-1]))
    recon = images * (1 - mask) + model.unpatchify(pred) * mask
    masked = images * (1 - mask)
    rows = torch.stack([images, masked, recon])  # [3, B, C, H, W]
    c = images.shape[1]
    mean_t = torch.as_tensor(0.0 if mean is None else mean, dtype=torch.float32, device=device).reshape(-1, 1, 1)
    std_t = torch.as_tensor(1.0 if std is None else std, dtype=torch.float32, device=device).reshape(-1, 1, 1)
    rows = rows * std_t + mean_t
    rows[1] = torch.where(mask.bool(), torch.full_like(rows[1], 0.5), rows[1])  # masked patches in mid grey
    pixels = (rows.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    n, h, w = images.shape[0], images.shape[2], images.shape[3]
    scale = scale or max(1, math.ceil(96 / max(h, w)))
    pad = 2
    shown = 3 if c >= 3 else 1  # RGB, or the first channel in grey
    canvas = torch.full((shown, 3 * (h * scale + pad) + pad, n * (w * scale + pad) + pad), 255, dtype=torch.uint8)
    for r in range(3):
        for i in range(n):
            cell = pixels[r, i].repeat_interleave(scale, 1).repeat_interleave(scale, 2)
            y, x = pad + r * (h * scale + pad), pad + i * (w * scale + pad)
            canvas[:, y : y + h * scale, x : x + w * scale] = cell[:shown]
    array = canvas.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if shown == 1 else array)
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


__all__ = ["MAE", "MAEConfig", "MODELS", "mae_config_from_hf", "mae_from_hf", "mae_to_hf",
           "mae_vit_base_patch16_dec512d8b", "mae_vit_fashion_mnist", "mae_vit_large_patch16_dec512d8b",
           "mae_vit_small_patch16_dec512d8b", "mae_vit_tiny_patch16_dec512d8b", "save_reconstruction_grid"]  # fmt: skip
