"""The multi-optimizer design TwoPlayerModel (GANs) and DGR's Scholar share (zoo/models/multi_optimizer.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.layers.policy_helpers import global_policy
from zoo.errors import ZooError
from zoo.models.multi_optimizer import MultiOptimizerModel, coupled_weight_decay


class _Pair(MultiOptimizerModel):
    """Two dense layers, one optimizer each."""

    optimizer_names = ("first", "second")
    step_optimizer = "second"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = keras.layers.Dense(3, name="first")
        self.second = keras.layers.Dense(1, name="second")
        self.first.build((None, 2))
        self.second.build((None, 3))

    def optimizer_variables(self, name):
        return getattr(self, name).trainable_variables


def test_both_families_share_the_optimizer_map_and_loss_scaling():
    with global_policy("mixed_float16"):
        gan = zoo.create_model("discogan", filters=4)
        gan.compile(generator_optimizer=keras.optimizers.Adam(), discriminator_optimizer=keras.optimizers.Adam())
        scholar = zoo.create_model("dgr", preset="digits")
        scholar.compile()
    for model, names in ((gan, {"generator", "discriminator"}), (scholar, {"solver", "generator", "critic"})):
        assert isinstance(model, MultiOptimizerModel)
        assert set(model.optimizers) == names
        assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in model.optimizers.values())
        model.build_optimizer_state()
        assert all(o.built for o in model.optimizers.values())
    assert gan.optimizer is gan.discriminator_optimizer  # DiscoGAN's once-per-step optimizer
    assert scholar.optimizer is scholar.solver_optimizer
    scholar.role = "generator"
    assert scholar.optimizer is scholar.generator_optimizer


def test_compile_errors():
    gan = zoo.create_model("cyclegan_6blocks", image_size=32, filters=4, discriminator_filters=4)
    with pytest.raises(ZooError, match="compile the CycleGAN first"):
        gan.build_optimizer_state()
    with pytest.raises(ZooError, match="missing: discriminator"):
        gan.compile(generator_optimizer=keras.optimizers.Adam())
    with pytest.raises(ZooError, match="compile the Scholar first"):
        zoo.create_model("dgr", preset="digits", with_generator=False).train_step(
            {"image": tf.zeros((2, 8, 8, 1)), "label": tf.zeros((2,), tf.int32)})


def test_apply_update_weight_decay_and_overflow_under_loss_scaling():
    with global_policy("mixed_float16"):
        model = _Pair()
    model.compile({"first": keras.optimizers.SGD(0.1), "second": keras.optimizers.SGD(0.1)})
    model.build_optimizer_state()
    assert model.optimizer is model.second_optimizer
    variables = model.first.trainable_variables
    before = [v.numpy() for v in variables]
    scale = float(model.first_optimizer.dynamic_scale)
    grads = [tf.ones_like(v) for v in variables]  # gradients of loss·scale: the true gradient is 1/scale
    model.apply_update("first", [g * scale for g in grads], variables, weight_decay=0.5)
    for w, v in zip(before, variables):  # SGD on g + wd·w, the loss scale divided out of both
        np.testing.assert_allclose(v.numpy(), w - 0.1 * (1.0 + 0.5 * w), rtol=1e-5, atol=1e-6)
    after = [v.numpy() for v in variables]
    model.apply_update("first", [g * np.inf for g in grads], variables, weight_decay=0.5)
    for w, v in zip(after, variables):  # overflow: step skipped, scale halved
        np.testing.assert_array_equal(v.numpy(), w)
    assert float(model.first_optimizer.dynamic_scale) == scale / 2


@pytest.mark.distributed
def test_coupled_weight_decay_sums_to_one_decay_over_replicas(mirrored):
    with mirrored.scope():
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=8.0)
        optimizer.build([keras.Variable(np.zeros(2, "float32"))])
    w = tf.constant([1.0, -2.0])

    def decay():
        return coupled_weight_decay([tf.zeros(2)], [w], 0.25, optimizer)[0]

    per_replica = mirrored.experimental_local_results(mirrored.run(tf.function(decay)))
    np.testing.assert_allclose(np.sum(per_replica, axis=0), 0.25 * 8.0 * np.array([1.0, -2.0]))
