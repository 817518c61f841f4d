"""Joining a cluster with a deadline, and a SIGTERM that always ends the process.

TensorFlow's multi-worker and TPU set-up waits for its peers inside C++ calls that hold Python's lock,
without a time limit and without a word, and its coordination service replaces the SIGTERM handler with
one that only records a "preemption": a worker waiting for an unreachable peer printed nothing and
ignored the SIGTERM of a cluster scheduler. So the waiting happens here first, in Python:

- `rendezvous` holds this worker's own address open and waits until every peer's address accepts
  connections (printing what it waits for; SIGTERM ends it; one line naming the unreachable addresses at
  the deadline). Only then does TensorFlow start, when its own wait is short.
- `exit_on_sigterm` puts back a SIGTERM that ends the process after TensorFlow has replaced it.
"""

import os
import signal
import socket
import sys
import threading
import time

from zoo.errors import ZooError


def _exit_on_sigterm(signum, frame):
    del frame
    print("stopped by SIGTERM; rerun with the same flags to resume from the last checkpoint", file=sys.stderr,
          flush=True)
    os._exit(128 + signum)


def exit_on_sigterm():
    """Makes SIGTERM end the process at once (exit code 143) with one line. Checkpoints and exports are
    written atomically, so stopping between them loses nothing; a rerun resumes."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def split_address(address):
    """(host, port) of "host:port", "[v6]:port" or "grpc://host:port"; raises `ZooError` otherwise."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ZooError(f"{address!r} is not a host:port address")
    return host.strip("[]"), int(port)


def reachable(address, timeout=1.0):
    """True when a TCP connection to `address` opens within `timeout` seconds."""
    try:
        with socket.create_connection(split_address(address), timeout=timeout):
            return True
    except OSError:
        return False


def rendezvous(peers, *, what, deadline, flag, own=None, report_every=10.0, poll=0.5, grace=2.0):
    """Waits until every address in `peers` accepts TCP connections, at most `deadline` seconds.

    `own` (this worker's "host:port") is held open meanwhile, so peers doing the same see this worker;
    it is released `grace` seconds after the last peer answered, for TensorFlow to bind. Prints
    "waiting for <what>" every `report_every` seconds; raises a one-line `ZooError` at the deadline that
    names the unreachable addresses and `flag`.
    """
    exit_on_sigterm()
    listener = None
    if own is not None:
        listener = socket.socket(socket.AF_INET6 if ":" in split_address(own)[0] else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(split_address(own))
        except OSError as e:
            listener.close()
            raise ZooError(f"this worker's address {own} cannot be bound ({e.strerror}): another process holds "
                           "the port, or the host is not this machine; fix TF_CONFIG or stop that process") from None
        listener.listen(64)
    try:
        start = time.monotonic()
        next_report = start + report_every
        waiting = list(peers)
        while waiting:
            waiting = [p for p in waiting if not reachable(p, timeout=poll)]
            now = time.monotonic()
            if waiting and now - start > deadline:
                raise ZooError(f"gave up waiting for {what} after {deadline:g} s (unreachable: {', '.join(waiting)}); "
                               f"start the missing processes, fix the addresses, or raise {flag}")
            if waiting and now >= next_report:
                print(f"waiting for {what}: {', '.join(waiting)} not reachable yet ({now - start:.0f} s of "
                      f"{flag}={deadline:g})", file=sys.stderr, flush=True)
                next_report += report_every
            if waiting:
                time.sleep(poll)
        if listener is not None:
            time.sleep(grace)
    finally:
        if listener is not None:
            listener.close()
