import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.models.sumbt.sumbt_cases import (PAD_ID, attend_per_slot, dialogues, inputs_of, reference_logits,
                                            tiny_model)
from zoo.errors import ZooError
from zoo.models.bert import BertBackbone
from zoo.models.sumbt import SUMBT
from zoo.models.sumbt import sumbt_metrics as sm
from zoo.registry import trainable_params


def test_head_parameter_counts_at_bert_base_width():
    """The official head at H=768, hidden 300: 3,788,772 trainable; the tables have no trainable weight."""
    backbone = BertBackbone(vocabulary_size=10, num_layers=1, num_heads=12, hidden_dim=768, intermediate_dim=8,
                            max_sequence_length=8)
    mask = np.ones((3, 5), bool)
    model = SUMBT(backbone, None, None, mask)
    counts = {name: trainable_params(getattr(model, name)) for name in
              ("slot_attention", "belief_rnn", "rnn_init_dense", "output_dense", "output_layer_norm")}
    assert counts == {"slot_attention": 2_362_368, "belief_rnn": 963_000, "rnn_init_dense": 230_700,
                      "output_dense": 231_168, "output_layer_norm": 1_536}
    assert trainable_params(model) - trainable_params(backbone) == 3_788_772
    assert {w.path for w in model.non_trainable_weights} == {"sumbt/slot_vectors", "sumbt/value_vectors"}
    assert not any(w is model.slot_table or w is model.value_table for w in model.trainable_weights)
    # Keras' LSTM keeps one bias vector where torch.nn.LSTM has two (1,284,000): the same function.
    lstm = SUMBT(backbone, None, None, mask, rnn="lstm", zero_init_rnn=True)
    assert trainable_params(lstm.belief_rnn) == 1_282_800 and lstm.rnn_init_dense is None
    assert not np.asarray(lstm.belief_rnn.cell.bias).any()  # the official LSTM's biases start at 0 (no forget bias 1)


