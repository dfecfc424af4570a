"""fastpretrain: pre-training from word2vec to MAE on Triton kernels and a C++ corpus engine.

``fastpretrain.patch(model)`` / ``fastpretrain.unpatch(model)`` (and the per-family ``patch_bert``,
``patch_vit``, ``patch_vit_mae``, ``patch_gpt2``, ``patch_timm_vit``) speed up Hugging Face and timm
models in place; they load on first use, so ``import fastpretrain`` stays light."""

__version__ = "0.1.0"

_PATCH = {
    "patch": "patch",
    "unpatch": "patch",
    "patch_report": "patch",
    "patch_bert": "patch_bert",
    "patch_vit": "patch_vit",
    "patch_vit_mae": "patch_vit_mae",
    "patch_gpt2": "patch_gpt2",
    "patch_timm_vit": "patch_timm_vit",
}


def __getattr__(name: str):
    if name in _PATCH:
        import importlib

        return getattr(importlib.import_module(f"fastpretrain.interop.{_PATCH[name]}"), name)
    raise AttributeError(f"module 'fastpretrain' has no attribute {name!r}")
