"""The Transformer's training utilities: label-smoothed loss, the paper's schedule, checkpoint averaging."""

import hashlib
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.losses import label_smoothed_cross_entropy
from zoo.training.checkpoint_average import average_checkpoints
from zoo.training.schedules import TransformerSchedule
from zoo.training.trainer import Trainer

# === label_smoothed_cross_entropy ===


def _logits_and_labels(vocab=11, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(2, 5, vocab)).astype("float32") * 3, rng.integers(0, vocab, size=(2, 5))


@pytest.mark.parametrize("epsilon", [0.1, 0.3])
def test_label_smoothing_equals_keras_categorical_crossentropy(epsilon):
    logits, labels = _logits_and_labels()
    ours = label_smoothed_cross_entropy(labels, logits, epsilon)
    keras_loss = keras.losses.CategoricalCrossentropy(label_smoothing=epsilon, from_logits=True, reduction=None)
    expected = keras_loss(keras.ops.one_hot(labels, logits.shape[-1]), logits)
    assert ours.dtype == tf.float32 and ours.shape == (2, 5)
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=1e-6)


def test_no_smoothing_is_sparse_crossentropy():
    logits, labels = _logits_and_labels()
    expected = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    np.testing.assert_allclose(label_smoothed_cross_entropy(labels, logits, 0.0), expected, atol=1e-6)


def test_extreme_logits_give_finite_loss_and_gradients():
    logits = tf.constant([[1e4, -1e4, 0.0, 5e3], [-3e4, 3e4, 0.0, 0.0]])
    labels = tf.constant([1, 0])  # the worst class: a huge but finite loss
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = tf.reduce_sum(label_smoothed_cross_entropy(labels, logits, 0.1))
    grads = tape.gradient(loss, logits)
    assert np.isfinite(loss.numpy()) and np.all(np.isfinite(grads.numpy()))


def test_float16_logits_are_computed_in_float32():
    logits, labels = _logits_and_labels(vocab=37)
    half = logits.astype("float16")
    ours = label_smoothed_cross_entropy(labels, tf.constant(half), 0.1)
    assert ours.dtype == tf.float32
    np.testing.assert_allclose(ours, label_smoothed_cross_entropy(labels, half.astype("float32"), 0.1), atol=1e-6)


# === TransformerSchedule ===


def _paper(step, d_model=512, warmup=4000):
    return d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


def test_schedule_follows_the_paper_from_step_one():
    schedule = TransformerSchedule(d_model=512, warmup_steps=4000)
    for step in (1, 4000, 16000):  # the paper's step n is optimizer.iterations == n - 1
        assert float(schedule(step - 1)) == pytest.approx(_paper(step), rel=1e-6)
    assert float(schedule(0)) == pytest.approx(512 ** -0.5 * 4000 ** -1.5, rel=1e-6)  # neither 0 nor inf
    rates = np.asarray(schedule(np.arange(8000)))
    assert int(np.argmax(rates)) == 3999 and rates.max() == pytest.approx((512 * 4000) ** -0.5, rel=1e-6)
    assert float(TransformerSchedule(256, 100, scale=2.0)(99)) == pytest.approx(2 * (256 * 100) ** -0.5, rel=1e-6)


def test_schedule_config_round_trip():
    optimizer = keras.optimizers.Adam(TransformerSchedule(256, warmup_steps=100, scale=2.0), beta_2=0.98)
    restored = keras.optimizers.Adam.from_config(optimizer.get_config())
    schedule = restored.learning_rate if isinstance(restored.learning_rate, TransformerSchedule) else \
        restored._learning_rate
    assert isinstance(schedule, TransformerSchedule)
    assert schedule.get_config() == {"d_model": 256, "warmup_steps": 100, "scale": 2.0}
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert float(again(49)) == float(schedule(49))
    with pytest.raises(ZooError, match="--warmup_steps"):
        TransformerSchedule(256, warmup_steps=0)


# === average_checkpoints ===


class _Counter(keras.layers.Layer):
    """Counts training calls in an integer weight: integer state that must not be averaged."""

    def build(self, input_shape):
        self.count = self.add_weight(shape=(), dtype="int32", initializer="zeros", trainable=False, name="count")

    def call(self, x, training=None):
        if training:
            self.count.assign_add(1)
        return x


def _model(seed=3, compile=True):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                              _Counter(), keras.layers.Dense(1)])
    if compile:
        model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    return model


def _digests(directory):
    return {name: hashlib.sha256(open(os.path.join(directory, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(directory)) if os.path.isfile(os.path.join(directory, name))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained 3 steps by the Trainer with a checkpoint after each; its weights at each step."""
    model_dir = str(tmp_path_factory.mktemp("average"))
    x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
    y = x.sum(axis=1, keepdims=True)
    model = _model()
    snapshots = {}
    Trainer(model, strategy=tf.distribute.get_strategy(), model_dir=model_dir,
            dataset_fn=lambda ctx: tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(4),
            global_batch_size=4, train_steps=3, checkpoint_every=1, log_every=1, verbose=False,
            hooks=[lambda step, logs: snapshots.setdefault(step, model.get_weights())]).train()
    return model, model_dir, snapshots


def test_average_is_the_mean_of_the_saved_weights(trained):
    model, model_dir, snapshots = trained
    assert sorted(snapshots) == [1, 2, 3]
    before = _digests(model_dir)
    iterations = int(model.optimizer.iterations.numpy())
    slots = [v.numpy() for v in model.optimizer.variables]
    is_int = [not np.issubdtype(w.dtype, np.floating) for w in snapshots[3]]
    assert sum(is_int) == 1  # the counter
    model.set_weights([np.full_like(w, 7) for w in snapshots[3]])  # float weights must all be overwritten

    assert average_checkpoints(model_dir, model, last_n=5) == [3, 2, 1]  # fewer than 5: all there are
    for got, s1, s2, s3, integer in zip(model.get_weights(), snapshots[1], snapshots[2], snapshots[3], is_int):
        if integer:
            assert got == 7  # left as it was, not averaged
        else:
            np.testing.assert_allclose(got, np.mean([s1, s2, s3], axis=0, dtype=np.float64), atol=1e-7, rtol=0)
    assert not np.allclose(model.get_weights()[0], snapshots[3][0])
    assert int(model.optimizer.iterations.numpy()) == iterations  # optimizer state untouched
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(slots, model.optimizer.variables))

    assert average_checkpoints(model_dir, model, last_n=2) == [3, 2]
    np.testing.assert_allclose(model.get_weights()[0], (snapshots[2][0].astype(np.float64) + snapshots[3][0]) / 2,
                               atol=1e-7, rtol=0)
    assert _digests(model_dir) == before  # the checkpoints are only read


def test_average_into_a_fresh_model_without_optimizer(trained):
    _, model_dir, snapshots = trained  # e.g. an export process: a new model, no optimizer, other initial values
    fresh = _model(seed=11, compile=False)
    assert average_checkpoints(model_dir, fresh, last_n=3) == [3, 2, 1]
    np.testing.assert_allclose(fresh.get_weights()[0], np.mean([snapshots[s][0] for s in (1, 2, 3)], axis=0,
                                                                dtype=np.float64), atol=1e-7, rtol=0)


def test_average_refuses_missing_checkpoints_and_other_models(trained, tmp_path):
    model, model_dir, _ = trained
    with pytest.raises(ZooError, match="--model_dir=.*no checkpoints"):
        average_checkpoints(str(tmp_path), model)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    with pytest.raises(ZooError, match="--model_dir"):
        average_checkpoints(model_dir, other)
