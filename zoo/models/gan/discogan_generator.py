"""DiscoGAN generator: the encoder-decoder of SKTBrain/DiscoGAN `model.py` (no skips, no biases)."""

import keras

from zoo.errors import ZooError
from zoo.layers import Configurable, torch_batch_norm, torch_kernel_initializer


def check_image_size(image_size):
    """DiscoGAN's nets need a square side that is a multiple of 16 and at least 64 (64 in the paper)."""
    if not isinstance(image_size, int) or image_size < 64 or image_size % 16:
        raise ZooError(
            f"DiscoGAN image_size must be a multiple of 16 and at least 64 (the paper uses 64), got {image_size!r}"
        )


@keras.saving.register_keras_serializable(package="zoo")
class DiscoGANGenerator(Configurable, keras.Model):
    """Maps a [batch, S, S, 3] image in [0, 1] to an image of the other domain in [0, 1].

    Encoder: four 4x4 stride-2 convs (filters, 2f, 4f, 8f), BatchNorm on all but the first, LeakyReLU 0.2.
    Decoder: four 4x4 stride-2 transposed convs (4f, 2f, f, 3), BatchNorm + ReLU on all but the last, which
    ends in a sigmoid. `bottleneck_units` (100 in the official `extra_layers=True` variant used for the
    car/face/chair angle tasks) adds a 4x4 valid conv down to 1x1 and a transposed conv back.

    Trainable parameters at the official size (64x64, filters=64): 5,513,856; with the bottleneck 7,153,480.

    Args:
        image_size: side of the square input (multiple of 16, at least 64).
        filters: channels of the first encoder conv (64 in the paper).
        bottleneck_units: None, or the channels of the 1x1 bottleneck (100 officially).
        dtype: dtype policy of every layer but the float32 output (default: the global policy).

    Example:
        generator = DiscoGANGenerator()
        fake_b = generator(keras.random.uniform((8, 64, 64, 3)))   # [8, 64, 64, 3] in [0, 1]
    """

    def __init__(self, image_size=64, filters=64, bottleneck_units=None, dtype=None, **kwargs):
        check_image_size(image_size)

        def conv(x, units, name, strides=2, padding="same"):
            return keras.layers.Conv2D(units, 4, strides, padding, use_bias=False, dtype=dtype,
                                       kernel_initializer=torch_kernel_initializer(), name=name)(x)

        def deconv(x, units, name, strides=2, padding="same"):
            return keras.layers.Conv2DTranspose(units, 4, strides, padding, use_bias=False, dtype=dtype,
                                                kernel_initializer=torch_kernel_initializer(), name=name)(x)

        def batch_norm(name):
            return torch_batch_norm(name, dtype=dtype)

        inputs = keras.Input((image_size, image_size, 3), name="images")
        x = conv(inputs, filters, "encoder_conv_1")
        x = keras.layers.LeakyReLU(0.2, dtype=dtype, name="encoder_act_1")(x)
        for i, mult in enumerate((2, 4, 8), start=2):
            x = conv(x, filters * mult, f"encoder_conv_{i}")
            x = batch_norm(f"encoder_bn_{i}")(x)
            x = keras.layers.LeakyReLU(0.2, dtype=dtype, name=f"encoder_act_{i}")(x)
        if bottleneck_units:
            x = conv(x, bottleneck_units, "bottleneck_conv", strides=1, padding="valid")
            x = batch_norm("bottleneck_bn")(x)
            x = keras.layers.LeakyReLU(0.2, dtype=dtype, name="bottleneck_act")(x)
            x = deconv(x, filters * 8, "bottleneck_deconv", strides=1, padding="valid")
            x = batch_norm("bottleneck_deconv_bn")(x)
            x = keras.layers.ReLU(dtype=dtype, name="bottleneck_deconv_act")(x)
        for i, mult in enumerate((4, 2, 1), start=1):
            x = deconv(x, filters * mult, f"decoder_deconv_{i}")
            x = batch_norm(f"decoder_bn_{i}")(x)
            x = keras.layers.ReLU(dtype=dtype, name=f"decoder_act_{i}")(x)
        x = deconv(x, 3, "decoder_deconv_4")
        outputs = keras.layers.Activation("sigmoid", dtype="float32", name="images_out")(x)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        self.image_size = image_size
        self.filters = filters
        self.bottleneck_units = bottleneck_units
