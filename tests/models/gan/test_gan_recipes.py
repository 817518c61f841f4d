"""End-to-end runs of recipes/discogan_train.py and recipes/cyclegan_train.py in subprocesses, tiny configs."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _run(script, *args, timeout=300):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, os.path.join("recipes", script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _files(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def _summary_tags(log_dir):
    tags = set()
    for name in _files(log_dir):
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            tags.update(v.tag for v in event_pb2.Event.FromString(record.numpy()).summary.value)
    return tags


@pytest.mark.slow
def test_discogan_recipe_trains_with_xla_samples_exports_and_resumes(tmp_path):
    """An XLA run, then a resumed run without XLA (not part of the run config)."""
    model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
    flags = ["--filters=4", "--global_batch_size=4", "--update_interval=2", "--log_every=1", "--sample_every=1",
             "--num_samples=2", f"--model_dir={model_dir}", f"--export_dir={export_dir}"]
    first = _run("discogan_train.py", "--train_steps=2", "--jit_compile", *flags)
    assert first.returncode == 0, first.stderr[-3000:]
    assert _files(os.path.join(model_dir, "samples")) == ["step_000001.png", "step_000002.png"]
    assert "samples" in _summary_tags(os.path.join(model_dir, "train"))  # TensorBoard images
    assert "checkpoint" in _files(model_dir) and "config.json" in _files(model_dir)
    for direction in ("a2b", "b2a"):
        assert "saved_model.pb" in _files(os.path.join(export_dir, direction, "1"))

    again = _run("discogan_train.py", "--train_steps=3", *flags)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming from step 2" in again.stdout
    assert "step_000003.png" in _files(os.path.join(model_dir, "samples"))
    assert _files(os.path.join(export_dir, "a2b")) == ["1", "2"]


@pytest.mark.slow
def test_cyclegan_recipe_trains_with_xla_samples_and_exports(tmp_path):
    model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
    result = _run("cyclegan_train.py", "--train_steps=2", "--jit_compile", "--image_size=24", "--filters=2",
                  "--global_batch_size=2", "--log_every=1", "--num_samples=2", "--pool_size=3",
                  f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 replica(s)" in result.stdout
    assert _files(os.path.join(model_dir, "samples")) == ["step_000001.png", "step_000002.png"]
    assert "saved_model.pb" in _files(os.path.join(export_dir, "b2a", "1"))


@pytest.mark.slow
@pytest.mark.parametrize("script,args,message", [
    ("cyclegan_train.py", ["--dataset=cycle_gan/horse2zebra", "--data_dir=/nonexistent/tfds"],
     "not present in --data_dir=/nonexistent/tfds"),
    ("discogan_train.py", ["--dataset=edges2shoes"], "pass --data_dir"),
    ("discogan_train.py", ["--image_size=50"], "multiple of 16"),
])
def test_bad_flags_give_one_line_errors(tmp_path, script, args, message):
    result = _run(script, f"--model_dir={tmp_path}", *args, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
