"""Checkpoint safety for the trainer: the newest intact checkpoint, a lock on the model directory, and
the refusal to start again from scratch over existing work.

TensorFlow finds "the latest checkpoint" through the `checkpoint` bookkeeping file alone, so a deleted or
damaged bookkeeping file used to look like an empty directory: the run started from step 0 and overwrote
good checkpoints. Here the checkpoints are found from the `ckpt-N.index` files themselves, tried newest
first, and a damaged one (truncated or garbage data, a missing or broken index) is skipped with a warning
that names it. The bookkeeping file is then rewritten to list the intact checkpoints only.

Weights out of the model's checkpoint graph: Keras 3 keeps the layers a model holds in a Python list (or
dict) in its own tracked containers, which TensorFlow's checkpoint graph does not follow, so
`tf.train.Checkpoint(model=m)` misses their weights (trainable ones were then saved only through the
optimizer's variable list, non-trainable ones such as batch-norm moving statistics not at all).
`untracked_weights(model)` lists them, keyed by position and name, and the Trainer's checkpoint holds them
under `UNTRACKED` (`untracked_weights/<n>_<name>`); a checkpoint written before has no such root entry and is
restored as before (`restore_newest_intact(..., legacy=...)`).
"""

import fcntl
import os
import re
import socket
import sys

import keras
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import trackable_object_graph_pb2

from zoo.errors import ZooError
from zoo.layers.carried_state import is_carried_state
from zoo.paths import check_directory

_CKPT = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")
_LOCKS = {}  # absolute model_dir -> open lock file, held until the process exits
GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"  # the object-graph entry of a TF checkpoint
UNTRACKED = "untracked_weights"  # the Trainer checkpoint's root entry for them


def untracked_weights(model):
    """`{"<n>_<name>": weight}` for the weights of `model` (`model.weights`, carried state excluded) that
    `tf.train.Checkpoint(model=model)` does not reach from the model (optimizers not followed: their
    variable lists are no substitute); `n` counts these weights in `model.weights` order. Keys are stable for
    the same model code in any process (unlike `variable.path`, whose auto-named layers differ between two
    instances in one process)."""
    reached, seen, stack = set(), set(), [model]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, keras.optimizers.Optimizer):
            continue
        seen.add(id(obj))
        reached.add(id(obj))
        stack.extend(tf.train.TrackableView.children(obj).values())
    missed = [w for w in model.weights if id(w) not in reached and not is_carried_state(w)]
    return {f"{n}_{w.name}": w for n, w in enumerate(missed)}


def root_names(path):
    """The names at the root of the checkpoint `path`'s object graph (raises `tf.errors.OpError` when
    unreadable)."""
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor(GRAPH_KEY))
    except DecodeError as e:  # garbage that passed the checksums: damaged like any unreadable file
        raise tf.errors.DataLossError(None, None, f"unreadable object graph ({e})") from None
    return {c.local_name for c in graph.nodes[0].children}


def checkpoint_files(model_dir):
    """Names of the `ckpt-*` files in `model_dir` (none when it does not exist)."""
    if not tf.io.gfile.isdir(model_dir):
        return []
    return sorted(n for n in tf.io.gfile.listdir(model_dir) if _CKPT.match(n))


def checkpoint_numbers(model_dir):
    """Step numbers of the checkpoints with an index file, newest first."""
    numbers = {int(m.group(1)) for m in map(_CKPT.match, checkpoint_files(model_dir)) if m and m.group(2) == "index"}
    return sorted(numbers, reverse=True)


