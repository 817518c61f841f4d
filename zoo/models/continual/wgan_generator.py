"""WGAN-GP generator of a Deep Generative Replay scholar (kuc2477/pytorch-deep-generative-replay `gan.py`)."""

import keras

from zoo.errors import ZooError
from zoo.layers import Configurable, normal_initializer, torch_batch_norm


@keras.saving.register_keras_serializable(package="zoo")
class WganGenerator(Configurable, keras.Model):
    """DCGAN-style generator: noise -> images in [0, 1].

    Dense to a (size / 2**num_upsamples)² map with `channels * 2**num_upsamples` channels, BN, ReLU; then
    `num_upsamples` × [4×4 stride-2 transposed conv halving the channels, BN, ReLU]; then a 3×3 transposed
    conv to `image_channels` and a sigmoid. The full config (32×32, channels 64, 3 upsamples, noise 100)
    has 3,582,849 trainable parameters for one image channel. Kernels start from N(0, 0.02) (the reference's
    `gaussian_intiailize(std=.02)`), biases at zero. BatchNorm uses torch's momentum (0.1, i.e.
    Keras 0.9) and epsilon 1e-5; `synchronized_bn` computes batch statistics over all replicas, so a
    multi-replica step equals a one-device step at the same global batch.

    Args:
        image_size: output height and width; must divide by 2**num_upsamples.
        image_channels: 1 (grey) or 3 (colour).
        noise_dim: length of the noise vector z (the reference samples z ~ N(0, 1) * 0.1).
        channels: channels of the last upsampling block (64); the first block has channels * 2**num_upsamples.
        num_upsamples: stride-2 transposed convs (3 for 32×32).
        synchronized_bn: BatchNorm statistics over the global batch under a distribution strategy.

    Example:
        generator = zoo.create_model("dgr_generator")
        images = generator(np.random.normal(size=(4, 100)) * 0.1)  # (4, 32, 32, 1)
    """

    def __init__(self, image_size=32, image_channels=1, noise_dim=100, channels=64, num_upsamples=3,
                 synchronized_bn=True, dtype=None, **kwargs):
        if image_size % 2**num_upsamples or image_size < 2**num_upsamples:
            raise ZooError(
                f"image_size={image_size} must be a positive multiple of 2**num_upsamples={2**num_upsamples}")
        start = image_size // 2**num_upsamples
        width = channels * 2**num_upsamples

        def batch_norm(name):
            return torch_batch_norm(name, synchronized=synchronized_bn, dtype=dtype)

        noise = keras.Input((noise_dim,), name="noise")
        x = keras.layers.Dense(start * start * width, kernel_initializer=normal_initializer(), dtype=dtype,
                               name="fc")(noise)
        x = keras.layers.Reshape((start, start, width), dtype=dtype, name="reshape")(x)
        x = keras.layers.ReLU(dtype=dtype, name="fc_relu")(batch_norm("fc_bn")(x))
        for i in range(num_upsamples):
            width //= 2
            x = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same",
                                             kernel_initializer=normal_initializer(), dtype=dtype,
                                             name=f"deconv{i + 1}")(x)
            x = keras.layers.ReLU(dtype=dtype, name=f"deconv{i + 1}_relu")(batch_norm(f"deconv{i + 1}_bn")(x))
        x = keras.layers.Conv2DTranspose(image_channels, 3, padding="same", kernel_initializer=normal_initializer(),
                                         dtype=dtype, name="to_image")(x)
        images = keras.layers.Activation("sigmoid", dtype="float32", name="sigmoid")(x)
        super().__init__(inputs=noise, outputs=images, dtype=dtype, **kwargs)

        self.image_size = image_size
        self.image_channels = image_channels
        self.noise_dim = noise_dim
        self.channels = channels
        self.num_upsamples = num_upsamples
        self.synchronized_bn = synchronized_bn
