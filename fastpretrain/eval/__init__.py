"""Evaluations of trained representations."""

from fastpretrain.eval.bert import evaluate_pretraining
from fastpretrain.eval.electra import UnmaskedExamples, evaluate_electra
from fastpretrain.eval.perplexity import evaluate_perplexity
from fastpretrain.eval.probe import evaluate_features, extract_features, knn_accuracy, linear_probe
from fastpretrain.eval.word_vectors import evaluate_word_analogies, evaluate_word_pairs

__all__ = ["UnmaskedExamples", "evaluate_electra", "evaluate_features", "evaluate_perplexity", "evaluate_pretraining",
           "evaluate_word_analogies", "evaluate_word_pairs", "extract_features", "knn_accuracy", "linear_probe"]  # fmt: skip
