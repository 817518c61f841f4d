"""LanguageModel: carried state, resets, truncated BPTT gradients, XLA, 2 replicas == 1, Trainer resume."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models.sequence import LanguageModel, RNNLMBackbone
from zoo.training.trainer import Trainer

V, H, T, ROWS = 19, 8, 5, 4


def _model(per_replica=ROWS, lr=1.0, clip_norm=None, dropout=0.0, seed=0):
    keras.utils.set_random_seed(seed)
    backbone = RNNLMBackbone(V, cell="lstm", num_layers=2, hidden_dim=H, dropout=dropout, init_scale=0.3)
    model = LanguageModel(backbone, per_replica_batch_size=per_replica, clip_norm=clip_norm)
    model.compile(optimizer=keras.optimizers.SGD(lr))
    return model


def _batch(seed=0, rows=ROWS, reset=None, weights=None):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(rows, T + 1)).astype("int32")
    return {"token_ids": ids[:, :-1], "targets": ids[:, 1:],
            "weights": np.ones((rows, T), "float32") if weights is None else weights,
            "reset": np.zeros(rows, "float32") if reset is None else np.asarray(reset, "float32")}


def _state(model):
    return [np.asarray(v) for v in model.carried]


def _nll(model, batch, state):
    logits, _ = model.backbone.run(batch["token_ids"], initial_state=state)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch["targets"], logits=logits)
    return tf.reduce_sum(nll * batch["weights"]) / tf.reduce_sum(batch["weights"])


def test_reset_zeroes_exactly_the_flagged_rows():
    model = _model()
    rng = np.random.default_rng(3)
    for v in model.carried:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    before = _state(model)
    batch = _batch(reset=[1, 0, 1, 0])
    model.test_step(batch)
    kept = [s[[1, 3]] for s in before]
    _, fresh = model.backbone.run(batch["token_ids"][[0, 2]])
    _, carried = model.backbone.run(batch["token_ids"][[1, 3]], initial_state=kept)
    after = _state(model)
    for a, f, c in zip(after, fresh, carried):
        np.testing.assert_allclose(a[[0, 2]], f, atol=1e-6)
        np.testing.assert_allclose(a[[1, 3]], c, atol=1e-6)


def test_loss_and_metrics_over_real_tokens_only():
    model = _model()
    weights = np.ones((ROWS, T), "float32")
    weights[1, 3:] = 0.0
    batch = _batch(weights=weights)
    expected = float(_nll(model, batch, None))
    logs = model.test_step(batch)
    assert float(logs["loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(logs["perplexity"]) == pytest.approx(np.exp(expected), rel=1e-5)
    assert float(logs["bits_per_token"]) == pytest.approx(expected / np.log(2), rel=1e-5)
    assert 0.0 <= float(logs["token_accuracy"]) <= 1.0
    assert float(_model().train_step(batch)["loss"]) == pytest.approx(expected, rel=1e-5)


def test_smaller_evaluation_batch_uses_the_first_rows():
    model = _model()
    for v in model.carried:
        v.assign(np.full(v.shape, 0.25, "float32"))
    batch = _batch(rows=2)
    model.test_step(batch)
    _, expected = model.backbone.run(batch["token_ids"], initial_state=[np.full((2, H), 0.25, "float32")] * 4)
    for a, e in zip(_state(model), expected):
        np.testing.assert_allclose(a[:2], e, atol=1e-6)
        np.testing.assert_array_equal(a[2:], 0.25)


def test_truncated_bptt_gradient_stops_at_the_segment_start():
    model = _model(lr=1.0)
    first, second = _batch(seed=1), _batch(seed=2)
    model.train_step(first)
    state = [tf.constant(s) for s in _state(model)]
    weights = [np.asarray(w) for w in model.trainable_variables]
    with tf.GradientTape() as tape:  # segment 2's loss with segment 1's final state as a constant
        loss = _nll(model, second, state)
    grads = tape.gradient(loss, model.trainable_variables)
    with tf.GradientTape() as tape:  # backpropagating through segment 1 too, for contrast
        _, s1 = model.backbone.run(first["token_ids"])
        full_loss = _nll(model, second, s1)
    full = tape.gradient(full_loss, model.trainable_variables)
    dense = lambda g: tf.convert_to_tensor(g).numpy()  # noqa: E731  (the embedding's gradient is sparse)
    model.train_step(second)
    for w, g, new in zip(weights, grads, model.trainable_variables):
        np.testing.assert_allclose(np.asarray(new), w - dense(g), atol=2e-6)
    assert not np.allclose(dense(full[1]), dense(grads[1]), atol=1e-4)  # layer 1's input kernel differs


def test_gradient_clipping_by_global_norm():
    clipped = _model(lr=1.0, clip_norm=0.01)
    before = [np.asarray(w) for w in clipped.trainable_variables]
    clipped.train_step(_batch())
    delta = [np.asarray(w) - b for w, b in zip(clipped.trainable_variables, before)]
    assert np.sqrt(sum(np.sum(d ** 2) for d in delta)) == pytest.approx(0.01, rel=1e-4)


@pytest.mark.slow  # XLA compilation of the recurrent loops: ~6 s on 2 cores
def test_xla_train_step_equals_eager():
    eager, xla = _model(clip_norm=1.0), _model(clip_norm=1.0)
    step = tf.function(xla.train_step, jit_compile=True)
    for seed in range(3):
        batch = _batch(seed=seed, reset=[float(seed == 1), 0, 0, 0])
        a, b = eager.train_step(batch), step(batch)
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5)
    for a, b in zip(eager.weights, xla.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_mixed_precision_train_step():
    keras.utils.set_random_seed(0)
    backbone = RNNLMBackbone(V, num_layers=2, hidden_dim=H, init_scale=0.3, dtype="mixed_float16")
    model = LanguageModel(backbone, per_replica_batch_size=ROWS, clip_norm=5.0)
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1.0)))
    reference = _model()
    batch = _batch()
    loss = float(model.train_step(batch)["loss"])
    assert loss == pytest.approx(float(reference.train_step(batch)["loss"]), rel=1e-2)
    assert all(v.dtype == "float32" for v in model.carried)
    for a, b in zip(model.trainable_variables, reference.trainable_variables):  # the same update, to fp16 accuracy
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=5e-3)


# === Distributed and resumed training through the Trainer ===

GLOBAL_BATCH, STEPS, DOC_RESET = 4, 6, (3, 1)  # (step, row): a new document starts there


def _stream_dataset_fn(ctx):
    """Per-replica batches of 4 streams, replica r of a step getting rows [r*b, (r+1)*b) (the order the
    trainer's `distribute_datasets_from_function` hands batches out in)."""
    replicas = ctx.num_replicas_in_sync
    b = GLOBAL_BATCH // replicas
    streams = np.random.default_rng(5).integers(0, V, size=(GLOBAL_BATCH, STEPS * T + 1)).astype("int32")
    elements = {k: [] for k in ("token_ids", "targets", "weights", "reset")}
    for step in range(STEPS):
        reset = np.zeros(GLOBAL_BATCH, "float32")
        reset[:] = step == 0
        if step == DOC_RESET[0]:
            reset[DOC_RESET[1]] = 1.0
        weights = np.ones((GLOBAL_BATCH, T), "float32")
        weights[2, :2] = 0.0 if step == 2 else 1.0
        for r in range(replicas):
            rows = slice(r * b, (r + 1) * b)
            elements["token_ids"].append(streams[rows, step * T:(step + 1) * T])
            elements["targets"].append(streams[rows, step * T + 1:(step + 1) * T + 1])
            elements["weights"].append(weights[rows])
            elements["reset"].append(reset[rows])
    return tf.data.Dataset.from_tensor_slices({k: np.stack(v) for k, v in elements.items()}).repeat()


def _eval_dataset_fn(ctx):
    return _stream_dataset_fn(ctx).take(2 * ctx.num_replicas_in_sync)  # two steps' batches, then the end


def _train(strategy, model_dir, steps, dropout=0.0, evaluate=False):
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model = _model(per_replica=GLOBAL_BATCH // replicas, clip_norm=0.5, dropout=dropout)
    logs = Trainer(model, strategy=strategy, model_dir=str(model_dir), dataset_fn=_stream_dataset_fn,
                   global_batch_size=GLOBAL_BATCH, train_steps=steps, checkpoint_every=2, log_every=1,
                   verbose=False, eval_dataset_fn=_eval_dataset_fn if evaluate else None).train()
    state = [np.concatenate([np.asarray(x) for x in strategy.experimental_local_results(v.value)])
             for v in model.carried]
    return model, logs, state


@pytest.mark.slow
@pytest.mark.distributed
def test_two_replicas_equal_one_with_state_carried(tmp_path, mirrored):
    one, one_logs, one_state = _train(tf.distribute.get_strategy(), tmp_path / "one", STEPS, evaluate=True)
    two, two_logs, two_state = _train(mirrored, tmp_path / "two", STEPS, evaluate=True)
    assert one_logs["loss"] == pytest.approx(two_logs["loss"], rel=1e-5)
    for name in ("loss", "perplexity", "bits_per_token", "token_accuracy"):  # exact global means
        assert one_logs[f"eval/{name}"] == pytest.approx(two_logs[f"eval/{name}"], rel=1e-5), name
    assert one_logs["eval/perplexity"] == pytest.approx(np.exp(one_logs["eval/loss"]), rel=1e-5)
    for a, b in zip(one_state, two_state):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b in zip(one.trainable_variables, two.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.slow
@pytest.mark.distributed
def test_resume_equals_uninterrupted(tmp_path, mirrored):
    straight, straight_logs, straight_state = _train(mirrored, tmp_path / "straight", STEPS, dropout=0.3)
    _train(mirrored, tmp_path / "resumed", STEPS // 2, dropout=0.3)
    resumed, resumed_logs, resumed_state = _train(mirrored, tmp_path / "resumed", STEPS, dropout=0.3)
    assert straight_logs["loss"] == pytest.approx(resumed_logs["loss"], rel=1e-6)
    for a, b in zip(straight_state, resumed_state):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(straight.trainable_variables, resumed.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
