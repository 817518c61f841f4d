"""`get_config`/`from_config` written once for every zoo layer, model and initializer.

The convention (as keras-hub's `Backbone`): a class keeps each constructor argument as an attribute of the
same name. `Configurable.get_config` then reads the constructor's signature and those attributes, and
serializes what is not plain JSON (nested layers and models, initializers, activations, dtype policies,
tuples) with `keras.saving.serialize_keras_object`; `from_config` deserializes them and calls the
constructor. A layer's `name`, `trainable` and dtype policy are always included, so a model built under
`mixed_float16` comes back under `mixed_float16` whatever the global policy is when it is loaded (the
class must pass its `dtype` on to the layers it makes, and to `super().__init__`, which records it even for
a functional model, whose Keras constructor ignores it).

An attribute stored under another name is mapped in `config_aliases` ({argument: attribute}).

Example:
    @keras.saving.register_keras_serializable(package="zoo")
    class Scale(Configurable, keras.layers.Layer):
        def __init__(self, factor=2.0, initializer="ones", **kwargs):
            super().__init__(**kwargs)
            self.factor = factor
            self.initializer = keras.initializers.get(initializer)

        def call(self, x):
            return x * self.factor

    layer = Scale(3.0, dtype="mixed_float16")
    clone = Scale.from_config(layer.get_config())   # factor 3.0, an Ones initializer, mixed_float16
"""

import inspect

import keras

# Handled for every Keras layer, not read from attributes (a layer's `dtype` attribute is its variable dtype).
_LAYER_FIELDS = ("name", "trainable", "dtype")


def constructor_arguments(cls):
    """Names of the explicit parameters of `cls.__init__` (not self, *args or **kwargs)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p.name for p in parameters if p.kind in kinds]


def serialize(value):
    """JSON-able form of one config value: Keras objects (layers, initializers, functions, dtype policies)
    and tuples through `keras.saving.serialize_keras_object`, containers element-wise."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [serialize(v) for v in value]
    if isinstance(value, dict):
        return {k: serialize(v) for k, v in value.items()}
    return keras.saving.serialize_keras_object(value)


def deserialize(value):
    """Inverse of `serialize`: dicts written by `serialize_keras_object` become objects again."""
    if isinstance(value, list):
        return [deserialize(v) for v in value]
    if isinstance(value, dict):
        if "class_name" in value and "config" in value:
            return keras.saving.deserialize_keras_object(value)
        return {k: deserialize(v) for k, v in value.items()}
    return value


class Configurable:
    """Mixin (put it before the Keras base class) giving `get_config` and `from_config` from the constructor.

    See the module docstring for the convention and an example.
    """

    config_aliases = {}

    def __init__(self, *args, **kwargs):
        dtype = kwargs.get("dtype")
        super().__init__(*args, **kwargs)
        if dtype is not None and isinstance(self, keras.layers.Layer):
            # A functional model (keras.Model(inputs, outputs)) ignores `dtype`; record it as the model's own.
            self.dtype_policy = dtype

    def get_config(self):
        config = {}
        if isinstance(self, keras.layers.Layer):
            config.update(name=self.name, trainable=self.trainable,
                          dtype=keras.dtype_policies.serialize(self.dtype_policy))
        for argument in constructor_arguments(type(self)):
            if argument in _LAYER_FIELDS and isinstance(self, keras.layers.Layer):
                continue
            attribute = self.config_aliases.get(argument, argument)
            if not hasattr(self, attribute):
                raise TypeError(f"{type(self).__name__}.__init__ takes {argument!r} but the object has no attribute "
                                f"{attribute!r}; store it under that name or map it in config_aliases")
            config[argument] = serialize(getattr(self, attribute))
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**{k: deserialize(v) for k, v in config.items()})
