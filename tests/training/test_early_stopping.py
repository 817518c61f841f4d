"""Early stopping in the one Trainer: the stop, the best weights, reruns, resumes, 2 replicas, errors.

The watched metric is scripted: `ScriptedModel.test_step` reports SCORES[global step] as "score", while its
weights train by SGD (so every step's weights differ and the best weights can be checked).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.ops import global_step, weighted_mean
from zoo.training.checkpoints import checkpoint_numbers
from zoo.training.early_stopping import BEST_STEP_KEY, EarlyStopping
from zoo.training.trainer import Trainer
from tests.training.test_multi_worker import _free_ports

GLOBAL_BATCH = 8
# Evaluations every 2 steps: best 0.6 at step 8; 10, 12 (equal is no improvement) and 14 do not improve.
SCORES = np.zeros(41, "float32")
SCORES[2:20:2] = [0.1, 0.5, 0.4, 0.6, 0.55, 0.6, 0.59, 0.9, 0.95]
X = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
Y = X @ np.array([1.0, -1.0], "float32")


class ScriptedModel(keras.Model):
    def __init__(self, scores, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1, kernel_initializer="zeros")
        self.dense.build((None, 2))
        self.scores = tf.constant(scores)
        self.score = keras.metrics.Mean(name="score")
        self.eval_loss = keras.metrics.Mean(name="loss")

    def call(self, x):
        return self.dense(x)[:, 0]

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            share, total = weighted_mean(tf.square(self(x) - y))
        grads = tape.gradient(share, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": total}

    def test_step(self, data):
        x, y = data
        self.eval_loss.update_state(tf.square(self(x) - y))
        self.score.update_state(tf.fill(tf.shape(y), tf.gather(self.scores, global_step(self))))
        return {"score": self.score.result(), "loss": self.eval_loss.result()}


def _data(ctx):
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).repeat().shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    return ds.batch(ctx.get_per_replica_batch_size(GLOBAL_BATCH), drop_remainder=True)


def _dev(ctx):  # 10 rows in batches of 3: replicas get unequal shares
    ds = tf.data.Dataset.from_tensor_slices((X[:10], Y[:10])).shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    return ds.batch(3)


def _trainer(model_dir, strategy=None, scores=SCORES, early_stopping="default", hooks=(), **kwargs):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = ScriptedModel(scores)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    snapshots = {}

    def snapshot(step, logs):
        if not any(k.startswith("eval/") for k in logs):
            snapshots[step] = [np.array(w) for w in model.get_weights()]

    kwargs = {"train_steps": 30, "checkpoint_every": 4, "log_every": 1, "eval_every": 2, "verbose": False, **kwargs}
    early_stopping = EarlyStopping("score", patience=3) if early_stopping == "default" else early_stopping
    trainer = Trainer(model, strategy=strategy, model_dir=str(model_dir), dataset_fn=_data,
                      global_batch_size=GLOBAL_BATCH, eval_dataset_fn=_dev, early_stopping=early_stopping,
                      hooks=[snapshot, *hooks], **kwargs)
    return model, trainer, snapshots


def _assert_weights(actual, expected, **tolerance):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        np.testing.assert_allclose(a, b, **(tolerance or {"rtol": 0, "atol": 0}))


def test_stops_after_patience_and_restores_best_weights(tmp_path, capsys):
    model, trainer, snapshots = _trainer(tmp_path, verbose=True)
    logs = trainer.train()
    assert logs["stopped_early"] is True and logs["best_step"] == 8
    assert logs["best/score"] == pytest.approx(0.6) and logs["eval/score"] == pytest.approx(0.59)
    assert int(trainer.step.numpy()) == 14 and max(snapshots) == 14
    assert "early stopping at step 14: score has not improved on 0.6 (step 8) in 3 evaluations" in \
        capsys.readouterr().out
    # A regular checkpoint at the stop step (not a checkpoint_every step); best/ holds the best steps the kept
    # checkpoints name: 4 (ckpt-8, saved before step 8's decision) and 8 (ckpt-12, ckpt-14).
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-14")
    assert sorted(n for n in os.listdir(tmp_path / "best") if n.startswith("ckpt")) == \
        ["ckpt-4.data-00000-of-00001", "ckpt-4.index", "ckpt-8.data-00000-of-00001", "ckpt-8.index"]
    _assert_weights(model.get_weights(), snapshots[14])
    assert not np.allclose(snapshots[8][0], snapshots[14][0])
    assert trainer.restore_best().endswith(os.path.join("best", "ckpt-8"))
    _assert_weights(model.get_weights(), snapshots[8])

    # A rerun with the same flags trains no further, says so, and still finds the best weights; a
    # half-written newer best checkpoint (files, no bookkeeping) is never read.
    for name in ("ckpt-16.index", "ckpt-16.data-00000-of-00001"):
        (tmp_path / "best" / name).write_bytes(b"half written")
    best = snapshots[8]
    model, trainer, snapshots = _trainer(tmp_path, verbose=True)
    rerun = trainer.train()
    out = capsys.readouterr().out
    assert f"the run in {tmp_path} stopped early at step 14 (best score 0.6 at step 8, then 3 evaluations" in out
    assert not snapshots and int(trainer.step.numpy()) == 14
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-14")
    assert rerun == pytest.approx({k: v for k, v in logs.items() if k != "loss"})  # no train step, no loss
    trainer.restore_best()
    _assert_weights(model.get_weights(), best)


def test_resumed_run_decides_as_an_uninterrupted_one(tmp_path):
    straight, trainer, snapshots = _trainer(tmp_path / "straight")
    straight_logs = trainer.train()
    trainer.restore_best()
    straight_best = straight.get_weights()

    def kill(step, logs):
        if step == 13:
            raise KeyboardInterrupt  # after the checkpoint at 12, which holds 2 evaluations without improvement

    _, killed, _ = _trainer(tmp_path / "resumed", hooks=[kill])
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    assert killed.early_stopping.wait == 2 and killed.early_stopping.best_step == 8
    resumed, trainer, resumed_snapshots = _trainer(tmp_path / "resumed")
    logs = trainer.train()
    assert min(resumed_snapshots) == 13  # resumed from step 12, and stopped at 14 as the straight run
    assert logs == pytest.approx(straight_logs) and int(trainer.step.numpy()) == 14
    _assert_weights(resumed.get_weights(), snapshots[14], rtol=1e-6, atol=1e-7)
    trainer.restore_best()
    _assert_weights(resumed.get_weights(), straight_best, rtol=1e-6, atol=1e-7)


def test_run_checkpointed_without_early_stopping_resumes_with_it(tmp_path):
    _trainer(tmp_path, early_stopping=None, train_steps=4, eval_every=None)[1].train()
    _, trainer, snapshots = _trainer(tmp_path)
    logs = trainer.train()  # evaluations from step 6 on: 0.4, 0.6 (best), then 3 without improvement
    assert min(snapshots) == 5 and logs["stopped_early"] is True and logs["best_step"] == 8
    assert int(trainer.step.numpy()) == 14


def test_final_evaluation_counts_min_mode_and_min_delta(tmp_path):
    # Evaluations at 3, 6 and the final step 7: 0.45 is within min_delta of 0.5, 0.3 improves.
    scores = np.zeros(8, "float32")
    scores[[3, 6, 7]] = [0.5, 0.45, 0.3]
    es = EarlyStopping("score", patience=2, mode="min", min_delta=0.1)
    model, trainer, snapshots = _trainer(tmp_path, scores=scores, early_stopping=es, train_steps=7, eval_every=3)
    logs = trainer.train()
    assert logs["stopped_early"] is False and logs["best_step"] == 7 and logs["best/score"] == pytest.approx(0.3)
    assert logs["eval/score"] == pytest.approx(0.3) and trainer.early_stopping.wait == 0
    trainer.restore_best()
    _assert_weights(model.get_weights(), snapshots[7])
    # A finished run: the rerun evaluates again but does not count that evaluation.
    _, trainer, _ = _trainer(tmp_path, scores=scores, early_stopping=es, train_steps=7, eval_every=3)
    rerun = trainer.train()
    assert rerun == pytest.approx({k: v for k, v in logs.items() if k != "loss"}) and trainer.early_stopping.wait == 0


@pytest.mark.distributed
def test_two_replicas_stop_as_one(tmp_path, mirrored):
    """patience=1: best 0.5 at step 4, stop at 6 (few evaluations: each builds a multi-device iterator)."""
    assert mirrored.num_replicas_in_sync == 2
    runs = [_trainer(tmp_path / name, strategy=strategy, early_stopping=EarlyStopping("score", patience=1))
            for name, strategy in (("one", None), ("two", mirrored))]
    (one, one_trainer, one_snapshots), (two, two_trainer, two_snapshots) = runs
    one_logs, two_logs = one_trainer.train(), two_trainer.train()
    assert one_logs == pytest.approx(two_logs, rel=1e-5) and two_logs["best_step"] == 4
    assert two_logs["stopped_early"] is True and max(one_snapshots) == max(two_snapshots) == 6
    _assert_weights(two.get_weights(), one_snapshots[6], rtol=1e-5, atol=1e-6)
    two_trainer.restore_best()
    for replica in mirrored.experimental_local_results(two.dense.kernel.value):
        np.testing.assert_allclose(np.asarray(replica), one_snapshots[4][0], rtol=1e-5, atol=1e-6)
    _assert_weights(two.get_weights(), one_snapshots[4], rtol=1e-5, atol=1e-6)


def _worker(strategy_name, model_dir, out):
    """One process of the multi-worker test: trains with early stopping, restores the best weights."""
    from zoo.training.strategy import from_flag

    _, trainer, snapshots = _trainer(model_dir, strategy=from_flag(strategy_name))
    logs = trainer.train()
    stop_weights = trainer.model.get_weights()
    trainer.restore_best()
    np.savez(out, logs=json.dumps(logs), chief=trainer.is_chief, best_dir=trainer.early_stopping.best_directory(),
             stop=stop_weights[0], best=trainer.model.get_weights()[0])


@pytest.mark.slow
@pytest.mark.distributed
def test_two_workers_stop_as_one_process(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": root}
    procs = [subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "multi_worker", str(tmp_path / "mw"), str(tmp_path / f"w{i}.npz")],
        env={**env, "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(2)]
    one, trainer, snapshots = _trainer(tmp_path / "one")
    one_logs = trainer.train()
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-3000:]
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert bool(w0["chief"]) and not bool(w1["chief"])
    for w in (w0, w1):  # every worker took the same decisions as one process
        assert json.loads(str(w["logs"])) == pytest.approx(one_logs, rel=1e-5)
        np.testing.assert_allclose(w["stop"], snapshots[14][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(w["best"], snapshots[8][0], rtol=1e-5, atol=1e-6)
    # The chief wrote best/ in model_dir; the other worker its own copy, removed when it exited.
    assert str(w0["best_dir"]) == str(tmp_path / "mw" / "best")
    assert os.path.exists(tmp_path / "mw" / "best" / "ckpt-8.index")
    assert not str(w1["best_dir"]).startswith(str(tmp_path)) and not os.path.exists(str(w1["best_dir"]))


def _best_steps(model_dir):
    names = os.listdir(os.path.join(model_dir, "best"))
    return sorted({int(n[len("ckpt-"):].split(".")[0]) for n in names if n.startswith("ckpt-")})


def _named_steps(model_dir):
    """The best steps named by the regular checkpoints on disk."""
    return sorted({int(tf.train.load_variable(os.path.join(model_dir, f"ckpt-{n}"), BEST_STEP_KEY))
                   for n in checkpoint_numbers(model_dir)})


def test_kill_between_improvement_and_checkpoint_keeps_the_named_best(tmp_path):
    """Fix: best/ used to keep one checkpoint, so an improvement at 6 deleted best/ckpt-4 while the regular
    checkpoint at 4 (the only one a resume finds) still named it."""
    scores = np.full(41, 0.2, "float32")
    scores[[4, 6]] = [0.5, 0.7]  # improvements at 4 (a checkpoint step) and 6 (not one: checkpoints every 4)

    def kill(step, logs):
        if step == 7:
            raise KeyboardInterrupt

    _, killed, snapshots = _trainer(tmp_path, scores=scores, hooks=[kill])
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    # ckpt-4 was saved before step 4's decision, so it names best step 2; 4 and 6 are not named yet.
    assert _best_steps(tmp_path) == [2, 4, 6] and _named_steps(tmp_path) == [2]
    # Resumed from step 4 with --train_steps cut before the improvement at 6: step 4's evaluation is counted
    # again, the final one at 5 does not improve, so the best is step 4's weights; the checkpoint at 5 prunes
    # the orphaned best/ckpt-6.
    model, trainer, _ = _trainer(tmp_path, scores=scores, train_steps=5)
    logs = trainer.train()
    assert logs["best_step"] == 4 and logs["best/score"] == pytest.approx(0.5) and logs["stopped_early"] is False
    assert trainer.restore_best().endswith(os.path.join("best", "ckpt-4"))
    _assert_weights(model.get_weights(), snapshots[4])
    assert _best_steps(tmp_path) == _named_steps(tmp_path) == [2, 4]


def test_best_dir_holds_only_what_checkpoints_name(tmp_path):
    seen = []

    def check(step, logs):  # training logs at a checkpoint step come right after its save (and pruning)
        if step % 4 == 0 and "loss" in logs:
            seen.append((step, _best_steps(tmp_path), _named_steps(tmp_path)))

    scores = np.zeros(23, "float32")  # improvements at 2, 4, 8, 16, 18 (between checkpoints), 20 and 22
    scores[2::2] = [0.1, 0.5, 0.4, 0.6, 0.55, 0.6, 0.59, 0.7, 0.8, 0.85, 0.9]
    _trainer(tmp_path, scores=scores, hooks=[check], max_to_keep=2, train_steps=22,
             early_stopping=EarlyStopping("score", patience=10))[1].train()
    assert [s for s, _, _ in seen] == [4, 8, 12, 16, 20]
    # A checkpoint at an evaluation step is saved before that step's decision, so it names the best before it.
    assert [best for _, best, _ in seen] == [[2], [2, 4], [4, 8], [8], [8, 18]]
    assert all(best == named for _, best, named in seen), seen
    # ckpt-20 and ckpt-22 name 18 and 20; 22's improvement came after the last save.
    assert _best_steps(tmp_path) == [18, 20, 22] and _named_steps(tmp_path) == [18, 20]


@pytest.mark.parametrize("with_early_stopping", [False, True])
def test_failing_evaluation_keeps_the_checkpoint_of_its_step(tmp_path, with_early_stopping):
    """Fix: the evaluation ran before the checkpoint of its step, so an evaluation that failed lost it."""
    def failing(step):
        def extra():
            if int(trainer.step.numpy()) == step:
                raise RuntimeError("decoding ran out of memory")
            return {}
        return extra

    es = "default" if with_early_stopping else None
    fail_at = 12 if with_early_stopping else 30
    _, trainer, snapshots = _trainer(tmp_path / "failed", early_stopping=es, eval_extras=[failing(fail_at)])
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.train()
    assert tf.train.latest_checkpoint(str(tmp_path / "failed")).endswith(f"ckpt-{fail_at}")
    if not with_early_stopping:
        return
    # The checkpoint at 12 was saved before the decision (1 evaluation without improvement, the last at
    # 10); resumed, the run evaluates step 12 again before training on, and decides as an uninterrupted one.
    path = str(tmp_path / "failed" / "ckpt-12")
    assert tf.train.load_variable(path, "early_stopping/wait/.ATTRIBUTES/VARIABLE_VALUE") == 1
    straight, trainer, straight_snapshots = _trainer(tmp_path / "straight")
    straight_logs = trainer.train()
    # ckpt-12 holds the state before step 12's decision (saved once, before evaluating: a checkpoint is never
    # rewritten in place); ckpt-14, the stop between checkpoints, the state after it.
    for n, wait, evaluated in ((12, 1, 10), (14, 3, 14)):
        path = str(tmp_path / "straight" / f"ckpt-{n}")
        assert tf.train.load_variable(path, "early_stopping/wait/.ATTRIBUTES/VARIABLE_VALUE") == wait
        assert tf.train.load_variable(path, "early_stopping/evaluated/.ATTRIBUTES/VARIABLE_VALUE") == evaluated
    resumed, trainer, snapshots = _trainer(tmp_path / "failed")
    logs = trainer.train()
    assert min(snapshots) == 13 and int(trainer.step.numpy()) == 14
    assert logs == pytest.approx(straight_logs)
    _assert_weights(resumed.get_weights(), straight_snapshots[14], rtol=1e-6, atol=1e-7)
    trainer.restore_best()
    _assert_weights(resumed.get_weights(), straight_snapshots[8], rtol=1e-6, atol=1e-7)


def test_early_stop_logs_the_partial_interval(tmp_path):
    """Fix: a stop between log steps skipped the last training log, and train() returned a stale loss."""
    losses = {}
    _trainer(tmp_path / "every_step",
             hooks=[lambda step, logs: losses.update({step: logs["loss"]} if "loss" in logs else {})])[1].train()
    seen = []
    _, trainer, _ = _trainer(tmp_path / "every_5", log_every=5, hooks=[lambda step, logs: seen.append((step, logs))])
    logs = trainer.train()
    train_logs = [(step, logs["loss"]) for step, logs in seen if "loss" in logs]
    assert [step for step, _ in train_logs] == [5, 10, 14]
    expected = np.mean([losses[s] for s in range(11, 15)])
    assert train_logs[-1][1] == pytest.approx(expected, rel=1e-6) and logs["loss"] == pytest.approx(expected, rel=1e-6)


def test_rerun_with_early_stopping_of_a_run_finished_without_it(tmp_path):
    """Fix: the rerun's evaluation was never counted, so restore_best() had no best weights."""
    _, trainer, snapshots = _trainer(tmp_path, early_stopping=None, train_steps=8, eval_every=None)
    trainer.train()
    model, trainer, _ = _trainer(tmp_path, train_steps=8)
    logs = trainer.train()
    assert logs["best_step"] == 8 and logs["best/score"] == pytest.approx(0.6) and logs["stopped_early"] is False
    trainer.restore_best()
    _assert_weights(model.get_weights(), snapshots[8])
    _, trainer, _ = _trainer(tmp_path, train_steps=8)  # counted once: a second rerun does not count it again
    assert trainer.train()["best_step"] == 8 and trainer.early_stopping.wait == 0


