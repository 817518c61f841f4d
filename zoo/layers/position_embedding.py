"""Learned absolute position embeddings."""

import keras
from keras import ops

from zoo.layers.config import Configurable


@keras.saving.register_keras_serializable(package="zoo")
class PositionEmbedding(Configurable, keras.layers.Layer):
    """Adds no input: returns the first `T` rows of a learned [max_length, hidden] table, broadcast to `inputs`.

    Example:
        x = keras.ops.zeros((2, 16, 64))
        PositionEmbedding(max_length=512)(x).shape  # (2, 16, 64)
    """

    def __init__(self, max_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.max_length, input_shape[-1]), initializer=self.initializer
        )

    def call(self, inputs):
        length = ops.shape(inputs)[-2]
        table = ops.convert_to_tensor(self.embeddings)[:length]
        return ops.broadcast_to(ops.cast(table, self.compute_dtype), ops.shape(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape
