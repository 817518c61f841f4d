"""Early stopping for `zoo.training.Trainer`: stop when an evaluation metric has not improved for `patience`
evaluations in a row, keeping the weights of the best evaluation in `<model_dir>/best/`.

    import keras, numpy as np, tensorflow as tf
    from zoo.training.early_stopping import EarlyStopping
    from zoo.training.trainer import Trainer

    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    train = lambda ctx: tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(16)
    dev = lambda ctx: tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    trainer = Trainer(model, strategy=tf.distribute.get_strategy(), model_dir="/tmp/early_stopping_demo",
                      dataset_fn=train, global_batch_size=16, train_steps=1000, eval_dataset_fn=dev,
                      eval_every=10, early_stopping=EarlyStopping("loss", patience=3, mode="min", min_delta=1e-6))
    logs = trainer.train()    # logs["stopped_early"], logs["best_step"], logs["best/loss"], logs["eval/loss"]
    trainer.restore_best()    # the model now holds the weights of step logs["best_step"]

Every evaluation of the trainer (each `eval_every` steps and the final one) is compared with the best so far:
an improvement (by more than `min_delta`) saves the weights and resets the count, anything else (NaN too)
adds one; at `patience` the trainer writes a regular checkpoint at that step and returns.

State: the best value, its step, the count, "stopped" and the step of the last counted evaluation are
variables in the trainer's regular checkpoint, so a run killed mid-way and resumed decides exactly as an
uninterrupted one. At an evaluation step that is also a checkpoint step the trainer saves before evaluating
(a failing evaluation loses no training) and does not save that step again (rewriting a checkpoint in place
is not atomic): a run resumed from it evaluates that step again and counts it before training on
(`pending`), which decides as the uninterrupted run did. A stop between checkpoints is saved at its step. A rerun of a run
that stopped early prints "... stopped early at step N (best ... at step M) ..." and trains no further (its
`train()` returns the same logs, with a fresh final evaluation). A run checkpointed without early stopping
and resumed (or rerun when finished) with it counts the evaluation of its checkpoint's step, if that step
is an evaluation step, and every later one; one resumed without it trains on.

Best weights: `model.weights` (no optimizer slots, no carried per-replica state) written as
`best/ckpt-<step>` by `tf.train.Checkpoint.write` (index last; a best checkpoint is only read once a regular
checkpoint names its step, i.e. after it was whole on disk). Nothing is deleted when a better one comes:
after each regular checkpoint, `prune` removes the best checkpoints that neither an intact regular
checkpoint on disk (any of them may be the one a resume restores) nor the current state names, so `best/`
holds the best steps the kept checkpoints name plus the improvements since the last checkpoint. `restore_best` reads exactly
`best/ckpt-<best step>`. Under MultiWorkerMirroredStrategy only the chief writes `best/`; the other workers
write the same checkpoint to a temporary directory of their own (removed when the process exits) and read
it back from there, so no worker reads a half-written `best/`; every worker takes the same decision, as
evaluation results are already global.
"""

import atexit
import copy
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers.carried_state import is_carried_state
from zoo.training.checkpoints import _first_line, checkpoint_numbers

BEST_DIR = "best"
BEST_STEP_KEY = "early_stopping/best_step/.ATTRIBUTES/VARIABLE_VALUE"
_BEST_FILE = re.compile(r"^ckpt-(\d+)(\.index|\.data-\d+-of-\d+|_temp.*)$")
MODES = ("max", "min")


_EVALUATED = "early_stopping/evaluated/.ATTRIBUTES/VARIABLE_VALUE"