def restore_newest_intact(checkpoint, model_dir, check=None, rewrite_bookkeeping=True, legacy=None):
    """Restores the newest checkpoint of `model_dir` that reads back whole; returns its path, or None when
    the directory holds no checkpoint files at all.

    `legacy`: the same checkpoint without its `UNTRACKED` entry, restored instead into a checkpoint written
    before that entry existed (its untracked weights it lacks keep their values, with a warning).

    `check(path)` runs before each attempt (it may raise `ZooError`). A checkpoint that does not fit the
    model (other variables or shapes) stops with one line: an older one would not fit either. Damaged ones
    are skipped with a warning; if checkpoint files exist but none is intact, it refuses with one line
    rather than let the run start again from step 0 over them.
    """
    numbers = checkpoint_numbers(model_dir)
    matches = [m for m in map(_CKPT.match, checkpoint_files(model_dir)) if m]
    orphans = sorted({int(m.group(1)) for m in matches} - set(numbers), reverse=True)
    skipped = [f"ckpt-{n} (no index file)" for n in orphans if not numbers or n > numbers[0]]
    for number in numbers:
        path = os.path.join(model_dir, f"ckpt-{number}")
        try:
            if check is not None:
                check(path)
            old = legacy is not None and UNTRACKED not in root_names(path)
            (legacy if old else checkpoint).restore(path).assert_existing_objects_matched()
        except ZooError:
            raise
        except (ValueError, AssertionError) as e:
            raise ZooError(
                f"the checkpoint {path} does not fit this model ({_first_line(e)}); was it written with other "
                "flags (model config, --vocab_size/--vocab_file)? Use a new --model_dir or the flags of that run"
            ) from None
        except (IndexError, tf.errors.OpError) as e:  # truncated, garbage or partly missing files
            skipped.append(f"ckpt-{number} ({_first_line(e)})")
            continue
        if old:
            _warn_legacy(path, checkpoint)
        if skipped:
            print(f"warning: skipped damaged checkpoint(s) {'; '.join(skipped)}; resuming from {path}",
                  file=sys.stderr, flush=True)
        if rewrite_bookkeeping:
            _rewrite_bookkeeping(model_dir, number)
        return path
    files = checkpoint_files(model_dir)
    if files:
        reason = "; ".join(skipped) if skipped else f"no index file among {', '.join(files[:4])}"
        raise ZooError(
            f"--model_dir={model_dir} holds checkpoint files but none can be restored ({reason}); nothing was "
            "changed. Move the damaged files away to start again, or use a new --model_dir")
    return None


def _warn_legacy(path, checkpoint):
    weights = list(getattr(checkpoint, UNTRACKED, {}).values())
    stats = [w for w in weights if not w.trainable]
    if stats:
        print(f"warning: {path} predates the saving of weights held in lists: {len(stats)} non-trainable "
              f"weight(s) it lacks (e.g. {stats[0].path}) keep their initial values (trainable ones are "
              "restored through the optimizer's list); checkpoints from now on hold them all",
              file=sys.stderr, flush=True)


def _rewrite_bookkeeping(model_dir, restored):
    """Makes the `checkpoint` file list the intact checkpoints up to the restored one, newest last."""
    kept = sorted(n for n in checkpoint_numbers(model_dir) if n <= restored)
    paths = [os.path.join(model_dir, f"ckpt-{n}") for n in kept]
    try:
        state = tf.train.get_checkpoint_state(model_dir)
    except Exception:  # a garbage bookkeeping file: rewritten below
        state = None
    if state is not None and state.model_checkpoint_path == paths[-1] and list(state.all_model_checkpoint_paths) == paths:
        return
    tf.compat.v1.train.update_checkpoint_state(model_dir, paths[-1], all_model_checkpoint_paths=paths)


def lock_model_dir(model_dir):
    """Takes an exclusive lock on `model_dir` for the rest of this process (idempotent).

    A second process on the same directory is refused with one line naming the holder. The lock is an
    advisory `flock` on `<model_dir>/.lock`, which the operating system drops when the holder exits, so a
    crashed run leaves no stale lock. Directories on remote file systems (gs://, ...) are not locked.
    """
    if "://" in model_dir:
        return
    path = os.path.abspath(model_dir)
    if path in _LOCKS:
        return
    check_directory("model_dir", path)
    try:
        os.makedirs(path, exist_ok=True)
        handle = open(os.path.join(path, ".lock"), "a+")
    except OSError as e:
        raise ZooError(f"--model_dir={model_dir} is not a writable directory ({e.strerror}); choose another "
                       "--model_dir") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ZooError(f"--model_dir={model_dir} is in use by {holder}; wait for that run to end, or use "
                       "another --model_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv)[:200]})\n")
    handle.flush()
    _LOCKS[path] = handle


def _first_line(error):
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]