def test_distances_keep_float32_precision_far_from_the_origin():
    """Value vectors and hidden states sharing a large common offset (as [CLS] vectors do): the distances
    still match a float64 direct ||v - x + eps|| to float32 precision (centring on the slot's value mean)."""
    model = tiny_model()
    rng = np.random.default_rng(3)
    table = np.asarray(model.value_table)
    offset = 40.0 * rng.normal(size=table.shape[-1])
    values = (table + offset) * np.asarray(model.value_mask)[..., None]
    model.value_table.assign(values.astype("float32"))
    hidden = (offset + rng.normal(size=(2, 3) + table.shape[::2])).astype("float32")  # [B, T, S, H]
    got = np.asarray(model.distances(tf.constant(hidden)))
    diff = values[None, None].astype("float64") - hidden[:, :, :, None].astype("float64") + 1e-6
    expected = np.sqrt((diff ** 2).sum(-1))
    real = np.broadcast_to(np.asarray(model.value_mask), expected.shape)
    np.testing.assert_allclose(got[real], expected[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", [dict(), dict(zero_init_rnn=True), dict(rnn="lstm")])
def test_logits_match_the_official_forward_pass(variant):
    model = tiny_model(**variant)
    batch = dialogues()
    out = model(inputs_of(batch))
    expected = reference_logits(model, inputs_of(batch))
    np.testing.assert_allclose(np.asarray(out["logits"]), expected, rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(np.asarray(out["predictions"]), expected.argmax(-1))
    assert out["logits"].dtype == tf.float32 and out["predictions"].dtype == tf.int32


def test_slot_queries_at_once_equal_one_attention_per_slot():
    """Keras MHA with the S slot vectors as S query positions == the official repeat-per-slot attention."""
    model = tiny_model()
    rng = np.random.default_rng(1)
    tokens = rng.normal(size=(5, 7, 16)).astype("float32")
    mask = (np.arange(7)[None] < np.array([7, 3, 1, 5, 6])[:, None]).astype("int32")
    slots = np.asarray(model.slot_table)
    queries = np.broadcast_to(slots[None], (5,) + slots.shape)
    att_mask = np.broadcast_to(mask[:, None, :] > 0, (5, len(slots), 7))
    got = np.asarray(model.slot_attention(queries, tokens, tokens, attention_mask=att_mask))
    for s in range(len(slots)):
        np.testing.assert_allclose(got[:, s], attend_per_slot(model, tokens, mask, slots[s]), atol=1e-5)


def test_padding_is_read_from_padding_mask_not_token_ids():
    model = tiny_model()
    batch = dialogues()
    other = dict(batch, token_ids=np.where(batch["padding_mask"] > 0, batch["token_ids"], 0).astype("int32"))
    assert (batch["token_ids"] == PAD_ID).any()
    np.testing.assert_allclose(np.asarray(model(inputs_of(batch))["logits"]),
                               np.asarray(model(inputs_of(other))["logits"]), atol=1e-6)


def _loss_and_grads(model, batch):
    with tf.GradientTape() as tape:
        out = model(inputs_of(batch), training=True)
        _, loss = sm.slot_loss(sm.cross_entropy(out["logits"], batch["labels"]), batch["labels"])
    grads = tape.gradient(loss, model.trainable_variables)
    return float(loss), [None if g is None else np.asarray(tf.convert_to_tensor(g)) for g in grads]


def test_padded_turns_do_not_change_loss_or_gradients():
    model = tiny_model()
    short = dialogues(turns_per_dialogue=(2, 1, 0), max_turns=2)  # the last dialogue is all padding
    long = dialogues(turns_per_dialogue=(2, 1, 0), max_turns=4)  # the same dialogues + two padded turns
    for k in short:
        long[k][:, :2] = short[k]
    long["token_ids"][:, 2:] = 7  # garbage under a zero mask
    loss_a, grads_a = _loss_and_grads(model, short)
    loss_b, grads_b = _loss_and_grads(model, long)
    assert np.isfinite(np.asarray(model(inputs_of(long))["logits"])).all()
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)
    for a, b in zip(grads_a, grads_b):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_batch_invariance():
    model = tiny_model()
    batch = dialogues(turns_per_dialogue=(3, 1, 2, 3))
    together = np.asarray(model(inputs_of(batch))["logits"])
    for i, turns in enumerate((3, 1, 2, 3)):
        alone = {k: v[i:i + 1, :turns] for k, v in inputs_of(batch).items()}
        length = int(alone["padding_mask"].sum(-1).max())
        alone = {k: v[..., :length] for k, v in alone.items()}
        np.testing.assert_allclose(np.asarray(model(alone)["logits"])[0], together[i, :turns], atol=2e-5)


def test_train_step_keeps_the_tables_frozen():
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    tables = [np.asarray(model.slot_table), np.asarray(model.value_table)]
    before = [np.asarray(v) for v in model.trainable_variables]
    model.train_step({k: tf.constant(v) for k, v in dialogues().items()})
    np.testing.assert_array_equal(np.asarray(model.slot_table), tables[0])
    np.testing.assert_array_equal(np.asarray(model.value_table), tables[1])
    unchanged = {v.path for a, v in zip(before, model.trainable_variables) if np.array_equal(a, np.asarray(v))}
    # The pooler is unused (as in the official code); a key bias adds the same score to every position.
    assert unchanged == {"pooled_dense/kernel", "pooled_dense/bias", "slot_attention/key/bias"}


def test_keras_file_round_trip_carries_the_tables(tmp_path):
    model = tiny_model()
    inputs = inputs_of(dialogues())
    model.save(tmp_path / "sumbt.keras")
    loaded = keras.saving.load_model(tmp_path / "sumbt.keras")
    np.testing.assert_array_equal(np.asarray(loaded.value_table), np.asarray(model.value_table))
    np.testing.assert_array_equal(np.asarray(loaded(inputs)["logits"]), np.asarray(model(inputs)["logits"]))
    assert loaded.get_config()["value_mask"] == model.value_mask.tolist()
    assert [m.name for m in loaded.eval_metrics][-3:] == ["acc_area", "acc_food", "acc_price_range"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(value_mask=np.ones((3,), bool)), "value_mask must be bool"),
    (dict(value_mask=np.array([[True, False], [False, False]])), "at least one value per slot"),
    (dict(slot_vectors=np.zeros((2, 8), "float32")), "same hidden size"),
    (dict(rnn="transformer"), "rnn must be"),
    (dict(num_heads=5), "must divide"),
    (dict(slot_names=["a"]), "1 names for 2 slots"),
])
def test_bad_arguments_say_what_to_fix(kwargs, message):
    backbone = BertBackbone(vocabulary_size=10, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=8)
    args = {"slot_vectors": None, "value_vectors": None, "value_mask": np.ones((2, 3), bool), **kwargs}
    with pytest.raises(ZooError, match=message):
        SUMBT(backbone, **args)


def test_mixed_float16_keeps_tables_and_distances_in_float32():
    reference = tiny_model()
    batch = dialogues()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny_model()
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.0)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.set_weights(reference.get_weights())
    assert model.value_table.dtype == "float32" and model.output_dense.compute_dtype == "float16"
    logits = model(inputs_of(batch))["logits"]
    assert logits.dtype == tf.float32
    np.testing.assert_allclose(np.asarray(logits), np.asarray(reference(inputs_of(batch))["logits"]), atol=0.02)
    logs = model.train_step({k: tf.constant(v) for k, v in batch.items()})
    assert np.isfinite(float(logs["loss"]))
