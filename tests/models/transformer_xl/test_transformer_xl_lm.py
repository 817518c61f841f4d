"""TransformerXLLanguageModel: carried memories over train steps == a manual computation, resets, the
evaluation protocol, metrics, XLA == eager, and 2 replicas == 1 through the Trainer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.models.transformer_xl import TransformerXLBackbone, TransformerXLLanguageModel
from zoo.training.trainer import Trainer

V, H, T, ROWS = 30, 16, 4, 2


def _model(per_replica=ROWS, lr=0.5, clip_norm=None, dropout=0.0, seed=0, **settings):
    keras.utils.set_random_seed(seed)
    backbone = TransformerXLBackbone(V, 2, H, 2, 8, 32, cutoffs=[10, 20], div_val=2, dropout=dropout,
                                     init_std=0.1)
    settings = {"mem_len": 4, **settings}
    model = TransformerXLLanguageModel(backbone, per_replica_batch_size=per_replica, clip_norm=clip_norm, **settings)
    model.compile(optimizer=keras.optimizers.SGD(lr))
    return model


def _batch(seed=0, rows=ROWS, reset=None, weights=None):
    ids = np.random.default_rng(seed).integers(0, V, size=(rows, T + 1)).astype("int32")
    return {"token_ids": ids[:, :-1], "targets": ids[:, 1:],
            "weights": np.ones((rows, T), "float32") if weights is None else weights,
            "reset": np.zeros(rows, "float32") if reset is None else np.asarray(reset, "float32")}


def _loss(backbone, batch, memories=None, length=None, **settings):
    hidden, new_memories, new_length = backbone.run(batch["token_ids"], memories, length, **settings)
    nll = backbone.adaptive_softmax.nll(hidden, batch["targets"])
    return tf.reduce_sum(nll * batch["weights"]) / tf.reduce_sum(batch["weights"]), new_memories, new_length


def test_two_train_steps_with_carried_memory_equal_the_manual_computation():
    model, reference = _model(), _model()
    first, second = _batch(seed=1), _batch(seed=2)
    lr = 0.5
    memories, length = None, None
    for batch in (first, second):
        with tf.GradientTape() as tape:
            loss, new_memories, new_length = _loss(reference.backbone, batch, memories, length, mem_len=4)
        variables = reference.backbone.trainable_variables
        for v, g in zip(variables, tape.gradient(loss, variables)):
            if g is not None:
                v.assign_sub(lr * tf.convert_to_tensor(g))
        memories, length = new_memories, new_length
        logs = model.train_step(batch)
        assert float(logs["loss"]) == pytest.approx(float(loss), rel=1e-5)
        assert float(logs["perplexity"]) == pytest.approx(np.exp(float(loss)), rel=1e-5)
    for a, b in zip(model.backbone.trainable_variables, reference.backbone.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6)
    for carried, expected in zip(model.memory.memories, memories):
        np.testing.assert_allclose(np.asarray(carried), np.asarray(expected), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(model.memory.length), [4, 4])
    assert not np.asarray(model.eval_memory.length).any()  # training leaves the evaluation memory alone


def test_reset_drops_the_memory_of_flagged_rows_only():
    model = _model()
    rng = np.random.default_rng(3)
    for v in model.eval_memory.memories:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    model.eval_memory.length.assign([4.0, 4.0])
    memories = [np.asarray(v) for v in model.eval_memory.memories]
    batch = _batch(reset=[1, 0])
    model.test_step(batch)
    fresh = model.backbone.run(batch["token_ids"][:1], mem_len=4)[1]
    carried = model.backbone.run(batch["token_ids"][1:], [m[1:] for m in memories], np.array([4]), mem_len=4)[1]
    for v, f, c in zip(model.eval_memory.memories, fresh, carried):
        np.testing.assert_allclose(np.asarray(v)[0], np.asarray(f)[0], atol=1e-5)
        np.testing.assert_allclose(np.asarray(v)[1], np.asarray(c)[0], atol=1e-5)
    np.testing.assert_array_equal(np.asarray(model.eval_memory.length), [4, 4])


def test_evaluation_uses_its_own_protocol():
    model = _model(mem_len=2, eval_mem_len=6, eval_clamp_len=3, eval_same_length=True)
    assert model.memory.memories[0].shape == (ROWS, 2, H) and model.eval_memory.memories[0].shape == (ROWS, 6, H)
    for seed in range(3):
        model.train_step(_batch(seed=seed))
    np.testing.assert_array_equal(np.asarray(model.memory.length), [2, 2])  # training keeps 2
    training_memory = [np.asarray(v) for v in model.memory.memories]
    batches = [_batch(seed=10 + s) for s in range(3)]
    memories, length = None, None
    for batch in batches:
        expected, memories, length = _loss(model.backbone, batch, memories, length, mem_len=6, clamp_len=3,
                                           same_length=True)
        for metric in model.metrics:
            metric.reset_state()
        logs = model.test_step(batch)
        assert float(logs["loss"]) == pytest.approx(float(expected), rel=1e-5)
        assert float(logs["bits_per_token"]) == pytest.approx(float(expected) / np.log(2), rel=1e-5)
    np.testing.assert_array_equal(np.asarray(model.eval_memory.length), [6, 6])
    for v, before in zip(model.memory.memories, training_memory):  # evaluation leaves training's memory alone
        np.testing.assert_array_equal(np.asarray(v), before)
    model.reset_state()
    assert not any(np.asarray(v).any() for v in model.memory.weights + model.eval_memory.weights)


def test_weights_and_smaller_batches():
    model = _model()
    weights = np.ones((ROWS, T), "float32")
    weights[1, 2:] = 0.0
    batch = _batch(weights=weights)
    expected, _, _ = _loss(model.backbone, batch)
    assert float(model.test_step(batch)["loss"]) == pytest.approx(float(expected), rel=1e-5)
    model.reset_state()
    model.test_step(_batch(rows=1))
    assert np.asarray(model.eval_memory.length).tolist() == [4, 0]
    assert not np.asarray(model.eval_memory.memories[0])[1].any()
    with pytest.raises(ZooError, match="--global_batch_size"):
        model.test_step(_batch(rows=3))
    with pytest.raises(ZooError, match="--eval_same_length"):
        _model(mem_len=2, eval_mem_len=0, eval_same_length=True)


def test_mixed_precision_train_step():
    keras.utils.set_random_seed(0)
    backbone = TransformerXLBackbone(V, 2, H, 2, 8, 32, cutoffs=[10, 20], div_val=2, dropout=0.0, init_std=0.1,
                                     dtype="mixed_float16")
    model = TransformerXLLanguageModel(backbone, per_replica_batch_size=ROWS, mem_len=4, clip_norm=0.25)
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5)))
    reference = _model(clip_norm=0.25)
    for seed in range(2):
        loss = float(model.train_step(_batch(seed=seed))["loss"])
        assert loss == pytest.approx(float(reference.train_step(_batch(seed=seed))["loss"]), rel=1e-2)
    assert all(v.dtype == "float32" for v in model.memory.memories + model.eval_memory.memories)
    for a, b in zip(model.trainable_variables, reference.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=5e-3)


@pytest.mark.slow  # XLA compilation: ~6 s on 2 idle cores
def test_xla_train_step_equals_eager():
    eager, xla = _model(clip_norm=0.25), _model(clip_norm=0.25)
    step = tf.function(xla.train_step, jit_compile=True)
    for seed in range(3):
        batch = _batch(seed=seed, reset=[float(seed == 1), 0])
        a, b = eager.train_step(batch), step(batch)
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5)
    for a, b in zip(eager.weights, xla.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


# === 2 replicas == 1 through the Trainer ===

GLOBAL_BATCH, STEPS = 4, 4


def _stream_dataset_fn(ctx):
    """Replica r of a step gets rows [r*b, (r+1)*b) of the global batch; row 1 restarts at step 2."""
    replicas = ctx.num_replicas_in_sync
    b = GLOBAL_BATCH // replicas
    streams = np.random.default_rng(5).integers(0, V, size=(GLOBAL_BATCH, STEPS * T + 1)).astype("int32")
    elements = {k: [] for k in ("token_ids", "targets", "weights", "reset")}
    for step in range(STEPS):
        reset = np.full(GLOBAL_BATCH, float(step == 0), "float32")
        reset[1] = reset[1] or step == 2
        for r in range(replicas):
            rows = slice(r * b, (r + 1) * b)
            elements["token_ids"].append(streams[rows, step * T:(step + 1) * T])
            elements["targets"].append(streams[rows, step * T + 1:(step + 1) * T + 1])
            elements["weights"].append(np.ones((b, T), "float32"))
            elements["reset"].append(reset[rows])
    return tf.data.Dataset.from_tensor_slices({k: np.stack(v) for k, v in elements.items()}).repeat()


def _eval_dataset_fn(ctx):
    return _stream_dataset_fn(ctx).take(2 * ctx.num_replicas_in_sync)


def _train(strategy, model_dir):
    with strategy.scope():
        model = _model(per_replica=GLOBAL_BATCH // strategy.num_replicas_in_sync, clip_norm=0.25,
                       eval_mem_len=6, eval_same_length=True)
    logs = Trainer(model, strategy=strategy, model_dir=str(model_dir), dataset_fn=_stream_dataset_fn,
                   global_batch_size=GLOBAL_BATCH, train_steps=STEPS, checkpoint_every=2, log_every=1,
                   verbose=False, eval_dataset_fn=_eval_dataset_fn).train()
    memories = [np.concatenate([np.asarray(x) for x in strategy.experimental_local_results(v.value)])
                for v in model.memory.memories]
    return model, logs, memories


@pytest.mark.slow
@pytest.mark.distributed
def test_two_replicas_equal_one_with_memories_carried(tmp_path, mirrored):
    one, one_logs, one_memories = _train(tf.distribute.get_strategy(), tmp_path / "one")
    two, two_logs, two_memories = _train(mirrored, tmp_path / "two")
    assert one_logs["loss"] == pytest.approx(two_logs["loss"], rel=1e-5)
    for name in ("loss", "perplexity", "bits_per_token"):
        assert one_logs[f"eval/{name}"] == pytest.approx(two_logs[f"eval/{name}"], rel=1e-5), name
    for a, b in zip(one_memories, two_memories):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b in zip(one.trainable_variables, two.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


# === Evaluation memory outside checkpoints: a resume may change eval_mem_len ===


def _run(model_dir, steps, eval_mem_len, strategy=None):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = _model(per_replica=GLOBAL_BATCH // strategy.num_replicas_in_sync, clip_norm=0.25,
                       eval_mem_len=eval_mem_len)
    trainer = Trainer(model, strategy=strategy, model_dir=str(model_dir), dataset_fn=_stream_dataset_fn,
                      global_batch_size=GLOBAL_BATCH, train_steps=steps, checkpoint_every=2, log_every=2,
                      verbose=False, eval_dataset_fn=_eval_dataset_fn)
    return model, trainer.train()


@pytest.mark.slow  # three Trainer runs: ~8 s on 2 idle cores
def test_resume_with_another_eval_mem_len_equals_an_uninterrupted_run(tmp_path):
    straight, straight_logs = _run(tmp_path / "straight", 4, eval_mem_len=3)
    _run(tmp_path / "resumed", 2, eval_mem_len=6)
    saved = dict(tf.train.list_variables(str(tmp_path / "resumed" / "ckpt-2")))
    assert not [n for n in saved if "eval_memory" in n]  # the model holds no evaluation memory
    carried = sorted(shape for n, shape in saved.items() if n.startswith("carried_state/"))
    assert carried == sorted([[GLOBAL_BATCH, 4, H]] * 2 + [[GLOBAL_BATCH]])  # training slots (mem_len 4) only
    resumed, logs = _run(tmp_path / "resumed", 4, eval_mem_len=3)
    for name in ("loss", "eval/loss", "eval/bits_per_token"):
        assert logs[name] == pytest.approx(straight_logs[name], rel=1e-5), name
    for a, b in zip(resumed.weights, straight.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path)


@pytest.mark.slow
@pytest.mark.distributed
def test_two_replica_resume_with_another_eval_mem_len_equals_one_uninterrupted(tmp_path, mirrored):
    straight, straight_logs = _run(tmp_path / "straight", 4, eval_mem_len=3)
    _run(tmp_path / "resumed", 2, eval_mem_len=6, strategy=mirrored)
    resumed, logs = _run(tmp_path / "resumed", 4, eval_mem_len=3, strategy=mirrored)
    for name in ("loss", "eval/loss", "eval/bits_per_token"):
        assert logs[name] == pytest.approx(straight_logs[name], rel=1e-5), name
    for a, b in zip(resumed.trainable_variables, straight.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, err_msg=a.path)
