"""XLNetBackbone against keras-hub's XLNetBackbone: weight paths, loading its weights, parity at batch size 1,
and keras-hub's batch > 1 bug (rows scrambled), which ours does not have."""

import json

import h5py
import keras
import keras_hub
import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.layers.activations import gelu_approximate
from zoo.models.xlnet import XLNetBackbone, load_keras_hub_weights

SIZES = dict(vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32)


def _pair(seed=0):
    """(ours, keras-hub's) with keras-hub's weights ~N(0, 0.5) copied into ours; keras-hub with the tanh GELU."""
    hub = keras_hub.models.XLNetBackbone(**SIZES, activation=gelu_approximate)
    rng = np.random.default_rng(seed)
    for w in hub.weights:
        w.assign(rng.normal(0.0, 0.5, w.shape).astype("float32"))
    ours = XLNetBackbone(**SIZES, dropout=0.0, attention_dropout=0.0)
    assert load_keras_hub_weights(ours, hub) == {"tensors": len(hub.weights)}
    return ours, hub


def _batch():
    """Left-padded "A <sep> B <sep> <cls>" rows: segment ids A 0, B 1, CLS 2, PAD 4."""
    ids = np.array([[5, 5, 5, 7, 9, 4, 11, 4, 3], [8, 9, 10, 11, 4, 12, 13, 4, 3], [5, 5, 14, 15, 4, 16, 17, 4, 3]])
    mask = (ids != 5).astype("int32")
    segments = np.array([[4, 4, 4, 0, 0, 0, 1, 1, 2], [0, 0, 0, 0, 0, 1, 1, 1, 2], [4, 4, 0, 0, 0, 1, 1, 1, 2]])
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


def test_weight_paths_and_shapes_equal_keras_hub():
    ours = XLNetBackbone(**SIZES)
    hub = keras_hub.models.XLNetBackbone(**SIZES)
    assert sorted((w.path, tuple(w.shape)) for w in ours.weights) == sorted(
        (w.path, tuple(w.shape)) for w in hub.weights)
    assert {w.path for w in ours.weights} >= {"content_query_embedding/word_embedding/embeddings",
                                               "encoder_block_attn_mask_layer/mask_emb",
                                               "xlnet_encoder_1/rel_attn/attention_output/kernel",
                                               "xlnet_encoder_1/segment_encoding"}
    assert ours.count_params() == hub.count_params()


def test_parity_with_keras_hub_at_batch_size_one():
    ours, hub = _pair()
    batch = _batch()
    worst = 0.0
    for row in range(3):
        example = {k: v[row:row + 1] for k, v in batch.items()}
        expected = np.asarray(hub(example))
        got = np.asarray(ours(example))
        assert np.abs(expected).max() > 0.5
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst <= 1e-4  # measured ~1e-6


def test_keras_hub_scrambles_rows_when_batch_is_larger_than_one_and_ours_does_not():
    ours, hub = _pair()
    batch = _batch()
    per_example_hub = np.concatenate([np.asarray(hub({k: v[r:r + 1] for k, v in batch.items()})) for r in range(3)])
    real = batch["padding_mask"][..., None] == 1
    # keras-hub's [L, B, d] -> [B, L, d] reshape mixes rows' positions and padding masks (nlp.md §4.1).
    assert np.abs(np.where(real, np.asarray(hub(batch)) - per_example_hub, 0)).max() > 0.1
    np.testing.assert_allclose(np.asarray(ours(batch)), per_example_hub, atol=1e-4)


def test_load_from_preset_directory_and_weights_file(tmp_path):
    _, hub = _pair(seed=1)
    hub.save_to_preset(str(tmp_path / "preset"))
    hub.save_weights(str(tmp_path / "bare.weights.h5"))
    example = {k: v[1:2] for k, v in _batch().items()}
    expected = np.asarray(hub(example))
    for source in (tmp_path / "preset", tmp_path / "bare.weights.h5"):
        ours = XLNetBackbone(**SIZES, dropout=0.0, attention_dropout=0.0)
        assert load_keras_hub_weights(ours, str(source))["tensors"] == len(hub.weights)
        np.testing.assert_allclose(np.asarray(ours(example)), expected, atol=1e-4)


def test_mismatches_are_one_line_errors(tmp_path):
    _, hub = _pair()
    with pytest.raises(ZooError, match=r"--init_checkpoint: .*vocabulary_size=40 but the model has 41.*spiece_model"):
        load_keras_hub_weights(XLNetBackbone(**{**SIZES, "vocabulary_size": 41}), hub)
    with pytest.raises(ZooError, match="untie_r=True"):
        load_keras_hub_weights(XLNetBackbone(**SIZES, untie_r=False), hub)
    with pytest.raises(ZooError, match="--init_checkpoint="):
        load_keras_hub_weights(XLNetBackbone(**SIZES), str(tmp_path / "missing"))
    with pytest.raises(ZooError, match="--checkpoint:"):
        load_keras_hub_weights(XLNetBackbone(**{**SIZES, "num_layers": 3}), hub, flag="--checkpoint")
    keras.backend.clear_session()


def test_foreign_or_cut_weights_files_and_leftover_variables_are_one_line_errors(tmp_path):
    _, hub = _pair()
    hub.save_weights(str(tmp_path / "good.weights.h5"))
    # A truncated copy (the encoder layers cut off) and one that is not an XLNet at all.
    with h5py.File(tmp_path / "good.weights.h5", "r") as good, h5py.File(tmp_path / "cut.weights.h5", "w") as cut:
        good.copy("layers/content_and_query_embedding", cut, name="layers/content_and_query_embedding")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(str(tmp_path / "dense.weights.h5"))
    (tmp_path / "half.weights.h5").write_bytes((tmp_path / "good.weights.h5").read_bytes()[:2000])
    for name, match in [("cut", r"is not the weights of a keras-hub XLNetBackbone \(no layers/xl_net_encoder/"),
                        ("dense", r"is not the weights of a keras-hub XLNetBackbone \(no layers/content_and"),
                        ("half", r"cannot read it as HDF5")]:
        with pytest.raises(ZooError, match=rf"^--init_checkpoint=\S*{name}.weights.h5:? {match}") as error:
            load_keras_hub_weights(XLNetBackbone(**SIZES), str(tmp_path / f"{name}.weights.h5"))
        assert "\n" not in str(error.value)
    preset = tmp_path / "preset"
    preset.mkdir()
    (preset / "model.weights.h5").write_bytes((tmp_path / "good.weights.h5").read_bytes())
    (preset / "config.json").write_text(json.dumps({"registered_name": "keras_hub>XLNetBackbone", "config": {}}))
    with pytest.raises(ZooError, match=r"is not the config of a keras-hub XLNetBackbone \(no vocabulary_size\)"):
        load_keras_hub_weights(XLNetBackbone(**SIZES), str(preset))
    # All-or-nothing the other way too: a keras-hub variable that nothing takes is an error, nothing assigned.
    hub.add_weight(shape=(2,), initializer="ones", name="extra")
    ours = XLNetBackbone(**SIZES)
    before = [np.asarray(w) for w in ours.weights]
    with pytest.raises(ZooError, match=r"^--init_checkpoint: the model has no variable for .*extra \(1 unused\)"):
        load_keras_hub_weights(ours, hub)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, ours.weights))
