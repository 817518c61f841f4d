import keras
import numpy as np
import tensorflow as tf

import zoo
from zoo.models.bert import BertPretrainer

TINY = dict(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, dropout=0.0,
            max_sequence_length=32)


def make_batch(batch=4, seq=16, predictions=4, vocab=60, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, vocab, size=(batch, seq)).astype("int32")
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq - 1), predictions, replace=False)
                                  for _ in range(batch)]), axis=1).astype("int32")
    weights = np.ones((batch, predictions), "float32")
    weights[0, -2:] = 0  # padded prediction slots
    return {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": np.ones_like(token_ids),
        "mask_positions": positions,
        "mask_ids": np.take_along_axis(token_ids, positions, 1),
        "mask_weights": weights,
        "nsp_labels": rng.integers(0, 2, size=(batch,)).astype("int32"),
    }


def _model():
    keras.utils.set_random_seed(3)
    model = BertPretrainer(zoo.create_model("bert_tiny", **TINY))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    return model


def test_mlm_loss_averages_real_positions_only():
    model = _model()
    batch = make_batch()
    logs = model.train_step({k: tf.constant(v) for k, v in batch.items()})
    out = model({k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask", "mask_positions")})
    ce = keras.losses.sparse_categorical_crossentropy(batch["mask_ids"], out["mlm_logits"], from_logits=True)
    expected = np.sum(np.asarray(ce) * batch["mask_weights"]) / batch["mask_weights"].sum()
    np.testing.assert_allclose(float(logs["mlm_loss"]), expected, rtol=1e-5)
    nsp = keras.losses.sparse_categorical_crossentropy(batch["nsp_labels"], out["nsp_logits"], from_logits=True)
    np.testing.assert_allclose(float(logs["nsp_loss"]), np.mean(nsp), rtol=1e-5)
    np.testing.assert_allclose(float(logs["loss"]), expected + np.mean(nsp), rtol=1e-5)


def test_train_step_compiles_with_xla():
    model = _model()
    model.optimizer.learning_rate.assign(0.1)
    batch = {k: tf.constant(v) for k, v in make_batch().items()}
    step = tf.function(model.train_step, jit_compile=True)
    before = [np.asarray(v) for v in model.trainable_variables]
    first = float(step(batch)["loss"])
    for _ in range(5):
        last = float(step(batch)["loss"])
    assert last < first
    assert any(not np.allclose(a, np.asarray(v)) for a, v in zip(before, model.trainable_variables))
