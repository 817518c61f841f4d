"""CycleGAN ResNet generator (`resnet_9blocks` / `resnet_6blocks` of junyanz/pytorch-CycleGAN-and-pix2pix)."""

import keras

from zoo.layers import Configurable, InstanceNormalization, ReflectionPadding2D, normal_initializer


@keras.saving.register_keras_serializable(package="zoo")
class ResnetGenerator(Configurable, keras.Model):
    """Maps an image in [-1, 1] to the other domain in [-1, 1] (tanh), fully convolutional.

    c7s1-f, d2f, d4f, `num_blocks` x R4f, u2f, uf, c7s1-3 (paper appendix): reflection-padded 7x7 convs at the
    ends, two 3x3 stride-2 convs down, residual blocks of two reflection-padded 3x3 convs (no ReLU after the
    add), two 3x3 stride-2 transposed convs up, instance norm (no affine) and ReLU after every conv but the
    last. Convs have biases, as the reference uses with instance norm. Padding and cropping reproduce
    PyTorch's geometry exactly (a Keras "same" stride-2 conv would shift the sampling grid by one pixel).
    Weights start from N(0, 0.02) (the reference's `init_type='normal'`), biases at zero.

    Parameters with filters=64: 11,378,179 (9 blocks, for 256x256) and 7,837,699 (6 blocks, for 128x128).

    Args:
        filters: channels of the first conv (64).
        num_blocks: residual blocks (9 or 6).
        image_size: fixed input side, or None for any side divisible by 4.
        dtype: dtype policy of every layer but the float32 output (default: the global policy).

    Example:
        generator = ResnetGenerator(num_blocks=9)
        fake = generator(keras.random.uniform((1, 256, 256, 3), -1, 1))   # [1, 256, 256, 3]
    """

    def __init__(self, filters=64, num_blocks=9, image_size=None, dtype=None, **kwargs):
        def conv(x, units, kernel, name, strides=1):
            return keras.layers.Conv2D(units, kernel, strides, kernel_initializer=normal_initializer(), dtype=dtype,
                                       name=name)(x)

        def norm(x, name):
            return InstanceNormalization(dtype=dtype, name=name)(x)

        def norm_relu(x, name):
            return keras.layers.ReLU(dtype=dtype, name=f"{name}_relu")(norm(x, f"{name}_norm"))

        def pad(x, size, name):
            return ReflectionPadding2D(size, dtype=dtype, name=name)(x)

        inputs = keras.Input((image_size, image_size, 3), name="images")
        x = pad(inputs, 3, "stem_pad")
        x = norm_relu(conv(x, filters, 7, "stem_conv"), "stem")
        for i, mult in enumerate((2, 4), start=1):
            x = keras.layers.ZeroPadding2D(1, dtype=dtype, name=f"down_{i}_pad")(x)
            x = norm_relu(conv(x, filters * mult, 3, f"down_{i}_conv", strides=2), f"down_{i}")
        for i in range(1, num_blocks + 1):
            name = f"block_{i}"
            y = pad(x, 1, f"{name}_pad_1")
            y = norm_relu(conv(y, filters * 4, 3, f"{name}_conv_1"), f"{name}_1")
            y = pad(y, 1, f"{name}_pad_2")
            y = norm(conv(y, filters * 4, 3, f"{name}_conv_2"), f"{name}_2_norm")
            x = keras.layers.Add(dtype=dtype, name=f"{name}_add")([x, y])
        for i, mult in enumerate((2, 1), start=1):
            # ConvTranspose2d(k3, s2, padding=1, output_padding=1) == valid transpose conv minus the first row/col.
            x = keras.layers.Conv2DTranspose(filters * mult, 3, 2, "valid", kernel_initializer=normal_initializer(),
                                             dtype=dtype, name=f"up_{i}_deconv")(x)
            x = keras.layers.Cropping2D(((1, 0), (1, 0)), dtype=dtype, name=f"up_{i}_crop")(x)
            x = norm_relu(x, f"up_{i}")
        x = pad(x, 3, "head_pad")
        x = conv(x, 3, 7, "head_conv")
        outputs = keras.layers.Activation("tanh", dtype="float32", name="images_out")(x)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        self.filters = filters
        self.num_blocks = num_blocks
        self.image_size = image_size
