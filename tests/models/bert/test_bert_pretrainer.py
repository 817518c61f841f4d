import keras
import numpy as np
import pytest
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


def _expected_eval(model, batches):
    """Exact one-device weighted means over all `batches`, computed in numpy from the model's logits."""
    sums = {"mlm_accuracy": 0.0, "mlm_loss": 0.0, "nsp_accuracy": 0.0, "nsp_loss": 0.0}
    mlm_weight, nsp_count = 0.0, 0
    for batch in batches:
        out = model({k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask", "mask_positions")})
        mlm, nsp = np.asarray(out["mlm_logits"], "float64"), np.asarray(out["nsp_logits"], "float64")
        w = batch["mask_weights"]

        def ce(logits, labels):
            logits = logits - logits.max(-1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            return -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]

        sums["mlm_loss"] += np.sum(ce(mlm, batch["mask_ids"]) * w)
        sums["mlm_accuracy"] += np.sum((mlm.argmax(-1) == batch["mask_ids"]) * w)
        sums["nsp_loss"] += np.sum(ce(nsp, batch["nsp_labels"]))
        sums["nsp_accuracy"] += np.sum(nsp.argmax(-1) == batch["nsp_labels"])
        mlm_weight += w.sum()
        nsp_count += len(batch["nsp_labels"])
    return {k: v / (mlm_weight if k.startswith("mlm") else nsp_count) for k, v in sums.items()}


def _eval_batches():
    """Two global batches of 8 whose first halves (replica 0) have few real masked positions."""
    batches = []
    for seed in (1, 2):
        batch = make_batch(batch=8, predictions=4, seed=seed)
        batch["mask_weights"][:4, 1:] = 0  # replica 0: 1 real position per example, replica 1: 4
        batches.append(batch)
    return batches


def test_test_step_metrics_are_weighted_means_and_train_logs_unchanged():
    model = _model()
    batches = _eval_batches()
    for metric in model.metrics:
        metric.reset_state()
    step = tf.function(model.test_step)
    for batch in batches:
        logs = step({k: tf.constant(v) for k, v in batch.items()})
    expected = _expected_eval(model, batches)
    assert set(logs) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(float(logs[name]), value, rtol=1e-5, err_msg=name)
    assert {m.name for m in model.metrics} >= set(expected)
    train_logs = model.train_step({k: tf.constant(v) for k, v in batches[0].items()})
    assert set(train_logs) == {"loss", "mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"}


@pytest.mark.distributed
def test_two_replica_evaluation_equals_one_device(mirrored):
    """2 replicas with unequal mask weights: summed metric state gives the global weighted means, not the mean
    of the replicas' means."""
    with mirrored.scope():
        model = _model()
    batches = _eval_batches()
    for metric in model.metrics:
        metric.reset_state()
    step = tf.function(lambda d: mirrored.run(model.test_step, args=(d,)))
    for batch in batches:
        step(mirrored.experimental_distribute_values_from_function(
            lambda ctx, b=batch: {k: tf.constant(v[4 * ctx.replica_id_in_sync_group:][:4]) for k, v in b.items()}))
    results = {m.name: float(m.result()) for m in model.eval_metrics}  # read across replicas
    expected = _expected_eval(model, batches)
    for name, value in expected.items():
        np.testing.assert_allclose(results[name], value, rtol=1e-5, err_msg=name)
    # The replicas' separate means differ from the global one here, so the check above has teeth.
    half = _expected_eval(model, [{k: v[:4] for k, v in b.items()} for b in batches])
    other = _expected_eval(model, [{k: v[4:] for k, v in b.items()} for b in batches])
    naive = (half["mlm_loss"] + other["mlm_loss"]) / 2
    assert abs(naive - expected["mlm_loss"]) > 1e-3
