"""The on-disk format of BERT pretraining shards: TFRecord files of `tf.train.Example`s plus `metadata.json`.

Records use the feature names, padding and dtypes of google-research/bert's `create_pretraining_data.py`
(`input_ids`, `input_mask`, `segment_ids` [seq_length]; `masked_lm_positions`, `masked_lm_ids`,
`masked_lm_weights` [max_predictions]; `next_sentence_labels` [1]), so the shards also feed the original's and
Model Garden's readers. An output directory holds

    train-00000-of-00004.tfrecord ...      training shards (`--train_files='<dir>/*.tfrecord'`)
    eval/eval-00000-of-00001.tfrecord      held-out shards, when an eval split was asked for
    vocab.txt or spiece.model              the vocabulary the token ids refer to (WordPiece or SentencePiece)
    metadata.json                          written last: its presence means the output is complete

Records are serialised deterministically (feature map keys sorted), so the same examples give the same bytes
in any process. `metadata.json` records the format version, the vocabulary's sha1, size, kind and file name
(`vocab_kind`, `vocab_file`; absent in older outputs, which are WordPiece `vocab.txt`), every example-making
setting and, per shard, its example count and byte size (a shorter file is a truncated one).
"""

import json
import os
import uuid

from zoo.data import wordpiece
from zoo.paths import write_file_atomically

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
EVAL_DIR = "eval"

# zoo's batch feature name -> the original's record feature name.
RECORD_NAMES = {
    "token_ids": "input_ids",
    "padding_mask": "input_mask",
    "segment_ids": "segment_ids",
    "mask_positions": "masked_lm_positions",
    "mask_ids": "masked_lm_ids",
    "mask_weights": "masked_lm_weights",
    "nsp_labels": "next_sentence_labels",
}


def vocabulary_sha1(vocabulary):
    """The sha1 of a vocabulary as recipes record it in `config.json` and `metadata.json`: a `BertVocabulary`'s
    `sha1`, or for a WordPiece token list the sha1 of its tokens joined by newlines (the same value)."""
    if hasattr(vocabulary, "sha1"):
        return vocabulary.sha1
    return wordpiece.vocabulary_sha1(vocabulary)


def vocabulary_file(metadata):
    """The vocabulary file name beside shards of this `metadata.json` (older outputs: vocab.txt)."""
    return metadata.get("vocab_file", "vocab.txt")


def shard_name(split, index, count):
    """The path of shard `index` of `count`, relative to the output directory."""
    name = f"{split}-{index:05d}-of-{count:05d}.tfrecord"
    return name if split == "train" else f"{EVAL_DIR}/{name}"


def split_pattern(output_dir, split):
    """The glob of one split's shards in `output_dir`."""
    return os.path.join(output_dir, shard_name(split, 0, 1).replace("00000-of-00001", "*-of-*"))


def serialize(features):
    """One example (a dict of `FEATURES` rows, e.g. from `bert_pretraining.instance_features`) as record bytes."""
    import tensorflow as tf

    feature = {}
    for name, record_name in RECORD_NAMES.items():
        if name == "mask_weights":
            feature[record_name] = tf.train.Feature(float_list=tf.train.FloatList(value=features[name]))
        else:
            feature[record_name] = tf.train.Feature(int64_list=tf.train.Int64List(value=features[name]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def parse_batch(serialized, seq_length, max_predictions):
    """Parses a batch of serialised records into zoo's features (int32, `mask_weights` float32)."""
    import tensorflow as tf

    widths = {"token_ids": seq_length, "padding_mask": seq_length, "segment_ids": seq_length,
              "mask_positions": max_predictions, "mask_ids": max_predictions, "mask_weights": max_predictions}
    spec = {RECORD_NAMES[name]: tf.io.FixedLenFeature([width], tf.float32 if name == "mask_weights" else tf.int64)
            for name, width in widths.items()}
    spec[RECORD_NAMES["nsp_labels"]] = tf.io.FixedLenFeature([], tf.int64)
    parsed = tf.io.parse_example(serialized, spec)
    out = {}
    for name, record_name in RECORD_NAMES.items():
        value = parsed[record_name]
        out[name] = value if name == "mask_weights" else tf.cast(value, tf.int32)
    return out


def read_metadata(output_dir):
    """The parsed `metadata.json` of `output_dir`, or `None` when there is none (an incomplete output)."""
    import tensorflow as tf

    path = os.path.join(output_dir, METADATA_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        return json.loads(f.read())


def write_atomically(path, text):
    """Writes `text` to `path` through a temporary name and a rename, so a reader never sees half of it."""
    write_file_atomically(path, text)


def temporary_name(path):
    """Where `path` is written before its rename: never matched by a `*.tfrecord` glob or listed in metadata."""
    return f"{path}.tmp-{uuid.uuid4().hex}"
