"""Port the weights of a keras.applications NASNet (NASNetMobile, NASNetLarge or `nasnet.NASNet`) into our
`NASNet` of the same configuration, by layer name.

Mapping (keras.applications layer → ours; `{id}` is keras' block id: "stem_1", "0", "reduce_4", ...; our cell
is named "normal_{id}" or "reduction_{id}"):

    stem_conv1, stem_bn1, predictions          → the layers of the same name
    {normal|reduction}_conv_1_{id}, _bn_1_{id} → cell.base.conv, cell.base.bn
    adjust_conv_1_{id}, adjust_conv_2_{id}     → cell.adjust.conv_1, conv_2   (factorized reduction)
    adjust_conv_projection_{id}                → cell.adjust.conv             (1×1 projection)
    adjust_bn_{id}                             → cell.adjust.bn
    separable_conv_{k}[_bn]_{side}{n}_{id}     → cell.op(block, side).stack[k-1].conv / .bn, where
        normal:    left1 → block 0 left, right1 → 0 right, left2 → 1 left, right2 → 1 right, left5 → 4 left
        reduction: left1 → 0 left, right1 → 0 right, right2 → 1 right, right3 → 2 right, left4 → 4 left
        (keras names block 5's separable conv of the reduction cell "left4")

Every keras weight must land on a variable of the same shape and every one of ours (but the auxiliary head,
which keras lacks) must be written, or a one-line ZooError says which layer did not match.

Example:
    reference = keras.applications.NASNetMobile(weights=None, classifier_activation=None)
    net = zoo.create_model("nasnet_a_mobile", dropout=0.0)
    port_keras_nasnet(reference, net)
"""

import re

from zoo.errors import ZooError

_SEP = re.compile(r"^separable_conv_([12])(_bn)?_(normal|reduction)_(left|right)(\d)_(.+)$")
_BASE = re.compile(r"^(normal|reduction)_(conv|bn)_1_(.+)$")
_ADJUST = re.compile(r"^adjust_(conv_1|conv_2|conv_projection|bn)_(.+)$")
_BLOCKS = {
    "normal": {("left", 1): (0, "left"), ("right", 1): (0, "right"), ("left", 2): (1, "left"),
               ("right", 2): (1, "right"), ("left", 5): (4, "left")},
    "reduction": {("left", 1): (0, "left"), ("right", 1): (0, "right"), ("right", 2): (1, "right"),
                  ("right", 3): (2, "right"), ("left", 4): (4, "left")},
}


def _cell(net, block_id, name):
    for prefix in ("normal_", "reduction_"):
        try:
            return net.get_layer(prefix + block_id)
        except ValueError:
            continue
    raise ZooError(f"keras.applications layer {name!r} has no cell {block_id!r} in our NASNet: build ours with "
                   f"the same num_blocks/penultimate_filters/skip_reduction")


def target_layer(net, name):
    """Our layer that receives the weights of keras.applications layer `name` (see the module docstring)."""
    if name in ("stem_conv1", "stem_bn1", "predictions"):
        return net.get_layer(name)
    match = _SEP.match(name)
    if match:
        unit, bn, kind, side, number, block_id = match.groups()
        key = (side, int(number))
        if key not in _BLOCKS[kind]:
            raise ZooError(f"keras.applications layer {name!r}: no {kind} op {side}{number} in NASNet-A")
        block, our_side = _BLOCKS[kind][key]
        sep = _cell(net, block_id, name).op(block, our_side).stack[int(unit) - 1]
        return sep.bn if bn else sep.conv
    match = _BASE.match(name)
    if match:
        base = _cell(net, match.group(3), name).base
        return base.conv if match.group(2) == "conv" else base.bn
    match = _ADJUST.match(name)
    if match:
        adjust = _cell(net, match.group(2), name).adjust
        if adjust is None:
            raise ZooError(f"keras.applications layer {name!r} adjusts an input our cell does not adjust")
        attribute = {"conv_projection": "conv"}.get(match.group(1), match.group(1))
        if not hasattr(adjust, attribute) or getattr(adjust, attribute) is None:
            raise ZooError(f"keras.applications layer {name!r} has no counterpart in our {adjust.name}")
        return getattr(adjust, attribute)
    raise ZooError(f"keras.applications layer {name!r} is not a NASNet-A layer this port knows")


def port_keras_nasnet(reference, net):
    """Copy every weight of keras.applications NASNet `reference` into our NASNet `net`; returns the number
    of variables written. Raises ZooError (one line) on any name or shape mismatch."""
    written = set()
    for layer in reference.layers:
        if not layer.weights:
            continue
        target = target_layer(net, layer.name)
        if len(target.weights) != len(layer.weights):
            raise ZooError(f"keras.applications layer {layer.name!r} has {len(layer.weights)} weights but our "
                           f"{target.name} has {len(target.weights)}")
        for source, variable in zip(layer.weights, target.weights):
            if tuple(source.shape) != tuple(variable.shape):
                raise ZooError(f"keras.applications {source.path} has shape {tuple(source.shape)} but our "
                               f"{variable.path} has {tuple(variable.shape)}: build ours with the same config")
            variable.assign(source.value)
            written.add(id(variable))
    missing = [v.path for v in net.weights if id(v) not in written and not v.path.startswith("aux_head/")]
    if missing:
        raise ZooError(f"{len(missing)} of our NASNet variables have no keras.applications counterpart, e.g. "
                       f"{missing[0]}: build ours with the same config")
    return len(written)
