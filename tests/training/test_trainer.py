import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.errors import ZooError
from zoo.models.bert import BertPretrainer
from zoo.training.trainer import Trainer
from tests.training.mwms_worker import TINY, examples

GLOBAL_BATCH = 8
EXAMPLES = examples()


def dataset_fn(ctx):
    ds = tf.data.Dataset.from_tensor_slices(EXAMPLES).repeat()
    ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    return ds.batch(ctx.get_per_replica_batch_size(GLOBAL_BATCH), drop_remainder=True)


def _initial_weights():
    keras.utils.set_random_seed(7)
    return BertPretrainer(zoo.create_model("bert_tiny", **TINY)).get_weights()


INITIAL = _initial_weights()


def _train(strategy, model_dir, steps, jit_compile=False, clip_norm=None, **kwargs):
    with strategy.scope():
        model = BertPretrainer(zoo.create_model("bert_tiny", **TINY), clip_norm=clip_norm)
        model.set_weights(INITIAL)
        model.compile(optimizer=keras.optimizers.AdamW(1e-2, weight_decay=0.01))
    trainer = Trainer(model, strategy=strategy, model_dir=str(model_dir), dataset_fn=dataset_fn,
                      global_batch_size=GLOBAL_BATCH, train_steps=steps, checkpoint_every=2, log_every=1,
                      jit_compile=jit_compile, verbose=False, **kwargs)
    logs = trainer.train()
    return model, logs


@pytest.mark.slow
@pytest.mark.distributed
def test_two_replicas_equal_one_replica_at_same_global_batch(tmp_path, mirrored):
    # clip_norm=0.05 is active at every step: the global gradient is clipped, not each replica's share.
    single, single_logs = _train(tf.distribute.get_strategy(), tmp_path / "one", steps=3, clip_norm=0.05)
    two, mirrored_logs = _train(mirrored, tmp_path / "two", steps=3, clip_norm=0.05)
    assert mirrored.num_replicas_in_sync == 2
    for a, b in zip(single.get_weights(), two.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    assert not np.allclose(single.get_weights()[0], INITIAL[0])
    for key in ("loss", "mlm_accuracy", "nsp_accuracy"):
        assert single_logs[key] == pytest.approx(mirrored_logs[key], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    straight, _ = _train(tf.distribute.get_strategy(), tmp_path / "straight", steps=6)
    _train(tf.distribute.get_strategy(), tmp_path / "resumed", steps=4)
    resumed, _ = _train(tf.distribute.get_strategy(), tmp_path / "resumed", steps=6)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert tf.train.latest_checkpoint(str(tmp_path / "resumed")).endswith("ckpt-6")


def test_xla_train_steps(tmp_path):
    model, logs = _train(tf.distribute.get_strategy(), tmp_path, steps=2, jit_compile=True)
    assert np.isfinite(logs["loss"])


def test_writes_config_and_tensorboard(tmp_path):
    _train(tf.distribute.get_strategy(), tmp_path, steps=2, config={"model": "tiny", "vocab_size": 40})
    assert json.load(open(tmp_path / "config.json")) == {"model": "tiny", "vocab_size": 40}
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(tmp_path / "train"))


def test_different_config_is_refused(tmp_path):
    _train(tf.distribute.get_strategy(), tmp_path, steps=2, config={"vocab_size": 40})
    with pytest.raises(ZooError, match=r"different config \(vocab_size: 40 in the checkpoint, 41 now"):
        _train(tf.distribute.get_strategy(), tmp_path, steps=4, config={"vocab_size": 41})


def test_checkpoint_of_another_model_is_refused(tmp_path):
    _train(tf.distribute.get_strategy(), tmp_path, steps=2)
    with tf.distribute.get_strategy().scope():
        other = BertPretrainer(zoo.create_model("bert_tiny", **{**TINY, "vocabulary_size": 41}))
        other.compile(optimizer=keras.optimizers.AdamW(1e-2))
    trainer = Trainer(other, strategy=tf.distribute.get_strategy(), model_dir=str(tmp_path), dataset_fn=dataset_fn,
                      global_batch_size=GLOBAL_BATCH, train_steps=4, verbose=False)
    with pytest.raises(ZooError, match="does not fit this model"):
        trainer.train()


@pytest.mark.distributed
def test_batch_not_divisible_by_replicas(mirrored):
    strategy = mirrored
    with strategy.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ZooError, match="--global_batch_size=7 must be a positive multiple of the replica count"):
        Trainer(model, strategy=strategy, model_dir="unused", dataset_fn=dataset_fn, global_batch_size=7,
                train_steps=1)


