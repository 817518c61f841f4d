"""The shared SentencePiece vocabulary: ids, determinism, atomic file, round trip, TF tokenizer, errors."""

import os

import pytest
import tensorflow as tf

from zoo.data import number_words, subword
from zoo.errors import ZooError



def _texts():
    return [text for pair in number_words.embedded_pairs("train")[:400] for text in pair]  # generated when used


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("subword") / "sub" / "subword.model")
    return subword.train_subword_model(iter(_texts()), 300, path, split_digits=True), path


def test_special_ids_and_file(trained):
    model, path = trained
    assert [model.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert (subword.PAD_ID, subword.UNK_ID, subword.BOS_ID, subword.EOS_ID) == (0, 1, 2, 3)
    assert model.vocabulary_size == 300
    assert os.listdir(os.path.dirname(path)) == ["subword.model"]  # written atomically, no temporary left
    loaded = subword.load_subword_model(path)
    assert loaded.proto == model.proto and loaded.sha1 == model.sha1 == subword.vocabulary_sha1(path)
    assert len(model.sha1) == 40
    assert subword.UNK_ID in model.encode("I bought 7 \u20ac apples.")  # a character never seen -> unk


def test_training_is_deterministic(trained):
    again = subword.train_subword_model(_texts(), 300, split_digits=True)
    assert again.proto == trained[0].proto
    sampled = [subword.train_subword_model(_texts(), 200, input_sentence_size=300, seed=1) for _ in range(2)]
    assert sampled[0].proto == sampled[1].proto


def test_round_trip_and_decode(trained):
    model, _ = trained
    texts = [text for pair in number_words.embedded_pairs("validation") for text in pair]
    assert all(model.decode(model.encode(text)) == text for text in texts)  # 1,000 unseen sentences
    ids = model.encode("The score was 4 to 50.")
    assert subword.EOS_ID not in ids and subword.BOS_ID not in ids
    assert model.decode([subword.BOS_ID] + ids + [subword.EOS_ID] + ids + [0, 0]) == "The score was 4 to 50."
    assert model.decode(tf.constant(ids + [subword.EOS_ID, 0], tf.int32)) == "The score was 4 to 50."


def test_tf_tokenizer_matches_host_encoding(trained):
    model, _ = trained
    texts = [source for source, _ in number_words.embedded_pairs("test")[:20]]
    assert model.tokenize(tf.constant(texts)).to_list() == model.encode(texts)
    ds = tf.data.Dataset.from_tensor_slices(texts).map(model.tokenize)
    assert [list(ids) for ids in ds.as_numpy_iterator()] == model.encode(texts)
    assert model.tokenize(texts[0]).dtype == tf.int32


def test_errors(tmp_path):
    with pytest.raises(ZooError, match=r"--vocab_size=5000 is too large .* at most \d+ pieces"):
        subword.train_subword_model(_texts()[:100], 5000)
    with pytest.raises(ZooError, match="empty"):
        subword.train_subword_model(["", "  "], 100)
    with pytest.raises(ZooError, match="--vocab_file"):
        subword.load_subword_model(str(tmp_path / "missing.model"))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a proto")
    with pytest.raises(ZooError, match="not a SentencePiece model"):
        subword.load_subword_model(str(bad))
