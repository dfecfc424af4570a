"""fastpretrain: pre-training from word2vec to MAE on Triton kernels and a C++ corpus engine."""

__version__ = "0.1.0"
