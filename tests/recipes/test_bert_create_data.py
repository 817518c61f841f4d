"""bert_create_data.py end to end, in subprocesses, as a user runs it."""

import json
import random

import numpy as np
import pytest
import tensorflow as tf

from tests.recipe_run import assert_one_line_error, files, run_recipe
from zoo.data import bert_pretraining, bert_shards, text_sources, wordpiece

pytestmark = pytest.mark.slow

SMALL = ["--seq_length=32", "--max_predictions=5", "--dupe_factor=2", "--seed=7"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two text files of random sentences over 40 words, and a vocabulary of those words."""
    base = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    for name in ("a.txt", "b.txt"):
        documents = ["\n".join(" ".join(f"w{rng.randrange(40)}" for _ in range(rng.randint(2, 9))) + "."
                               for _ in range(rng.randint(3, 10))) for _ in range(30)]
        (base / name).write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    vocab = str(base / "vocab" / "vocab.txt")  # not matched by --input_files=<base>/*.txt
    wordpiece.write_vocabulary(wordpiece.RESERVED_TOKENS + ["."] + [f"w{i}" for i in range(40)], vocab)
    return base, vocab


def test_writes_the_examples_create_examples_makes(corpus, tmp_path):
    base, vocab = corpus
    out = tmp_path / "out"
    result = run_recipe("bert_create_data.py", f"--input_files={base / '*.txt'}", f"--vocab_file={vocab}",
                        f"--output_dir={out}", "--num_shards=3", "--num_workers=2", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train with: python recipes/bert_pretrain.py --train_files=" in result.stdout
    assert files(out) == ["metadata.json", *[f"train-0000{i}-of-00003.tfrecord" for i in range(3)], "vocab.txt"]
    metadata = json.loads((out / "metadata.json").read_text())
    documents = text_sources.load_documents(input_files=str(base / "*.txt"))
    expected = bert_pretraining.create_examples(documents, vocab, 32, 5, dupe_factor=2, seed=7)
    assert metadata["examples"] == {"train": len(expected["nsp_labels"])} and metadata["documents"] == {"train": 60}
    pattern = str(out / "*.tfrecord")
    sha1 = bert_shards.vocabulary_sha1(wordpiece.load_vocabulary(vocab))
    assert len(bert_shards.check_shards(pattern, vocab_sha1=sha1, seq_length=32, max_predictions=5)) == 3
    ds = bert_shards.make_shard_dataset(pattern, 10**4, seq_length=32, max_predictions=5, eval=True, cycle_length=3)
    got = {k: v.numpy() for k, v in next(iter(ds)).items()}
    assert all(np.array_equal(got[k], expected[k]) for k in expected)

    again = run_recipe("bert_create_data.py", f"--input_files={base / '*.txt'}", f"--vocab_file={vocab}",
                       f"--output_dir={out}", *SMALL)
    assert_one_line_error(again, f"--output_dir={out} already holds complete shards")


def test_trains_a_vocabulary_and_holds_out_documents(corpus, tmp_path):
    base, _ = corpus
    out = tmp_path / "out"
    result = run_recipe("bert_create_data.py", f"--input_files={base / 'a.txt'}", "--vocab_size=60",
                        f"--output_dir={out}", "--num_shards=2", "--eval_fraction=0.3", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((out / "metadata.json").read_text())
    vocabulary = wordpiece.load_vocabulary(str(out / "vocab.txt"))
    assert metadata["vocab_sha1"] == bert_shards.vocabulary_sha1(vocabulary) and len(vocabulary) <= 60
    assert metadata["documents"]["train"] + metadata["documents"]["eval"] == 30 and metadata["examples"]["eval"] > 0
    assert files(out / "eval") == ["eval-00000-of-00001.tfrecord"]
    held_out = str(out / metadata["eval_files"])
    assert sum(1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(held_out))) == metadata["examples"]["eval"]


def test_errors_are_one_line(corpus, tmp_path):
    base, vocab = corpus
    assert_one_line_error(run_recipe("bert_create_data.py", f"--input_files={base / 'a.txt'}"),
                          "--output_dir is required")
    assert_one_line_error(run_recipe("bert_create_data.py", f"--input_files={tmp_path / 'none*.txt'}",
                                     f"--vocab_file={vocab}", f"--output_dir={tmp_path / 'o'}"),
                          "--input_files pattern", "matches no file")
    assert_one_line_error(run_recipe("bert_create_data.py", f"--input_files={base / 'a.txt'}",
                                     f"--vocab_file={vocab}", f"--output_dir={tmp_path / 'o'}", "--num_shards=0"),
                          "--num_shards=0 must be at least 1")
    assert_one_line_error(run_recipe("bert_create_data.py", f"--input_files={base / 'a.txt'}", "--corpus=ko",
                                     f"--output_dir={tmp_path / 'o'}"), "--corpus=ko picks an embedded corpus")


def test_korean_corpus_sentencepiece_and_whole_words(tmp_path):
    """--corpus=ko --tokenizer=sentencepiece: KoBERT's vocabulary layout trained on the embedded Korean corpus,
    spiece.model beside the shards, the examples create_examples makes with whole-word masking."""
    from zoo.data.bert_vocabulary import load_bert_vocabulary

    out = tmp_path / "out"
    result = run_recipe("bert_create_data.py", "--corpus=ko", "--tokenizer=sentencepiece", "--vocab_size=500",
                        "--max_documents=30", "--whole_word_mask", f"--output_dir={out}", "--num_shards=1", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sentencepiece vocabulary" in result.stdout and "--vocab_file=" + str(out / "spiece.model") in result.stdout
    assert files(out) == ["metadata.json", "spiece.model", "train-00000-of-00001.tfrecord"]
    vocabulary = load_bert_vocabulary(str(out / "spiece.model"))
    assert vocabulary.tokens[:5] == ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"] and len(vocabulary) <= 500
    documents = text_sources.load_documents(corpus="ko", max_documents=30)
    expected = bert_pretraining.create_examples(documents, vocabulary, 32, 5, dupe_factor=2, seed=7,
                                                whole_word_mask=True)
    pattern = str(out / "*.tfrecord")
    bert_shards.check_shards(pattern, vocab_sha1=vocabulary.sha1, seq_length=32, max_predictions=5)
    ds = bert_shards.make_shard_dataset(pattern, 10**4, seq_length=32, max_predictions=5, eval=True)
    got = {k: v.numpy() for k, v in next(iter(ds)).items()}
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
