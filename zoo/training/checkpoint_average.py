"""Checkpoint averaging: the mean of a model's weights over its last N checkpoints.

Vaswani et al. (2017, §6.1) evaluate the base Transformer with the average of its last 5 checkpoints
(written every 10 minutes) and the big one with the last 20. This reads the checkpoints that
`zoo.training.Trainer` wrote in `model_dir` and assigns the averaged weights into a live model; the files
in `model_dir` are only read.

Variables are matched to checkpoint keys through the checkpoint's own object graph, walked side by side
with the live model (as `tf.train.Checkpoint.restore` does), so the match does not depend on key names
(Keras stores a weight under the first path that reaches it, often the optimizer's); the weights of layers
held in lists, out of the model's graph, are found under the checkpoint's `untracked_weights` entry.
"""

import os
import sys

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from zoo.errors import ZooError
from zoo.training.checkpoints import GRAPH_KEY, UNTRACKED, checkpoint_numbers, untracked_weights



def average_checkpoints(model_dir, model, last_n=5, root_name="model"):
    """Assigns to every float weight of `model` its mean over the newest `last_n` checkpoints in `model_dir`.

    Only `model.weights` with a floating dtype are averaged (trainable weights and float statistics such as
    batch-normalisation moving means); integer state (random-seed states, the optimizer's iterations) and
    the optimizer's slots are left as they are. The sum is taken in float64. A damaged checkpoint is
    skipped with a warning and an older one taken instead. With fewer than `last_n` checkpoints, all of
    them are averaged and a warning says so; the returned list says which were used.

    Args:
        model_dir: the directory the Trainer checkpointed into (`ckpt-<step>` files).
        model: the built `keras.Model` that the Trainer saved as `tf.train.Checkpoint(model=...)`.
        last_n: how many of the newest checkpoints to average (5 for base, 20 for big in the paper).
            The Trainer keeps only `max_to_keep` checkpoints: pass `Trainer(max_to_keep=last_n)` or more.
        root_name: the name the model was saved under in the checkpoint (the Trainer uses "model").

    Returns:
        The steps of the checkpoints averaged, newest first.

    Example:
        trainer = Trainer(model, ..., model_dir="/tmp/run", checkpoint_every=1000, max_to_keep=5)
        trainer.train()
        steps = average_checkpoints("/tmp/run", model, last_n=5)  # e.g. [100000, 99000, ..., 96000]
    """
    if last_n < 1:
        raise ZooError(f"last_n={last_n}: the number of checkpoints to average must be at least 1")
    if not model.built or not model.weights:
        raise ZooError("the model has no weights yet: build it (call it once on a batch) before averaging")
    weights = [w for w in model.weights if tf.as_dtype(w.dtype).is_floating]
    numbers = checkpoint_numbers(model_dir)
    if not numbers:
        raise ZooError(f"--model_dir={model_dir} holds no checkpoints (ckpt-N.index files) to average; point "
                       "--model_dir at the run's directory")
    sums, used, skipped = None, [], []
    for number in numbers:
        if len(used) == last_n:
            break
        path = os.path.join(model_dir, f"ckpt-{number}")
        try:
            reader = tf.train.load_checkpoint(path)
            keys = _checkpoint_keys(reader, model, root_name, path)
            values = [np.asarray(reader.get_tensor(keys[id(w)]), np.float64) for w in weights]
        except tf.errors.OpError as e:  # truncated or missing data: take an older checkpoint instead
            skipped.append(f"ckpt-{number} ({str(e).strip().splitlines()[0][:200]})")
            continue
        for w, v in zip(weights, values):
            if tuple(v.shape) != tuple(w.shape):
                raise ZooError(f"{path} holds {w.path} with shape {tuple(v.shape)}, the model {tuple(w.shape)}; "
                               "average the checkpoints of this model's run (--model_dir)")
        sums = values if sums is None else [s + v for s, v in zip(sums, values)]
        used.append(number)
    if skipped:
        print(f"warning: skipped damaged checkpoint(s) {'; '.join(skipped)}", file=sys.stderr, flush=True)
    if not used:
        raise ZooError(f"--model_dir={model_dir}: none of its checkpoints can be read ({'; '.join(skipped)})")
    if len(used) < last_n:
        print(f"warning: averaging {len(used)} checkpoint(s) of {model_dir}, not {last_n}: only steps "
              f"{', '.join(map(str, used))} are there (keep more with Trainer(max_to_keep=...))",
              file=sys.stderr, flush=True)
    for w, s in zip(weights, sums):
        w.assign((s / len(used)).astype(tf.as_dtype(w.dtype).as_numpy_dtype))
    return used


def _checkpoint_keys(reader, model, root_name, path):
    """Maps `id(variable)` of each variable reachable from `model` to its key in the checkpoint."""
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(GRAPH_KEY))
    start = [c.node_id for c in graph.nodes[0].children if c.local_name == root_name]
    if not start:
        names = ", ".join(c.local_name for c in graph.nodes[0].children)
        raise ZooError(f"{path} has no object named {root_name!r} at its root (it has: {names}); was it "
                       "written by zoo.training.Trainer?")
    keys, seen, queue = {}, set(), [(start[0], model)]
    while queue:
        node_id, obj = queue.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = graph.nodes[node_id]
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE":
                keys[id(obj)] = attribute.checkpoint_key
        if node.children:
            children = tf.train.TrackableView.children(obj)
            queue.extend((c.node_id, children[c.local_name]) for c in node.children if c.local_name in children)
    for child in graph.nodes[0].children:  # weights of layers held in lists (see checkpoints.untracked_weights)
        if child.local_name == UNTRACKED:
            by_name = {c.local_name: c.node_id for c in graph.nodes[child.node_id].children}
            for name, weight in untracked_weights(model).items():
                for attribute in graph.nodes[by_name[name]].attributes if name in by_name else ():
                    if attribute.name == "VARIABLE_VALUE":
                        keys.setdefault(id(weight), attribute.checkpoint_key)
    missing = [w.path for w in model.weights if tf.as_dtype(w.dtype).is_floating and id(w) not in keys]
    if missing:
        raise ZooError(f"{path} does not hold the model's weight(s) {', '.join(missing[:3])}: it was written by "
                       "another model; average the checkpoints of this model's run (--model_dir)")
    return keys
