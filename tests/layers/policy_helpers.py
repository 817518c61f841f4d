"""A scoped global dtype policy for tests (Keras has only the global setter)."""

import contextlib
import json

import keras


@contextlib.contextmanager
def global_policy(name):
    """Sets Keras' global dtype policy to `name` inside the block, and puts the previous one back."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def policies(layer, prefix=""):
    """{layer path: dtype policy name} for `layer` and every layer inside it (nested models included), but
    input layers (their policy is the global one and has no effect)."""
    path = prefix + layer.name
    found = {path: layer.dtype_policy.name}
    for inner in getattr(layer, "layers", []):
        if not isinstance(inner, keras.layers.InputLayer):
            found.update(policies(inner, path + "/"))
    return found


def assert_policy_round_trip(build):
    """A model `build()` makes under mixed_float16 comes back from its (JSON) config under mixed_float16,
    layer by layer, while the global policy is float32."""
    with global_policy("mixed_float16"):
        model = build()
    config = json.loads(json.dumps(model.get_config()))
    with global_policy("float32"):
        clone = type(model).from_config(config)
    assert clone.dtype_policy.name == "mixed_float16"
    assert policies(clone) == policies(model)
    assert "mixed_float16" in set(policies(model).values())
    return clone
