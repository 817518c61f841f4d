"""DiscoGAN discriminator: the 5-conv net of SKTBrain/DiscoGAN `model.py`, with its features for
feature matching."""

import keras

from zoo.layers import Configurable, torch_batch_norm, torch_kernel_initializer
from zoo.models.gan.discogan_generator import check_image_size


@keras.saving.register_keras_serializable(package="zoo")
class DiscoGANDiscriminator(Configurable, keras.Model):
    """Scores a [batch, S, S, 3] image in [0, 1] as real (1) or generated (0).

    Four 4x4 stride-2 convs (filters, 2f, 4f, 8f; BatchNorm on all but the first; LeakyReLU 0.2), then a 4x4
    valid conv to one channel and a sigmoid, all without biases. Trainable parameters at the official size
    (64x64, filters=64): 2,765,568.

    Outputs a dict: `probability` [batch, S/16-3, S/16-3, 1] (1x1 at 64x64), the same as `logits` before the
    sigmoid (losses use these for numerical stability), and `features`, the three post-activation maps of
    convs 2-4 ([b,16,16,128], [b,8,8,256], [b,4,4,512] at 64x64) used by the feature-matching loss.

    Args:
        image_size: side of the square input (multiple of 16, at least 64).
        filters: channels of the first conv (64 in the paper).
        dtype: dtype policy of every layer but the float32 outputs (default: the global policy).

    Example:
        discriminator = DiscoGANDiscriminator()
        out = discriminator(keras.random.uniform((8, 64, 64, 3)))
        out["probability"].shape, [f.shape for f in out["features"]]
    """

    def __init__(self, image_size=64, filters=64, dtype=None, **kwargs):
        check_image_size(image_size)

        def conv(x, units, name, strides=2, padding="same"):
            return keras.layers.Conv2D(units, 4, strides, padding, use_bias=False, dtype=dtype,
                                       kernel_initializer=torch_kernel_initializer(), name=name)(x)

        inputs = keras.Input((image_size, image_size, 3), name="images")
        x = keras.layers.LeakyReLU(0.2, dtype=dtype, name="act_1")(conv(inputs, filters, "conv_1"))
        features = []
        for i, mult in enumerate((2, 4, 8), start=2):
            x = torch_batch_norm(f"bn_{i}", dtype=dtype)(conv(x, filters * mult, f"conv_{i}"))
            x = keras.layers.LeakyReLU(0.2, dtype=dtype, name=f"act_{i}")(x)
            features.append(x)
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(
            conv(x, 1, "conv_5", strides=1, padding="valid"))
        probability = keras.layers.Activation("sigmoid", dtype="float32", name="probability")(logits)
        outputs = {"probability": probability, "logits": logits, "features": features}
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        self.image_size = image_size
        self.filters = filters
