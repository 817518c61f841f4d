"""BERT pretraining shards: the streaming writer against create_examples, the reader, the checks, the errors."""

import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import bert_pretraining, bert_shards, wordpiece
from zoo.errors import ZooError

VOCAB = wordpiece.RESERVED_TOKENS + [f"w{i}" for i in range(60)]
SHA1 = bert_shards.vocabulary_sha1(VOCAB)
SEQ, PRED = 32, 5
SETTINGS = dict(seq_length=SEQ, max_predictions=PRED, verbose=False)


def word_docs(num_docs=40, seed=0):
    rng = random.Random(seed)
    return [
        [" ".join(f"w{rng.randrange(60)}" for _ in range(rng.randint(2, 10))) for _ in range(rng.randint(3, 12))]
        for _ in range(num_docs)
    ]


DOCS = word_docs()


def write(path, documents=DOCS, **overrides):
    settings = {**SETTINGS, "dupe_factor": 2, "seed": 3, **overrides}
    return bert_shards.write_pretraining_shards(iter(documents), VOCAB, str(path), **settings)


def read_all(pattern, input_context=None, cycle_length=8):
    """Every example of the files, in eval order, as one dict of arrays."""
    ds = bert_shards.make_shard_dataset(pattern, 12 * 10**5, input_context, seq_length=SEQ, max_predictions=PRED,
                                        eval=True, cycle_length=cycle_length)
    parts = [{k: v.numpy() for k, v in batch.items()} for batch in ds]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def assert_same(x, y):
    assert sorted(x) == sorted(y) and all(np.array_equal(x[k], y[k]) for k in x), "examples differ"


def rows(examples):
    """The examples as a sorted list of row byte strings (a multiset, to compare sets of examples)."""
    n = len(examples["nsp_labels"])
    return sorted(b"".join(np.asarray(examples[k][i]).tobytes() for k in sorted(examples)) for i in range(n))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """3 training shards and 1 eval shard; and the in-memory examples of the same documents."""
    out = tmp_path_factory.mktemp("shards")
    metadata = write(out, num_shards=3, eval_fraction=0.2)
    return out, metadata


def test_one_chunk_gives_create_examples_draw_for_draw(tmp_path):
    expected = bert_pretraining.create_examples(DOCS, VOCAB, SEQ, PRED, dupe_factor=2, seed=3)
    metadata = write(tmp_path / "one", num_shards=1)
    assert metadata["examples"] == {"train": len(expected["nsp_labels"])} and metadata["chunks"] == {"train": 1}
    assert_same(read_all(str(tmp_path / "one" / "*.tfrecord")), expected)
    # Dealt round-robin over 3 shards, interleaving the shards one record at a time restores the order.
    write(tmp_path / "three", num_shards=3)
    assert_same(read_all(str(tmp_path / "three" / "*.tfrecord"), cycle_length=3), expected)
    counts = [entry["examples"] for entry in json.loads((tmp_path / "three" / "metadata.json").read_text())
              ["shards"].values()]
    assert max(counts) - min(counts) <= 1 and sum(counts) == len(expected["nsp_labels"])


def test_chunks_follow_the_documented_random_streams(tmp_path):
    # About 250 characters a chunk; each chunk is create_examples of its documents with the chunk's seed.
    metadata = write(tmp_path, chunk_bytes=250)
    chunks, current, size = [], [], 0
    for document in DOCS:
        current.append(document)
        size += sum(map(len, document))
        if size >= 250 and len(current) >= 2:
            chunks.append(current)
            current, size = [], 0
    if len(current) < 2:
        chunks[-1] += current
    elif current:
        chunks.append(current)
    assert metadata["chunks"]["train"] == len(chunks) > 5
    assert bert_shards.chunk_seed(3, "train", 0) == 3
    parts = [bert_pretraining.create_examples(c, VOCAB, SEQ, PRED, dupe_factor=2,
                                              seed=bert_shards.chunk_seed(3, "train", i)) for i, c in enumerate(chunks)]
    expected = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    assert_same(read_all(str(tmp_path / "*.tfrecord")), expected)


