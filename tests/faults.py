"""Fault injection shared by the reliability tests: damage a run's files the way crashes, full disks and
careless hands do, and snapshot a directory to prove that nothing was touched."""

import hashlib
import os
import subprocess
import sys
import time

CHECKPOINT_FAULTS = ("delete_bookkeeping", "garbage_bookkeeping", "delete_newest_index", "truncate_newest_data",
                     "garbage_newest_data")


def newest_checkpoint_number(model_dir):
    return max(int(n.split("-")[1].split(".")[0]) for n in os.listdir(model_dir) if n.endswith(".index"))


def damage_checkpoints(model_dir, fault):
    """Applies one of `CHECKPOINT_FAULTS` to `model_dir`; returns the step number it damaged (or None)."""
    model_dir = str(model_dir)
    if fault == "delete_bookkeeping":
        os.remove(os.path.join(model_dir, "checkpoint"))
        return None
    if fault == "garbage_bookkeeping":
        with open(os.path.join(model_dir, "checkpoint"), "w") as f:
            f.write("garbage {{{\n")
        return None
    number = newest_checkpoint_number(model_dir)
    prefix = os.path.join(model_dir, f"ckpt-{number}")
    data = [os.path.join(model_dir, n) for n in os.listdir(model_dir) if n.startswith(f"ckpt-{number}.data")]
    if fault == "delete_newest_index":
        os.remove(prefix + ".index")
    elif fault == "truncate_newest_data":
        for path in data:
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
    elif fault == "garbage_newest_data":
        for path in data:
            size = os.path.getsize(path)
            with open(path, "wb") as f:
                f.write(b"\x5a" * size)
    else:
        raise ValueError(f"unknown fault {fault!r}")
    return number


def snapshot(directory):
    """{relative path: sha1} of every file below `directory`."""
    out = {}
    for root, _, names in os.walk(str(directory)):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, str(directory))] = hashlib.sha1(f.read()).hexdigest()
    return out


def hold_lock(model_dir):
    """Starts another process that takes the model directory's lock and keeps it; returns the Popen."""
    code = ("import sys, time\nfrom zoo.training.checkpoints import lock_model_dir\n"
            "lock_model_dir(sys.argv[1]); print('locked', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(model_dir)], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while proc.stdout.readline().strip() != "locked":
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("the lock-holding process did not start")
    return proc
