"""RNNLMBackbone and its presets: exact counts, state carrying, masks, dropout placement, initialisation, mixed
precision; serving: next-token log-probabilities, sampling, TF-only export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.errors import ZooError
from zoo.models.sequence import RNNLMBackbone
from zoo.models.sequence.rnn_lm_presets import PAPER_TRAINING
from zoo.models.sequence.rnn_lm_serving import generate, serving_endpoints
from zoo.registry import trainable_params
from zoo.training.export import export_saved_model
from tests.tf_only import run_tf_only

V = 23


def _tiny(cell="lstm", **kwargs):
    keras.utils.set_random_seed(0)
    return RNNLMBackbone(V, cell=cell, num_layers=2, hidden_dim=8, **kwargs)


def _ids(batch=3, length=10, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=(batch, length)).astype("int32")


# === Counts ===

@pytest.mark.parametrize("name,count", [
    ("lstm_lm_small", 4_651_600), ("gru_lm_small", 4_491_200), ("simple_rnn_lm_small", 4_170_400),
    ("char_rnn", 239_297),
])
def test_preset_counts(name, count):
    assert zoo.model_info(name).params == count
    assert trainable_params(zoo.create_model(name)) == count


def test_count_formulas_of_the_variants():
    # Reference §2.2: tied embeddings keep the softmax bias; Keras' reset_after=True GRU adds 3H per layer.
    assert trainable_params(zoo.create_model("lstm_lm_small", tie_weights=True)) == 2_651_600
    assert trainable_params(zoo.create_model("gru_lm_small", reset_after=True)) == 4_492_400
    # Every Zaremba-shaped preset: embedding V*H + softmax H*V+V + 2 layers of gates*H(H+H+1) (untied).
    per_layer = {"lstm": 4, "gru": 3, "simple_rnn": 1}
    for name in zoo.list_models("*_lm_*"):
        cell, size = name.split("_lm_")
        h = {"small": 200, "medium": 650, "large": 1500}[size]
        expected = 2 * 10000 * h + 10000 + per_layer[cell] * h * (h + h + 1) * 2
        assert zoo.model_info(name).params == expected, name


def test_paper_training_table():
    assert PAPER_TRAINING["lstm_lm_small"] == dict(seq_length=20, global_batch_size=20, optimizer="sgd",
                                                   learning_rate=1.0, lr_decay=0.5, decay_after_epochs=4, epochs=13,
                                                   clip_norm=5.0)
    assert PAPER_TRAINING["gru_lm_large"] == PAPER_TRAINING["lstm_lm_large"]
    assert PAPER_TRAINING["lstm_lm_large"]["clip_norm"] == 10.0
    assert PAPER_TRAINING["char_rnn"]["optimizer"] == "rmsprop"


def test_bad_configs_are_refused():
    with pytest.raises(ZooError, match="unknown cell"):
        RNNLMBackbone(V, cell="lstmm")
    with pytest.raises(ZooError, match="tie_weights needs"):
        RNNLMBackbone(V, hidden_dim=8, embedding_dim=4, tie_weights=True)


# === State ===

@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_state_carried_over_two_halves_equals_one_pass(cell):
    backbone = _tiny(cell)
    ids = _ids()
    whole, whole_state = backbone.run(ids)
    first, state = backbone.run(ids[:, :4])
    second, final_state = backbone.run(ids[:, 4:], initial_state=state)
    assert len(state) == (4 if cell == "lstm" else 2)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    for a, b in zip(final_state, whole_state):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_mask_keeps_the_state_of_the_last_real_step():
    backbone = _tiny()
    ids = _ids(batch=2, length=6)
    _, padded_state = backbone.run(ids, mask=np.array([[1] * 6, [1, 1, 1, 0, 0, 0]], bool))
    _, full = backbone.run(ids[:1])
    _, short = backbone.run(ids[1:, :3])
    for s, a, b in zip(padded_state, full, short):
        np.testing.assert_allclose(s, np.concatenate([a, b]), atol=1e-6)


# === Dropout, initialisation, precision ===

def test_dropout_only_on_non_recurrent_connections():
    backbone = _tiny(dropout=0.5)
    assert all(layer.dropout == 0 and layer.recurrent_dropout == 0 for layer in backbone.rnn_layers)
    assert len(backbone.dropout_layers) == 3  # embedding output, between the layers, before the softmax
    ids = _ids()
    np.testing.assert_array_equal(backbone(ids), backbone(ids))  # inference is deterministic
    assert not np.allclose(backbone(ids, training=True), backbone(ids))
    # A fresh mask per time step (and element), as Zaremba et al.
    dropped = np.asarray(backbone.dropout_layers[0](np.ones((1, 20, 8), "float32"), training=True))[0]
    assert len({tuple(row) for row in (dropped > 0)}) > 1


def test_init_scale_and_forget_bias():
    backbone = zoo.create_model("lstm_lm_small", vocabulary_size=V, hidden_dim=8)
    for w in backbone.weights:
        assert np.abs(np.asarray(w)).max() <= 0.1, w.path
    for layer in backbone.rnn_layers:
        np.testing.assert_array_equal(layer.cell.bias, 0.0)  # BasicLSTMCell(forget_bias=0)
    char = zoo.create_model("char_rnn", hidden_dim=8)
    assert char.token_embedding is None and char.rnn_layers[0].cell.kernel.shape == (65, 32)
    np.testing.assert_array_equal(char.rnn_layers[0].cell.bias[8:16], 1.0)  # char-rnn's forget-gate bias 1


def test_mixed_precision_logits_are_float32():
    backbone = _tiny(dtype="mixed_float16")
    assert backbone.rnn_layers[0].compute_dtype == "float16"
    logits, state = backbone.run(_ids(), initial_state=backbone.zero_state(3))
    assert logits.dtype == "float32" and all(s.dtype == "float32" for s in state)
    reference = _tiny()
    reference.set_weights(backbone.get_weights())
    np.testing.assert_allclose(logits, reference(_ids()), atol=2e-2)


def test_tied_weights_share_the_embedding():
    backbone = _tiny(tie_weights=True)
    h = np.random.default_rng(1).normal(size=(2, 1, 8)).astype("float32")
    logits = backbone.token_embedding(h, reverse=True) + backbone.output_bias
    assert logits.shape == (2, 1, V) and backbone.output_dense is None


# === Serving ===

def _greedy_reference(backbone, prompt, steps):
    """Argmax decoding by re-running the whole sequence each step (no state carrying)."""
    ids = list(prompt)
    for _ in range(steps):
        ids.append(int(np.argmax(backbone(np.array([ids], "int32"))[0, -1])))
    return ids[len(prompt):]


def test_generate_is_seeded_and_zero_temperature_is_greedy():
    backbone = _tiny()
    prompts, lengths = _ids(batch=2, length=5), np.array([5, 3], "int32")
    a = generate(backbone, prompts, lengths, num_tokens=6, temperature=1.0, seed=7)
    assert a.shape == (2, 6) and a.dtype == np.int32
    np.testing.assert_array_equal(a, generate(backbone, prompts, lengths, num_tokens=6, temperature=1.0, seed=7))
    assert not np.array_equal(a, generate(backbone, prompts, lengths, num_tokens=6, temperature=1.0, seed=8))
    greedy = generate(backbone, prompts, lengths, num_tokens=6, temperature=0.0)
    np.testing.assert_array_equal(greedy, generate(backbone, prompts, lengths, num_tokens=6, temperature=1e-4))
    for row, length in enumerate(lengths):
        assert greedy[row].tolist() == _greedy_reference(backbone, prompts[row, :length], 6)


@pytest.mark.slow
def test_export_loads_tf_only(tmp_path):
    backbone = _tiny()
    ids, lengths = _ids(batch=2, length=6), np.array([6, 2], "int32")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(f"w{i}" for i in range(V)) + "\n")
    path = export_saved_model(str(tmp_path / "export"), backbone, serving_endpoints(backbone),
                              assets={"vocab.txt": str(vocab)})
    expected_next = [np.asarray(tf.nn.log_softmax(backbone(ids[r:r + 1, :n]))[0, -1]) for r, n in enumerate(lengths)]
    expected_greedy = generate(backbone, ids, lengths, num_tokens=5, temperature=0.0)
    got = run_tf_only(f"""
        import json, os
        import numpy as np, tensorflow as tf
        m = tf.saved_model.load({path!r})
        ids = tf.constant({ids.tolist()}, tf.int32); lengths = tf.constant({lengths.tolist()}, tf.int32)
        out = m.signatures["serving_default"](token_ids=ids, lengths=lengths)
        def sample(t, seed):
            out = m.signatures["sample"](prompt_ids=ids, prompt_lengths=lengths, num_tokens=tf.constant(5),
                                         temperature=tf.constant(t), seed=tf.constant(seed))
            return out["token_ids"].numpy().tolist()
        try:
            m.signatures["serving_default"](token_ids=tf.constant([[{V}]]), lengths=tf.constant([1]))
            error = ""
        except tf.errors.InvalidArgumentError as e:
            error = e.message
        print(json.dumps(dict(next=out["next_log_probs"].numpy().tolist(), shape=out["log_probs"].shape.as_list(),
                              a=sample(1.0, 3), b=sample(1.0, 3), greedy=sample(0.0, 0), error=error,
                              assets=os.listdir(os.path.join({path!r}, "assets")))))
    """)
    np.testing.assert_allclose(got["next"], expected_next, atol=1e-5)
    assert got["shape"] == [2, 6, V]
    assert got["a"] == got["b"] and np.array(got["a"]).shape == (2, 5)
    assert got["greedy"] == expected_greedy.tolist()
    assert f"token_ids must be in [0, {V})" in got["error"]
    assert got["assets"] == ["vocab.txt"]
