"""The operations of NAS cells (NASNet-A, PNASNet-5, RandWire nodes), written once as Keras layers.

Every op is a layer whose weights nest under its own name, built from Keras `Conv2D`, `SeparableConv2D`,
`BatchNormalization` (momentum 0.9997, epsilon 1e-3, as keras.applications and TF-slim) and pooling layers.
`padding` is "same" (TF-slim: SAME convolutions and pools; pools ignore the padded cells) or "zeros"
(keras.applications: `ZeroPadding2D(correct_pad)` then VALID when strided; identical for convolutions, but
max/avg pools then see the zeros at the border).

`make_op(name, filters, strides)` builds one op of the PNAS vocabulary `OPS` (identity, sep 3×3/5×5/7×7,
1×7-7×1 conv, dilated sep 3×3, avg/max pool 3×3; slim's names are aliases). Also here: `ReluSepConvBN` (one
ReLU-SepConv-BN unit, reused by RandWire nodes), `ReluConvBN` (cell base), `FactorizedReduction`, `AuxHead`.

Example:
    unit = ReluSepConvBN(32, kernel_size=3, strides=2)
    y = unit(keras.random.normal((2, 16, 16, 8)))          # (2, 8, 8, 32)
"""

import keras
from keras import ops

from zoo.layers.config import Configurable

BN_MOMENTUM = 0.9997
BN_EPSILON = 1e-3
PADDINGS = ("same", "zeros")


def _check_padding(padding):
    if padding not in PADDINGS:
        from zoo.errors import ZooError
        raise ZooError(f"padding must be one of {PADDINGS}, got {padding!r}")


def correct_pad(input_shape, kernel_size):
    """keras.applications' `correct_pad` for an NHWC `input_shape`: ((top, bottom), (left, right)) of a
    stride-2 VALID op that then equals a TF SAME one (for convolutions)."""
    k = kernel_size // 2
    return tuple((k - (1 - n % 2 if n is not None else 1), k) for n in input_shape[1:3])


def batch_norm(name, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, dtype=None):
    """A BatchNormalization layer with the NAS defaults."""
    return keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon, name=name, dtype=dtype)


class _Composite(Configurable, keras.layers.Layer):
    """Base: a layer that runs a list of sub-layers (`self.stack`) in order; ReLU entries are the string
    "relu"."""

    def build(self, input_shape):
        shape = input_shape
        for layer in self.stack:
            if isinstance(layer, str):
                continue
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.stack:
            if isinstance(layer, str):
                x = ops.relu(x)
            elif isinstance(layer, (keras.layers.BatchNormalization, _Composite)):
                x = layer(x, training=training)
            else:
                x = layer(x)
        return x

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self.stack:
            if not isinstance(layer, str):
                shape = layer.compute_output_shape(shape)
        return shape


@keras.saving.register_keras_serializable(package="zoo")
class ReluSepConvBN(_Composite):
    """ReLU → SeparableConv2D (depth multiplier 1, no bias) → BatchNormalization: one unit of slim's sepKxK.

    Args:
        filters: output channels.
        kernel_size: square kernel size.
        strides: 1 or 2.
        use_bias: a bias in the pointwise convolution (False in NASNet/PNASNet).
        bn_momentum, bn_epsilon: of the BatchNormalization.
        padding: "same", or "zeros" (ZeroPadding2D(correct_pad) + VALID when strided, as keras.applications).
        dilation_rate: of the depthwise convolution.

    Sub-layers: `conv` (SeparableConv2D, weights depthwise_kernel/pointwise_kernel) and `bn`.

    Example:
        y = ReluSepConvBN(16, 5, strides=2)(keras.random.normal((2, 32, 32, 8)))   # (2, 16, 16, 16)
    """

    def __init__(self, filters, kernel_size=3, strides=1, use_bias=False, bn_momentum=BN_MOMENTUM,
                 bn_epsilon=BN_EPSILON, padding="same", dilation_rate=1, **kwargs):
        super().__init__(**kwargs)
        _check_padding(padding)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
        self.use_bias, self.bn_momentum, self.bn_epsilon = use_bias, bn_momentum, bn_epsilon
        self.padding, self.dilation_rate = padding, dilation_rate
        self.pad_layer = None
        self.conv = keras.layers.SeparableConv2D(
            filters, kernel_size, strides=strides, dilation_rate=dilation_rate, use_bias=use_bias,
            padding="valid" if self._explicit_pad else "same", name="conv", dtype=self.dtype_policy)
        self.bn = batch_norm("bn", bn_momentum, bn_epsilon, dtype=self.dtype_policy)

    @property
    def _explicit_pad(self):
        return self.padding == "zeros" and self.strides > 1

    def build(self, input_shape):
        if self._explicit_pad and self.pad_layer is None:
            self.pad_layer = keras.layers.ZeroPadding2D(correct_pad(input_shape, self.kernel_size),
                                                        name="pad", dtype=self.dtype_policy)
        super().build(input_shape)

    @property
    def stack(self):
        return ["relu"] + ([self.pad_layer] if self.pad_layer is not None else []) + [self.conv, self.bn]

    def compute_output_shape(self, input_shape):
        if self._explicit_pad and self.pad_layer is None:
            pad = keras.layers.ZeroPadding2D(correct_pad(input_shape, self.kernel_size))
            input_shape = pad.compute_output_shape(input_shape)
            return self.bn.compute_output_shape(self.conv.compute_output_shape(input_shape))
        return super().compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package="zoo")
