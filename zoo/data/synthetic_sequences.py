"""Synthetic long-term-dependency tasks: the adding problem and the copy task, seeded example by example.

Example `i` of a split is drawn from its own generator `np.random.default_rng([seed, split, i])`, so a data set
is the same however it is sharded, shards (every n-th index) are disjoint, and a resumed run sees the same
examples again.

    x, y = adding_problem(np.arange(4), length=50, seed=0)      # x (4, 50, 2) float32, y (4, 1) float32
    tokens, labels, weights = copy_task(np.arange(4), length=20, seed=0)   # (4, 40) int32 each, weights 0/1
    ds = train_dataset("adding", length=50, global_batch_size=32, seed=0)  # repeating, per-replica batches

The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015): two input channels, values U[0, 1) and a
marker channel that is 1 at two steps (one in each half of the sequence); the target is the sum of the two
marked values. Always predicting 1 (the target's mean) gives MSE = Var(U1 + U2) = 1/6 ≈ 0.167: the baseline.

The copy task (Arjovsky et al. 2016): `copy_length` symbols from 1..`num_symbols`, then `length` - 1 blanks
(0), a delimiter (`num_symbols` + 1) and `copy_length` blanks; the output is blank everywhere except the last
`copy_length` steps, which must repeat the symbols. Sequences are `length` + 2 `copy_length` long. Labels are
weighted on the copied part only (`weights`); a memoryless model gets accuracy 1/`num_symbols` there and
cross-entropy log(`num_symbols`).
"""

import math

import numpy as np

from zoo.data.distribute import per_replica_batch_size, shard
from zoo.errors import ZooError

TASKS = ("adding", "copy")
TRAIN, EVAL = 0, 1  # the split index in each example's seed


def _rngs(indices, seed, split):
    return [np.random.default_rng([int(seed), int(split), int(i)]) for i in np.asarray(indices).reshape(-1)]


def _check_length(length, minimum):
    if int(length) < minimum:
        raise ZooError(f"sequence length T={length} is too short; use T >= {minimum}")


def adding_problem(indices, length, seed=0, split=TRAIN):
    """Examples `indices` of the adding problem with `length` steps: `(inputs [N, T, 2], targets [N, 1])`,
    float32. Channel 0 holds the values, channel 1 the two markers (one in each half)."""
    _check_length(length, 2)
    rngs = _rngs(indices, seed, split)
    inputs = np.zeros((len(rngs), length, 2), np.float32)
    half = length // 2
    for row, rng in enumerate(rngs):
        inputs[row, :, 0] = rng.random(length)
        inputs[row, rng.integers(0, half), 1] = 1.0
        inputs[row, rng.integers(half, length), 1] = 1.0
    targets = np.sum(inputs[:, :, 0] * inputs[:, :, 1], axis=1, keepdims=True).astype(np.float32)
    return inputs, targets


def copy_task(indices, length, seed=0, split=TRAIN, num_symbols=8, copy_length=10):
    """Examples `indices` of the copy task with `length` blanks between the symbols and their copy:
    `(tokens, labels, weights)`, each [N, length + 2 copy_length]; tokens and labels int32 (0 blank,
    1..num_symbols symbols, num_symbols + 1 the delimiter), weights float32, 1 on the copied part."""
    _check_length(length, 1)
    if num_symbols < 2 or copy_length < 1:
        raise ZooError(f"copy task needs num_symbols >= 2 and copy_length >= 1, got {num_symbols} and {copy_length}")
    rngs = _rngs(indices, seed, split)
    total = length + 2 * copy_length
    tokens = np.zeros((len(rngs), total), np.int32)
    labels = np.zeros((len(rngs), total), np.int32)
    for row, rng in enumerate(rngs):
        symbols = rng.integers(1, num_symbols + 1, size=copy_length)
        tokens[row, :copy_length] = symbols
        labels[row, -copy_length:] = symbols
    tokens[:, length + copy_length - 1] = num_symbols + 1
    weights = np.zeros((len(rngs), total), np.float32)
    weights[:, -copy_length:] = 1.0
    return tokens, labels, weights


def baseline(task, num_symbols=8):
    """The memoryless baseline of `task`'s reported metric: adding, the MSE of predicting 1 (1/6); copy, the
    accuracy of guessing a symbol on the copied part (1/num_symbols)."""
    if task == "adding":
        return 1.0 / 6.0
    if task == "copy":
        return 1.0 / num_symbols
    raise ZooError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")


def baseline_cross_entropy(num_symbols=8):
    """Cross-entropy (nats) per copied symbol of the memoryless copy-task baseline: log(num_symbols)."""
    return math.log(num_symbols)


def examples(task, indices, length, seed=0, split=TRAIN, num_symbols=8, copy_length=10):
    """`(inputs, targets, weights)` of `task`: adding gives weights of ones [N, 1]; copy its own weights."""
    if task == "adding":
        inputs, targets = adding_problem(indices, length, seed, split)
        return inputs, targets, np.ones_like(targets)
    if task == "copy":
        return copy_task(indices, length, seed, split, num_symbols, copy_length)
    raise ZooError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")


def _dataset(task, indices_ds, batch, length, seed, split, num_symbols, copy_length):
    import tensorflow as tf

    inputs, targets, weights = examples(task, [0], length, seed, split, num_symbols, copy_length)
    dtypes = (tf.as_dtype(inputs.dtype), tf.as_dtype(targets.dtype), tf.float32)

    def make(index_batch):
        return examples(task, index_batch, length, seed, split, num_symbols, copy_length)

    def generate(index_batch):
        x, y, w = tf.numpy_function(make, [index_batch], dtypes, stateful=False)
        x.set_shape((batch,) + inputs.shape[1:])
        y.set_shape((batch,) + targets.shape[1:])
        w.set_shape((batch,) + weights.shape[1:])
        return x, y, w

    return indices_ds.batch(batch, drop_remainder=True).map(generate).prefetch(2)


def train_dataset(task, length, global_batch_size, seed=0, input_context=None, num_symbols=8, copy_length=10):
    """Endless per-replica batches `(inputs, targets, weights)` of training examples 0, 1, 2, ..., this
    input pipeline's share (disjoint between pipelines), for `Strategy.distribute_datasets_from_function`."""
    import tensorflow as tf

    batch = per_replica_batch_size(global_batch_size, input_context)
    indices = shard(tf.data.Dataset.range(2 ** 62), input_context)
    return _dataset(task, indices, batch, length, seed, TRAIN, num_symbols, copy_length)


def eval_dataset(task, length, global_batch_size, num_examples, seed=0, input_context=None, num_symbols=8,
                 copy_length=10):
    """The `num_examples` evaluation examples (their own seeds, apart from training's) in per-replica batches,
    once; `num_examples` is rounded down to a multiple of `global_batch_size` (one global batch at least)."""
    import tensorflow as tf

    batch = per_replica_batch_size(global_batch_size, input_context)
    count = max(1, num_examples // global_batch_size) * global_batch_size
    indices = shard(tf.data.Dataset.range(count), input_context)
    return _dataset(task, indices, batch, length, seed, EVAL, num_symbols, copy_length)
