"""The adding problem and copy task generators: shapes, targets, baselines, seeding, disjoint shards."""

import math

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import synthetic_sequences as ss
from zoo.errors import ZooError


def test_adding_problem_shapes_markers_and_targets():
    x, y = ss.adding_problem(np.arange(50), length=20, seed=3)
    assert x.shape == (50, 20, 2) and y.shape == (50, 1) and x.dtype == y.dtype == np.float32
    assert np.all((x[:, :, 0] >= 0) & (x[:, :, 0] < 1))
    markers = x[:, :, 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :10].sum(axis=1) == 1) and np.all(markers[:, 10:].sum(axis=1) == 1)  # one per half
    for row in range(50):
        first, second = np.flatnonzero(markers[row])
        assert y[row, 0] == pytest.approx(x[row, first, 0] + x[row, second, 0], abs=1e-6)


def test_adding_baseline_is_the_mse_of_predicting_one():
    assert ss.baseline("adding") == pytest.approx(1 / 6)
    _, y = ss.adding_problem(np.arange(4000), length=10, seed=0)
    assert np.mean(np.square(y - 1.0)) == pytest.approx(1 / 6, abs=0.01)
    assert np.mean(y) == pytest.approx(1.0, abs=0.02)  # predicting 1 is the best constant


def test_copy_task_layout_and_baselines():
    tokens, labels, weights = ss.copy_task(np.arange(30), length=7, seed=1, num_symbols=5, copy_length=4)
    assert tokens.shape == labels.shape == weights.shape == (30, 7 + 8)
    assert tokens.dtype == labels.dtype == np.int32 and weights.dtype == np.float32
    symbols = tokens[:, :4]
    assert np.all((symbols >= 1) & (symbols <= 5))
    assert np.all(tokens[:, 4:10] == 0) and np.all(tokens[:, 10] == 6) and np.all(tokens[:, 11:] == 0)
    assert np.all(labels[:, :11] == 0) and np.array_equal(labels[:, 11:], symbols)
    assert np.array_equal(weights, np.tile(np.r_[np.zeros(11), np.ones(4)], (30, 1)))
    assert ss.baseline("copy", num_symbols=5) == pytest.approx(0.2)
    assert ss.baseline_cross_entropy(8) == pytest.approx(math.log(8))
    # Guessing the most frequent symbol scores about 1/num_symbols on the copied part.
    _, labels, _ = ss.copy_task(np.arange(2000), length=3, seed=0, num_symbols=5, copy_length=4)
    assert np.mean(labels[:, -4:] == 1) == pytest.approx(0.2, abs=0.02)


def test_seeded_per_example():
    a = ss.adding_problem(np.arange(5, 9), length=12, seed=7)
    b = ss.adding_problem(np.arange(0, 9), length=12, seed=7)
    assert np.array_equal(a[0], b[0][5:]) and np.array_equal(a[1], b[1][5:])
    assert not np.array_equal(a[0], ss.adding_problem(np.arange(5, 9), length=12, seed=8)[0])
    train = ss.copy_task(np.arange(4), length=5, seed=0, split=ss.TRAIN)[0]
    held_out = ss.copy_task(np.arange(4), length=5, seed=0, split=ss.EVAL)[0]
    assert not np.array_equal(train, held_out)


def test_shards_are_disjoint_and_cover_the_unsharded_data():
    def batches(ctx, take):
        return [b for b in ss.train_dataset("adding", 6, 8, seed=2, input_context=ctx).take(take)]

    whole = np.concatenate([b[0].numpy() for b in batches(None, 2)])  # examples 0..15
    shards = [batches(tf.distribute.InputContext(2, i, 2), 2) for i in range(2)]
    firsts = [np.concatenate([b[0].numpy() for b in s]) for s in shards]  # 2 x 8 examples, batches of 4
    assert all(f.shape == (8, 6, 2) for f in firsts)
    assert np.array_equal(firsts[0], whole[0::2]) and np.array_equal(firsts[1], whole[1::2])
    x, y, w = shards[0][0]
    assert x.shape == (4, 6, 2) and y.shape == (4, 1) and w.shape == (4, 1)


def test_eval_dataset_is_finite_and_apart_from_training():
    ds = ss.eval_dataset("copy", 4, 16, num_examples=40, seed=0, num_symbols=4, copy_length=3)
    got = [b for b in ds]
    assert len(got) == 2 and got[0][0].shape == (16, 10)  # 40 rounded down to 32
    expected = ss.copy_task(np.arange(16), 4, seed=0, split=ss.EVAL, num_symbols=4, copy_length=3)
    assert np.array_equal(got[0][0].numpy(), expected[0])


def test_bad_arguments_are_zoo_errors():
    with pytest.raises(ZooError, match="too short"):
        ss.adding_problem([0], length=1)
    with pytest.raises(ZooError, match="unknown task"):
        ss.baseline("sort")
    with pytest.raises(ZooError, match="num_symbols"):
        ss.copy_task([0], length=3, num_symbols=1)
