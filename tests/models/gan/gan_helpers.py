"""Helpers shared by the DiscoGAN and CycleGAN tests."""

import keras
import numpy as np
import tensorflow as tf

NETWORKS = ("generator_a", "generator_b", "discriminator_a", "discriminator_b")


def images(shape, seed):
    """Uniform [0, 1) float32 images."""
    return tf.constant(np.random.default_rng(seed).uniform(0, 1, shape).astype("float32"))


def adam():
    """The references' Adam(2e-4, betas=(0.5, 0.999)) with PyTorch's epsilon."""
    return keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999, epsilon=1e-8)


def snapshot(model):
    """Copies of each network's trainable variables."""
    return {net: [v.numpy().copy() for v in getattr(model, net).trainable_variables] for net in NETWORKS}


def changed_weights(before, model):
    """Per network, which trainable variables differ from `snapshot`'s copies."""
    return {net: [not np.array_equal(b, v.numpy()) for b, v in zip(values, getattr(model, net).trainable_variables)]
            for net, values in before.items()}
