"""keras-hub `XLNetBackbone` weights into an `XLNetBackbone`, variable by variable through the weight paths,
which are the same (`content_query_embedding/word_embedding/embeddings`, `encoder_block_attn_mask_layer/
mask_emb`, `xlnet_encoder_{i}/rel_attn/{query,key,value,encoding,attention_output}/kernel`, ...).

A source is a keras-hub `XLNetBackbone` object, a keras-hub preset directory (`config.json` registered as
`keras_hub>XLNetBackbone` and `model.weights.h5`) or a bare `.weights.h5` of one (sizes read from its shapes).
keras-hub's backbone runs exact GELU by default and the original (and ours) the tanh approximation: the
weights are the same, the outputs differ slightly unless keras-hub is built with the tanh form.

Example:
    backbone = zoo.create_model("xlnet_base")
    load_keras_hub_weights(backbone, "xlnet_base_en/")   # {"tensors": 184}
"""

import json
import os

import keras
import numpy as np

from zoo.errors import ZooError

# keras-hub XLNetBackbone argument -> XLNetBackbone attribute, checked before copying.
SIZES = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim")
_H5_EMBEDDING = "layers/content_and_query_embedding/word_embed/vars/0"


def _is_keras_hub_xlnet(config):
    return str(config.get("registered_name", "")).split(">")[-1] == "XLNetBackbone"


def _h5_sizes(path, flag):
    """keras-hub XLNetBackbone sizes read from the shapes in its .weights.h5."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ZooError(f"{flag}={path}: cannot read it as HDF5 ({e})") from None
    block = "layers/xl_net_encoder"
    keys = [_H5_EMBEDDING, f"{block}/relative_attention/query_dense/vars/0",
            f"{block}/feedforward_intermediate_dense/vars/0"]
    with f:
        for key in keys:  # h5py raises KeyError for a missing path, and for one cut off in a truncated file
            try:
                shape = f[key].shape
            except (KeyError, OSError, RuntimeError, ValueError):
                shape = None
            if shape is None or len(shape) != 2 + (key == keys[1]):
                raise ZooError(f"{flag}={path} is not the weights of a keras-hub XLNetBackbone (no {key})")
        vocabulary_size, hidden_dim = f[keys[0]].shape
        return dict(vocabulary_size=vocabulary_size, hidden_dim=hidden_dim,
                    num_layers=sum(1 for k in f["layers"] if k.startswith("xl_net_encoder")),
                    num_heads=f[keys[1]].shape[1], intermediate_dim=f[keys[2]].shape[1])


def locate_keras_hub_weights(source, flag="--init_checkpoint"):
    """(weights file, sizes: the `SIZES` arguments) of a keras-hub XLNetBackbone preset directory or bare
    `.weights.h5`, without loading it; anything else is one line naming `flag`.

    Example: `locate_keras_hub_weights("xlnet_base_en/")` -> ("xlnet_base_en/model.weights.h5",
    {"vocabulary_size": 32000, "num_layers": 12, ...})."""
    path = os.fspath(source)
    if os.path.isdir(path):
        config_path, weights = os.path.join(path, "config.json"), os.path.join(path, "model.weights.h5")
        if not (os.path.isfile(config_path) and os.path.isfile(weights)):
            raise ZooError(f"{flag}={path}: no config.json and model.weights.h5 (a keras-hub preset directory)")
        try:
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise ZooError(f"{flag}: cannot read {config_path}: {e}") from None
        if not _is_keras_hub_xlnet(config):
            raise ZooError(f"{flag}={path}: config.json is a {config.get('registered_name')!r}, not a keras-hub "
                           f"XLNetBackbone")
        missing = [k for k in SIZES if k not in config.get("config", {})]
        if missing:
            raise ZooError(f"{flag}: {config_path} is not the config of a keras-hub XLNetBackbone (no {missing[0]})")
        return weights, {k: config["config"][k] for k in SIZES}
    if os.path.isfile(path) and path.endswith(".weights.h5"):
        return path, _h5_sizes(path, flag)
    raise ZooError(f"{flag}={path!r}: no such keras-hub XLNetBackbone preset directory or .weights.h5 file")


def _check_sizes(backbone, sizes, where, flag):
    for name in SIZES:
        if int(sizes[name]) != getattr(backbone, name):
            hint = (" (the checkpoint's vocabulary differs: use its spiece.model, --spiece_model)"
                    if name == "vocabulary_size" else "")
            raise ZooError(f"{flag}: {where} has {name}={int(sizes[name])} but the model has "
                           f"{getattr(backbone, name)}{hint}")


def load_keras_hub_weights(backbone, source, flag="--init_checkpoint"):
    """Copies a keras-hub `XLNetBackbone` (object, preset directory or `.weights.h5`) into `backbone`.

    Sizes must match and the variables must pair one to one by path and shape: every variable of `backbone`
    has one in the source (an `untie_r=False` backbone has no keras-hub counterpart) and every source
    variable is used; nothing is assigned unless all do. A mismatch is a one-line ZooError naming `flag`.

    Returns:
        {"tensors": number of variables copied}.
    """
    import keras_hub

    if isinstance(source, keras.Model):
        if not isinstance(source, keras_hub.models.XLNetBackbone):
            raise ZooError(f"{flag}: expected a keras_hub.models.XLNetBackbone, got {type(source).__name__}")
        hub = source
        _check_sizes(backbone, {k: getattr(hub, k) for k in SIZES}, "the keras-hub XLNetBackbone", flag)
    else:
        weights, sizes = locate_keras_hub_weights(source, flag)
        _check_sizes(backbone, sizes, weights, flag)
        hub = keras_hub.models.XLNetBackbone(**{k: int(v) for k, v in sizes.items()})
        try:
            hub.load_weights(weights)
        except (KeyError, ValueError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ZooError(f"{flag}={weights}: keras-hub could not load it into an XLNetBackbone: {first}") from None
    theirs = {v.path: v for v in hub.weights}
    assignments = []
    for variable in backbone.weights:
        source_variable = theirs.get(variable.path)
        if source_variable is None:
            raise ZooError(f"{flag}: the keras-hub XLNetBackbone has no {variable.path}; keras-hub's layout needs "
                           f"untie_r=True (per-layer biases)")
        if tuple(source_variable.shape) != tuple(variable.shape):
            raise ZooError(f"{flag}: {variable.path} has shape {tuple(source_variable.shape)} in the checkpoint but "
                           f"the model needs {tuple(variable.shape)}")
        assignments.append((variable, np.asarray(source_variable.numpy(), dtype=variable.dtype)))
    left = sorted(set(theirs) - {variable.path for variable in backbone.weights})
    if left:
        raise ZooError(f"{flag}: the model has no variable for the keras-hub XLNetBackbone's {left[0]} "
                       f"({len(left)} unused); the two layouts differ")
    for variable, value in assignments:
        variable.assign(value)
    return {"tensors": len(assignments)}