class EarlyStopping:
    """Stops training when `metric` (a name `model.test_step` returns, or an `eval_extras` value) has not
    improved for `patience` evaluations.

    Args:
        metric: the evaluation result to watch, e.g. "joint_accuracy".
        patience: evaluations in a row without improvement before stopping (>= 1).
        mode: "max" (higher is better) or "min".
        min_delta: the least change that counts as an improvement (>= 0).

    Pass it to `Trainer(..., early_stopping=...)`, which binds a copy of it to itself (the trainer's
    `early_stopping` attribute then holds the state: `stopped`, `best`, `best_step`).
    """

    def __init__(self, metric, patience, mode="max", min_delta=0.0):
        if mode not in MODES:
            raise ZooError(f"early stopping mode={mode!r} is not one of {', '.join(MODES)}; use 'max' when "
                           f"higher {metric} is better, 'min' when lower is")
        if isinstance(patience, bool) or int(patience) != patience or patience < 1:
            raise ZooError(f"--patience must be a whole number of evaluations >= 1, got {patience}")
        if not min_delta >= 0:
            raise ZooError(f"--min_delta must be 0 or positive (the least change that counts as an "
                           f"improvement), got {min_delta}")
        self.metric, self.patience, self.mode, self.min_delta = metric, int(patience), mode, float(min_delta)
        self.trainer = None

    def bind(self, trainer):
        """A copy of this rule with its own state variables, for `trainer` (the Trainer calls it)."""
        if trainer.eval_dataset_fn is None:
            raise ZooError(f"early stopping on {self.metric!r} needs evaluation data: pass eval_dataset_fn (the "
                           "dev split), or drop early stopping")
        bound = copy.copy(self)
        bound.trainer, bound._directory, bound._writer = trainer, None, None
        start = -np.inf if self.mode == "max" else np.inf
        with trainer.strategy.scope():
            def variable(value, dtype, name):
                return tf.Variable(value, dtype=dtype, trainable=False, name=name,
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

            bound.state = tf.train.Checkpoint(
                best=variable(start, tf.float64, "early_stopping_best"),
                best_step=variable(-1, tf.int64, "early_stopping_best_step"),
                wait=variable(0, tf.int64, "early_stopping_wait"),
                stopped=variable(0, tf.int64, "early_stopping_stopped"),
                evaluated=variable(-1, tf.int64, "early_stopping_evaluated"))
        return bound

    # === State ===

    @property
    def best(self):
        return float(self.state.best.numpy())

    @property
    def best_step(self):
        """The step of the best evaluation; -1 before the first."""
        return int(self.state.best_step.numpy())

    @property
    def wait(self):
        return int(self.state.wait.numpy())

    @property
    def stopped(self):
        return bool(self.state.stopped.numpy())

    def logs(self):
        """What `Trainer.train` adds to its logs."""
        return {"stopped_early": self.stopped, "best_step": self.best_step, f"best/{self.metric}": self.best}

    def resume(self, checkpoint, path):
        """Restores the state from the regular checkpoint at `path` (None: a new run; a checkpoint written
        without early stopping leaves the state new) and adds the state to `checkpoint` for later saves."""
        if path:
            tf.train.Checkpoint(early_stopping=self.state).read(path).expect_partial()
            names = {name for name, _ in tf.train.list_variables(path)}
            if _EVALUATED not in names and any(n.startswith("early_stopping/best_step/") for n in names):
                # Written by the first version, which always saved after its step's decision.
                self.state.evaluated.assign(int(path.rsplit("ckpt-", 1)[-1]))
        checkpoint.early_stopping = self.state

    def pending(self, step):
        """Whether the evaluation of `step`, the step a run starts at, is still to be counted: the
        checkpoint was written before that evaluation's decision (or without early stopping)."""
        trainer = self.trainer
        evaluates = step >= trainer.train_steps or bool(trainer.eval_every) and step % trainer.eval_every == 0
        return step > 0 and evaluates and not self.stopped and int(self.state.evaluated.numpy()) < step

    def catch_up(self, step, evaluate):
        """When the evaluation of `step` is `pending`, runs `evaluate()` and counts its results (at the start of
        `train()`; nothing is saved, so an unfinished catch-up is simply done again); returns those results,
        else None."""
        if not self.pending(step):
            return None
        results = evaluate()
        self.update(step, results)
        return results

    def stopped_message(self, step):
        return (f"the run in {self.trainer.model_dir} stopped early at step {step} (best {self.metric} "
                f"{self.best:.6g} at step {self.best_step}, then {self.wait} evaluations without improvement); "
                "not training further: restore_best() gives the best weights, a new --model_dir trains again")

    # === Decisions ===

    def update(self, step, results):
        """Takes one evaluation's results at `step`; returns True when training must stop there."""
        if self.metric not in results:
            raise ZooError(f"the early-stopping metric {self.metric!r} is not among the evaluation results "
                           f"({', '.join(sorted(results)) or 'none'}); choose one of those")
        value = np.asarray(results[self.metric])
        if value.ndim:
            raise ZooError(f"the early-stopping metric {self.metric!r} has shape {value.shape}, not a single "
                           "number; choose a scalar evaluation result")
        value, best = float(value), self.best
        self.state.evaluated.assign(step)
        if value > best + self.min_delta if self.mode == "max" else value < best - self.min_delta:
            self._save_best(step)  # before the state names it
            self.state.best.assign(value)
            self.state.best_step.assign(step)
            self.state.wait.assign(0)
        else:
            self.state.wait.assign_add(1)
        if self.wait < self.patience:
            return False
        self.state.stopped.assign(1)
        if self.trainer.is_chief and self.trainer.verbose:
            print(f"early stopping at step {step}: {self.metric} has not improved on {self.best:.6g} (step "
                  f"{self.best_step}) in {self.wait} evaluations (patience {self.patience})", flush=True)
        return True

    # === Best weights ===

    def _weights(self):
        return [v for v in self.trainer.model.weights if not is_carried_state(v)]

    def _own_directory(self):
        """Where this process writes best checkpoints (made on first use)."""
        if self._directory is None:
            if self.trainer.is_chief:
                self._directory = os.path.join(self.trainer.model_dir, BEST_DIR)
                tf.io.gfile.makedirs(self._directory)
            else:  # same checkpoint, every worker writing, as the Trainer's own; read back by this worker
                self._directory = tempfile.mkdtemp(prefix="zoo-worker-best-")
                atexit.register(shutil.rmtree, self._directory, True)
        return self._directory

    def _save_best(self, step):
        if self._writer is None:
            self._writer = tf.train.Checkpoint(weights=self._weights())
        self._writer.write(os.path.join(self._own_directory(), f"ckpt-{step}"))

    def prune(self, checkpoint_dir):
        """Removes the best checkpoints that no intact regular checkpoint in `checkpoint_dir` (this process's
        own) and not the current state names; the Trainer calls it after each regular checkpoint."""
        if not self.trainer.is_chief and self._directory is None:
            return  # a worker's best checkpoints are its own temporary copies; it never touches best/
        named = {self.best_step}
        for number in checkpoint_numbers(checkpoint_dir):
            try:
                named.add(int(tf.train.load_variable(os.path.join(checkpoint_dir, f"ckpt-{number}"), BEST_STEP_KEY)))
            except (ValueError, tf.errors.OpError):  # damaged (never restored), or written without early stopping
                continue
        directory = self._own_directory()
        for name in tf.io.gfile.listdir(directory):
            match = _BEST_FILE.match(name.rstrip("/"))
            if match and int(match.group(1)) not in named:
                path = os.path.join(directory, name.rstrip("/"))
                if tf.io.gfile.isdir(path):
                    tf.io.gfile.rmtree(path)
                else:
                    tf.io.gfile.remove(path)

    def best_directory(self):
        """Where `restore_best` reads: this process's own copy once it saved one, else `<model_dir>/best`."""
        return self._directory or os.path.join(self.trainer.model_dir, BEST_DIR)

    def restore_best(self):
        """Loads the best evaluation's weights into the model (every replica); returns the checkpoint path."""
        step = self.best_step
        if step < 0:
            raise ZooError("no evaluation has run, so there are no best weights; call train() first (with "
                           "eval_dataset_fn; on a finished --model_dir it only resumes and evaluates)")
        path = os.path.join(self.best_directory(), f"ckpt-{step}")
        if not tf.io.gfile.exists(path + ".index"):
            raise ZooError(f"the best weights of step {step} are missing ({path}.index); was best/ moved or "
                           "deleted? Restore it, or retrain in a new --model_dir")
        try:
            tf.train.Checkpoint(weights=self._weights()).read(path).assert_existing_objects_matched().expect_partial()
        except (ValueError, AssertionError, tf.errors.OpError) as e:
            raise ZooError(f"the best weights {path} do not fit this model ({_first_line(e)}); use the flags of the "
                           "run that wrote them, or a new --model_dir") from None
        if self.trainer.verbose and self.trainer.is_chief:
            print(f"restored the best weights ({self.metric} {self.best:.6g}, step {step}) from {path}",
                  file=sys.stderr, flush=True)
        return path
