"""Evaluations of trained representations."""

from fastpretrain.eval.bert import evaluate_pretraining, linear_probe
from fastpretrain.eval.word_vectors import evaluate_word_analogies, evaluate_word_pairs

__all__ = ["evaluate_pretraining", "evaluate_word_analogies", "evaluate_word_pairs", "linear_probe"]
