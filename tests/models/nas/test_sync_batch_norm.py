"""`sync_batch_norm`: every BatchNormalization of a NASNet/PNASNet/RandWire network takes its batch statistics
over all replicas, so 2 replicas train a real NASNet exactly as one device at the same global batch (slow),
and the flag survives the config round trip (fast)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.models.nas.image_classifier import ImageClassifier
from zoo.training.trainer import Trainer


def _norms(network):
    return [layer for layer in network._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("name", ["nasnet_a_cifar", "pnasnet_5_mobile", "randwire_small"])
def test_every_batch_norm_is_synchronized_and_the_flag_round_trips(name):
    config = dict(zoo.model_info(name).small, num_classes=3)
    plain = zoo.create_model(name, **config)
    assert plain.sync_batch_norm is False and not any(bn.synchronized for bn in _norms(plain))
    network = zoo.create_model(name, sync_batch_norm=True, **config)
    norms = _norms(network)
    assert len(norms) == len(_norms(plain)) > 5 and all(bn.synchronized for bn in norms)
    clone = type(network).from_config(network.get_config())
    assert clone.sync_batch_norm is True and all(bn.synchronized for bn in _norms(clone))


# === 2 replicas == 1 device (slow) ===

GLOBAL_BATCH, STEPS = 8, 3


def _dataset(ctx):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (32, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, 32).astype("int32")
    return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(
        ctx.get_per_replica_batch_size(GLOBAL_BATCH), drop_remainder=True)


def _train(strategy, model_dir, sync):
    """STEPS steps of a tiny real NASNet-A (the registry's small config, no dropout, no drop path); returns the
    per-step losses and the network's weights (BN moving statistics included)."""
    with strategy.scope():
        keras.utils.set_random_seed(7)
        config = dict(zoo.model_info("nasnet_a_cifar").small, dropout=0.0, drop_path_rate=0.0, bn_momentum=0.9)
        network = zoo.create_model("nasnet_a_cifar", sync_batch_norm=sync, **config)
        model = ImageClassifier(network, weight_decay=1e-4, total_steps=STEPS)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    losses = []
    trainer = Trainer(model, strategy=strategy, model_dir=str(model_dir), dataset_fn=_dataset,
                      global_batch_size=GLOBAL_BATCH, train_steps=STEPS, log_every=1, checkpoint_every=STEPS,
                      verbose=False, hooks=[lambda step, logs: losses.append(logs["loss"])])
    trainer.train()
    return np.array(losses), [v.numpy() for v in network.weights]


def _max_relative_difference(a, b):
    return max(float(np.max(np.abs(x - y) / (np.abs(y) + 1e-3))) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    """The reference: one device (default strategy), plain BatchNorm, the whole global batch."""
    return _train(tf.distribute.get_strategy(), tmp_path_factory.mktemp("one"), sync=False)


@pytest.mark.slow
def test_two_replicas_with_sync_batch_norm_match_one_device(mirrored, one_device, tmp_path):
    losses, weights = _train(mirrored, tmp_path, sync=True)
    np.testing.assert_allclose(losses, one_device[0], rtol=1e-4)
    for a, b in zip(weights, one_device[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_two_replicas_without_it_normalise_per_replica_and_differ(mirrored, one_device, tmp_path):
    losses, weights = _train(mirrored, tmp_path, sync=False)  # each replica normalises its own 4 images
    assert np.max(np.abs(losses - one_device[0]) / one_device[0]) > 1e-3
    assert _max_relative_difference(weights, one_device[1]) > 1e-2
