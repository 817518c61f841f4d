"""The one cell language of NASNet-A, PNASNet-5 and the cells a search finds.

A cell (Zoph et al. 2018; Liu et al. 2018) turns two inputs into one output. Its hidden states start as

    [H_{c-1} after the cell base (ReLU → 1×1 conv → BN),  H_{c-2} adjusted to the cell's shape]

and each block appends one: `op_1(states[input_1]) + op_2(states[input_2])`. The output concatenates the
states listed in `concat` (slim's "unused hidden states"; NASNet-A's normal cell also concatenates H_{c-2}).
Ops come from `zoo.layers.nas_ops.OPS`; only ops on the two cell inputs are strided in a reduction cell.

A spec is plain data (JSON-able, saved in model configs, so a searched cell round-trips):

    {"blocks": [[input_1, input_2, op_1, op_2, "add"], ...], "concat": [state indices]}

`concat` may be omitted: then the block outputs no block reads are concatenated.

Example:
    spec = CellSpec.from_json(PNASNET_5.to_json())
    cell = NASCell(spec, filters=16, strides=2, name="cell_0")
    y = cell([x, x_prev])       # (batch, H/2, W/2, 5 * 16)
"""

import json

import keras
from keras import ops

from zoo.errors import ZooError
from zoo.layers.config import Configurable
from zoo.layers.drop_path import ScheduledDropPath
from zoo.layers.nas_ops import (ALIASES, BN_EPSILON, BN_MOMENTUM, OPS, FactorizedReduction, ReluConvBN,
                                make_op)

COMBINES = ("add",)


class CellSpec:
    """A validated cell: `blocks` (tuples input_1, input_2, op_1, op_2, combine) and `concat` (state indices).

    Raises ZooError (one line) for an unknown op or combine, an input index that is not an earlier state, or
    a concat index out of range.
    """

    def __init__(self, blocks, concat=None):
        self.blocks = []
        for b, block in enumerate(blocks):
            block = list(block)
            if len(block) == 4:
                block.append("add")
            if len(block) != 5:
                raise ZooError(f"cell block {b} must be [input_1, input_2, op_1, op_2, combine], got {block}")
            in_1, in_2, op_1, op_2, combine = block
            for index in (in_1, in_2):
                if not isinstance(index, int) or not 0 <= index < 2 + b:
                    raise ZooError(f"cell block {b} input {index!r} is out of range: a block reads states "
                                   f"0..{1 + b} (0 = previous cell, 1 = the one before, then block outputs)")
            for op in (op_1, op_2):
                if ALIASES.get(op, op) not in OPS:
                    raise ZooError(f"cell block {b}: unknown operation {op!r}; use one of {', '.join(OPS)}")
            if combine not in COMBINES:
                raise ZooError(f"cell block {b}: unknown combine {combine!r}; use one of {', '.join(COMBINES)}")
            self.blocks.append((in_1, in_2, ALIASES.get(op_1, op_1), ALIASES.get(op_2, op_2), combine))
        if not self.blocks:
            raise ZooError("a cell needs at least one block")
        num_states = 2 + len(self.blocks)
        if concat is None:
            read = {i for block in self.blocks for i in block[:2]}
            concat = [i for i in range(2, num_states) if i not in read]
        concat = list(concat)
        if not concat or any(not isinstance(i, int) or not 0 <= i < num_states for i in concat):
            raise ZooError(f"cell concat {concat} must list states in 0..{num_states - 1}")
        self.concat = concat

    @classmethod
    def get(cls, value):
        """A CellSpec from a CellSpec, a dict {"blocks", "concat"}, its JSON string, or a preset name."""
        if isinstance(value, CellSpec):
            return value
        if isinstance(value, str):
            if value in PRESETS:
                return PRESETS[value]
            try:
                value = json.loads(value)
            except ValueError:
                raise ZooError(f"unknown cell {value!r}; use one of {', '.join(PRESETS)} or a JSON spec") from None
        if not isinstance(value, dict) or "blocks" not in value:
            raise ZooError(f"a cell spec is a dict with 'blocks' (and 'concat'), got {value!r}")
        return cls(value["blocks"], value.get("concat"))

    def to_config(self):
        return {"blocks": [list(b) for b in self.blocks], "concat": list(self.concat)}

    def to_json(self):
        return json.dumps(self.to_config())

    @classmethod
    def from_json(cls, text):
        return cls.get(json.loads(text))

    def __eq__(self, other):
        return isinstance(other, CellSpec) and self.to_config() == other.to_config()

    def __repr__(self):
        return f"CellSpec({self.to_config()})"