def test_errors(tmp_path):
    with pytest.raises(ZooError, match="--patience must be a whole number of evaluations >= 1, got 0"):
        EarlyStopping("score", patience=0)
    with pytest.raises(ZooError, match="mode='maximum' is not one of max, min"):
        EarlyStopping("score", patience=1, mode="maximum")
    with pytest.raises(ZooError, match="--min_delta must be 0 or positive"):
        EarlyStopping("score", patience=1, min_delta=-1)
    with pytest.raises(ZooError, match="needs evaluation data: pass eval_dataset_fn"):
        Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), strategy=tf.distribute.get_strategy(),
                model_dir=str(tmp_path), dataset_fn=_data, global_batch_size=8, train_steps=1,
                early_stopping=EarlyStopping("score", patience=1))
    _, trainer, _ = _trainer(tmp_path / "a", early_stopping=EarlyStopping("accuracy", patience=1))
    with pytest.raises(ZooError, match=r"^no evaluation has run"):
        trainer.restore_best()
    with pytest.raises(ZooError, match=r"metric 'accuracy' is not among the evaluation results \(loss, score\); "):
        trainer.train()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    plain = Trainer(model, strategy=tf.distribute.get_strategy(), model_dir=str(tmp_path / "b"), dataset_fn=_data,
                    global_batch_size=8, train_steps=1)
    with pytest.raises(ZooError, match="restore_best needs a Trainer made with early_stopping"):
        plain.restore_best()


if __name__ == "__main__":
    _worker(*sys.argv[1:4])


def test_checkpoint_of_the_first_version_counts_its_step_as_evaluated(tmp_path):
    """Checkpoints written before `evaluated` existed were always saved after their step's decision: resuming
    one must not count that evaluation a second time."""
    _, trainer, _ = _trainer(tmp_path / "run")
    es = trainer.early_stopping
    old = {name: tf.Variable(value, dtype=tf.int64 if name != "best" else tf.float64)
           for name, value in (("best", 0.6), ("best_step", 8), ("wait", 0), ("stopped", 0))}
    path = tf.train.Checkpoint(early_stopping=tf.train.Checkpoint(**old)).write(str(tmp_path / "old" / "ckpt-8"))
    es.resume(tf.train.Checkpoint(), path)
    assert (es.best_step, es.wait, int(es.state.evaluated.numpy())) == (8, 0, 8)
    assert not es.pending(8)
    es.state.evaluated.assign(-1)
    new = tf.train.Checkpoint(early_stopping=es.state).write(str(tmp_path / "new" / "ckpt-8"))
    es.resume(tf.train.Checkpoint(), new)  # a current checkpoint keeps what it recorded
    assert int(es.state.evaluated.numpy()) == -1 and es.pending(8)
