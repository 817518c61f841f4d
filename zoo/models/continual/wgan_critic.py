"""WGAN-GP critic of a Deep Generative Replay scholar (kuc2477/pytorch-deep-generative-replay `gan.py`)."""

import keras

from zoo.errors import ZooError
from zoo.layers import Configurable, normal_initializer


@keras.saving.register_keras_serializable(package="zoo")
class WganCritic(Configurable, keras.Model):
    """Critic: images -> one unbounded score per image (no BatchNorm, as WGAN-GP requires).

    `num_downsamples` × [4×4 stride-2 conv (channels, 2·channels, 4·channels), LeakyReLU 0.01], then a
    4×4 stride-1 conv with padding 1 to `channels * 2**num_downsamples` (4×4 -> 3×3 at 32×32), LeakyReLU,
    flatten and a dense to 1. LeakyReLU keeps torch's default slope 0.01.

    The reference flattens with `view(-1, 4·4·256)` although the last map is 3×3×512 = 4,608 values, which
    mixes rows of the batch; this port flattens the true shape, so its dense has 4,609 parameters instead of
    4,097: 2,759,105 trainable parameters at 32×32×1 (2,761,153 at 32×32×3).

    Args:
        image_size: input height and width; must divide by 2**num_downsamples and leave at least 2×2.
        image_channels: 1 or 3.
        channels: channels of the first conv (64).
        num_downsamples: stride-2 convs (3 for 32×32).

    Example:
        critic = zoo.create_model("dgr_critic")
        scores = critic(np.zeros((4, 32, 32, 1)))  # (4, 1)
    """

    def __init__(self, image_size=32, image_channels=1, channels=64, num_downsamples=3, dtype=None, **kwargs):
        if image_size % 2**num_downsamples or image_size < 2 * 2**num_downsamples:
            raise ZooError(
                f"image_size={image_size} must be a multiple of 2**num_downsamples={2**num_downsamples} that "
                "leaves at least a 2×2 map for the last conv")
        images = keras.Input((image_size, image_size, image_channels), name="images")
        x = images
        for i in range(num_downsamples):
            x = keras.layers.Conv2D(channels * 2**i, 4, strides=2, padding="same",
                                    kernel_initializer=normal_initializer(), dtype=dtype, name=f"conv{i + 1}")(x)
            x = keras.layers.LeakyReLU(0.01, dtype=dtype, name=f"conv{i + 1}_lrelu")(x)
        x = keras.layers.ZeroPadding2D(1, dtype=dtype, name="pad")(x)
        x = keras.layers.Conv2D(channels * 2**num_downsamples, 4, kernel_initializer=normal_initializer(),
                                dtype=dtype, name=f"conv{num_downsamples + 1}")(x)
        x = keras.layers.LeakyReLU(0.01, dtype=dtype, name=f"conv{num_downsamples + 1}_lrelu")(x)
        x = keras.layers.Flatten(dtype=dtype, name="flatten")(x)
        scores = keras.layers.Dense(1, kernel_initializer=normal_initializer(), dtype="float32", name="fc")(x)
        super().__init__(inputs=images, outputs=scores, dtype=dtype, **kwargs)

        self.image_size = image_size
        self.image_channels = image_channels
        self.channels = channels
        self.num_downsamples = num_downsamples
