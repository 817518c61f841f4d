"""The trainer's contracts: evaluation, steps per loop, the global step and carried per-replica state."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.training.trainer import Trainer
from tests.training.stateful_model import StreamModel, stream_data, stream_dataset_fn

GLOBAL_BATCH = 8
EVAL_ROWS = 10  # batches of 3 per pipeline: replicas get unequal numbers of rows


def _eval_fn(ctx):
    x, y = stream_data(seed=1)
    ds = tf.data.Dataset.from_tensor_slices((x[:EVAL_ROWS], y[:EVAL_ROWS]))
    return ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id).batch(3)


def _trainer(strategy, model_dir, steps, eval_dataset_fn=None, **kwargs):
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model = StreamModel(GLOBAL_BATCH // replicas)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    kwargs = {"checkpoint_every": 3, "log_every": 1, **kwargs}
    return model, Trainer(model, strategy=strategy, model_dir=str(model_dir),
                          dataset_fn=stream_dataset_fn(GLOBAL_BATCH), global_batch_size=GLOBAL_BATCH,
                          train_steps=steps, verbose=False, eval_dataset_fn=eval_dataset_fn, **kwargs)


def _state(strategy, model):
    """The carried memory as the rows of the global batch, in order."""
    return np.concatenate([np.asarray(v) for v in strategy.experimental_local_results(model.memory.value)])


def _train(strategy, model_dir, steps, **kwargs):
    model, trainer = _trainer(strategy, model_dir, steps, **kwargs)
    logs = trainer.train()
    return model, logs, _state(strategy, model)


@pytest.mark.distributed
def test_carried_state_two_replicas_equal_one(tmp_path, mirrored):
    one, one_logs, one_state = _train(tf.distribute.get_strategy(), tmp_path / "one", 5)
    two, two_logs, two_state = _train(mirrored, tmp_path / "two", 5)
    np.testing.assert_allclose(one_state, two_state, rtol=1e-6)
    for a, b in zip(one.dense.get_weights(), two.dense.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert one_logs["loss"] == pytest.approx(two_logs["loss"], rel=1e-5)
    # The state is not averaged: replica 0's and replica 1's rows differ.
    assert not np.allclose(two_state[:4], two_state[4:])


@pytest.mark.distributed
def test_carried_state_resumes_exactly_on_every_replica(tmp_path, mirrored):
    straight, _, straight_state = _train(mirrored, tmp_path / "straight", 7)
    _train(mirrored, tmp_path / "resumed", 4)  # checkpoints at 3 and 4
    resumed, _, resumed_state = _train(mirrored, tmp_path / "resumed", 7)
    np.testing.assert_allclose(straight_state, resumed_state, rtol=1e-6)
    for a, b in zip(straight.dense.get_weights(), resumed.dense.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.distributed
def test_carried_state_on_another_replica_count_is_refused(tmp_path, mirrored):
    _train(mirrored, tmp_path, 3)
    with pytest.raises(ZooError, match=r"saved on 2 replica\(s\), but this run has 1"):
        _train(tf.distribute.get_strategy(), tmp_path, 4)


@pytest.mark.parametrize("distributed", [False, True])
def test_evaluation_is_the_exact_global_mean(tmp_path, distributed, request):
    strategy = request.getfixturevalue("mirrored") if distributed else tf.distribute.get_strategy()
    model, trainer = _trainer(strategy, tmp_path, 2, eval_dataset_fn=_eval_fn)
    logs = trainer.train()
    state = _state(strategy, model)
    x, y = stream_data(seed=1)
    zero_memory = np.zeros((EVAL_ROWS, 2), "float32")  # evaluation starts from zero state
    kernel, bias = model.dense.get_weights()
    expected = np.mean(((np.concatenate([x[:EVAL_ROWS], zero_memory], 1) @ kernel)[:, 0] + bias - y[:EVAL_ROWS]) ** 2)
    assert logs["eval/loss"] == pytest.approx(expected, rel=1e-5)
    assert trainer.evaluate() == {"loss": pytest.approx(expected, rel=1e-5)}
    np.testing.assert_array_equal(_state(strategy, model), state)  # the training state is put back


def test_evaluation_every_n_steps_writes_tensorboard_and_hooks(tmp_path):
    from tests.recipe_run import summary_tags

    seen = []
    _, trainer = _trainer(tf.distribute.get_strategy(), tmp_path, 5, eval_dataset_fn=_eval_fn, eval_every=2,
                          eval_steps=2, hooks=[lambda step, logs: seen.append((step, sorted(logs)))])
    trainer.train()
    assert [s for s, keys in seen if keys == ["eval/loss"]] == [2, 4, 5]
    assert "loss" in summary_tags(str(tmp_path / "eval"))


def test_eval_extras_join_the_evaluation_results(tmp_path):
    from tests.recipe_run import summary_tags

    calls = []

    def bleu():
        calls.append(1)
        return {"bleu": 12.5}

    _, trainer = _trainer(tf.distribute.get_strategy(), tmp_path, 4, eval_dataset_fn=_eval_fn, eval_every=2,
                          eval_extras=[bleu])
    logs = trainer.train()
    assert logs["eval/bleu"] == 12.5 and "eval/loss" in logs and len(calls) == 2  # at step 2 and at the end
    assert trainer.evaluate()["bleu"] == 12.5
    assert "bleu" in summary_tags(str(tmp_path / "eval"))


def test_steps_per_loop_gives_the_same_run(tmp_path):
    seen = {}

    def run(name, steps_per_loop):
        seen[name] = []
        model, logs, state = _train(tf.distribute.get_strategy(), tmp_path / name, 10, steps_per_loop=steps_per_loop,
                                    checkpoint_every=5, log_every=3,
                                    hooks=[lambda step, logs: seen[name].append((step, logs["step"]))])
        return model, state

    one, one_state = run("one", 1)
    four, four_state = run("four", 4)
    for a, b in zip(one.dense.get_weights(), four.dense.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(one_state, four_state, rtol=1e-6)
    # Logs keep their interval, and the step a model reads advances inside a loop: means of 0..2, 3..5, ...
    assert seen["one"] == seen["four"] == [(3, 1.0), (6, 4.0), (9, 7.0), (10, 9.0)]
    assert tf.train.latest_checkpoint(str(tmp_path / "four")).endswith("ckpt-10")
    assert sorted(p.name for p in (tmp_path / "four").glob("ckpt-*.index")) == ["ckpt-10.index", "ckpt-5.index"]


def test_global_step_continues_after_resume(tmp_path):
    _train(tf.distribute.get_strategy(), tmp_path, 3)
    _, logs, _ = _train(tf.distribute.get_strategy(), tmp_path, 5)
    assert logs["step"] == 4.0


def test_invalid_loop_and_eval_settings(tmp_path):
    with pytest.raises(ZooError, match="--steps_per_loop must be at least 1"):
        _trainer(tf.distribute.get_strategy(), tmp_path, 3, steps_per_loop=0)
    with pytest.raises(ZooError, match="--eval_every must be 0 \\(off\\) or positive"):
        _trainer(tf.distribute.get_strategy(), tmp_path, 3, eval_every=-1)
