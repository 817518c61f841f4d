"""NAS cell operations (zoo.layers.nas_ops) and the cell language (zoo.models.nas.cell)."""

import json

import keras
import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.layers import nas_ops
from zoo.layers.drop_path import drop_path_progress
from zoo.models.nas.cell import NASNET_A_NORMAL, NASNET_A_REDUCTION, PNASNET_5, CellSpec, NASCell, build_cell


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("padding", ["same", "zeros"])
def test_every_op_shape(strides, padding):
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 8)).astype("float32")
    for op in nas_ops.OPS:
        layer = nas_ops.make_op(op, 16, strides, padding=padding, name="op")
        y = layer(x)
        assert tuple(y.shape) == (2, 5 if strides == 2 else 9, 5 if strides == 2 else 9, 16), op
        assert tuple(layer.compute_output_shape(x.shape)) == tuple(y.shape), op


def test_relu_sep_conv_bn_signature_weights_and_config():
    unit = nas_ops.ReluSepConvBN(8, kernel_size=5, strides=2, use_bias=False, bn_momentum=0.9, bn_epsilon=1e-5,
                                 padding="zeros", dtype="float32", name="unit")
    y = unit(np.ones((2, 10, 10, 4), "float32"))
    assert tuple(y.shape) == (2, 5, 5, 8)
    assert [w.path for w in unit.weights] == ["unit/conv/depthwise_kernel", "unit/conv/pointwise_kernel",
                                              "unit/bn/gamma", "unit/bn/beta", "unit/bn/moving_mean",
                                              "unit/bn/moving_variance"]
    clone = nas_ops.ReluSepConvBN.from_config(unit.get_config())
    assert (clone.filters, clone.kernel_size, clone.bn_momentum, clone.padding) == (8, 5, 0.9, "zeros")


def test_zeros_padding_changes_pools_but_not_convs():
    x = -np.ones((1, 4, 4, 2), "float32")  # negative: the zeros of keras' padding win the max at the border
    same = nas_ops.PoolOp("max", 2, strides=2, padding="same")(x).numpy()
    zeros = nas_ops.PoolOp("max", 2, strides=2, padding="zeros")(x).numpy()
    np.testing.assert_array_equal(same, -np.ones((1, 2, 2, 2)))
    assert zeros.max() == 0.0
    ones = np.ones((1, 4, 4, 2), "float32")
    assert nas_ops.PoolOp("avg", 2, strides=2, padding="same")(ones).numpy().min() == 1.0
    assert nas_ops.PoolOp("avg", 2, strides=2, padding="zeros")(ones).numpy().min() < 1.0
    x = np.random.default_rng(1).normal(size=(2, 7, 7, 3)).astype("float32")
    a, b = nas_ops.SepConvStack(4, 5, 2, padding="same"), nas_ops.SepConvStack(4, 5, 2, padding="zeros")
    a(x), b(x)
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(a(x).numpy(), b(x).numpy(), atol=1e-6)


def test_factorized_reduction_and_projections():
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 6)).astype("float32")
    layer = nas_ops.FactorizedReduction(7)  # odd: the second path gets the extra filter (newer slim)
    assert tuple(layer(x).shape) == (2, 5, 5, 7)
    assert (layer.conv_1.filters, layer.conv_2.filters) == (3, 4)
    assert tuple(nas_ops.FactorizedReduction(8, strides=1)(x).shape) == (2, 9, 9, 8)
    pool = nas_ops.PoolOp("avg", 4)
    pool(x)
    assert [w.path.split("/", 1)[1] for w in pool.trainable_weights] == ["proj/conv/kernel", "proj/bn/gamma",
                                                                         "proj/bn/beta"]
    identity = nas_ops.IdentityOp(6)
    np.testing.assert_array_equal(identity(x).numpy(), x)
    assert identity.weights == []
    with pytest.raises(ZooError, match="unknown cell operation 'conv_9x9'"):
        nas_ops.make_op("conv_9x9", 4)


def test_cell_spec_json_round_trip_and_presets():
    for spec in (NASNET_A_NORMAL, NASNET_A_REDUCTION, PNASNET_5):
        text = json.dumps(spec.to_config())
        assert CellSpec.from_json(text) == spec
        assert CellSpec.get(json.loads(text)) == spec
    assert CellSpec.get("pnasnet_5") is PNASNET_5
    # slim names are accepted; concat defaults to the block outputs no block reads
    spec = CellSpec([[0, 1, "separable_3x3_2", "none"], [2, 0, "max_pool_3x3", "sep_5x5", "add"]])
    assert spec.blocks[0][2:4] == ("sep_3x3", "identity") and spec.concat == [3]


