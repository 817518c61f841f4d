import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.models.sumbt.sumbt_cases import dialogues, inputs_of, tiny_model
from zoo.models.sumbt import joint_goal_accuracy, per_slot_accuracy, slot_accuracy
from zoo.models.sumbt import sumbt_metrics as sm


def _tensors(batch):
    return {k: tf.constant(v) for k, v in batch.items()}


def _compiled(learning_rate=0.0, **kwargs):
    model = tiny_model(**kwargs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    return model


def _expected(model, batches):
    """One-device numbers over all `batches` from the model's own outputs: joint/slot/per-slot accuracy and
    the eval loss (mean over real turns of the CE summed over slots)."""
    predictions, labels, ce = [], [], []
    for batch in batches:
        out = model(inputs_of(batch))
        predictions.append(np.asarray(out["predictions"]).reshape(-1, batch["labels"].shape[-1]))
        labels.append(batch["labels"].reshape(-1, batch["labels"].shape[-1]))
        ce.append(np.asarray(sm.cross_entropy(out["logits"], batch["labels"])).reshape(labels[-1].shape))
    predictions, labels, ce = (np.concatenate(x) for x in (predictions, labels, ce))
    real = (labels >= 0).any(-1)
    expected = {"loss": ce.sum(-1)[real].mean(), "joint_accuracy": joint_goal_accuracy(predictions, labels),
                "slot_accuracy": slot_accuracy(predictions, labels)}
    expected.update(zip(["acc_area", "acc_food", "acc_price_range"], per_slot_accuracy(predictions, labels)))
    return expected


def test_train_logs():
    model = _compiled()
    batch = dialogues()
    logs = model.train_step(_tensors(batch))
    out = model(inputs_of(batch))
    _, loss = sm.slot_loss(sm.cross_entropy(out["logits"], batch["labels"]), batch["labels"])
    np.testing.assert_allclose(float(logs["loss"]), float(loss), rtol=1e-6)
    expected = _expected(model, [batch])
    for name in ("joint_accuracy", "slot_accuracy"):
        np.testing.assert_allclose(float(logs[name]), expected[name], rtol=1e-6)
    assert set(logs) == {"loss", "joint_accuracy", "slot_accuracy"}


@pytest.mark.slow  # ~16 s: XLA compiles the GRU loop
def test_xla_step_equals_eager_step():
    batch = _tensors(dialogues())
    eager, xla = _compiled(0.1), _compiled(0.1)
    eager_logs = eager.train_step(batch)
    xla_logs = tf.function(xla.train_step, jit_compile=True)(batch)
    for name in eager_logs:
        np.testing.assert_allclose(float(xla_logs[name]), float(eager_logs[name]), rtol=1e-5)
    for a, b in zip(eager.trainable_variables, xla.trainable_variables):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6, err_msg=a.path)


def test_test_step_metrics_are_exact_over_batches():
    model = _compiled()
    batches = [dialogues(seed=1), dialogues(turns_per_dialogue=(1, 1, 3, 2), seed=2)]
    for metric in model.metrics:
        metric.reset_state()
    step = tf.function(model.test_step)
    for batch in batches:
        logs = step(_tensors(batch))
    expected = _expected(model, batches)
    assert set(logs) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(float(logs[name]), value, rtol=1e-5, err_msg=name)


def _split(strategy, batch):
    """Dialogues 0-1 to replica 0, 2-3 to replica 1."""
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: {k: tf.constant(v[2 * ctx.replica_id_in_sync_group:][:2]) for k, v in batch.items()})


@pytest.mark.slow  # ~25 s of tracing
@pytest.mark.distributed
def test_two_replicas_equal_one_device(mirrored):
    """Replica 0 gets 2 real turns, replica 1 gets 5: the update and the logs are the global ones."""
    batch = dialogues(turns_per_dialogue=(1, 1, 3, 2))
    one = _compiled(0.5, clip_norm=0.3)
    one_logs = one.train_step(_tensors(batch))
    with mirrored.scope():
        two = _compiled(0.5, clip_norm=0.3)
    logs = mirrored.run(tf.function(two.train_step), args=(_split(mirrored, batch),))
    for name, value in one_logs.items():
        for replica_value in mirrored.experimental_local_results(logs[name]):
            np.testing.assert_allclose(float(replica_value), float(value), rtol=1e-5, err_msg=name)
    for a, b in zip(one.trainable_variables, two.trainable_variables):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6, err_msg=a.path)


@pytest.mark.distributed
def test_two_replica_evaluation_equals_one_device(mirrored):
    with mirrored.scope():
        model = _compiled()
    batches = [dialogues(turns_per_dialogue=(1, 1, 3, 2), seed=1), dialogues(turns_per_dialogue=(1, 2, 3, 3), seed=2)]
    for metric in model.metrics:
        metric.reset_state()
    step = tf.function(lambda d: mirrored.run(model.test_step, args=(d,)))
    for batch in batches:
        step(_split(mirrored, batch))
    results = {m.name: float(m.result()) for m in model.eval_metrics}
    expected = _expected(model, batches)
    for name, value in expected.items():
        np.testing.assert_allclose(results[name], value, rtol=1e-5, err_msg=name)
