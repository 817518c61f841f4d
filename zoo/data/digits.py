"""Task sequences for continual learning (Deep Generative Replay).

- "split": scikit-learn's bundled 8×8 digits, classes split into disjoint groups (0-1, 2-3, ...), one
  10-way solver for all (new classes, the paper's experiment iii). Works offline, no flags.
- "permuted": the same digits, each task with its own fixed pixel permutation (experiment i).
- "mnist_svhn" / "svhn_mnist": MNIST (padded by 2 to 32×32 and repeated to 3 channels, as the reference's
  `mnist-color`) then SVHN, or the reverse (experiment ii); read from tensorflow-datasets in --data_dir.

Every example is {"image": float32 [h, w, c] in [0, 1], "label": int32}.

Example:
    tasks = digits.task_sequence("split", num_tasks=5)
    ds = digits.train_dataset(tasks[1], tf.distribute.InputContext(), 64, seed=0, replay_tasks=tasks[:1])
    batch = next(iter(ds))  # image (64, 8, 8, 1), label (64,), replay_image, replay_label
"""

import dataclasses

import numpy as np
import tensorflow as tf

from zoo.data import tfds_offline
from zoo.errors import ZooError

SEQUENCES = ("split", "permuted", "mnist_svhn", "svhn_mnist")
NUM_CLASSES = 10


@dataclasses.dataclass
class Task:
    """One task: `train()` and `test()` build datasets of single examples; `size` counts training examples."""

    name: str
    train: callable
    test: callable
    size: int
    image_shape: tuple


def load_digits(test_fraction=0.25, seed=0):
    """scikit-learn's 1,797 8×8 digits as ((train_x, train_y), (test_x, test_y)), x float32 [n, 8, 8, 1] in [0, 1].

    The split is stratified and fixed by `seed`, so every run sees the same test set.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    data = sk_load_digits()
    images = (data.images / 16.0).astype(np.float32)[..., None]
    labels = data.target.astype(np.int32)
    rng = np.random.RandomState(seed)
    test = np.zeros(len(labels), bool)
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test[idx[: int(round(len(idx) * test_fraction))]] = True
    return (images[~test], labels[~test]), (images[test], labels[test])


def _array_task(name, train, test):
    def make(arrays):
        return lambda: tf.data.Dataset.from_tensor_slices({"image": arrays[0], "label": arrays[1]})

    return Task(name, make(train), make(test), len(train[1]), tuple(train[0].shape[1:]))


def split_digits(num_tasks=5, seed=0):
    """Digits with the ten classes cut, in order, into `num_tasks` disjoint groups."""
    if not 2 <= num_tasks <= NUM_CLASSES:
        raise ZooError(f"--num_tasks={num_tasks}: split digits needs 2 to {NUM_CLASSES} tasks")
    (train_x, train_y), (test_x, test_y) = load_digits(seed=seed)
    tasks = []
    for group in np.array_split(np.arange(NUM_CLASSES), num_tasks):
        keep_train, keep_test = np.isin(train_y, group), np.isin(test_y, group)
        name = "digits " + "-".join(str(c) for c in (group[0], group[-1])) if len(group) > 1 else f"digit {group[0]}"
        tasks.append(_array_task(name, (train_x[keep_train], train_y[keep_train]),
                                 (test_x[keep_test], test_y[keep_test])))
    return tasks


def permuted_digits(num_tasks=5, seed=0):
    """Digits under `num_tasks` fixed pixel permutations drawn from `seed` (as the reference's permuted MNIST)."""
    if num_tasks < 1:
        raise ZooError(f"--num_tasks={num_tasks} must be at least 1")
    (train_x, train_y), (test_x, test_y) = load_digits(seed=seed)
    rng = np.random.RandomState(seed)
    tasks = []
    for t in range(num_tasks):
        perm = rng.permutation(64)

        def permute(x, perm=perm):
            return x.reshape(len(x), 64, 1)[:, perm].reshape(x.shape)

        tasks.append(_array_task(f"permutation {t + 1}", (permute(train_x), train_y), (permute(test_x), test_y)))
    return tasks


def _mnist_color(example):
    image = tf.pad(example["image"], [[2, 2], [2, 2], [0, 0]])
    image = tf.image.grayscale_to_rgb(tf.cast(image, tf.float32) / 255.0)
    return {"image": image, "label": tf.cast(example["label"], tf.int32)}


def _svhn(example):
    return {"image": tf.cast(example["image"], tf.float32) / 255.0, "label": tf.cast(example["label"], tf.int32) % 10}


_TFDS = {
    "mnist": ("mnist", _mnist_color, 60000),
    "svhn": ("svhn_cropped", _svhn, 73257),
}


def _tfds_task(key, data_dir, download):
    name, fn, size = _TFDS[key]
    for split in ("train", "test"):  # fail at once, naming --data_dir, when a split is missing
        tfds_offline.load(name, split, data_dir=data_dir, download=download)

    def make(split):
        return lambda: tfds_offline.load(name, split, data_dir=data_dir, download=download).map(
            fn, num_parallel_calls=tf.data.AUTOTUNE)

    return Task(key.upper(), make("train"), make("test"), size, (32, 32, 3))


def task_sequence(name, num_tasks=5, seed=0, data_dir=None, download=False):
    """The tasks of sequence `name` (one of SEQUENCES); `num_tasks` applies to split and permuted digits."""
    if name == "split":
        return split_digits(num_tasks, seed)
    if name == "permuted":
        return permuted_digits(num_tasks, seed)
    if name in ("mnist_svhn", "svhn_mnist"):
        first, second = name.split("_")
        return [_tfds_task(first, data_dir, download), _tfds_task(second, data_dir, download)]
    raise ZooError(f"unknown task sequence --tasks={name!r}; choose one of: {', '.join(SEQUENCES)}")


def _shuffled(task, input_context, seed, buffer):
    ds = task.train().shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds.shuffle(min(buffer, task.size), seed=seed, reshuffle_each_iteration=True).repeat()


def train_dataset(task, input_context, global_batch_size, seed=0, replay_tasks=(), shuffle_buffer=10000):
    """Repeating per-replica batches of `task`; with `replay_tasks`, adds `replay_image`/`replay_label`.

    The replay batch (exact replay) has the same size and draws from the union of `replay_tasks`, each in
    proportion to its size, as the reference's ConcatDataset of earlier tasks. Deterministic for `seed`.
    """
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    ds = _shuffled(task, input_context, seed, shuffle_buffer).batch(per_replica, drop_remainder=True)
    if replay_tasks:
        sources = [_shuffled(t, input_context, seed + 1 + i, shuffle_buffer) for i, t in enumerate(replay_tasks)]
        sizes = np.array([t.size for t in replay_tasks], np.float64)
        replay = tf.data.Dataset.sample_from_datasets(sources, weights=list(sizes / sizes.sum()), seed=seed)
        replay = replay.batch(per_replica, drop_remainder=True)
        ds = tf.data.Dataset.zip(ds, replay).map(
            lambda real, old: {**real, "replay_image": old["image"], "replay_label": old["label"]})
    return ds.prefetch(tf.data.AUTOTUNE)


def test_arrays(task, limit=None):
    """The task's test set as numpy (images, labels), at most `limit` examples (the reference tests 1,024)."""
    ds = task.test()
    if limit:
        ds = ds.take(limit)
    images, labels = [], []
    for batch in ds.batch(1024).as_numpy_iterator():
        images.append(batch["image"])
        labels.append(batch["label"])
    return np.concatenate(images), np.concatenate(labels)
