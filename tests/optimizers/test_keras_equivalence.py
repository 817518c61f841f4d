"""HeavyBall and constant-momentum Nesterov are Keras' SGD(momentum) and SGD(nesterov=True) in disguise.

The momenta are exact in float32: Keras casts a Python momentum through a float32 tensor, so in float64
SGD(momentum=0.8) multiplies by 0.800000011920929.
"""

import keras
import numpy as np
import tensorflow as tf

from zoo.optimizers import HeavyBall, Nesterov

EIGENVALUES = np.linspace(1.0, 100.0, 50)


def grad(x):
    return tf.constant(EIGENVALUES) * x


def test_heavy_ball_equals_sgd_momentum_step_for_step_with_a_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.02, decay_steps=3, decay_rate=0.7)
    ours, reference = HeavyBall(schedule, momentum=0.75), keras.optimizers.SGD(schedule, momentum=0.75)
    x0 = np.random.RandomState(0).randn(50)
    a, b = keras.Variable(x0, dtype="float64"), keras.Variable(x0, dtype="float64")
    for _ in range(25):
        ours.apply([grad(a.value)], [a])
        reference.apply([grad(b.value)], [b])
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13, atol=1e-15)
    assert np.linalg.norm(a.numpy()) < 0.5 * np.linalg.norm(x0)


def test_nesterov_constant_momentum_is_the_sgd_nesterov_look_ahead_form():
    # SGD(nesterov=True) stores w = x_k and velocity m_k; the two-sequence form's y_k is w − β·m_k.
    beta = 0.875
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([5], [0.01, 0.005])
    ours = Nesterov(schedule, momentum=beta)
    reference = keras.optimizers.SGD(schedule, momentum=beta, nesterov=True)
    x0 = np.random.RandomState(1).randn(50)
    a, b = keras.Variable(x0, dtype="float64"), keras.Variable(x0, dtype="float64")
    for _ in range(20):
        ours.apply([grad(a.value)], [a])
        reference.apply([grad(b.value)], [b])
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-13)
        y = b.numpy() - beta * reference.momentums[0].numpy()
        np.testing.assert_allclose(ours.primary_iterate(a).numpy(), y, rtol=1e-10, atol=1e-13)
