"""Conversions to and from other projects' formats, one module per format: :mod:`~fastpretrain.interop.hf`
(Hugging Face BERT and ViTMAE), :mod:`~fastpretrain.interop.hf_gpt` (Hugging Face GPT-2) and
:mod:`~fastpretrain.interop.timm` (ViT, original MAE encoders), all on the rename tables of :mod:`~fastpretrain.interop.rename`;
and :func:`fastpretrain.patch` (:mod:`~fastpretrain.interop.patch` and one ``patch_<family>`` module per
family), which speeds up HF and timm models in place instead of converting them."""
