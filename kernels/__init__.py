"""Triton kernels of fastpretrain, installed as ``fastpretrain.kernels``.

One module per kernel family (``attention.py``, ``masking.py``, ``sampled_softmax.py``): only
``@triton.jit`` functions and thin launch helpers taking tensors. Autograd, validation and
dispatch live in ``fastpretrain.ops``.
"""
