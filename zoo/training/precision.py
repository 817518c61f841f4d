"""The one place that sets Keras' mixed-precision policy from `--mixed_precision`."""

from zoo.errors import ZooError

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def set_policy(name):
    """Sets the global dtype policy; call before building models and optimizers."""
    if name not in POLICIES:
        raise ZooError(f"unknown --mixed_precision={name!r}; choose one of: {', '.join(POLICIES)}")
    import keras  # here, so that POLICIES can be imported without TensorFlow

    keras.mixed_precision.set_global_policy(name)
    return keras.mixed_precision.global_policy()
