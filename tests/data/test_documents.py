"""The rule-based sentence splitter: abbreviations, initials, quotes and digits."""

from fastpretrain.data import split_sentences


def test_sentence_splitter():
    text = 'Mr. Smith met Dr. J. Watson in the U.S. Army. "Run!" he said. Why? Because 3 men came. Then e.g. this one.'
    assert split_sentences(text) == ["Mr. Smith met Dr. J. Watson in the U.S. Army.", '"Run!" he said.', "Why?",
                                     "Because 3 men came.", "Then e.g. this one."]  # fmt: skip
