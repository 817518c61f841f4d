"""Where a BERT pretraining run's vocabulary and TFRecord shards come from (recipes/bert_pretrain.py).

One code path: training always streams shards. `--train_files` names shards written by
recipes/bert_create_data.py; without it the documents (the embedded corpus, `--input_files` or `--tfds_name`)
are made into shards in `<model_dir>/data/` on the first run and reused after.

    vocabulary = run_vocabulary(model_dir, vocab_file=None, vocab_size=8000, train_files=None,
                                            source={}, vocab_documents=20000)
    train_files, eval_files = run_shards(model_dir, vocabulary, source={}, train_files=None, eval_files=None,
                                         seq_length=128, max_predictions=20, dupe_factor=5, seed=0,
                                         eval_fraction=0.1)
"""

import itertools
import os

from zoo.errors import ZooError

DATA_DIR = "data"  # under --model_dir
# The vocabulary `wordpiece.train_vocabulary` learns from the whole embedded corpus at this size (946 tokens),
# shipped so that the default run skips 13 s of training. Regenerate: python -m zoo.recipe_support.bert_data
DEFAULT_VOCAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_vocab.txt")
DEFAULT_VOCAB_SIZE = 8000


def run_vocabulary(model_dir, *, vocab_file, vocab_size, train_files, source, vocab_documents):
    """The run's WordPiece vocabulary (a list of tokens).

    In order: `--vocab_file`; `<model_dir>/vocab.txt` (a resumed run keeps its vocabulary); the `vocab.txt`
    written beside `--train_files`; else one trained on the first `vocab_documents` documents of `source`
    (for the whole embedded corpus at `DEFAULT_VOCAB_SIZE`, the shipped `DEFAULT_VOCAB`, which is that).
    """
    import tensorflow as tf

    from zoo.data import text_sources, wordpiece

    own = os.path.join(model_dir, "vocab.txt")
    if vocab_file:
        return wordpiece.load_vocabulary(vocab_file)
    if tf.io.gfile.exists(own):
        return wordpiece.load_vocabulary(own)
    if train_files:
        if not tf.io.gfile.glob(train_files.split(",")[0].strip()):
            raise ZooError(f"--train_files={train_files!r} matches no file; give the shards "
                           "recipes/bert_create_data.py wrote, e.g. '<output_dir>/*.tfrecord'")
        beside = _beside_shards(train_files, "vocab.txt")
        if beside is None:
            raise ZooError(f"--train_files={train_files}: no vocab.txt beside the shards; pass --vocab_file (the "
                           "vocabulary recipes/bert_create_data.py made them with)")
        return wordpiece.load_vocabulary(beside)
    documents = list(itertools.islice(text_sources.iter_documents(**source), vocab_documents))
    whole_default = _embedded(source) and len(documents) == len(text_sources.load_documents())
    if whole_default and vocab_size == DEFAULT_VOCAB_SIZE and tf.io.gfile.exists(DEFAULT_VOCAB):
        return wordpiece.load_vocabulary(DEFAULT_VOCAB)
    return wordpiece.train_vocabulary(documents, vocab_size)


def train_default_vocabulary():
    """The vocabulary `DEFAULT_VOCAB` holds, trained again (13 s on 2 cores)."""
    from zoo.data import text_sources, wordpiece

    return wordpiece.train_vocabulary(text_sources.load_documents(), DEFAULT_VOCAB_SIZE)


def run_shards(model_dir, vocabulary, *, source, train_files, eval_files, seq_length, max_predictions, dupe_factor,
               seed, eval_fraction, verbose=True, chief=True, wait=3600.0):
    """`(train_files, eval_files)`: checked shard lists (`eval_files` None when there is no held-out split).

    Without `train_files`, the documents of `source` (`text_sources.iter_documents` arguments; {} is the
    embedded corpus) are written to `<model_dir>/data/` with an `eval_fraction` held-out split, once, by the
    chief; the other workers wait (at most `wait` seconds) for its `metadata.json`, written last.
    """
    from zoo.data import bert_shards

    if not train_files:
        data_dir = os.path.join(model_dir, DATA_DIR)
        if not chief:
            _wait_for_shards(data_dir, wait)
        settings = dict(seq_length=seq_length, max_predictions=max_predictions, dupe_factor=dupe_factor, seed=seed,
                        eval_fraction=eval_fraction)
        if not _embedded(source):
            train_files, made_eval = _ensure_shards(data_dir, vocabulary, source, settings, verbose)
        else:
            train_files, made_eval = bert_shards.ensure_default_shards(
                data_dir, vocabulary, max_documents=source.get("max_documents"), verbose=verbose, **settings)
        eval_files = eval_files or made_eval
    sha1 = bert_shards.vocabulary_sha1(vocabulary)
    checked = dict(vocab_sha1=sha1, seq_length=seq_length, max_predictions=max_predictions)
    train = bert_shards.check_shards(train_files, flag="--train_files", **checked)
    held_out = bert_shards.check_shards(eval_files, flag="--eval_files", **checked) if eval_files else None
    return train, held_out