@pytest.mark.distributed
def test_plain_compiled_keras_model_under_mirrored(tmp_path, mirrored):
    """Models that keep Keras' own train_step (compile(loss=..., metrics=...)) train too."""
    strategy = mirrored
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")

    def fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices((x, y)).repeat()
        return ds.batch(ctx.get_per_replica_batch_size(16), drop_remainder=True)

    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    logs = Trainer(model, strategy=strategy, model_dir=str(tmp_path), dataset_fn=fn, global_batch_size=16,
                   train_steps=60, verbose=False).train()
    assert logs["loss"] < 1e-2 and "mae" in logs


@pytest.mark.slow
def test_hooks_run_on_log_steps(tmp_path):
    seen = []
    _train(tf.distribute.get_strategy(), tmp_path, steps=3, hooks=[lambda step, logs: seen.append(step)])
    assert seen == [1, 2, 3]


@pytest.mark.slow
def test_resume_is_exact_with_dropout(tmp_path):
    """Dropout's random-number state is checkpointed, so an interrupted run equals an uninterrupted one."""
    def train(model_dir, steps):
        with tf.distribute.get_strategy().scope():
            model = BertPretrainer(zoo.create_model("bert_tiny", **{**TINY, "dropout": 0.3}))
            model.set_weights(INITIAL)
            model.compile(optimizer=keras.optimizers.SGD(0.1))
        Trainer(model, strategy=tf.distribute.get_strategy(), model_dir=str(model_dir), dataset_fn=dataset_fn,
                global_batch_size=GLOBAL_BATCH, train_steps=steps, checkpoint_every=2, verbose=False).train()
        return model.get_weights()

    keras.utils.set_random_seed(11)
    straight = train(tmp_path / "straight", 4)
    keras.utils.set_random_seed(11)
    train(tmp_path / "resumed", 2)
    keras.utils.set_random_seed(99)  # a restarted process would not share the Python-side state
    resumed = train(tmp_path / "resumed", 4)
    for a, b in zip(straight, resumed):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.distributed
def test_xla_with_several_cpu_replicas_is_refused(mirrored):
    with mirrored.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ZooError, match="--jit_compile needs one device"):
        Trainer(model, strategy=mirrored, model_dir="unused", dataset_fn=dataset_fn, global_batch_size=8,
                train_steps=1, jit_compile=True)


@pytest.mark.distributed
def test_float16_overflow_on_one_replica_is_skipped_everywhere(mirrored):
    """LossScaleOptimizer looks at replica 0's gradients only; zoo.ops.finite_or_nan spreads an overflow."""
    from zoo.ops import finite_or_nan

    def step():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        grad = tf.where(replica == 1, tf.constant([float("inf"), 1.0]), tf.constant([1.0, 1.0]))
        return finite_or_nan([grad])[0]

    results = mirrored.experimental_local_results(mirrored.run(tf.function(step)))
    assert all(np.isnan(np.asarray(r)).all() for r in results)
    fine = mirrored.experimental_local_results(mirrored.run(tf.function(lambda: finite_or_nan([tf.ones(2)])[0])))
    assert all((np.asarray(r) == 1).all() for r in fine)


@pytest.mark.slow
@pytest.mark.distributed
def test_mixed_float16_pretraining_under_mirrored(tmp_path, mirrored):
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with mirrored.scope():
            model = BertPretrainer(zoo.create_model("bert_tiny", **TINY), clip_norm=1.0)
            model.compile(optimizer=keras.optimizers.AdamW(1e-2))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        logs = Trainer(model, strategy=mirrored, model_dir=str(tmp_path), dataset_fn=dataset_fn,
                       global_batch_size=GLOBAL_BATCH, train_steps=3, verbose=False).train()
    finally:
        keras.mixed_precision.set_global_policy(policy)
    assert np.isfinite(logs["loss"])
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_a_dataset_fn_that_skips_itself_is_asked_to_start_at_the_consumed_batch(tmp_path):
    calls = []

    def skipping_fn(ctx, start_batch=0):
        calls.append(start_batch)
        return dataset_fn(ctx).skip(start_batch)

    skipping_fn.skips_itself = True
    strategy = tf.distribute.get_strategy()
    for steps in (2, 3):
        with strategy.scope():
            model = BertPretrainer(zoo.create_model("bert_tiny", **TINY))
            model.compile(optimizer=keras.optimizers.SGD(1e-2))
        Trainer(model, strategy=strategy, model_dir=str(tmp_path), dataset_fn=skipping_fn,
                global_batch_size=GLOBAL_BATCH, train_steps=steps, checkpoint_every=2, verbose=False).train()
    # (also called with 0 for the element spec) the resumed run asks for batch 2 itself instead of skipping two
    assert calls[-1] == 2 and set(calls) == {0, 2}
