"""Continual-learning task sequences: offline digits (split, permuted), MNIST/SVHN from tfds, pipelines."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data import digits
from zoo.errors import ZooError


def test_digits_ship_offline_with_a_fixed_stratified_split():
    (train_x, train_y), (test_x, test_y) = digits.load_digits()
    assert train_x.shape[1:] == (8, 8, 1) and train_x.dtype == np.float32 and train_y.dtype == np.int32
    assert len(train_y) + len(test_y) == 1797 and len(test_y) == 450
    assert 0.0 <= train_x.min() and train_x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(test_y), np.round(np.bincount(np.r_[train_y, test_y]) * 0.25))
    (again_x, _), _ = digits.load_digits()
    np.testing.assert_array_equal(train_x, again_x)


def test_split_digits_are_disjoint_class_groups():
    tasks = digits.task_sequence("split", num_tasks=5)
    assert [t.name for t in tasks] == ["digits 0-1", "digits 2-3", "digits 4-5", "digits 6-7", "digits 8-9"]
    seen = []
    for task in tasks:
        _, train_y = next(iter(task.train().batch(2000).as_numpy_iterator())).values()
        _, test_y = digits.test_arrays(task)
        assert set(train_y) == set(test_y) and not set(train_y) & set(seen)
        assert task.size == len(train_y) and task.image_shape == (8, 8, 1)
        seen += list(set(train_y))
    assert sorted(seen) == list(range(10))
    assert [len(t.name.split("-")) for t in digits.split_digits(3)] == [2, 2, 2]  # 0-3, 4-6, 7-9


def test_permuted_digits_shuffle_pixels_with_fixed_permutations():
    tasks = digits.task_sequence("permuted", num_tasks=3, seed=0)
    (train_x, train_y), _ = digits.load_digits()
    firsts = []
    for task in tasks:
        batch = next(iter(task.train().batch(len(train_y)).as_numpy_iterator()))
        np.testing.assert_array_equal(batch["label"], train_y)
        np.testing.assert_array_equal(np.sort(batch["image"].reshape(len(train_y), 64), 1),
                                      np.sort(train_x.reshape(len(train_y), 64), 1))
        firsts.append(batch["image"][0])
    assert not np.array_equal(firsts[0], firsts[1]) and not np.array_equal(firsts[1], firsts[2])
    again = next(iter(digits.permuted_digits(3, seed=0)[2].train().batch(1).as_numpy_iterator()))
    np.testing.assert_array_equal(again["image"][0], firsts[2])


def test_train_batches_per_replica_with_exact_replay():
    tasks = digits.split_digits(5)
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    ds = digits.train_dataset(tasks[2], context, 16, seed=3, replay_tasks=tasks[:2])
    batches = list(ds.take(20).as_numpy_iterator())
    assert ds.element_spec["image"].shape == (8, 8, 8, 1)  # static, per replica
    assert set(ds.element_spec) == {"image", "label", "replay_image", "replay_label"}
    assert set(np.concatenate([b["label"] for b in batches])) == {4, 5}
    assert set(np.concatenate([b["replay_label"] for b in batches])) == {0, 1, 2, 3}
    again = list(digits.train_dataset(tasks[2], context, 16, seed=3, replay_tasks=tasks[:2]).take(20)
                 .as_numpy_iterator())
    for a, b in zip(batches, again):  # deterministic, so a resumed run sees the same data
        np.testing.assert_array_equal(a["replay_image"], b["replay_image"])
    assert set(digits.train_dataset(tasks[0], tf.distribute.InputContext(), 4).element_spec) == {"image", "label"}


def test_bad_sequences_and_missing_datasets_give_clear_errors():
    with pytest.raises(ZooError, match="unknown task sequence --tasks='rotated'"):
        digits.task_sequence("rotated")
    with pytest.raises(ZooError, match="--num_tasks=11"):
        digits.task_sequence("split", num_tasks=11)
    with pytest.raises(ZooError, match="no --data_dir was given"):
        digits.task_sequence("mnist_svhn")
    with pytest.raises(ZooError, match="not present in --data_dir=/nonexistent/tfds"):
        digits.task_sequence("svhn_mnist", data_dir="/nonexistent/tfds")


def test_mnist_svhn_from_tensorflow_datasets():
    with tfds.testing.mock_data(num_examples=6):
        tasks = digits.task_sequence("mnist_svhn", download=True)
        assert [t.name for t in tasks] == ["MNIST", "SVHN"]
        for task in tasks:
            images, labels = digits.test_arrays(task, limit=4)
            assert images.shape == (4, 32, 32, 3) and labels.dtype == np.int32
            assert 0.0 <= images.min() and images.max() <= 1.0 and set(labels) <= set(range(10))
        mnist = next(iter(tasks[0].train().batch(6)))["image"].numpy()
        assert not mnist[:, :2].any() and np.array_equal(mnist[..., 0], mnist[..., 2])  # padded by 2, grey RGB
