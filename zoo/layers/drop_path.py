"""ScheduledDropPath (Zoph et al. 2018, NASNet; TF-slim `nasnet_utils` "v3"): whole-example drop of one
operation's output inside a cell, its rate scaled by the cell's depth and by training progress.

With `rate` the final drop probability (slim's 1 - drop_path_keep_prob), a cell at depth ratio
`cell_ratio` = (cell index + 1) / total cells drops with probability

    rate · cell_ratio · min(1, step / total_steps)

and scales what it keeps by 1 / keep probability. The training progress min(1, step / total_steps) is not a
weight of the layer: the task model that trains the network (`zoo.models.nas.ImageClassifier`) computes it
from `zoo.ops.global_step` and makes it visible to every ScheduledDropPath it calls with

    with drop_path_progress(progress):
        outputs = network(images, training=True)

Called in training mode outside such a block (a plain `fit` of the bare network), the layer uses the final
rate (progress 1). In inference mode it is the identity.

Example:
    layer = ScheduledDropPath(rate=0.4, cell_ratio=0.5, seed=1)
    with drop_path_progress(0.5):
        y = layer(x, training=True)   # each example dropped with probability 0.1, kept ones scaled by 1/0.9
"""

import keras
from keras import ops

from zoo.layers.config import Configurable

_PROGRESS = []  # training progress in [0, 1] of the train step being traced, innermost last


class drop_path_progress:
    """Context manager: inside it, every `ScheduledDropPath` called in training mode reads `progress`
    (a float or a scalar tensor in [0, 1])."""

    def __init__(self, progress):
        self.progress = progress

    def __enter__(self):
        _PROGRESS.append(self.progress)
        return self.progress

    def __exit__(self, *exc):
        _PROGRESS.pop()


def current_progress():
    """The training progress set by the innermost `drop_path_progress`, or 1.0 outside one."""
    return _PROGRESS[-1] if _PROGRESS else 1.0


@keras.saving.register_keras_serializable(package="zoo")
class ScheduledDropPath(Configurable, keras.layers.Layer):
    """Drops whole examples of its input with probability rate · cell_ratio · progress (training only).

    Args:
        rate: final drop probability of the deepest cell (slim: 1 - drop_path_keep_prob), in [0, 1).
        cell_ratio: (cell index + 1) / total cells, in (0, 1].
        seed: seed of the layer's random stream.
    """

    def __init__(self, rate=0.0, cell_ratio=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"ScheduledDropPath rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.cell_ratio = cell_ratio
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        progress = ops.minimum(ops.cast(current_progress(), "float32"), 1.0)
        keep = 1.0 - self.rate * self.cell_ratio * progress
        batch = ops.shape(inputs)[0]
        noise = self._noise((batch, 1, 1, 1))
        mask = ops.floor(keep + noise) / keep
        return inputs * ops.cast(mask, inputs.dtype)

    def _noise(self, shape):
        """Uniform [0, 1) noise. Every replica of a distributed step reads the same generator state, so with
        several replicas the replica id is folded into the seed: otherwise the examples at the same position
        on every replica would be dropped together."""
        from zoo.ops import num_replicas, replica_id

        if num_replicas() == 1:
            return keras.random.uniform(shape, seed=self.seed_generator, dtype="float32")
        import tensorflow as tf

        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(replica_id(), tf.int32))
        return tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)

    def compute_output_shape(self, input_shape):
        return input_shape