class ReluConvBN(_Composite):
    """(ReLU →) Conv2D (no bias) → BatchNormalization: the cell base (1×1), the projection of a previous
    state, or a strided 1×1 for "identity" when shapes differ.

    Args:
        filters, kernel_size, strides: of the convolution ("same" padding).
        relu: apply a ReLU first (slim's pool projection has none).

    Sub-layers: `conv`, `bn`.

    Example:
        y = ReluConvBN(8)(keras.random.normal((2, 8, 8, 3)))   # (2, 8, 8, 8)
    """

    def __init__(self, filters, kernel_size=1, strides=1, relu=True, bn_momentum=BN_MOMENTUM,
                 bn_epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides, self.relu = filters, kernel_size, strides, relu
        self.bn_momentum, self.bn_epsilon = bn_momentum, bn_epsilon
        self.conv = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                                        name="conv", dtype=self.dtype_policy)
        self.bn = batch_norm("bn", bn_momentum, bn_epsilon, dtype=self.dtype_policy)
        self.stack = (["relu"] if relu else []) + [self.conv, self.bn]


@keras.saving.register_keras_serializable(package="zoo")
class SepConvStack(_Composite):
    """slim's "separable_KxK_2": two `ReluSepConvBN` units, the stride on the first (sub-layers `sep_1`,
    `sep_2`); with `dilation_rate` > 1 a single dilated unit (the PNAS "3×3 dilated conv"), computed at stride
    1 and subsampled when strided (TF cannot stride a dilated depthwise convolution).

    Example:
        y = SepConvStack(16, 5, strides=2)(keras.random.normal((2, 8, 8, 4)))   # (2, 4, 4, 16)
    """

    def __init__(self, filters, kernel_size=3, strides=1, num_layers=2, dilation_rate=1, padding="same",
                 bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides, self.num_layers = filters, kernel_size, strides, num_layers
        self.dilation_rate, self.padding = dilation_rate, padding
        self.bn_momentum, self.bn_epsilon = bn_momentum, bn_epsilon
        dilated = dilation_rate > 1
        self.stack = []
        for i in range(num_layers):
            stride = strides if i == 0 and not dilated else 1
            self.stack.append(ReluSepConvBN(filters, kernel_size, stride, bn_momentum=bn_momentum,
                                            bn_epsilon=bn_epsilon, padding=padding, dilation_rate=dilation_rate,
                                            name=f"sep_{i + 1}", dtype=self.dtype_policy))
        if dilated and strides > 1:
            self.stack.append(keras.layers.MaxPooling2D(1, strides, name="subsample", dtype=self.dtype_policy))


@keras.saving.register_keras_serializable(package="zoo")
class Conv1x7x7x1(_Composite):
    """ReLU → Conv 1×7 (stride along width) → Conv 7×1 (stride along height) → BN (the PNAS "1×7 then 7×1
    convolution"; sub-layers `conv_1x7`, `conv_7x1`, `bn`).

    Example:
        y = Conv1x7x7x1(8, strides=2)(keras.random.normal((2, 8, 8, 4)))   # (2, 4, 4, 8)
    """

    def __init__(self, filters, strides=1, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides, self.bn_momentum, self.bn_epsilon = filters, strides, bn_momentum, bn_epsilon
        conv = lambda kernel, stride, name: keras.layers.Conv2D(  # noqa: E731
            filters, kernel, strides=stride, padding="same", use_bias=False, name=name, dtype=self.dtype_policy)
        self.stack = ["relu", conv((1, 7), (1, strides), "conv_1x7"), conv((7, 1), (strides, 1), "conv_7x1"),
                      batch_norm("bn", bn_momentum, bn_epsilon, dtype=self.dtype_policy)]


@keras.saving.register_keras_serializable(package="zoo")
class PoolOp(_Composite):
    """Max or average pooling (`pool_type` "max"/"avg"), then a 1×1 Conv+BN projection (`proj`, no ReLU, as
    slim) when the input has other than `filters` channels. `padding` "same": SAME pooling (padded cells
    ignored); "zeros" with stride > 1: ZeroPadding2D(correct_pad) + VALID (keras.applications' reduction
    cell; the zeros count in the max and the average).

    Example:
        y = PoolOp("max", 8, strides=2)(keras.random.normal((2, 9, 9, 8)))   # (2, 5, 5, 8)
    """

    def __init__(self, pool_type, filters, pool_size=3, strides=1, padding="same", bn_momentum=BN_MOMENTUM,
                 bn_epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        _check_padding(padding)
        if pool_type not in ("max", "avg"):
            from zoo.errors import ZooError
            raise ZooError(f"pool_type must be 'max' or 'avg', got {pool_type!r}")
        self.pool_type, self.filters, self.pool_size, self.strides = pool_type, filters, pool_size, strides
        self.padding, self.bn_momentum, self.bn_epsilon = padding, bn_momentum, bn_epsilon

    def build(self, input_shape):
        explicit = self.padding == "zeros" and self.strides > 1
        pool_class = keras.layers.MaxPooling2D if self.pool_type == "max" else keras.layers.AveragePooling2D
        stack = []
        if explicit:
            stack.append(keras.layers.ZeroPadding2D(correct_pad(input_shape, self.pool_size), name="pad",
                                                    dtype=self.dtype_policy))
        stack.append(pool_class(self.pool_size, self.strides, padding="valid" if explicit else "same",
                                name="pool", dtype=self.dtype_policy))
        if input_shape[-1] != self.filters:
            stack.append(ReluConvBN(self.filters, relu=False, bn_momentum=self.bn_momentum,
                                    bn_epsilon=self.bn_epsilon, name="proj", dtype=self.dtype_policy))
        self.stack = stack
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        size = lambda n: None if n is None else -(-n // self.strides)  # noqa: E731
        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), self.filters)


@keras.saving.register_keras_serializable(package="zoo")
class IdentityOp(_Composite):
    """slim's "none": the identity, or ReLU → 1×1 Conv (stride) → BN (`proj`) when strided or when the input
    has other than `filters` channels.

    Example:
        y = IdentityOp(8, strides=2)(keras.random.normal((2, 8, 8, 8)))   # (2, 4, 4, 8)
    """

    def __init__(self, filters, strides=1, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides, self.bn_momentum, self.bn_epsilon = filters, strides, bn_momentum, bn_epsilon

    def build(self, input_shape):
        self.stack = []
        if self.strides > 1 or input_shape[-1] != self.filters:
            self.stack = [ReluConvBN(self.filters, 1, self.strides, bn_momentum=self.bn_momentum,
                                     bn_epsilon=self.bn_epsilon, name="proj", dtype=self.dtype_policy)]
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        size = lambda n: None if n is None else -(-n // self.strides)  # noqa: E731
        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), self.filters)


@keras.saving.register_keras_serializable(package="zoo")
class FactorizedReduction(Configurable, keras.layers.Layer):
    """NASNet's factorized reduction of a state to `filters` channels (slim `factorized_reduction`).

    strides 2: two paths, each a 1×1 average pool of stride 2 then a 1×1 conv to filters/2 (`conv_1`,
    `conv_2`, which gets the odd filter, as newer slim), the second on the input shifted by one pixel (pad
    bottom/right, crop top/left), concatenated, then BN (`bn`). strides 1: 1×1 conv (`conv_1`) + BN.
    `relu` first (when adjusting a cell's previous input; slim's unused-state reduction has none).

    Example:
        y = FactorizedReduction(8)(keras.random.normal((2, 9, 9, 4)))   # (2, 5, 5, 8)
    """

    def __init__(self, filters, strides=2, relu=True, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides, self.relu = filters, strides, relu
        self.bn_momentum, self.bn_epsilon = bn_momentum, bn_epsilon
        conv = lambda n, name: keras.layers.Conv2D(n, 1, use_bias=False, name=name,  # noqa: E731
                                                   dtype=self.dtype_policy)
        if strides == 1:
            self.conv_1, self.conv_2 = conv(filters, "conv_1"), None
        else:
            self.conv_1, self.conv_2 = conv(filters // 2, "conv_1"), conv(filters - filters // 2, "conv_2")
            self.pool = keras.layers.AveragePooling2D(1, strides, padding="valid", dtype=self.dtype_policy)
        self.bn = batch_norm("bn", bn_momentum, bn_epsilon, dtype=self.dtype_policy)

    def build(self, input_shape):
        out = self.compute_output_shape(input_shape)
        self.conv_1.build(input_shape)
        if self.conv_2 is not None:
            self.conv_2.build(input_shape)
        self.bn.build(out)
        self.built = True

    def call(self, inputs, training=None):
        x = ops.relu(inputs) if self.relu else inputs
        if self.conv_2 is None:
            return self.bn(self.conv_1(x), training=training)
        path_1 = self.conv_1(self.pool(x))
        shifted = ops.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))[:, 1:, 1:, :]
        path_2 = self.conv_2(self.pool(shifted))
        return self.bn(ops.concatenate([path_1, path_2], axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        size = lambda n: None if n is None else -(-n // self.strides)  # noqa: E731
        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), self.filters)


# The PNAS search vocabulary (Liu et al. 2018, §3.1) with slim's names as aliases.
OPS = ("identity", "sep_3x3", "sep_5x5", "sep_7x7", "conv_1x7_7x1", "dil_sep_3x3", "avg_pool_3x3",
       "max_pool_3x3")
ALIASES = {"none": "identity", "separable_3x3_2": "sep_3x3", "separable_5x5_2": "sep_5x5",
           "separable_7x7_2": "sep_7x7"}


def make_op(op, filters, strides=1, padding="same", bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON,
            dtype=None, name=None):
    """The layer of cell operation `op` (one of `OPS`, or a slim alias) with `filters` output channels.

    Example:
        layer = make_op("sep_5x5", 32, strides=2, name="left")
    """
    op = ALIASES.get(op, op)
    common = dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, dtype=dtype, name=name)
    if op == "identity":
        return IdentityOp(filters, strides, **common)
    if op.startswith("sep_"):
        return SepConvStack(filters, int(op[-1]), strides, padding=padding, **common)
    if op == "dil_sep_3x3":
        return SepConvStack(filters, 3, strides, num_layers=1, dilation_rate=2, padding=padding, **common)
    if op == "conv_1x7_7x1":
        return Conv1x7x7x1(filters, strides, **common)
    if op in ("avg_pool_3x3", "max_pool_3x3"):
        return PoolOp(op[:3], filters, 3, strides, padding=padding, **common)
    from zoo.errors import ZooError
    raise ZooError(f"unknown cell operation {op!r}; use one of {', '.join(OPS)}")


@keras.saving.register_keras_serializable(package="zoo")
class AuxHead(Configurable, keras.layers.Layer):
    """The auxiliary classifier of NASNet/PNASNet (slim `_build_aux_head`): ReLU, AvgPool 5×5 stride 3
    VALID, 1×1 conv 128 + BN + ReLU (`proj`, `bn_0`), conv over the remaining spatial extent to 768 + BN +
    ReLU (`conv`, `bn_1`), flatten, Dense (`logits`, float32 output).

    Example:
        logits = AuxHead(10)(keras.random.normal((2, 8, 8, 16)))   # (2, 10)
    """

    def __init__(self, num_classes, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.bn_momentum, self.bn_epsilon = num_classes, bn_momentum, bn_epsilon
        dt = self.dtype_policy
        self.pool = keras.layers.AveragePooling2D(5, 3, padding="valid", dtype=dt)
        self.proj = keras.layers.Conv2D(128, 1, use_bias=False, name="proj", dtype=dt)
        self.bn_0 = batch_norm("bn_0", bn_momentum, bn_epsilon, dtype=dt)
        self.conv = None
        self.bn_1 = batch_norm("bn_1", bn_momentum, bn_epsilon, dtype=dt)
        self.logits = keras.layers.Dense(num_classes, name="logits", dtype=dt)

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] < 5:
            from zoo.errors import ZooError
            raise ZooError(f"the auxiliary head needs a feature map of at least 5×5, got {input_shape[1]}×"
                           f"{input_shape[2]}; use a larger image_size or aux_head=False")
        pooled = self.pool.compute_output_shape(input_shape)
        self.conv = keras.layers.Conv2D(768, (pooled[1], pooled[2]), use_bias=False, name="conv",
                                        dtype=self.dtype_policy)
        self.proj.build(pooled)
        projected = self.proj.compute_output_shape(pooled)
        self.bn_0.build(projected)
        self.conv.build(projected)
        self.bn_1.build((input_shape[0], 1, 1, 768))
        self.logits.build((input_shape[0], 768))
        self.built = True

    def call(self, inputs, training=None):
        x = self.pool(ops.relu(inputs))
        x = ops.relu(self.bn_0(self.proj(x), training=training))
        x = ops.relu(self.bn_1(self.conv(x), training=training))
        x = self.logits(ops.reshape(x, (-1, 768)))
        return ops.cast(x, "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)


# Lower-case alias for block-function style callers.
relu_sep_conv_bn = ReluSepConvBN
