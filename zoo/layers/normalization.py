"""Normalisation: instance norm (which Keras does not ship), PyTorch-style batch norm, and cross-replica
batch statistics for every batch norm of a built network (`synchronize_batch_norm`)."""

import keras
from keras import ops

from zoo.layers.config import Configurable


def torch_batch_norm(name=None, synchronized=True, dtype=None):
    """`keras.layers.BatchNormalization` with `torch.nn.BatchNorm2d`'s defaults: momentum 0.1 (Keras' 0.9,
    which weighs the old statistics) and epsilon 1e-5. `synchronized` computes the batch statistics over all
    replicas, so a multi-replica step sees the global batch's statistics, as one device does.

    Example:
        x = torch_batch_norm("bn_1")(keras.ops.ones((4, 8, 8, 16)), training=True)
    """
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=synchronized, dtype=dtype,
                                           name=name)


def synchronize_batch_norm(layer):
    """Makes every BatchNormalization in the built `layer` normalise training batches with statistics over all
    replicas (Keras `synchronized=True`, TF backend: sums of x, x² and counts all-reduced, gradients through
    the all-reduce), so N replicas match one device at the same global batch. Keras reads the flag at call
    time, so networks call this at the end of their constructor. Returns how many layers it set.

    Example:
        synchronize_batch_norm(net)   # what NASNet/PNASNet/RandWire(..., sync_batch_norm=True) do
    """
    if keras.backend.backend() != "tensorflow":
        from zoo.errors import ZooError
        raise ZooError(f"sync_batch_norm needs the TensorFlow backend, not {keras.backend.backend()}; "
                       f"set KERAS_BACKEND=tensorflow or sync_batch_norm=False")
    norms = [sub for sub in layer._flatten_layers(include_self=True, recursive=True)
             if isinstance(sub, keras.layers.BatchNormalization)]
    for norm in norms:
        norm.synchronized = True
    return len(norms)


@keras.saving.register_keras_serializable(package="zoo")
class InstanceNormalization(Configurable, keras.layers.Layer):
    """Instance normalisation (Ulyanov et al., 2016): each example and channel is normalised over its
    spatial positions, with the biased variance, at training and at inference alike.

    The defaults match PyTorch's `nn.InstanceNorm2d` as CycleGAN uses it (`affine=False`,
    `track_running_stats=False`, eps 1e-5); `center`/`scale` add a learned per-channel offset and gain.
    Statistics are computed in float32 under mixed precision.

    Args:
        axis: the channel axis (-1 for channels-last).
        epsilon: added to the variance.
        center: learn a per-channel offset (beta).
        scale: learn a per-channel gain (gamma).

    Example:
        x = keras.random.normal((2, 32, 32, 8))
        y = InstanceNormalization()(x)   # per (example, channel): mean 0, variance ~1
    """

    def __init__(self, axis=-1, epsilon=1e-5, center=False, scale=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 3:
            raise ValueError(f"InstanceNormalization needs (batch, ..., channels) inputs, got shape {input_shape}")
        axis = self.axis % rank
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(f"InstanceNormalization needs a known channel dimension, got shape {input_shape}")
        self._reduce_axes = [i for i in range(1, rank) if i != axis]
        self._param_shape = [1] * rank
        self._param_shape[axis] = channels
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma") if self.scale else None
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta") if self.center else None

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        mean, variance = ops.moments(x, axes=self._reduce_axes, keepdims=True)
        x = (x - mean) * ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            x = x * ops.reshape(ops.cast(self.gamma, "float32"), self._param_shape)
        if self.beta is not None:
            x = x + ops.reshape(ops.cast(self.beta, "float32"), self._param_shape)
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape
