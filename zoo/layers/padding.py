"""Reflection padding (`torch.nn.ReflectionPad2d`), which Keras does not ship."""

import keras
from keras import ops

from zoo.layers.config import Configurable


@keras.saving.register_keras_serializable(package="zoo")
class ReflectionPadding2D(Configurable, keras.layers.Layer):
    """Pads height and width by `padding` pixels on each side by mirroring, channels-last.

    Example:
        x = keras.ops.reshape(keras.ops.arange(9.0), (1, 3, 3, 1))
        ReflectionPadding2D(1)(x).shape   # (1, 5, 5, 1); the first row is x's second row
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = padding

    def call(self, inputs):
        p = self.padding
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        p = 2 * self.padding
        return (b, None if h is None else h + p, None if w is None else w + p, c)
