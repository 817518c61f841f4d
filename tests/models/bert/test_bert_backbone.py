import zlib

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from scipy.special import erf

import zoo
from tests.layers.policy_helpers import assert_policy_round_trip
from zoo.models.bert import BertBackbone, BertPretrainer

TINY = dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, dropout=0.0,
            max_sequence_length=24)


def _inputs(batch=3, seq=12, vocab=50, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, seq + 1, size=batch)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    return {
        "token_ids": (rng.integers(1, vocab, size=(batch, seq)) * mask).astype("int32"),
        "segment_ids": ((np.arange(seq)[None, :] >= lengths[:, None] // 2) * mask).astype("int32"),
        "padding_mask": mask,
    }


@pytest.mark.parametrize("name, expected", [
    ("bert_tiny", 4_385_920), ("bert_base", 109_482_240), ("bert_large", 335_141_888), ("kobert", 92_186_880),
])
@pytest.mark.slow
def test_preset_parameter_counts(name, expected):
    model = zoo.create_model(name)
    assert model.count_params() == expected
    del model
    keras.backend.clear_session()


def test_base_pretraining_model_parameter_count():
    model = BertPretrainer(zoo.create_model("bert_base"))
    # backbone 109,482,240 + MLM head (H²+H+2H+V = 622,650) + NSP head (2H+2 = 1,538)
    assert model.count_params() == 110_106_428
    assert model.mlm_head.token_embedding is model.backbone.token_embedding  # tied decoder
    keras.backend.clear_session()


def test_kobert_presets():
    tiny = zoo.create_model("kobert_tiny")
    # embeddings 8002·128 + 512·128 + 2·128 + 2·128, 2 layers of 198,272, pooler 128² + 128
    assert tiny.count_params() == 1_503_360 == zoo.model_info("kobert_tiny").params
    assert (tiny.vocabulary_size, tiny.activation, tiny.layer_norm_epsilon) == (8002, "gelu", 1e-12)
    info = zoo.model_info("kobert")
    assert info.params == 92_186_880 and info.code == "https://github.com/SKTBrain/KoBERT"
    assert "[PAD] id 1" in info.description


def test_activation_and_epsilon_options():
    x = np.linspace(-4, 4, 81).astype("float32")
    exact = BertBackbone(**TINY, activation="gelu", layer_norm_epsilon=1e-6)
    np.testing.assert_allclose(np.asarray(exact.transformer_layers[0].activation(x)),
                               0.5 * x * (1 + erf(x / np.sqrt(2))), atol=1e-6)
    assert exact.transformer_layers[0].layer_norm_epsilon == exact.embeddings_layer_norm.epsilon == 1e-6
    approximate = BertBackbone(**TINY)
    assert approximate.activation == "gelu_approximate"
    approximate.set_weights(exact.get_weights())
    inputs = _inputs()
    difference = np.abs(np.asarray(exact(inputs)["sequence_output"])
                        - np.asarray(approximate(inputs)["sequence_output"]))
    assert 0 < difference.max() < 1e-2
    with pytest.raises(zoo.ZooError, match=r"activation 'relu' is not supported; use one of: gelu_approximate, gelu"):
        BertBackbone(**TINY, activation="relu")


def test_activation_in_config_and_old_configs_load():
    model = BertBackbone(**TINY, activation="gelu", layer_norm_epsilon=1e-6)
    config = model.get_config()
    assert (config["activation"], config["layer_norm_epsilon"]) == ("gelu", 1e-6)
    assert BertBackbone.from_config(config).get_config() == config
    old = {k: v for k, v in config.items() if k not in ("activation", "layer_norm_epsilon")}
    restored = BertBackbone.from_config(old)  # a config saved before the options existed
    assert (restored.activation, restored.layer_norm_epsilon) == ("gelu_approximate", 1e-12)


def test_pretrainer_head_follows_the_backbone_activation():
    model = BertPretrainer(BertBackbone(**TINY, activation="gelu", layer_norm_epsilon=1e-6))
    x = np.linspace(-3, 3, 13).astype("float32")
    np.testing.assert_allclose(np.asarray(model.mlm_head.activation(x)), 0.5 * x * (1 + erf(x / np.sqrt(2))),
                               atol=1e-6)
    assert model.mlm_head.layer_norm_epsilon == 1e-6
    clone = BertPretrainer.from_config(model.get_config())
    assert clone.backbone.activation == "gelu" and clone.mlm_head.layer_norm_epsilon == 1e-6


def test_registry_lists_and_rejects():
    assert {"bert_tiny", "bert_base", "bert_large"} <= set(zoo.list_models("bert_*"))
    with pytest.raises(zoo.ZooError, match="unknown model 'bert_huge'"):
        zoo.create_model("bert_huge")


def test_matches_keras_hub_bert_backbone():
    keras.utils.set_random_seed(1)
    ours = zoo.create_model("bert_tiny", **TINY)
    hub = keras_hub.models.BertBackbone(**TINY)
    hub_weights = {v.path: v for v in hub.weights}
    for v in ours.weights:  # same paths by construction; random values, not the init, are compared
        value = np.random.default_rng(zlib.crc32(v.path.encode())).normal(0, 0.5, v.shape).astype("float32")
        v.assign(value)
        hub_weights[v.path].assign(value)
    inputs = _inputs()
    a, b = ours(inputs, training=False), hub(inputs, training=False)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), atol=1e-5, rtol=1e-5)


def test_padding_and_batch_invariance():
    model = zoo.create_model("bert_tiny", **TINY)
    inputs = _inputs(batch=4)
    batched = np.asarray(model(inputs)["sequence_output"])
    for i in range(4):
        n = int(inputs["padding_mask"][i].sum())
        single = {k: v[i:i + 1, :n] for k, v in inputs.items()}
        np.testing.assert_allclose(np.asarray(model(single)["sequence_output"])[0], batched[i, :n], atol=1e-5)


def test_config_round_trip_and_keras_save(tmp_path):
    model = zoo.create_model("bert_tiny", **TINY)
    clone = BertBackbone.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    path = str(tmp_path / "bert.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    inputs = _inputs()
    np.testing.assert_allclose(np.asarray(restored(inputs)["pooled_output"]),
                               np.asarray(model(inputs)["pooled_output"]), atol=1e-6)


def test_pretrainer_config_round_trip_keeps_tie():
    model = BertPretrainer(zoo.create_model("bert_tiny", **TINY))
    clone = BertPretrainer.from_config(model.get_config())
    assert clone.count_params() == model.count_params()
    assert clone.mlm_head.token_embedding is clone.backbone.token_embedding


def test_mixed_precision_outputs():
    policy = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = zoo.create_model("bert_tiny", **TINY)
        out = model(_inputs())
        assert out["sequence_output"].dtype == tf.bfloat16
        assert all(v.dtype == "float32" for v in model.weights)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def test_mixed_float16_policy_round_trips():
    clone = assert_policy_round_trip(lambda: BertPretrainer(zoo.create_model("bert_tiny", **TINY)))
    assert clone.backbone.get_layer("transformer_layer_0").compute_dtype == "float16"
    assert clone.mlm_head.token_embedding is clone.backbone.token_embedding