# TF-slim nasnet_utils.NasNetANormalCell / NasNetAReductionCell and pnasnet.PNasNetNormalCell
# (operations, hiddenstate_indices and used_hiddenstates rewritten as blocks and concat).
NASNET_A_NORMAL = CellSpec([[0, 1, "sep_5x5", "sep_3x3"], [1, 1, "sep_5x5", "sep_3x3"],
                            [0, 1, "avg_pool_3x3", "identity"], [1, 1, "avg_pool_3x3", "avg_pool_3x3"],
                            [0, 0, "sep_3x3", "identity"]], concat=[1, 2, 3, 4, 5, 6])
NASNET_A_REDUCTION = CellSpec([[0, 1, "sep_5x5", "sep_7x7"], [0, 1, "max_pool_3x3", "sep_7x7"],
                               [0, 1, "avg_pool_3x3", "sep_5x5"], [3, 2, "identity", "avg_pool_3x3"],
                               [2, 0, "sep_3x3", "max_pool_3x3"]], concat=[3, 4, 5, 6])
PNASNET_5 = CellSpec([[1, 1, "sep_5x5", "max_pool_3x3"], [0, 0, "sep_7x7", "max_pool_3x3"],
                      [0, 0, "sep_5x5", "sep_3x3"], [4, 0, "sep_3x3", "max_pool_3x3"],
                      [1, 0, "sep_3x3", "identity"]], concat=[2, 3, 4, 5, 6])
PRESETS = {"nasnet_a_normal": NASNET_A_NORMAL, "nasnet_a_reduction": NASNET_A_REDUCTION, "pnasnet_5": PNASNET_5}


