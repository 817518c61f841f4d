"""WordPiece vocabulary training (offline), loading, and the tokenizer built from it."""

import os

import pytest

from zoo.data import wordpiece
from zoo.errors import ZooError

DOCUMENTS = [
    ["The Café serves crème brûlée.", "Naïve visitors order twice!"],
    ["Tokenizers split words into pieces.", "The pieces are learned from text."],
    ["A tiny corpus still trains a vocabulary.", "Every character becomes a token."],
] * 20


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("vocab") / "sub" / "vocab.txt")
    return wordpiece.train_vocabulary(DOCUMENTS, 120, path), path


def test_train_vocabulary_offline(trained):
    vocabulary, path = trained
    assert vocabulary[:5] == ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    assert 5 < len(vocabulary) <= 120
    assert len(set(vocabulary)) == len(vocabulary)
    # Uncased and accent-free, as the tokenizer normalises its input.
    assert "café" not in vocabulary and "The" not in vocabulary and "é" not in vocabulary
    assert "the" in vocabulary and "e" in vocabulary and "##e" in vocabulary
    with open(path, encoding="utf-8") as f:
        assert f.read() == "".join(token + "\n" for token in vocabulary)
    assert os.listdir(os.path.dirname(path)) == ["vocab.txt"]  # no temporary file left behind
    assert wordpiece.load_vocabulary(path) == vocabulary


def test_vocab_size_is_an_upper_bound(tmp_path):
    vocabulary = wordpiece.train_vocabulary(DOCUMENTS, 12)
    assert len(vocabulary) == 12 and vocabulary[:5] == wordpiece.RESERVED_TOKENS


def test_write_replaces_existing_file(tmp_path):
    path = str(tmp_path / "vocab.txt")
    wordpiece.write_vocabulary(["old"], path)
    wordpiece.write_vocabulary(wordpiece.RESERVED_TOKENS + ["new"], path)
    assert wordpiece.load_vocabulary(path) == wordpiece.RESERVED_TOKENS + ["new"]
    assert os.listdir(tmp_path) == ["vocab.txt"]


def test_tokenizer_is_uncased_and_strips_accents(trained):
    vocabulary, path = trained
    tokenizer = wordpiece.make_tokenizer(vocabulary)
    unk = wordpiece.special_ids(vocabulary)["unk"]
    assert tokenizer(["THE CAFÉ Serves Crème"]) == tokenizer(["the cafe serves creme"])
    ids = tokenizer(["The pieces are learned from text."])[0]
    assert len(ids) >= 7 and unk not in ids
    assert wordpiece.make_tokenizer(path)(["naive visitors"]) == tokenizer(["Naïve Visitors"])


def test_special_ids(trained):
    vocabulary, _ = trained
    assert wordpiece.special_ids(vocabulary) == {"pad": 0, "cls": 1, "sep": 2, "unk": 3, "mask": 4}
    with pytest.raises(ZooError, match=r"lacks the special tokens \['\[MASK\]'\]"):
        wordpiece.special_ids(vocabulary[:4] + ["x"])


def test_training_errors():
    with pytest.raises(ZooError, match="--vocab_size must exceed the 5 special tokens, got 5"):
        wordpiece.train_vocabulary(DOCUMENTS, 5)
    with pytest.raises(ZooError, match="no text"):
        wordpiece.train_vocabulary([["  "], []], 100)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("[PAD]\n[CLS]\n[SEP]\n[UNK]\nhello\n", r"lacks the special tokens \['\[MASK\]'\]"),
        ("[PAD]\n[CLS]\n[SEP]\n[UNK]\n[MASK]\nhi\nhi\n", r"repeats tokens \['hi'\]"),
        ("[PAD]\n[CLS]\n\n[SEP]\n[UNK]\n[MASK]\n", "empty token at line 3"),
    ],
)
def test_load_errors(tmp_path, text, message):
    path = tmp_path / "vocab.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ZooError, match=f"vocab.txt.*--vocab_file.*{message}"):
        wordpiece.load_vocabulary(str(path))


def test_missing_file_and_bad_lists(tmp_path):
    with pytest.raises(ZooError, match=r"missing\.txt.*does not exist.*--vocab_file"):
        wordpiece.load_vocabulary(str(tmp_path / "missing.txt"))
    with pytest.raises(ZooError, match=r"missing\.txt.*--vocab_file"):
        wordpiece.make_tokenizer(tmp_path / "missing.txt")
    with pytest.raises(ZooError, match="lacks the special tokens"):
        wordpiece.make_tokenizer(["[PAD]", "a"])
