"""Initializers the model families share: PyTorch's defaults and the N(0, 0.02) of GANs and BERT.

Example:
    conv = keras.layers.Conv2D(8, 3, kernel_initializer=torch_kernel_initializer(),
                               bias_initializer=TorchBiasUniform(fan_in=3 * 3 * 4))   # as torch.nn.Conv2d(4, 8, 3)
    dense = keras.layers.Dense(8, kernel_initializer=normal_initializer())          # N(0, 0.02)
    seeded = keras.initializers.RandomNormal(0.0, 0.02, seed=1)
    key = keras.layers.Dense(8, kernel_initializer=clone_initializer(seeded, index=1))  # a copy with seed 2
"""

import math

import keras

from zoo.errors import ZooError
from zoo.layers.config import Configurable


def torch_kernel_initializer():
    """PyTorch's default conv/linear weight init, kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in)).

    Keras computes a transposed conv's fan-in from its output channels, as PyTorch does.
    """
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


@keras.saving.register_keras_serializable(package="zoo")
class TorchBiasUniform(Configurable, keras.initializers.Initializer):
    """PyTorch's default conv/linear bias init, U(±1/sqrt(fan_in)).

    A bias does not know its layer's fan-in (kernel height · width · input channels, or input units), so it
    is given: `TorchBiasUniform(fan_in=3 * 3 * channels_in)`.
    """

    def __init__(self, fan_in, seed=None):
        if int(fan_in) < 1:
            raise ZooError(f"TorchBiasUniform needs a positive fan_in (kernel size · input channels), got {fan_in}")
        self.fan_in = int(fan_in)
        self.seed = seed
        self._uniform = keras.initializers.RandomUniform(-1.0 / math.sqrt(self.fan_in), 1.0 / math.sqrt(self.fan_in),
                                                         seed=seed)

    def __call__(self, shape, dtype=None):
        return self._uniform(shape, dtype=dtype)


def normal_initializer(stddev=0.02):
    """N(0, stddev²) weights: DCGAN-style GANs (CycleGAN's `init_type='normal'`, DGR's WGAN-GP nets)."""
    return keras.initializers.RandomNormal(0.0, stddev)


def truncated_normal_initializer(stddev=0.02):
    """N(0, stddev²) truncated at two standard deviations: BERT's `create_initializer`."""
    return keras.initializers.TruncatedNormal(stddev=stddev)


def clone_initializer(init, index=0):
    """A new initializer equal to `init` (name, instance or config), for one sublayer's weight.

    Keras initializers are stateless: one instance (or a copy with the same int seed) gives every weight it
    builds the same values. The copy is deep (serialize / deserialize, so an unseeded one draws a fresh seed
    as before) and an int seed is offset by `index`, so the weights of one layer built with the indices
    0, 1, 2 ... from one seeded initializer all differ. Callables that are not `keras.initializers.Initializer`
    are returned unchanged.
    """
    init = keras.initializers.get(init)
    if not isinstance(init, keras.initializers.Initializer):
        return init
    config = keras.initializers.serialize(init)
    seed = config.get("config", {}).get("seed") if isinstance(config, dict) else None
    if isinstance(seed, int) and not isinstance(seed, bool):
        config["config"]["seed"] = seed + index
    return keras.initializers.get(config)