def _wait_for_shards(data_dir, wait):
    import time

    from zoo.data import bert_shard_format as fmt

    start = time.monotonic()
    while fmt.read_metadata(data_dir) is None:
        if time.monotonic() - start > wait:
            raise ZooError(f"the chief did not finish the shards in {data_dir} within {wait:g} s; check the chief's "
                           "log, or make them first with recipes/bert_create_data.py and pass --train_files")
        time.sleep(2.0)


def _embedded(source):
    """True when `source` (`iter_documents` arguments) names the embedded corpus."""
    return not (source.get("input_files") or source.get("tfds_name"))


def _ensure_shards(data_dir, vocabulary, source, settings, verbose):
    """Shards of `source` in `data_dir`: reused when complete, else written (to a staging name, then renamed,
    so workers racing to create them leave one complete copy)."""
    import tensorflow as tf

    from zoo.data import bert_shard_format as fmt
    from zoo.data import bert_shards

    if fmt.read_metadata(data_dir) is None:
        if tf.io.gfile.exists(data_dir):  # an incomplete earlier attempt: redo it in place
            bert_shards.write_pretraining_shards(dict(source), vocabulary, data_dir, verbose=verbose, **settings)
        else:
            staging = fmt.temporary_name(data_dir.rstrip("/\\"))
            bert_shards.write_pretraining_shards(dict(source), vocabulary, staging, verbose=verbose, **settings)
            try:
                tf.io.gfile.rename(staging, data_dir)
            except (tf.errors.OpError, OSError):  # another worker got there first
                tf.io.gfile.rmtree(staging)
    eval_pattern = fmt.split_pattern(data_dir, "eval") if settings["eval_fraction"] > 0 else None
    return fmt.split_pattern(data_dir, "train"), eval_pattern


def _beside_shards(pattern, name):
    """`name` in the folder of the first file `pattern` matches, or the folder above (eval shards); or None."""
    import tensorflow as tf

    first = next(iter(sorted(tf.io.gfile.glob(pattern.split(",")[0].strip()))), None)
    if first is None:
        return None  # check_shards reports the empty glob
    directory = os.path.dirname(first)
    for folder in (directory, os.path.dirname(directory)):
        candidate = os.path.join(folder, name)
        if tf.io.gfile.exists(candidate):
            return candidate
    return None


def shard_metadata(files):
    """The `metadata.json` of the folder holding `files` (or the one above), or None."""
    from zoo.data import bert_shard_format as fmt

    path = _beside_shards(files[0], fmt.METADATA_FILE) if files else None
    return fmt.read_metadata(os.path.dirname(path)) if path else None


def unigram_baseline(eval_files, *, seq_length, max_predictions, max_batches=50):
    """Held-out MLM accuracy of always predicting the most frequent masked token (of the first batches read)."""
    import numpy as np

    from zoo.data import bert_pretraining, bert_shards

    ds = bert_shards.make_shard_dataset(eval_files, 256, None, seq_length=seq_length, max_predictions=max_predictions,
                                        eval=True, flag="--eval_files")
    batches = [{k: b[k].numpy() for k in ("mask_ids", "mask_weights")} for b in ds.take(max_batches)]
    if not batches:
        return 0.0
    return bert_pretraining.unigram_baseline({k: np.concatenate([b[k] for b in batches]) for k in batches[0]})


if __name__ == "__main__":  # python -m zoo.recipe_support.bert_data: regenerates DEFAULT_VOCAB
    from zoo.data import wordpiece

    wordpiece.write_vocabulary(train_default_vocabulary(), DEFAULT_VOCAB)
    print(f"wrote {DEFAULT_VOCAB}")
