"""Translation input pipelines: sentence pairs -> batches of shared-subword ids for the Transformer.

Sources (`open_translation`, in `zoo.data.translation_sources`): the embedded digits -> English words task
(`zoo.data.number_words`, the default), tensorflow-datasets language pairs from `--data_dir`, parallel text
files. The shared vocabulary is a SentencePiece model (`zoo.data.subword`) trained on `subword_texts`.

Every batch is a dict {"source_ids": int32 [b, S], "target_ids": int32 [b, T]}: both sequences end with EOS
(3) and are padded with 0; no BOS (the task model shifts the target right behind BOS for the decoder input).
Lengths count EOS.

- `train_dataset`: repeating, shuffled (a seeded buffer, a seed per input pipeline), pairs with a side
  longer than `max_length` DROPPED. Fixed batches (`global_batch_size`): b = this replica's share, padded to
  the longest sequence of the batch (to `max_length` with `static_shapes`). Token-bucketed batches
  (`max_tokens_per_batch`, the paper's ~25,000): pairs are grouped by L = max(source length, target
  length) into buckets of upper lengths 7, 8, ..., growing by 10% up to `max_length`; a bucket of upper
  length U is batched b = (max_tokens_per_batch // replicas) // U pairs at a time, so a replica's batch
  holds b x (its padded length) <= max_tokens_per_batch / replicas tokens on each side (source and
  target padded to their own longest, both <= U): about 25k source and 25k target tokens over all
  replicas, as in the paper. Padded to the batch's longest (to U with `static_shapes`).
- `eval_dataset`: one ordered pass; sequences longer than `max_length` are TRUNCATED (kept, EOS last), so
  every reference is scored. `eval_texts` gives the same pairs as strings, in the same order (one input
  pipeline; with several, pipeline k reads pairs k, k + n, ...).

Example:
    from zoo.data import subword
    data = open_translation()                                          # the embedded task
    model = subword.train_subword_model(subword_texts(data), data.vocab_size, split_digits=data.split_digits)
    ds = train_dataset(data, model, max_tokens_per_batch=4096, max_length=64)
    batch = next(iter(ds))        # {"source_ids": [b, S], "target_ids": [b, T]}, b * max(S, T) <= 4096
    val = eval_dataset(data, model, global_batch_size=64, max_length=64)
    refs = eval_texts(data, "validation")                              # [(source, reference), ...]
"""

import tensorflow as tf

from zoo.data.distribute import per_replica_batch_size, pipeline_id, shard, stream_seed
from zoo.data.subword import EOS_ID
from zoo.data.translation_sources import (TranslationData, check_config, choose_direction, count_lines,
                                          open_translation, parse_language_pair)
from zoo.errors import ZooError

__all__ = ["TranslationData", "open_translation", "parse_language_pair", "choose_direction", "check_config",
           "count_lines", "encode_sentence", "subword_texts", "eval_texts", "bucket_lengths", "bucket_batch_sizes",
           "train_dataset", "eval_dataset"]

MIN_BUCKET = 8  # the first bucket holds lengths below this
_plain = tf.autograph.experimental.do_not_convert  # straight-line TF ops: autograph would only cost tracing time


def encode_sentence(tokenizer, text, max_length=None):
    """int32 [n] ids of one tf.string sentence followed by EOS, cut to `max_length` (EOS kept last) when
    given; `tokenizer` is a `zoo.data.subword.SubwordModel` (anything with a TF `tokenize`)."""
    ids = tf.cast(tokenizer.tokenize(text), tf.int32)
    if max_length is not None:
        ids = ids[:max_length - 1]
    return tf.concat([ids, tf.constant([EOS_ID], tf.int32)], 0)


def subword_texts(data, split="train", limit=None):
    """The source and target sentences (str) of `limit` pairs (all by default) of `split`, alternately: the
    text a shared vocabulary is trained on."""
    ds = data.pairs(split)
    if limit:
        ds = ds.take(limit)
    for source, target in ds.batch(1024).as_numpy_iterator():
        for a, b in zip(source, target):
            yield a.decode("utf-8")
            yield b.decode("utf-8")


def eval_texts(data, split="validation", limit=None):
    """The (source, reference) strings of `split`, in `eval_dataset`'s order (first `limit` pairs)."""
    ds = data.pairs(split)
    if limit:
        ds = ds.take(limit)
    return [(a.decode("utf-8"), b.decode("utf-8")) for a, b in ds.as_numpy_iterator()]


def bucket_lengths(max_length, min_bucket=MIN_BUCKET):
    """The upper lengths of the token buckets: min_bucket - 1, then growing by 10% (at least 1) up to
    max_length (the last one)."""
    uppers, x = [], min_bucket
    while x <= max_length:
        uppers.append(x - 1)
        x = max(x + 1, int(x * 1.1))
    return [u for u in uppers if u >= 1] + [max_length]


