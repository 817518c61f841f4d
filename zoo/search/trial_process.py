"""One trial of an architecture search, trained where it runs: the network of a trial's values, its
multiply-adds, and `train_trial`, which trains and evaluates it.

`zoo.search.trials.CellTrialRunner` calls `train_trial` in its own process (`trial_isolation="none"`) or runs
this module as a fresh process per trial (`python -m zoo.search.trial_process <trial dir>/request.json`, the
default): it opens the data, builds the strategy, trains, and writes `metrics.json` or `failure.txt` and
`process.json` (its peak RSS) next to the request.
"""

import json
import os
import resource
import signal
import sys
import time

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from zoo.errors import ZooError

OBJECTIVE = "val_top1"
DEFAULTS = {"learning_rate": 0.05, "filters": 8, "num_cells": 3, "weight_decay": 5e-4, "drop_path_rate": 0.0}


def build_network(values, num_classes, image_size, bn_momentum=0.9, dropout=0.0):
    """The trial's network: `PNASNet` with the trial's cell, width and depth (stem multiplier F/32, so the
    stem has F filters)."""
    from zoo.models.nas.pnasnet import PNASNet

    v = {**DEFAULTS, **values}
    filters = int(v["filters"])
    return PNASNet(num_classes=num_classes, image_size=image_size, num_cells=int(v["num_cells"]), filters=filters,
                   stem_multiplier=filters / 32.0, stem="cifar" if image_size <= 64 else "imagenet",
                   drop_path_rate=float(v["drop_path_rate"]), dropout=dropout, bn_momentum=bn_momentum,
                   cell=v["cell"])


def count_mult_adds(network):
    """Multiply-adds of one forward pass at batch 1 (convolutions, depthwise convolutions and matrix
    products of the traced inference graph); None when the graph cannot be traced."""
    size = network.image_size
    try:
        graph = tf.function(lambda x: network(x, training=False)).get_concrete_function(
            tf.TensorSpec([1, size, size, 3], tf.float32)).graph
    except Exception:  # noqa: BLE001 - an estimate only
        return None
    total = 0
    for op in graph.get_operations():
        if op.type not in ("Conv2D", "DepthwiseConv2dNative", "MatMul"):
            continue
        out = op.outputs[0].shape
        kernel = op.inputs[1].shape
        if not (out.is_fully_defined() and kernel.is_fully_defined()):
            continue
        if op.type == "Conv2D":  # H·W·Cout · kh·kw·Cin
            total += int(np.prod(out[1:])) * int(np.prod(kernel[:3]))
        elif op.type == "DepthwiseConv2dNative":  # H·W·C·mult · kh·kw
            total += int(np.prod(out[1:])) * int(np.prod(kernel[:2]))
        else:
            total += int(np.prod(out)) * int(kernel[0])
    return total


def train_trial(request, data, strategy):
    """Trains and evaluates one trial as `request` says (see `CellTrialRunner.run_trial`); writes
    `metrics.json` and returns the metrics, or writes `failure.txt` and raises `FailedTrialError`."""
    from zoo.data import image_classification as data_lib
    from zoo.models.nas.image_classifier import ImageClassifier
    from zoo.recipe_support.image_classification import make_optimizer, make_schedule
    from zoo.registry import trainable_params
    from zoo.training.trainer import Trainer

    values, trial_dir, seed = request["values"], request["trial_dir"], request["seed"]
    steps, size, batch = request["trial_steps"], request["image_size"], request["global_batch_size"]
    start = time.time()
    try:
        keras.utils.set_random_seed(seed)
        v = {**DEFAULTS, **values}
        lr = float("nan") if request["nan"] else float(v["learning_rate"])
        with strategy.scope():
            network = build_network(values, data.num_classes, size, request["bn_momentum"])
            model = ImageClassifier(network, label_smoothing=request["label_smoothing"],
                                    weight_decay=float(v["weight_decay"]), total_steps=steps)
            model.compile(optimizer=make_optimizer("nesterov", make_schedule("cosine", lr, train_steps=steps)))
        params = trainable_params(network)
        trainer = Trainer(
            model, strategy=strategy, model_dir=os.path.join(trial_dir, "train"),
            dataset_fn=lambda ctx: data_lib.train_dataset(data, size, batch, ctx, seed=seed),
            eval_dataset_fn=lambda ctx: data_lib.eval_dataset(data, size, batch, ctx),
            eval_steps=request["eval_steps"], global_batch_size=batch, train_steps=steps,
            checkpoint_every=min(steps, max(50, steps // 4)), log_every=max(1, steps),
            config={"values": {k: values[k] for k in sorted(values)}}, verbose=request["verbose"])
        logs = trainer.train()
        top1 = float(logs["eval/top1"])
        if not np.isfinite(top1):
            raise ZooError(f"validation top-1 is {top1}")
        mult_adds = count_mult_adds(network)
    except Exception as e:  # noqa: BLE001 - every failure ends the trial, not the search
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        if "training diverged" in reason:  # the trainer's advice is about recipe flags: keep the fact
            reason = reason.split(";")[0]
        reason = reason[:500]
        with open(os.path.join(trial_dir, "failure.txt"), "w") as f:
            f.write(reason + "\n")
        raise keras_tuner.errors.FailedTrialError(reason) from None
    finally:
        network = model = trainer = None  # noqa: F841 - drop the references before clearing
    metrics = {OBJECTIVE: top1, "params": float(params), "seconds": time.time() - start}
    if mult_adds is not None:
        metrics["mult_adds"] = float(mult_adds)
    with open(os.path.join(trial_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    return metrics


def main(path):
    """A trial process: trains the trial of `path` (a request.json), writes `metrics.json` or `failure.txt`
    and `process.json` (its peak RSS) next to it; exits 0 when either was written."""
    from zoo.data.image_classification import open_dataset
    from zoo.training import strategy as strategies

    with open(path) as f:
        request = json.load(f)
    _die_with_parent(request.get("parent_pid"))
    try:
        train_trial(request, open_dataset(**request["data_args"]), strategies.from_flag(**request["strategy_args"]))
    except keras_tuner.errors.FailedTrialError:
        pass  # failure.txt says why
    except BaseException as e:  # noqa: BLE001 - opening the data or building the strategy failed
        with open(os.path.join(request["trial_dir"], "failure.txt"), "w") as f:
            f.write(" ".join(f"{type(e).__name__}: {e}".split())[:500] + "\n")
    finally:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        with open(os.path.join(request["trial_dir"], "process.json"), "w") as f:
            json.dump({"peak_rss_mib": peak, "pid": os.getpid()}, f)
    return 0


def _die_with_parent(parent_pid):
    """Linux: this process is killed when the search process ends (a killed search restarted at once must not
    find its interrupted trial still training in the same folder)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid and os.getppid() != parent_pid:  # the parent ended before prctl
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
