"""Streams BERT pretraining shards back as per-replica batches, and checks shards before a run uses them.

Example:
```python
files = check_shards("/data/bert128/*.tfrecord", vocab_sha1=sha1, seq_length=128, max_predictions=20)
ds = make_shard_dataset(files, 256, input_context, seq_length=128, max_predictions=20, seed=0)
eval_ds = make_shard_dataset("/data/bert128/eval/*.tfrecord", 256, input_context, seq_length=128,
                             max_predictions=20, eval=True)   # finite, in file order, every example once
```
"""

import os

from zoo.data import bert_shard_format as fmt
from zoo.data.distribute import per_replica_batch_size
from zoo.errors import ZooError


def make_shard_dataset(file_pattern, global_batch_size, input_context=None, *, seq_length, max_predictions,
                       seed=0, shuffle_buffer=10000, repeat=True, eval=False, drop_remainder=None, cycle_length=8,
                       flag="--train_files"):
    """A `tf.data.Dataset` of per-replica batches of the examples in TFRecord shards.

    Batches are dicts of `bert_pretraining.FEATURES` with `make_dataset`'s dtypes: int32, `mask_weights`
    float32; `token_ids` is [batch, seq_length], `nsp_labels` [batch].

    Training (`eval=False`): input pipeline `i` of `p` (`input_context`) reads files i, i+p, ... of the sorted
    list, or, when there are fewer files than pipelines, every file and keeps examples i, i+p, ... .
    Each epoch visits its files in a new order, `cycle_length` files interleaved record by record, through a
    `shuffle_buffer`-example shuffle, and repeats (`repeat`). Every random order comes from `seed` (and
    TensorFlow's global seed, which recipes set from --seed), and interleaving and parsing keep their order,
    so the sequence of batches is the same on every run: a resumed run that skips k batches sees what an
    uninterrupted one sees. Batches have a static batch size (the remainder of a finite pass is dropped).

    Evaluation (`eval=True`): no shuffling, no repetition; the pipeline's examples once, in file order, and
    (unless `drop_remainder=True`) a last smaller batch, so every example is evaluated once.
    """
    import tensorflow as tf

    files = _glob(file_pattern, flag)
    batch_size = per_replica_batch_size(global_batch_size, input_context)
    if drop_remainder is None:
        drop_remainder = not eval
    shuffle, repeat = not eval, repeat and not eval
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    index = input_context.input_pipeline_id if input_context is not None else 0
    by_file = pipelines > 1 and len(files) >= pipelines
    ds = tf.data.Dataset.from_tensor_slices(files)
    if by_file:
        ds = ds.shard(pipelines, index)
        files = files[index::pipelines]
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=max(1, min(cycle_length, len(files))), block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if pipelines > 1 and not by_file:
        ds = ds.shard(pipelines, index)
    if shuffle and shuffle_buffer > 1:
        ds = ds.shuffle(shuffle_buffer, seed=seed + 1, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda records: fmt.parse_batch(records, seq_length, max_predictions),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def check_shards(file_pattern, *, vocab_sha1, seq_length, max_predictions, flag="--train_files"):
    """The sorted files of `file_pattern` after checking that a run can use them; ZooError (one line) if not.

    Checks: the pattern matches files; each lies beside (or one folder below) a `metadata.json` of a supported
    format version that lists it; no shard listed there for the matched splits is missing; each file has the
    byte size recorded (a truncated or grown file does not) and its first record reads (TFRecord checks its
    CRCs) and parses at `seq_length` / `max_predictions`; the shards were made with the vocabulary of sha1
    `vocab_sha1` (`bert_shards.vocabulary_sha1`) and with the run's `seq_length` and `max_predictions`.
    """
    import tensorflow as tf

    files = _glob(file_pattern, flag)
    rerun = "rerun recipes/bert_create_data.py"
    checked = {}
    for path in files:
        root, name, metadata = _metadata_of(path, flag)
        if root not in checked:
            _check_settings(metadata, root, flag, vocab_sha1, seq_length, max_predictions)
            checked[root] = set()
        entry = metadata.get("shards", {}).get(name)
        if entry is None:
            raise ZooError(
                f"{flag}: {path} is not a shard listed in {os.path.join(root, fmt.METADATA_FILE)} (left over from "
                "another run?); remove it or narrow the pattern"
            )
        checked[root].add(entry["split"])
        size = tf.io.gfile.stat(path).length
        if size != entry["bytes"]:
            raise ZooError(
                f"{flag}: shard {path} is truncated or corrupt ({size} bytes, {fmt.METADATA_FILE} says "
                f"{entry['bytes']}); {rerun}"
            )
        if entry["examples"]:
            _check_first_record(path, flag, seq_length, max_predictions, rerun)
    for root, splits in checked.items():
        metadata = fmt.read_metadata(root)
        for name, entry in sorted(metadata.get("shards", {}).items()):
            if entry["split"] in splits and not tf.io.gfile.exists(os.path.join(root, name)):
                raise ZooError(f"{flag}: shard {os.path.join(root, name)} listed in {fmt.METADATA_FILE} is missing; "
                               f"{rerun}")
    return files


def _glob(file_pattern, flag):
    import tensorflow as tf

    patterns = [p.strip() for p in (file_pattern.split(",") if isinstance(file_pattern, str) else file_pattern)]
    files = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            files.extend(tf.io.gfile.glob(pattern))
        elif tf.io.gfile.exists(pattern):
            files.append(pattern)
    files = sorted(set(f for f in files if not os.path.basename(f).startswith(".")))
    if not files:
        raise ZooError(
            f"{flag}={','.join(patterns)!r} matches no file; give the shards recipes/bert_create_data.py wrote, "
            "e.g. '<output_dir>/*.tfrecord'"
        )
    return files


def _metadata_of(path, flag):
    """(directory of metadata.json, the shard's name relative to it, the metadata) for one shard file."""
    directory = os.path.dirname(path)
    for root in (directory, os.path.dirname(directory)):  # eval shards lie one folder below it
        try:
            metadata = fmt.read_metadata(root or ".")
        except ValueError:
            raise ZooError(f"{flag}: {os.path.join(root, fmt.METADATA_FILE)} is corrupt (not JSON); "
                           "rerun recipes/bert_create_data.py") from None
        if metadata is not None:
            return root, os.path.relpath(path, root or ".").replace(os.sep, "/"), metadata
    raise ZooError(
        f"{flag}: no {fmt.METADATA_FILE} beside {path}: the shards are incomplete (bert_create_data.py did not "
        "finish) or were not written by it; rerun recipes/bert_create_data.py"
    )


def _check_settings(metadata, root, flag, vocab_sha1, seq_length, max_predictions):
    where = os.path.join(root, fmt.METADATA_FILE)
    version = metadata.get("format_version")
    if version != fmt.FORMAT_VERSION:
        raise ZooError(f"{flag}: {where} has format version {version!r}, this zoo reads {fmt.FORMAT_VERSION}; "
                       "recreate the shards with this version's recipes/bert_create_data.py")
    if vocab_sha1 is not None and metadata.get("vocab_sha1") != vocab_sha1:
        raise ZooError(
            f"{flag}: the shards in {root} were made with another vocabulary (sha1 {metadata.get('vocab_sha1')}, "
            f"this run's is {vocab_sha1}); pass --vocab_file={os.path.join(root, fmt.vocabulary_file(metadata))} "
            "or recreate them"
        )
    for name, value in (("seq_length", seq_length), ("max_predictions", max_predictions)):
        if metadata.get(name) != value:
            raise ZooError(f"{flag}: the shards in {root} have --{name}={metadata.get(name)}, this run "
                           f"--{name}={value}; set --{name}={metadata.get(name)} or recreate the shards")


def _check_first_record(path, flag, seq_length, max_predictions, rerun):
    import tensorflow as tf

    try:
        for record in tf.data.TFRecordDataset(path).take(1):
            fmt.parse_batch(tf.reshape(record, [1]), seq_length, max_predictions)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        reason = str(e.message if hasattr(e, "message") else e).strip().splitlines()[0][:160]
        raise ZooError(f"{flag}: shard {path} is corrupt ({reason}); {rerun}") from None
