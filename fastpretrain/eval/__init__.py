"""Evaluations of trained representations."""

from fastpretrain.eval.word_vectors import evaluate_word_analogies, evaluate_word_pairs

__all__ = ["evaluate_word_analogies", "evaluate_word_pairs"]
