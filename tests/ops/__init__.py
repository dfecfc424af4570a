"""Tests of fastpretrain.ops, one module per op file. A package, so that its module names (ops.test_word2vec)
do not collide with the model tests of the same basename elsewhere under tests/."""
