"""Activations Keras does not name."""

import keras


@keras.saving.register_keras_serializable(package="zoo")
def gelu_approximate(x):
    """GELU with the tanh approximation, as in the original BERT and GPT-2 code."""
    return keras.activations.gelu(x, approximate=True)