@keras.saving.register_keras_serializable(package="zoo")
class NASCell(Configurable, keras.layers.Layer):
    """One cell as a layer, called on `h_prev` or `[h_prev, h_prev_prev]`.

    Args:
        spec: a CellSpec (or its dict/JSON/preset name).
        filters: channels of every op output; the cell outputs len(concat) × filters.
        strides: 2 for a reduction cell (ops on the two inputs are strided).
        drop_path_rate: final ScheduledDropPath rate (0: none); applied after every op but "identity".
        cell_ratio: (cell index + 1) / total cells, for the drop-path schedule.
        padding: "same" (slim) or "zeros" (keras.applications) for strided ops.
        bn_momentum, bn_epsilon: of every BatchNormalization.

    Sub-layers: `base` (ReLU-1×1 conv-BN of h_prev), `adjust` (factorized reduction when h_prev_prev is
    larger, ReLU-1×1 conv-BN when only channels differ, absent otherwise or when there is no h_prev_prev:
    then h_prev itself is state 1), `b{i}_left`/`b{i}_right` (the ops of block i), `b{i}_left_drop`...,
    `reduce_{j}` (FactorizedReduction of a concatenated state j whose shape differs from the block outputs).
    """

    def __init__(self, spec, filters, strides=1, drop_path_rate=0.0, cell_ratio=1.0, padding="same",
                 bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.spec = CellSpec.get(spec).to_config()
        self._spec = CellSpec.get(spec)
        self.filters, self.strides, self.drop_path_rate, self.cell_ratio = filters, strides, drop_path_rate, cell_ratio
        self.padding, self.bn_momentum, self.bn_epsilon = padding, bn_momentum, bn_epsilon

    def _common(self, name):
        return dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype_policy, name=name)

    def build(self, input_shape):
        x_shape, p_shape = (input_shape, None) if not isinstance(input_shape[0], (list, tuple)) else input_shape
        f = self.filters
        self.base = ReluConvBN(f, **self._common("base"))
        self.base.build(x_shape)
        self.adjust = None
        if p_shape is None:
            p_shape = x_shape
        elif p_shape[1] != x_shape[1]:
            self.adjust = FactorizedReduction(f, 2, relu=True, **self._common("adjust"))
        elif p_shape[-1] != f:
            self.adjust = ReluConvBN(f, **self._common("adjust"))
        if self.adjust is not None:
            self.adjust.build(p_shape)
            p_shape = self.adjust.compute_output_shape(p_shape)
        shapes = [self.base.compute_output_shape(x_shape), tuple(p_shape)]
        self.op_layers, self.drops = [], []
        for b, (in_1, in_2, op_1, op_2, _) in enumerate(self._spec.blocks):
            out = None
            for side, index, op in (("left", in_1, op_1), ("right", in_2, op_2)):
                stride = self.strides if index < 2 else 1
                layer = make_op(op, f, stride, padding=self.padding, **self._common(f"b{b}_{side}"))
                layer.build(shapes[index])
                out = layer.compute_output_shape(shapes[index])
                self.op_layers.append(layer)
                drop = None
                if op != "identity" and self.drop_path_rate > 0:
                    drop = ScheduledDropPath(self.drop_path_rate, self.cell_ratio, name=f"b{b}_{side}_drop",
                                             dtype=self.dtype_policy)
                self.drops.append(drop)
            shapes.append(out)
        final = shapes[-1]
        self.reduce = {}
        for j in self._spec.concat:
            shape = shapes[j]
            if shape[1] != final[1] or shape[-1] != final[-1]:
                stride = 2 if shape[1] != final[1] else 1
                layer = FactorizedReduction(final[-1], stride, relu=False, **self._common(f"reduce_{j}"))
                layer.build(shape)
                self.reduce[str(j)] = layer
        self.built = True

    def call(self, inputs, training=None):
        x, p = (inputs, None) if not isinstance(inputs, (list, tuple)) else inputs
        if p is None:
            p = x
        elif self.adjust is not None:
            p = self.adjust(p, training=training)
        states = [self.base(x, training=training), p]
        k = 0
        for in_1, in_2, *_ in self._spec.blocks:
            outs = []
            for index in (in_1, in_2):
                h = self.op_layers[k](states[index], training=training)
                if self.drops[k] is not None:
                    h = self.drops[k](h, training=training)
                outs.append(h)
                k += 1
            states.append(outs[0] + outs[1])
        parts = [self.reduce[str(j)](states[j], training=training) if str(j) in self.reduce else states[j]
                 for j in self._spec.concat]
        return ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def compute_output_shape(self, input_shape):
        x_shape = input_shape if not isinstance(input_shape[0], (list, tuple)) else input_shape[0]
        size = lambda n: None if n is None else -(-n // self.strides)  # noqa: E731
        return (x_shape[0], size(x_shape[1]), size(x_shape[2]), len(self._spec.concat) * self.filters)

    def op(self, block, side):
        """The op layer of block `block` (0-based), side "left" (op_1) or "right" (op_2)."""
        return self.op_layers[2 * block + (side == "right")]


def build_cell(spec, h_prev, h_prev_prev, filters, strides=1, drop_path_rate=0.0, cell_ratio=1.0, name=None,
               **kwargs):
    """Wires one `NASCell` into a functional graph: returns its output tensor (`h_prev_prev` may be None).

    Example:
        y = build_cell("nasnet_a_reduction", x, x_prev, filters=44, strides=2, name="reduce_4")
    """
    cell = NASCell(spec, filters, strides, drop_path_rate, cell_ratio, name=name, **kwargs)
    return cell(h_prev if h_prev_prev is None else [h_prev, h_prev_prev])


def classifier_head(x, num_classes, dropout=0.0, dtype=None):
    """The NASNet/PNASNet top on a functional tensor: ReLU, global average pool, dropout, Dense
    ("predictions", keras.applications' name), float32 logits. Returns `(dense_layer, logits)`.

    Example:
        classifier, logits = classifier_head(cell_output, num_classes=10, dropout=0.5)
    """
    x = keras.layers.Activation("relu", name="head_relu", dtype=dtype)(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool", dtype=dtype)(x)
    x = keras.layers.Dropout(dropout, name="dropout", dtype=dtype)(x)
    classifier = keras.layers.Dense(num_classes, name="predictions", dtype=dtype)
    return classifier, keras.layers.Activation("linear", dtype="float32", name="logits")(classifier(x))