@pytest.mark.parametrize("blocks, concat, message", [
    ([[0, 2, "sep_3x3", "identity"]], None, "cell block 0 input 2 is out of range"),
    ([[0, 1, "sep_3x3", "conv_9x9"]], None, "cell block 0: unknown operation 'conv_9x9'"),
    ([[0, 1, "sep_3x3", "identity", "mul"]], None, "unknown combine 'mul'"),
    ([[0, 1, "sep_3x3", "identity"]], [5], "cell concat \\[5\\] must list states in 0..2"),
    ([[0, 1, "sep_3x3"]], None, "must be \\[input_1, input_2, op_1, op_2, combine\\]"),
])
def test_cell_spec_errors_are_one_line(blocks, concat, message):
    with pytest.raises(ZooError, match=message) as info:
        CellSpec(blocks, concat)
    assert "\n" not in str(info.value)
    with pytest.raises(ZooError, match="unknown cell 'nasnet_b'"):
        CellSpec.get("nasnet_b")


def test_cell_shapes_adjustment_and_channels():
    x, prev = keras.Input((8, 8, 12)), keras.Input((16, 16, 6))
    assert tuple(build_cell(NASNET_A_NORMAL, x, prev, 4, name="n").shape) == (None, 8, 8, 24)
    assert tuple(build_cell(NASNET_A_REDUCTION, x, prev, 4, strides=2, name="r").shape) == (None, 4, 4, 16)
    assert tuple(build_cell(PNASNET_5, x, None, 4, strides=2, name="p").shape) == (None, 4, 4, 20)
    cell = NASCell(PNASNET_5, 4, strides=2, name="c")
    cell([x, prev])
    assert isinstance(cell.adjust, nas_ops.FactorizedReduction)  # larger H_{c-2}: factorized reduction
    assert isinstance(cell.op(4, "right"), nas_ops.IdentityOp)
    assert cell.op(4, "right").stack  # a strided identity is a 1×1 conv
    assert cell.op(3, "left").strides == 1  # an op on a block output is never strided
    # NASNet-A normal cell on a stem of another width (slim's CIFAR cell 0): H_{c-2} = input, projected
    cell = NASCell(NASNET_A_NORMAL, 4, name="c0")
    assert tuple(cell(x).shape) == (None, 8, 8, 24)
    assert cell.adjust is None and "1" in cell.reduce


def test_drop_path_zeroes_examples_in_training_only():
    spec = CellSpec([[0, 0, "avg_pool_3x3", "max_pool_3x3"]])
    x = np.random.default_rng(0).normal(size=(32, 4, 4, 3)).astype("float32")
    dropped = NASCell(spec, 4, drop_path_rate=0.9, cell_ratio=1.0, name="d")
    plain = NASCell(spec, 4, name="p")
    dropped(x), plain(x)
    plain.set_weights(dropped.get_weights())
    np.testing.assert_allclose(dropped(x, training=False).numpy(), plain(x, training=False).numpy())
    with drop_path_progress(1.0):
        y = dropped(x, training=True).numpy()
    zeroed = np.all(y.reshape(32, -1) == 0, axis=1)
    assert 0 < zeroed.sum() < 32  # each example dropped on both ops with probability 0.81
    with drop_path_progress(0.0):  # progress 0: nothing dropped yet
        np.testing.assert_allclose(dropped(x, training=True).numpy(), plain(x, training=True).numpy(), atol=1e-6)
    cell = NASCell(PNASNET_5, 4, drop_path_rate=0.1, cell_ratio=0.5, name="q")
    cell.build((None, 8, 8, 4))
    # slim's rule: after every op but identity
    assert [d is None for d in cell.drops] == [op == "identity" for b in PNASNET_5.blocks for op in b[2:4]]
    assert {(d.rate, d.cell_ratio) for d in cell.drops if d is not None} == {(0.1, 0.5)}


def test_drop_path_masks_differ_between_replicas(mirrored):
    """Both replicas read one generator state; each must still draw its own examples' masks."""
    import tensorflow as tf

    from zoo.layers.drop_path import ScheduledDropPath

    with mirrored.scope():
        layer = ScheduledDropPath(0.5, 1.0, seed=1)
        layer.build((None, 1, 1, 1))

    @tf.function
    def step():
        return mirrored.run(lambda: tf.reshape(layer(tf.ones((64, 1, 1, 1)), training=True), [-1]))

    first, second = (o.numpy() for o in mirrored.experimental_local_results(step()))
    assert set(first) <= {0.0, 2.0} and 10 < (first == 0).sum() < 54
    assert not np.array_equal(first, second)
