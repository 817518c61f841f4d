"""The Trainer's checkpoint holds every weight, also those of layers a model keeps in a Python list (out of
TensorFlow's checkpoint graph in Keras 3), and still resumes checkpoints written before it did."""


import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.errors import ZooError
from zoo.layers.carried_state import is_carried_state
from zoo.models.nas.image_classifier import ImageClassifier
from zoo.training.checkpoint_average import average_checkpoints
from zoo.training.checkpoints import UNTRACKED, untracked_weights
from zoo.training.trainer import Trainer

X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32") * 3 + 1
Y = X.sum(axis=1, keepdims=True)


class Listed(keras.Model):
    """Batch norm and dense layers held in a list, plus one held as an attribute."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [keras.layers.BatchNormalization(momentum=0.5), keras.layers.Dense(units),
                       keras.layers.BatchNormalization(momentum=0.5)]
        self.single = keras.layers.Dense(1)

    def call(self, x, training=False):
        for block in self.blocks:
            x = block(x, training=training)
        return self.single(x)


def _model(units=3, compile=True, strategy=None):
    keras.utils.set_random_seed(5)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = Listed(units)
        model(X[:2])
        if compile:
            model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def _train(model, model_dir, steps, strategy=None, **kwargs):
    Trainer(model, strategy=strategy or tf.distribute.get_strategy(), model_dir=str(model_dir),
            dataset_fn=lambda ctx: tf.data.Dataset.from_tensor_slices((X, Y)).repeat().batch(8),
            global_batch_size=8, train_steps=steps, checkpoint_every=2, log_every=1, verbose=False,
            **kwargs).train()
    return model


def _saved_values(path):
    return {name for name, _ in tf.train.list_variables(path) if name.endswith("VARIABLE_VALUE")}


def _moving_stats(model):
    return [w for w in model.weights if "moving" in w.name]


def test_list_held_weights_are_out_of_the_model_graph_but_in_the_checkpoint(tmp_path):
    model = _train(_model(), tmp_path, steps=2)
    untracked = untracked_weights(model)
    # 2 batch norms x 4 + dense kernel and bias in the list; `single` is tracked by attribute.
    assert sorted(untracked) == ["0_gamma", "1_beta", "2_moving_mean", "3_moving_variance", "4_kernel", "5_bias",
                                 "6_gamma", "7_beta", "8_moving_mean", "9_moving_variance"]
    names = _saved_values(str(tmp_path / "ckpt-2"))
    assert {f"{UNTRACKED}/{k}/.ATTRIBUTES/VARIABLE_VALUE" for k in untracked} <= names
    assert "model/single/bias/.ATTRIBUTES/VARIABLE_VALUE" in names  # tracked weights keep their keys
    stats = [w.numpy() for w in _moving_stats(model)]
    assert not np.allclose(stats[0], 0)  # trained statistics

    fresh = _model(compile=False)  # another instance (other auto names), no optimizer: all by position and name
    tf.train.Checkpoint(model=fresh, **{UNTRACKED: untracked_weights(fresh)}).read(
        str(tmp_path / "ckpt-2")).assert_existing_objects_matched().expect_partial()
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_resume_with_list_held_batch_norm_equals_uninterrupted(tmp_path):
    straight = _train(_model(), tmp_path / "straight", steps=6)
    _train(_model(), tmp_path / "resumed", steps=4)
    resumed = _train(_model(), tmp_path / "resumed", steps=6)
    for w, a, b in zip(straight.weights, straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6, err_msg=w.path)
    for a, b in zip(_moving_stats(straight), _moving_stats(resumed)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert tf.train.latest_checkpoint(str(tmp_path / "resumed")).endswith("ckpt-6")


@pytest.mark.distributed
def test_resume_with_list_held_batch_norm_under_mirrored(tmp_path, mirrored):
    straight = _train(_model(strategy=mirrored), tmp_path / "straight", steps=4, strategy=mirrored)
    _train(_model(strategy=mirrored), tmp_path / "resumed", steps=2, strategy=mirrored)
    resumed = _train(_model(strategy=mirrored), tmp_path / "resumed", steps=4, strategy=mirrored)
    for w, a, b in zip(straight.weights, straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6, err_msg=w.path)


def test_checkpoint_written_before_untracked_weights_still_resumes(tmp_path, capfd):
    trained = _train(_model(), tmp_path / "new", steps=2)
    # The layout the Trainer wrote before: the model (trainable list-held weights only through the optimizer).
    seeds = [v for v in trained.variables if v.path.endswith("seed_generator_state")]
    old = tf.train.Checkpoint(model=trained, step=tf.Variable(2, dtype=tf.int64), seeds=seeds)
    path = tf.train.CheckpointManager(old, str(tmp_path / "old"), max_to_keep=3).save(checkpoint_number=2)
    assert not any(n.startswith(UNTRACKED) for n in _saved_values(path))

    resumed = _model()
    _train(resumed, tmp_path / "old", steps=2)  # already there: restores only
    assert "predates the saving of weights held in lists: 4 non-trainable" in capfd.readouterr().err
    for t, r in zip(trained.trainable_weights, resumed.trainable_weights):
        np.testing.assert_array_equal(t.numpy(), r.numpy())  # through the optimizer's list, as before
    for r in _moving_stats(resumed):  # not in that checkpoint: initial values
        assert np.all(r.numpy() == (0 if "mean" in r.name else 1))
    _train(_model(), tmp_path / "old", steps=4)  # trains on, and writes the full layout from then on
    assert any(n.startswith(UNTRACKED) for n in _saved_values(str(tmp_path / "old" / "ckpt-4")))


def test_checkpoint_of_another_list_model_is_refused(tmp_path):
    _train(_model(), tmp_path, steps=2)
    with pytest.raises(ZooError, match="does not fit this model"):
        _train(_model(units=5), tmp_path, steps=4)


def test_average_covers_list_held_weights(tmp_path):
    snapshots = {}
    model = _model()
    _train(model, tmp_path, steps=4, hooks=[lambda step, logs: snapshots.setdefault(step, model.get_weights())])
    fresh = _model(compile=False)
    assert average_checkpoints(str(tmp_path), fresh, last_n=2) == [4, 2]
    for got, a, b in zip(fresh.get_weights(), snapshots[2], snapshots[4]):
        np.testing.assert_allclose(got, (a.astype(np.float64) + b) / 2, atol=1e-6)


@pytest.mark.parametrize("name", ["nasnet_a_cifar", "pnasnet_5_mobile"])
def test_registered_nas_model_checkpoint_holds_all_its_weights(tmp_path, name):
    keras.utils.set_random_seed(1)
    model = ImageClassifier(zoo.model_info(name).create(small=True), total_steps=10)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    labels = np.arange(4, dtype=np.int32) % 10
    Trainer(model, strategy=tf.distribute.get_strategy(), model_dir=str(tmp_path),
            dataset_fn=lambda ctx: tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(2),
            global_batch_size=2, train_steps=1, verbose=False).train()
    path = str(tmp_path / "ckpt-1")
    weights = [w for w in model.weights if not is_carried_state(w)]
    assert untracked_weights(model)  # this network keeps layers in lists

    network = zoo.model_info(name).create(small=True)
    keras.utils.set_random_seed(2)
    fresh = ImageClassifier(network, total_steps=10)
    for w in fresh.weights:  # nothing may stay at a value it shares with the trained model
        w.assign(np.full(w.shape, 7, w.dtype))
    tf.train.Checkpoint(model=fresh, **{UNTRACKED: untracked_weights(fresh)}).read(
        path).assert_existing_objects_matched().expect_partial()
    trained = {id(w) for w in weights}
    for w, a, b in zip(model.weights, model.get_weights(), fresh.get_weights()):
        if id(w) in trained:
            np.testing.assert_array_equal(a, b, err_msg=w.path)
    print(f"{name}: {len(weights)} non-carried weights, {len(weights) - len(untracked_weights(model))} in the "
          "model's checkpoint graph, all in the Trainer's checkpoint")