def test_eval_split_and_metadata(shards):
    out, metadata = shards
    saved = json.loads((out / "metadata.json").read_text())
    assert saved == metadata
    assert metadata["vocab_sha1"] == SHA1 and metadata["vocab_size"] == len(VOCAB) and metadata["format_version"] == 1
    assert (metadata["seq_length"], metadata["max_predictions"], metadata["dupe_factor"], metadata["seed"]) == \
        (SEQ, PRED, 2, 3)
    assert metadata["documents"]["train"] + metadata["documents"]["eval"] == len(DOCS)
    assert 3 <= metadata["documents"]["eval"] <= 15
    assert sorted(metadata["shards"]) == ["eval/eval-00000-of-00001.tfrecord"] + [
        f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    for split in ("train", "eval"):
        assert sum(e["examples"] for e in metadata["shards"].values() if e["split"] == split) == \
            metadata["examples"][split]
    assert (out / "vocab.txt").read_text().split("\n")[:-1] == VOCAB
    train = read_all(str(out / metadata["train_files"]))
    held_out = read_all(str(out / metadata["eval_files"]))
    assert len(train["nsp_labels"]) == metadata["examples"]["train"]
    assert len(held_out["nsp_labels"]) == metadata["examples"]["eval"]
    # No example is in both splits.
    assert not set(rows(train)) & set(rows(held_out))


def test_reader_spec_matches_make_dataset(shards):
    out, _ = shards
    spec = bert_shards.make_shard_dataset(str(out / "*.tfrecord"), 8, tf.distribute.InputContext(1, 0, 2),
                                          seq_length=SEQ, max_predictions=PRED).element_spec
    examples = bert_pretraining.create_examples(DOCS[:6], VOCAB, SEQ, PRED)
    assert spec == bert_pretraining.make_dataset(examples, 8, tf.distribute.InputContext(1, 0, 2)).element_spec
    assert spec["token_ids"] == tf.TensorSpec([4, SEQ], tf.int32)


@pytest.mark.parametrize("pipelines", [2, 3, 4])  # 3 files: by file for 2 and 3 pipelines, by example for 4
def test_pipelines_split_without_overlap(shards, pipelines):
    out, _ = shards
    pattern = str(out / "*.tfrecord")
    everything = rows(read_all(pattern))
    parts = [rows(read_all(pattern, tf.distribute.InputContext(pipelines, i, pipelines))) for i in range(pipelines)]
    assert all(parts) and sorted(sum(parts, [])) == everything
    # Training order too: one shuffled, unrepeated pass of every pipeline covers everything once.
    trained = []
    for i in range(pipelines):
        ds = bert_shards.make_shard_dataset(pattern, pipelines, tf.distribute.InputContext(pipelines, i, pipelines),
                                            seq_length=SEQ, max_predictions=PRED, seed=5, repeat=False)
        for batch in ds:
            trained += rows({k: v.numpy() for k, v in batch.items()})
    assert sorted(trained) == everything


def test_training_order_is_deterministic_and_resumes_by_skip(shards):
    out, metadata = shards
    n = metadata["examples"]["train"]

    def take(count, skip=0, seed=1):
        ds = bert_shards.make_shard_dataset(str(out / "*.tfrecord"), 16, seq_length=SEQ, max_predictions=PRED,
                                            seed=seed, shuffle_buffer=50)
        return [{k: v.numpy() for k, v in b.items()} for b in ds.skip(skip).take(count)]

    steps = 2 * n // 16 + 2  # more than two epochs
    first, again = take(steps), take(steps)
    for x, y in zip(first, again):
        assert_same(x, y)
    for x, y in zip(take(4, skip=steps - 4), first[-4:]):  # resuming after steps - 4 batches
        assert_same(x, y)
    # The shuffle buffer mixes neighbouring epochs; two epochs' worth holds every example.
    seen = rows({k: np.concatenate([b[k] for b in first])[: 2 * n] for k in first[0]})
    in_file_order = read_all(str(out / "*.tfrecord"))
    assert sorted(set(seen)) == sorted(set(rows(in_file_order)))
    assert not np.array_equal(first[0]["token_ids"], in_file_order["token_ids"][:16])  # shuffled
    assert not np.array_equal(take(1, seed=2)[0]["token_ids"], first[0]["token_ids"])


def test_leftover_temporary_files_are_ignored_and_cleaned(tmp_path):
    (tmp_path / "train-00000-of-00001.tfrecord.tmp-0123abcd").write_bytes(b"half a shard")
    (tmp_path / "train-00007-of-00009.tfrecord").write_bytes(b"from a killed run")
    (tmp_path / "notes.txt").write_text("mine")
    write(tmp_path, dupe_factor=1)
    assert sorted(os.listdir(tmp_path)) == ["metadata.json", "notes.txt", "train-00000-of-00001.tfrecord", "vocab.txt"]
    (tmp_path / "train-00000-of-00001.tfrecord.tmp-4567ef").write_bytes(b"half a shard")
    assert bert_shards.check_shards(str(tmp_path / "*.tfrecord"), vocab_sha1=SHA1, seq_length=SEQ,
                                    max_predictions=PRED) == [str(tmp_path / "train-00000-of-00001.tfrecord")]


def one_line_error(match, fn, *args, **kwargs):
    with pytest.raises(ZooError, match=match) as error:
        fn(*args, **kwargs)
    assert "\n" not in str(error.value)
    return str(error.value)


def check(pattern, sha1=SHA1, seq_length=SEQ, max_predictions=PRED):
    return bert_shards.check_shards(str(pattern), vocab_sha1=sha1, seq_length=seq_length,
                                    max_predictions=max_predictions)


def test_check_shards_errors(tmp_path, shards):
    out, _ = shards
    assert len(check(out / "*.tfrecord")) == 3 and len(check(out / "eval" / "*.tfrecord")) == 1
    one_line_error(r"--train_files='.*nothing-\*\.tfrecord' matches no file", check, tmp_path / "nothing-*.tfrecord")
    one_line_error(r"--train_files: the shards .* another vocabulary .*--vocab_file=.*vocab\.txt", check,
                   out / "*.tfrecord", sha1="0" * 40)
    one_line_error(r"--train_files: .* --seq_length=32, this run --seq_length=64; set --seq_length=32", check,
                   out / "*.tfrecord", seq_length=64)
    one_line_error(r"--max_predictions=5, this run --max_predictions=20", check, out / "*.tfrecord", max_predictions=20)
    # Damaged copies of the output.
    copy = tmp_path / "copy"
    tf.io.gfile.makedirs(str(copy / "eval"))
    for name in ["metadata.json", "vocab.txt", *[f"train-0000{i}-of-00003.tfrecord" for i in range(3)]]:
        tf.io.gfile.copy(str(out / name), str(copy / name))
    shard = copy / "train-00001-of-00003.tfrecord"
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    one_line_error(r"--train_files: shard .*00001-of-00003\.tfrecord is truncated or corrupt \(\d+ bytes, "
                   r"metadata\.json says \d+\); rerun recipes/bert_create_data\.py", check, copy / "*.tfrecord")
    shard.write_bytes(data[:20] + bytes([data[20] ^ 1]) + data[21:])  # same size, first record damaged
    one_line_error(r"--train_files: shard .*00001-of-00003\.tfrecord is corrupt \(.*\); rerun", check,
                   copy / "*.tfrecord")
    shard.unlink()
    one_line_error(r"--train_files: shard .*00001-of-00003\.tfrecord listed in metadata\.json is missing", check,
                   copy / "*.tfrecord")
    (copy / "train-00000-of-00002.tfrecord").write_bytes(b"")
    one_line_error(r"--train_files: .*00000-of-00002\.tfrecord is not a shard listed in .*metadata\.json", check,
                   copy / "*-of-00002.tfrecord")
    (copy / "metadata.json").unlink()
    one_line_error(r"--train_files: no metadata\.json beside .*: the shards are incomplete", check,
                   copy / "*.tfrecord")


def test_writer_errors(tmp_path, shards):
    out, _ = shards
    one_line_error(r"--output_dir=.* already holds complete shards \(metadata\.json\)", write, out)
    one_line_error("at least 2 documents with text, found 1", write, tmp_path / "a", [["w1 w2", "w3"], ["   "]])
    one_line_error(r"--eval_fraction=0\.05 held out [01] document", write, tmp_path / "b", DOCS[:6], eval_fraction=0.05)
    one_line_error("each document must be a list of sentence strings", write, tmp_path / "c", ["w1 w2", "w3 w4"])
    one_line_error("--num_shards must be at least 1", write, tmp_path / "d", num_shards=0)
    one_line_error("--num_workers must be at least 1", write, tmp_path / "d", num_workers=0)
    one_line_error(r"--eval_fraction must be in \[0, 1\)", write, tmp_path / "d", eval_fraction=1.0)
    one_line_error("--seq_length must be at least 5", write, tmp_path / "d", seq_length=4)
    assert not os.path.exists(tmp_path / "a" / "metadata.json")
    assert [n for n in os.listdir(tmp_path / "a") if "tfrecord" in n] == []  # a failed run removes its tmp files


def test_ensure_default_shards(tmp_path):
    settings = dict(seq_length=SEQ, max_predictions=PRED, dupe_factor=1, seed=0, eval_fraction=0.25, max_documents=12)
    train, held_out = bert_shards.ensure_default_shards(str(tmp_path / "data"), VOCAB, **settings)
    assert train == str(tmp_path / "data" / "train-*-of-*.tfrecord")
    assert held_out == str(tmp_path / "data" / "eval" / "eval-*-of-*.tfrecord")
    assert len(check(train)) == 1 and len(check(held_out)) == 1
    assert [n for n in os.listdir(tmp_path) if n != "data"] == []  # the staging directory was renamed into place
    before = os.stat(tmp_path / "data" / "metadata.json").st_mtime_ns
    assert bert_shards.ensure_default_shards(str(tmp_path / "data"), VOCAB, **settings) == (train, held_out)
    assert os.stat(tmp_path / "data" / "metadata.json").st_mtime_ns == before  # reused, not rewritten
    one_line_error(r"holds pretraining shards made with other settings: seq_length 32 \(this run: 64\); use a new "
                   "--model_dir", bert_shards.ensure_default_shards, str(tmp_path / "data"), VOCAB,
                   **{**settings, "seq_length": 64})


@pytest.mark.slow
def test_two_workers_write_what_one_writes(tmp_path):
    docs = word_docs(120, seed=1)
    one = write(tmp_path / "one", docs, num_shards=3, chunk_bytes=400, eval_fraction=0.1)
    two = write(tmp_path / "two", docs, num_shards=3, chunk_bytes=400, eval_fraction=0.1, num_workers=2)
    assert one["chunks"]["train"] > 8 and one == two
    for name in one["shards"]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


KOREAN = ["대한민국은 민주공화국이다.", "모든 국민은 법 앞에 평등하다.", "국가는 국민의 기본적 인권을 보장한다.",
          "근로자는 단결권을 가진다.", "이 법은 공포한 날부터 시행한다."]


def korean_docs(num_docs=30, seed=0):
    rng = random.Random(seed)
    return [[rng.choice(KOREAN) for _ in range(rng.randint(2, 6))] for _ in range(num_docs)]


def test_sentencepiece_shards_with_whole_words(tmp_path):
    """A SentencePiece vocabulary goes through the same writer: spiece.model beside the shards, its kind and
    sha1 in metadata.json, whole-word masking recorded, the examples those of create_examples."""
    from zoo.data.bert_vocabulary import load_bert_vocabulary, train_sentencepiece_vocabulary

    vocabulary = train_sentencepiece_vocabulary([KOREAN] * 3, 90)
    docs = korean_docs()
    expected = bert_pretraining.create_examples(docs, vocabulary, SEQ, PRED, dupe_factor=2, seed=3,
                                                whole_word_mask=True)
    metadata = bert_shards.write_pretraining_shards(iter(docs), vocabulary, str(tmp_path), dupe_factor=2, seed=3,
                                                    whole_word_mask=True, **SETTINGS)
    assert (metadata["vocab_kind"], metadata["vocab_file"], metadata["whole_word_mask"]) == \
        ("sentencepiece", "spiece.model", True)
    assert metadata["vocab_sha1"] == vocabulary.sha1 and metadata["vocab_size"] == len(vocabulary)
    assert load_bert_vocabulary(str(tmp_path / "spiece.model")).proto == vocabulary.proto
    files = bert_shards.check_shards(str(tmp_path / "*.tfrecord"), vocab_sha1=vocabulary.sha1, seq_length=SEQ,
                                     max_predictions=PRED)
    assert_same(read_all(files), expected)
    one_line_error(r"another vocabulary .* pass --vocab_file=.*spiece\.model", bert_shards.check_shards,
                   str(tmp_path / "*.tfrecord"), vocab_sha1=SHA1, seq_length=SEQ, max_predictions=PRED)
