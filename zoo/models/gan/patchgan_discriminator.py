"""70x70 PatchGAN discriminator (`basic`, n_layers=3, of junyanz/pytorch-CycleGAN-and-pix2pix)."""

import keras

from zoo.layers import Configurable, InstanceNormalization, normal_initializer


@keras.saving.register_keras_serializable(package="zoo")
class PatchGANDiscriminator(Configurable, keras.Model):
    """Scores overlapping 70x70 patches of an image in [-1, 1]; one raw (LSGAN) score per patch.

    C64-C128-C256-C512 (4x4 convs, stride 2 except the last, instance norm on all but the first, LeakyReLU
    0.2) and a 4x4 conv to one channel, every conv padded by 1 as in the reference, so a 256x256 input
    gives a 30x30 map. Parameters with filters=64: 2,764,737.

    Args:
        filters: channels of the first conv (64).
        num_layers: stride-2 conv layers before the stride-1 ones (3 for the 70x70 PatchGAN).
        image_size: fixed input side, or None for any side.
        dtype: dtype policy of every layer but the float32 output (default: the global policy).

    Example:
        discriminator = PatchGANDiscriminator()
        scores = discriminator(keras.random.uniform((1, 256, 256, 3), -1, 1))   # [1, 30, 30, 1]
    """

    def __init__(self, filters=64, num_layers=3, image_size=None, dtype=None, **kwargs):
        def conv(x, units, strides, name):
            x = keras.layers.ZeroPadding2D(1, dtype=dtype, name=f"{name}_pad")(x)
            return keras.layers.Conv2D(units, 4, strides, kernel_initializer=normal_initializer(), dtype=dtype,
                                       name=name)(x)

        inputs = keras.Input((image_size, image_size, 3), name="images")
        x = keras.layers.LeakyReLU(0.2, dtype=dtype, name="conv_1_act")(conv(inputs, filters, 2, "conv_1"))
        for i in range(1, num_layers + 1):
            units = filters * min(2 ** i, 8)
            name = f"conv_{i + 1}"
            x = conv(x, units, 2 if i < num_layers else 1, name)
            x = InstanceNormalization(dtype=dtype, name=f"{name}_norm")(x)
            x = keras.layers.LeakyReLU(0.2, dtype=dtype, name=f"{name}_act")(x)
        x = conv(x, 1, 1, "conv_out")
        outputs = keras.layers.Activation("linear", dtype="float32", name="scores")(x)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        self.filters = filters
        self.num_layers = num_layers
        self.image_size = image_size

    @staticmethod
    def output_size(image_size, num_layers=3):
        """Side of the score map for a square input of side `image_size` (at least 1 to be usable)."""
        for _ in range(num_layers):
            image_size //= 2  # 4x4 convs, stride 2, padding 1
        return image_size - 2  # two 4x4 convs, stride 1, padding 1
