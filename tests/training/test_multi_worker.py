import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mwms_worker.py")


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _weights(path):
    data = np.load(path)
    return data, [data[f"arr_{i}"] for i in range(len([k for k in data.files if k.startswith("arr_")]))]


@pytest.mark.slow
@pytest.mark.distributed
def test_two_workers_train_like_one_process(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    root = os.path.dirname(os.path.dirname(os.path.dirname(WORKER)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": root}
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen(
            [sys.executable, WORKER, "multi_worker", str(tmp_path / "mw"), str(tmp_path / f"w{i}.npz")],
            env={**env, "TF_CONFIG": json.dumps(tf_config)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    single = subprocess.run([sys.executable, WORKER, "default", str(tmp_path / "one"), str(tmp_path / "one.npz")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stdout + single.stderr
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-3000:]

    w0, weights0 = _weights(tmp_path / "w0.npz")
    w1, weights1 = _weights(tmp_path / "w1.npz")
    one, weights_one = _weights(tmp_path / "one.npz")
    assert int(w0["replicas"]) == int(w1["replicas"]) == 2
    assert bool(w0["chief"]) and not bool(w1["chief"])
    # Evaluation runs on both workers and reports the exact global means of one process.
    np.testing.assert_array_equal(w0["eval"], w1["eval"])
    np.testing.assert_allclose(w0["eval"], one["eval"], rtol=1e-5)
    for a, b, c in zip(weights0, weights1, weights_one):
        np.testing.assert_array_equal(a, b)  # replicas stay identical
        np.testing.assert_allclose(a, c, atol=1e-5, rtol=1e-5)  # and equal one process at the same global batch
    # Only the chief writes checkpoints into model_dir; the other worker's scratch copy is removed.
    assert tf.train.latest_checkpoint(str(tmp_path / "mw")).endswith("ckpt-4")