def bucket_batch_sizes(max_tokens_per_batch, max_length, num_replicas=1):
    """(upper lengths, per-replica batch sizes) of the token buckets (see the module docstring)."""
    tokens = max_tokens_per_batch // num_replicas
    if tokens < max_length:
        raise ZooError(f"--max_tokens_per_batch={max_tokens_per_batch} gives {tokens} tokens per replica over "
                       f"{num_replicas} replicas, fewer than --max_length={max_length}; raise "
                       "--max_tokens_per_batch or lower --max_length")
    uppers = bucket_lengths(max_length)
    return uppers, [tokens // u for u in uppers]


def _check_lengths(max_length):
    if max_length is None or max_length < 2:
        raise ZooError(f"--max_length={max_length} must be at least 2 (one token and EOS)")


def train_dataset(data, tokenizer, *, global_batch_size=None, max_tokens_per_batch=None, max_length,
                  input_context=None, seed=0, shuffle_buffer=100_000, static_shapes=False):
    """Repeating, shuffled, tokenized training batches of `data` (a `TranslationData`); see the module.

    Args:
        data: the source (`open_translation`).
        tokenizer: the shared `zoo.data.subword.SubwordModel`.
        global_batch_size: pairs per step over all replicas (fixed batches); or
        max_tokens_per_batch: tokens per step over all replicas (token buckets); exactly one of the two.
        max_length: the longest sequence kept, EOS included (longer pairs are dropped).
        input_context: `tf.distribute.InputContext` (shards by input pipeline; batches per replica).
        seed: the shuffle seed (each input pipeline derives its own).
        shuffle_buffer: the shuffle buffer in pairs (at most the train split's size).
        static_shapes: pad to `max_length` (fixed batches) or to the bucket's upper length (buckets).
    """
    if (global_batch_size is None) == (max_tokens_per_batch is None):
        raise ZooError("give exactly one of --global_batch_size and --max_tokens_per_batch")
    _check_lengths(max_length)
    replicas = input_context.num_replicas_in_sync if input_context is not None else 1
    if global_batch_size is not None:
        batch = per_replica_batch_size(global_batch_size, input_context)
    else:
        uppers, sizes = bucket_batch_sizes(max_tokens_per_batch, max_length, replicas)
    # Every pipeline reads the pairs in the same order (the same file seed) so that the shards are disjoint,
    # then shuffles its own shard with a seed of its own.
    ds = shard(data.pairs("train", shuffle_files=True, seed=seed), input_context)
    buffer = min(data.sizes.get("train") or shuffle_buffer, shuffle_buffer)
    ds = ds.shuffle(buffer, seed=stream_seed(seed, pipeline_id(input_context)), reshuffle_each_iteration=True).repeat()

    @_plain
    def encode(source, target):
        return encode_sentence(tokenizer, source), encode_sentence(tokenizer, target)

    @_plain
    def pair_length(source, target):
        return tf.maximum(tf.size(source), tf.size(target))

    @_plain
    def short(source, target):
        return pair_length(source, target) <= max_length

    ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE).filter(short)
    if global_batch_size is not None:
        shape = [max_length if static_shapes else None]
        ds = ds.padded_batch(batch, padded_shapes=(shape, shape), drop_remainder=True)
    else:
        # bucket_by_sequence_length puts length L in bucket i when boundaries[i-1] <= L < boundaries[i];
        # the extra last bucket (L > max_length) never receives anything after the filter above.
        ds = ds.bucket_by_sequence_length(
            pair_length, [u + 1 for u in uppers], sizes + [1],
            padded_shapes=([None], [None]), pad_to_bucket_boundary=static_shapes, drop_remainder=True)
    return ds.map(_as_dict).prefetch(tf.data.AUTOTUNE)


def eval_dataset(data, tokenizer, *, global_batch_size, max_length, input_context=None, split="validation",
                 limit=None, static_shapes=False):
    """One ordered pass over `split` (its first `limit` pairs) in per-replica batches (the last may be
    short), sequences longer than `max_length` truncated with EOS kept last; `static_shapes` pads to
    `max_length`. The pairs are those of `eval_texts(data, split, limit)`, in the same order."""
    _check_lengths(max_length)
    ds = data.pairs(split)
    if limit:
        ds = ds.take(limit)
    ds = shard(ds, input_context)

    @_plain
    def encode(source, target):
        return encode_sentence(tokenizer, source, max_length), encode_sentence(tokenizer, target, max_length)

    ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    shape = [max_length if static_shapes else None]
    ds = ds.padded_batch(per_replica_batch_size(global_batch_size, input_context), padded_shapes=(shape, shape))
    return ds.map(_as_dict).prefetch(tf.data.AUTOTUNE)


@tf.autograph.experimental.do_not_convert
def _as_dict(source, target):
    return {"source_ids": source, "target_ids": target}
