"""Helpers for end-to-end recipe tests: run a script in a subprocess as a user would, read what it wrote.

Recipes are run as `python recipes/<script>` with no PYTHONPATH: they import `zoo` as installed by the
README's `pip install -e .`, exactly as a user's run does.
"""

import os
import signal
import subprocess
import sys
import time

import tensorflow as tf
from tensorflow.core.util import event_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
ENV["CUDA_VISIBLE_DEVICES"] = ""  # the tests run on the CPU, as CI does


def run_recipe(script, *args, env=None, timeout=300):
    """Runs `recipes/<script>` with `args` from the repository root; returns the CompletedProcess."""
    return subprocess.run([sys.executable, os.path.join("recipes", script), *args], cwd=ROOT,
                          env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def start_recipe(script, *args, env=None):
    """Starts `recipes/<script>` in the background (output discarded); returns the Popen."""
    return subprocess.Popen([sys.executable, os.path.join("recipes", script), *args], cwd=ROOT,
                            env={**ENV, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_at_first_checkpoint(script, model_dir, *args, train_steps, env=None, timeout=300):
    """Starts `recipes/<script>` with `args`, SIGKILLs it as soon as a checkpoint appears in `model_dir`, and
    returns that checkpoint's step (asserted below `train_steps`: the run was killed, not finished)."""
    with open(os.path.join(str(model_dir) + ".stderr"), "wb") as err:
        proc = subprocess.Popen([sys.executable, os.path.join("recipes", script), *args], cwd=ROOT,
                                env={**ENV, **(env or {})}, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and tf.train.latest_checkpoint(str(model_dir)) is None:
        time.sleep(0.05)
    ended = proc.poll()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(str(model_dir) + ".stderr", errors="replace") as f:
        stderr = f.read()[-3000:]
    assert ended is None, f"the run ended (code {ended}) before it was killed: {stderr}"
    checkpoint = tf.train.latest_checkpoint(str(model_dir))
    assert checkpoint is not None, f"no checkpoint in {model_dir} after {timeout} s: {stderr}"
    step = int(checkpoint.rsplit("-", 1)[1])
    assert step < train_steps, f"the run reached step {step} of {train_steps} before it was killed"
    return step


def assert_one_line_error(result, *fragments):
    """The command-line contract: exit code 2, no traceback, and a last stderr line `error: ...` holding
    every fragment."""
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in last, last


def files(path):
    """Sorted names in `path`, or [] when it does not exist."""
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def summary_tags(log_dir):
    """Every TensorBoard summary tag written to the event files in `log_dir`."""
    return set(summary_scalars(log_dir))


def summary_scalars(log_dir):
    """{tag: [(step, value), ...]} of the scalar summaries in `log_dir` (image summaries map to [])."""
    scalars = {}
    for name in files(log_dir):
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            event = event_pb2.Event.FromString(record.numpy())
            for v in event.summary.value:
                points = scalars.setdefault(v.tag, [])
                if v.HasField("tensor") and v.metadata.plugin_data.plugin_name == "scalars":
                    points.append((event.step, float(tf.make_ndarray(v.tensor))))
    return scalars
