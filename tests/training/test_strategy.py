import json

import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.training import strategy as strategies


def test_default_and_mirrored():
    assert strategies.from_flag("default").num_replicas_in_sync == 1
    mirrored = strategies.from_flag("mirrored")
    assert mirrored.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU"))
    assert strategies.is_chief(mirrored)


def test_unknown_strategy():
    with pytest.raises(ZooError, match="unknown --strategy='horovod'; choose one of: default, mirrored"):
        strategies.from_flag("horovod")


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ZooError, match="needs the TF_CONFIG environment variable"):
        strategies.from_flag("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ZooError, match="TF_CONFIG is not valid"):
        strategies.from_flag("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ZooError, match="lists no workers"):
        strategies.from_flag("multi_worker")


def test_tpu_needs_address():
    with pytest.raises(ZooError, match="needs --tpu"):
        strategies.from_flag("tpu")


@pytest.mark.slow
def test_mirrored_over_one_device_is_the_default_strategy():
    """On one device `mirrored` gives the default strategy (same computation, none of the mirrored per-step
    cost) with a note; ZOO_CPU_REPLICAS asks for a real MirroredStrategy, even of one replica."""
    import os
    import subprocess
    import sys

    script = ("from zoo.training.strategy import from_flag\n"
              "s = from_flag('mirrored'); t = from_flag('mirrored')\n"
              "print(type(s).__name__, s.num_replicas_in_sync, s is t)\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    one = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert one.stdout.split() == ["_DefaultDistributionStrategy", "1", "True"], one.stderr[-2000:]
    assert one.stderr.count("--strategy=mirrored: one device") == 1
    for replicas in ("1", "2"):
        real = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                              env={**env, "ZOO_CPU_REPLICAS": replicas})
        assert real.stdout.split() == ["MirroredStrategy", replicas, "True"], real.stderr[-2000:]
