"""Helpers for end-to-end recipe tests: run a script in a subprocess as a user would, read what it wrote."""

import os
import subprocess
import sys

import tensorflow as tf
from tensorflow.core.util import event_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_recipe(script, *args, env=None, timeout=300):
    """Runs `recipes/<script>` with `args` from the repository root; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, os.path.join("recipes", script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def files(path):
    """Sorted names in `path`, or [] when it does not exist."""
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def summary_tags(log_dir):
    """Every TensorBoard summary tag written to the event files in `log_dir`."""
    tags = set()
    for name in files(log_dir):
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            tags.update(v.tag for v in event_pb2.Event.FromString(record.numpy()).summary.value)
    return tags
