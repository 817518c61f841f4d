"""A damaged, shared or diverging run never loses work and never publishes a broken model (issue 15)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.training.checkpoints import lock_model_dir
from zoo.training.export import check_export_dir, export_saved_model
from zoo.training.trainer import Trainer
from tests.faults import CHECKPOINT_FAULTS, damage_checkpoints, hold_lock, snapshot
from tests.training.stateful_model import FEATURES, StreamModel, stream_dataset_fn

BATCH = 8


def _train(model_dir, steps, learning_rate=0.05, config=None, checkpoint_every=2):
    with tf.distribute.get_strategy().scope():
        model = StreamModel(BATCH)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    Trainer(model, strategy=tf.distribute.get_strategy(), model_dir=str(model_dir),
            dataset_fn=stream_dataset_fn(BATCH), global_batch_size=BATCH, train_steps=steps, checkpoint_every=checkpoint_every,
            log_every=1, config=config, verbose=False).train()
    return model


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("straight"), 6).dense.get_weights()


@pytest.mark.parametrize("fault", CHECKPOINT_FAULTS)
def test_damaged_checkpoints_fall_back_to_the_newest_intact_one(tmp_path, fault, straight, capfd):
    _train(tmp_path, 4)
    damaged = damage_checkpoints(tmp_path, fault)
    resumed = _train(tmp_path, 6)
    for a, b in zip(straight, resumed.dense.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)  # resumed exactly, not from step 0
    err = capfd.readouterr().err
    if damaged is not None:
        assert f"skipped damaged checkpoint(s) ckpt-{damaged}" in err and "resuming from" in err
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-6")


def test_no_intact_checkpoint_is_refused_and_nothing_changes(tmp_path):
    _train(tmp_path, 2)
    for name in os.listdir(tmp_path):
        if name.startswith("ckpt-2.data"):
            with open(tmp_path / name, "wb") as f:
                f.write(b"broken")
    before = snapshot(tmp_path)
    with pytest.raises(ZooError, match=r"holds checkpoint files but none can be restored \(ckpt-2 "):
        _train(tmp_path, 4)
    assert snapshot(tmp_path) == before


def test_damaged_config_is_one_line(tmp_path):
    _train(tmp_path, 2, config={"model": "stream"})
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ZooError, match=r"config.json is damaged"):
        _train(tmp_path, 4, config={"model": "stream"})


def test_second_process_on_a_model_dir_is_refused_and_the_lock_dies_with_its_holder(tmp_path):
    holder = hold_lock(tmp_path / "run")
    try:
        with pytest.raises(ZooError, match=rf"is in use by process {holder.pid} on "):
            lock_model_dir(str(tmp_path / "run"))
    finally:
        holder.kill()
        holder.wait()
    lock_model_dir(str(tmp_path / "run"))  # a killed holder leaves no stale lock


def test_model_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ZooError, match="is a file, not a directory"):
        _train(tmp_path / "file", 2)


def test_diverging_run_stops_and_keeps_the_last_finite_checkpoint(tmp_path):
    # Step 1's update sends the weights to ~1e30, so step 2's loss overflows.
    with pytest.raises(ZooError, match=r"training diverged by step 2: non-finite loss.*; .*ckpt-1 stays the latest"):
        _train(tmp_path, 8, learning_rate=1e30, checkpoint_every=1)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-1")
    assert not [n for n in os.listdir(tmp_path) if n.startswith("ckpt-2")]


def test_non_finite_weights_are_never_exported(tmp_path):
    model = StreamModel(BATCH)
    model.dense.kernel.assign(np.full((2 * FEATURES, 1), np.nan, "float32"))
    endpoint = (lambda x: model(x), [tf.TensorSpec([BATCH, FEATURES], tf.float32, name="x")])
    with pytest.raises(ZooError, match=r"non-finite weights .*nothing was exported"):
        export_saved_model(str(tmp_path / "export"), model, {"serving_default": endpoint})
    assert not os.path.exists(tmp_path / "export")


def test_export_dir_blocked_by_a_file_is_found_before_training(tmp_path):
    (tmp_path / "export").write_text("x")
    with pytest.raises(ZooError, match="--export_dir=.* is a file"):
        check_export_dir(str(tmp_path / "export"))
