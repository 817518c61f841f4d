"""BERT pretraining data at scale: documents -> sharded TFRecord files -> per-replica `tf.data` batches.

The public face of `bert_shard_writer` (the streaming, multi-process writer), `bert_shard_reader` (the
streaming reader and the shard checks) and `bert_shard_format` (records and `metadata.json`); import from here.

Example:
```python
from zoo.data import bert_shards, bert_vocabulary, text_sources
vocab = bert_vocabulary.load_bert_vocabulary("vocab.txt")   # or spiece.model
bert_shards.write_pretraining_shards(text_sources.iter_documents(input_files="wiki/*.txt"), vocab, "/data/b128",
                                     seq_length=128, max_predictions=20, dupe_factor=5, seed=0, num_shards=64,
                                     num_workers=4, eval_fraction=0.01)
files = bert_shards.check_shards("/data/b128/*.tfrecord", vocab_sha1=bert_shards.vocabulary_sha1(vocab),
                                 seq_length=128, max_predictions=20)
ds = bert_shards.make_shard_dataset(files, 256, input_context, seq_length=128, max_predictions=20, seed=0)

# The embedded default corpus goes the same way (written once, reused after):
train_files, eval_files = bert_shards.ensure_default_shards("runs/bert/data", vocab, seq_length=128,
                                                            max_predictions=20)
```
"""

from zoo.data import bert_shard_format as fmt
from zoo.data import bert_shard_writer, bert_vocabulary, text_sources
from zoo.data.bert_shard_format import FORMAT_VERSION, METADATA_FILE, vocabulary_sha1  # noqa: F401
from zoo.data.bert_shard_reader import check_shards, make_shard_dataset  # noqa: F401
from zoo.data.bert_shard_writer import chunk_seed, write_pretraining_shards  # noqa: F401
from zoo.errors import ZooError


def ensure_default_shards(output_dir, vocabulary, *, seq_length, max_predictions, dupe_factor=5, seed=12345,
                          eval_fraction=0.1, max_documents=None, num_shards=1, verbose=False, corpus=None,
                          whole_word_mask=False):
    """Shards of the embedded default corpus in `output_dir`, written on the first call and reused after.

    Returns `(train_files, eval_files)` globs (`eval_files` is `None` when `eval_fraction` is 0). Shards already
    there are reused when they were made with the same settings and vocabulary; other settings raise ZooError.
    A fresh output is written to a temporary sibling directory and renamed into place, so processes that race
    to create it leave one complete copy. `corpus` names an embedded corpus other than the default English
    one (`text_sources.iter_documents(corpus=...)`, e.g. "ko").
    """
    import tensorflow as tf

    vocabulary = bert_vocabulary.as_vocabulary(vocabulary)
    wanted = {"vocab_sha1": vocabulary.sha1, "seq_length": seq_length,
              "max_predictions": max_predictions, "dupe_factor": dupe_factor, "seed": seed,
              "eval_fraction": eval_fraction, "source": _default_source(max_documents, corpus),
              "whole_word_mask": bool(whole_word_mask)}
    patterns = (fmt.split_pattern(output_dir, "train"),
                fmt.split_pattern(output_dir, "eval") if eval_fraction > 0 else None)
    if not _reusable(output_dir, wanted):
        documents = text_sources.iter_documents(max_documents=max_documents, **({"corpus": corpus} if corpus else {}))
        settings = dict(seq_length=seq_length, max_predictions=max_predictions, dupe_factor=dupe_factor, seed=seed,
                        num_shards=num_shards, eval_fraction=eval_fraction, source=wanted["source"], verbose=verbose,
                        whole_word_mask=bool(whole_word_mask))
        if tf.io.gfile.exists(output_dir):  # an incomplete earlier attempt: finish it in place
            bert_shard_writer.write_pretraining_shards(documents, vocabulary, output_dir, **settings)
        else:
            staging = fmt.temporary_name(output_dir.rstrip("/\\"))
            bert_shard_writer.write_pretraining_shards(documents, vocabulary, staging, **settings)
            try:
                tf.io.gfile.rename(staging, output_dir)
            except (tf.errors.OpError, OSError):  # another process got there first
                tf.io.gfile.rmtree(staging)
                _reusable(output_dir, wanted)
    return patterns


def _default_source(max_documents, corpus=None):
    name = f"embedded {corpus} corpus" if corpus else "embedded default corpus"
    return f"{name} (max_documents={max_documents})"


def _reusable(output_dir, wanted):
    """True when `output_dir` holds complete shards made with `wanted`; ZooError when made with other settings."""
    metadata = fmt.read_metadata(output_dir)
    if metadata is None:
        return False
    defaults = {"whole_word_mask": False}  # outputs made before the setting existed
    different = {k: (metadata.get(k, defaults.get(k)), v) for k, v in wanted.items()
                 if metadata.get(k, defaults.get(k)) != v}
    if different:
        details = ", ".join(f"{k} {old!r} (this run: {new!r})" for k, (old, new) in sorted(different.items()))
        raise ZooError(
            f"{output_dir} holds pretraining shards made with other settings: {details}; "
            "use a new --model_dir or the flags of that run"
        )
    return True
