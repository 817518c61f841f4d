"""Solver (classifier) of a Deep Generative Replay scholar (kuc2477/pytorch-deep-generative-replay `models.CNN`)."""

import keras

from zoo.errors import ZooError
from zoo.layers import Configurable, TorchBiasUniform, torch_batch_norm, torch_kernel_initializer


@keras.saving.register_keras_serializable(package="zoo")
class DgrSolver(Configurable, keras.Model):
    """CNN classifier: images in [0, 1] -> class logits.

    A 3×3 conv to `channels / 2**(depth - 2)` (no norm or activation), then `depth - 2` × [3×3 conv
    doubling the channels (stride 2 for the first `reducing_layers`, padding 1 as in torch), BN, ReLU],
    flatten and a dense to `num_classes`. The default (depth 5, channels 1024, 3 reducing layers) has
    6,363,658 trainable parameters on 32×32×1 inputs. Convs keep their biases, as in the reference, and
    every kernel and bias starts from PyTorch's default U(±1/sqrt(fan_in)), which the reference keeps.

    Args:
        image_size: input height and width; must divide by 2**reducing_layers.
        image_channels: 1 or 3.
        num_classes: output classes (10).
        depth: conv layers + 1 (the dense); at least 2.
        channels: channels of the last conv; must divide by 2**(depth - 2).
        reducing_layers: stride-2 convs among the `depth - 2` doubling convs.
        synchronized_bn: BatchNorm statistics over the global batch under a distribution strategy.

    Example:
        solver = zoo.create_model("dgr_solver")
        logits = solver(np.zeros((4, 32, 32, 1)))  # (4, 10)
    """

    def __init__(self, image_size=32, image_channels=1, num_classes=10, depth=5, channels=1024, reducing_layers=3,
                 synchronized_bn=True, dtype=None, **kwargs):
        if depth < 2 or channels % 2 ** (depth - 2) or reducing_layers > depth - 2:
            raise ZooError(
                f"solver depth={depth}, channels={channels}, reducing_layers={reducing_layers}: need depth >= 2, "
                "channels divisible by 2**(depth - 2) and reducing_layers <= depth - 2")
        if image_size % 2**reducing_layers:
            raise ZooError(f"image_size={image_size} must divide by 2**reducing_layers={2**reducing_layers}")
        images = keras.Input((image_size, image_size, image_channels), name="images")
        def torch_init(fan_in):
            return dict(kernel_initializer=torch_kernel_initializer(), bias_initializer=TorchBiasUniform(fan_in))

        width = channels // 2 ** (depth - 2)
        x = keras.layers.Conv2D(width, 3, padding="same", **torch_init(9 * image_channels), dtype=dtype,
                                name="conv0")(images)
        for i in range(depth - 2):
            width *= 2
            stride = 2 if i < reducing_layers else 1
            if stride == 2:  # torch pads 1 on every side; Keras "same" would pad only bottom/right
                x = keras.layers.ZeroPadding2D(1, dtype=dtype, name=f"pad{i + 1}")(x)
            x = keras.layers.Conv2D(width, 3, strides=stride, padding="valid" if stride == 2 else "same",
                                    **torch_init(9 * x.shape[-1]), dtype=dtype, name=f"conv{i + 1}")(x)
            x = torch_batch_norm(f"conv{i + 1}_bn", synchronized=synchronized_bn, dtype=dtype)(x)
            x = keras.layers.ReLU(dtype=dtype, name=f"conv{i + 1}_relu")(x)
        x = keras.layers.Flatten(dtype=dtype, name="flatten")(x)
        logits = keras.layers.Dense(num_classes, **torch_init(x.shape[-1]), dtype="float32", name="logits")(x)
        super().__init__(inputs=images, outputs=logits, dtype=dtype, **kwargs)

        self.image_size = image_size
        self.image_channels = image_channels
        self.num_classes = num_classes
        self.depth = depth
        self.channels = channels
        self.reducing_layers = reducing_layers
        self.synchronized_bn = synchronized_bn
