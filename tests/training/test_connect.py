"""Joining a cluster never hangs silently, and SIGTERM always ends the process (issue 15)."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from zoo.errors import ZooError
from zoo.training import strategy as strategies
from zoo.training.connect import reachable, rendezvous


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deadline_names_the_unreachable_peer_and_the_flag(capfd):
    peer = f"127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(ZooError, match=rf"gave up waiting for the peer after 1.5 s \(unreachable: {peer}\); .*"
                                       r"raise --connect_timeout"):
        rendezvous([peer], what="the peer", deadline=1.5, flag="--connect_timeout", report_every=0.5, poll=0.1)
    assert time.monotonic() - start < 10
    assert f"waiting for the peer: {peer} not reachable yet" in capfd.readouterr().err


def test_two_workers_meet_while_holding_their_own_addresses():
    """Each holds its own address open while it waits, so two waiting workers see each other."""
    import threading

    a, b = f"127.0.0.1:{_closed_port()}", f"127.0.0.1:{_closed_port()}"
    done = []
    other = threading.Thread(target=lambda: done.append(
        rendezvous([a], own=b, what="a", deadline=20, flag="--f", poll=0.1, grace=0.5)))
    other.start()
    rendezvous([b], own=a, what="b", deadline=20, flag="--f", poll=0.1, grace=0.5)
    other.join()
    assert done == [None]


def test_reachable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert reachable(f"grpc://127.0.0.1:{server.getsockname()[1]}")
    assert not reachable(f"127.0.0.1:{_closed_port()}")


def _tf_config(monkeypatch, workers, index):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker",
                                                                                         "index": index}}))


def test_task_index_outside_the_cluster(monkeypatch):
    _tf_config(monkeypatch, ["127.0.0.1:1", "127.0.0.1:2"], 2)
    with pytest.raises(ZooError, match=r"task.index=2 is outside cluster.worker, which lists 2 address\(es\)"):
        strategies.from_flag("multi_worker")


def test_own_port_in_use(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        own = f"127.0.0.1:{busy.getsockname()[1]}"
        _tf_config(monkeypatch, [own, f"127.0.0.1:{_closed_port()}"], 0)
        with pytest.raises(ZooError, match=rf"this worker's address {own} cannot be bound .*another process holds"):
            strategies.from_flag("multi_worker")


WAITER = textwrap.dedent("""
    import os
    from zoo import flags
    from zoo.training.strategy import from_flag

    def main(argv):
        from_flag("multi_worker", connect_timeout=float(os.environ["WAIT"]))
        print("connected", flush=True)

    flags.run(main)
""")


def _start_waiter(tmp_path, timeout):
    script = tmp_path / "waiter.py"
    script.write_text(WAITER)
    own, peer = _closed_port(), _closed_port()
    env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{peer}"]},
                                                  "task": {"type": "worker", "index": 0}}), "WAIT": str(timeout)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, f"127.0.0.1:{peer}"


@pytest.mark.slow
@pytest.mark.distributed
def test_unreachable_worker_ends_with_one_line_at_the_deadline(tmp_path):
    proc, peer = _start_waiter(tmp_path, 12)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 2, err
    assert f"waiting for the other workers: {peer} not reachable yet" in err
    assert err.strip().splitlines()[-1].startswith(f"error: gave up waiting for the other workers after 12 s "
                                                   f"(unreachable: {peer})")


@pytest.mark.slow
@pytest.mark.distributed
def test_sigterm_ends_a_waiting_worker_at_once(tmp_path):
    proc, _ = _start_waiter(tmp_path, 600)
    try:
        line = ""
        while "waiting for the other workers" not in line:  # printed every 10 s while it waits
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "the waiter ended early"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert time.monotonic() - sent < 10
        assert proc.returncode == 128 + signal.SIGTERM
        assert "stopped by SIGTERM" in proc.stderr.read()
    finally:
        proc.kill()
