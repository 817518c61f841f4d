"""zoo.layers: get_config written once (Configurable), dtype policies kept, and the shared building blocks."""

import json

import keras
import numpy as np
import pytest

from tests.layers.policy_helpers import global_policy
from zoo.layers import (Configurable, InstanceNormalization, MaskedLMHead, PositionEmbedding, ReflectionPadding2D,
                        TorchBiasUniform, TransformerEncoder, normal_initializer, torch_batch_norm,
                        torch_kernel_initializer, truncated_normal_initializer)
from zoo.layers.activations import gelu_approximate


def _layers():
    return [
        PositionEmbedding(16, initializer=truncated_normal_initializer(), name="position"),
        TransformerEncoder(2, 32, dropout=0.1, activation=gelu_approximate, layer_norm_epsilon=1e-12),
        MaskedLMHead(keras.layers.ReversibleEmbedding(20, 8), layer_norm_epsilon=1e-12),
        InstanceNormalization(center=True, epsilon=1e-3),
        ReflectionPadding2D(2),
    ]


def test_config_round_trip_keeps_arguments_and_dtype_policy():
    with global_policy("mixed_float16"):
        layers = _layers()
    configs = [json.loads(json.dumps(layer.get_config())) for layer in layers]  # JSON-able
    for layer, config in zip(layers, configs):
        clone = type(layer).from_config(config)
        assert clone.dtype_policy.name == "mixed_float16", type(layer).__name__
        assert clone.get_config() == layer.get_config()
    head = MaskedLMHead.from_config(configs[2])
    assert head.token_embedding.input_dim == 20 and head.layer_norm_epsilon == 1e-12
    assert head.activation is gelu_approximate
    assert isinstance(TransformerEncoder.from_config(configs[1]).kernel_initializer, keras.initializers.GlorotUniform)


def test_missing_attribute_is_named():
    class Forgetful(Configurable, keras.layers.Layer):
        def __init__(self, size=3, **kwargs):
            super().__init__(**kwargs)

    with pytest.raises(TypeError, match="takes 'size' but the object has no attribute 'size'"):
        Forgetful().get_config()


def test_reflection_padding_matches_numpy():
    x = np.arange(2 * 4 * 5 * 3, dtype="float32").reshape(2, 4, 5, 3)
    expected = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")  # torch's ReflectionPad2d
    np.testing.assert_array_equal(np.asarray(ReflectionPadding2D(2)(x)), expected)
    assert ReflectionPadding2D(2).compute_output_shape((None, 4, None, 3)) == (None, 8, None, 3)


def test_torch_default_initializers():
    keras.utils.set_random_seed(0)
    conv = keras.layers.Conv2D(64, 3, kernel_initializer=torch_kernel_initializer(),
                               bias_initializer=TorchBiasUniform(fan_in=3 * 3 * 32))
    conv.build((None, 8, 8, 32))
    bound = 1 / np.sqrt(3 * 3 * 32)  # torch.nn.Conv2d(32, 64, 3): U(±1/sqrt(fan_in)) for weight and bias
    for w in (np.asarray(conv.kernel), np.asarray(conv.bias)):
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.9 * bound
    np.testing.assert_allclose(np.asarray(conv.kernel).std(), bound / np.sqrt(3), rtol=0.02)
    bias = TorchBiasUniform.from_config(json.loads(json.dumps(TorchBiasUniform(288).get_config())))
    assert bias.fan_in == 288
    with pytest.raises(ValueError, match="positive fan_in"):
        TorchBiasUniform(0)


def test_normal_initializers():
    keras.utils.set_random_seed(0)
    w = np.asarray(normal_initializer()((400, 400)))
    np.testing.assert_allclose([w.mean(), w.std()], [0.0, 0.02], atol=2e-4)
    t = np.asarray(truncated_normal_initializer()((400, 400)))
    assert np.abs(t).max() <= 0.04 + 1e-6


def test_torch_batch_norm_defaults():
    bn = torch_batch_norm("bn", dtype="mixed_bfloat16")
    assert (bn.momentum, bn.epsilon, bn.synchronized, bn.name) == (0.9, 1e-5, True, "bn")
    assert bn.dtype_policy.name == "mixed_bfloat16"
    assert not torch_batch_norm(synchronized=False).synchronized
