"""The one training loop, shared by every recipe and every strategy.

Keras' `fit` is broken under MultiWorkerMirroredStrategy in Keras 3, so recipes train with this loop over
`strategy.run(model.train_step)`. It knows a model only through the Keras Model API:

- `model.train_step(batch)` returns a dict of scalar logs that are already global (see `zoo.ops`);
- `model.build_optimizer_state()`, if defined, creates every optimizer's variables (else `model.optimizer`
  is built over `model.trainable_variables`), so checkpoints restore into existing slots;
- `model.test_step(batch)` updates the model's Keras metrics and returns their results (Keras' own
  `test_step` does, for a compiled loss and metrics). Evaluation reports the final `result()` of each metric
  whose name `test_step` returns, read across all replicas and workers: Keras metric state is summed on read,
  so a `keras.metrics.Mean` updated with `sample_weight` gives the exact global weighted mean, however
  batches fall on replicas;
- the step: a model reads the global step with `zoo.ops.global_step(model)` (this trainer's step variable,
  the number of steps completed before the running one, restored on resume);
- checkpoints: `tf.train.Checkpoint(model=...)` plus the step, seed states, carried state and the weights
  the model's checkpoint graph misses (layers held in lists; see `zoo.training.checkpoints.untracked_weights`);
- carried state: variables made with `zoo.layers.carried_state.carried_state` stay per replica, are
  checkpointed per replica and restored exactly (see `zoo.training.carried_state`).

Example:

    strategy = zoo.training.strategy.from_flag("mirrored")
    with strategy.scope():
        model = make_model()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = Trainer(model, strategy=strategy, model_dir="/tmp/run", dataset_fn=dataset_fn,
                   global_batch_size=64, train_steps=1000, steps_per_loop=10,
                   eval_dataset_fn=eval_dataset_fn, eval_every=500).train()
    logs["loss"], logs["eval/accuracy"]
"""

import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers.carried_state import is_carried_state
from zoo.ops import driving_step
from zoo.paths import write_file_atomically
from zoo.training.carried_state import CarriedState
from zoo.training.checkpoints import UNTRACKED, lock_model_dir, restore_newest_intact, untracked_weights
from zoo.training.strategy import is_chief

CONFIG_FILE = "config.json"


class Trainer:
    """Runs `train_steps` global steps of `model.train_step`, checkpointing and resuming in `model_dir`,
    and evaluates with `model.test_step`.

    Args:
        model: a compiled `keras.Model`, created inside `strategy.scope()`.
        strategy: the `tf.distribute.Strategy` (see `zoo.training.strategy.from_flag`).
        model_dir: checkpoints, `config.json` and TensorBoard logs (`train/`).
        dataset_fn: `fn(input_context) -> tf.data.Dataset` of per-replica batches, deterministic and
            repeating; the trainer skips the batches already consumed when it resumes (a `dataset_fn` with
            the attribute `skips_itself = True` is called as `fn(input_context, start_batch=n)` instead and
            must return what `.skip(n)` would, without making the skipped batches).
        global_batch_size: examples per step over all replicas; must divide by the replica count.
        train_steps: the step count to reach; a resumed run continues up to it.
        checkpoint_every: steps between checkpoints (one is always written at the end); a checkpoint step's
            evaluation runs after its checkpoint, so an evaluation that fails loses no training.
        log_every: steps between progress-bar, TensorBoard and hook updates; logged values are means over
            the interval.
        jit_compile: compile the per-replica step with XLA.
        steps_per_loop: train steps per host call, run in one `tf.function` loop (as Orbit's and Keras'
            `steps_per_execution`); a loop also ends at every checkpoint, log and evaluation step, so those
            keep their own intervals.
        eval_dataset_fn: `fn(input_context) -> tf.data.Dataset` of per-replica evaluation batches, finite
            (or repeating, with `eval_steps`); `None`: no evaluation.
        eval_every: steps between evaluations; `None` or 0: at the end only. There is always one at the end.
        eval_steps: steps per evaluation (each a batch on every replica); `None` or 0: the whole evaluation
            dataset.
        eval_extras: callables `fn() -> {name: float}` run after each evaluation's `test_step` pass, on every
            worker (with the weights as they are; e.g. BLEU of decoded output, computed on the host); their
            values join the evaluation's results (printed, TensorBoard `eval/`, returned).
        config: JSON-able description of the run that must match to resume (model, data, vocabulary).
        hooks: callables `hook(step, logs)` called on the chief every `log_every` steps and at the end,
            and after each evaluation with its results under `eval/<name>` keys.
        verbose: show the Keras progress bar.
        learning_rate_flag: the flag that sets the learning rate, named in the error when training diverges.
        early_stopping: a `zoo.training.early_stopping.EarlyStopping` (needs `eval_dataset_fn`); `train()` then
            also returns `stopped_early`, `best_step`, `best/<metric>`; `restore_best()` loads the best weights.
            Checkpoints at evaluation steps are written again after the decision, and at an early stop.
    """

    def __init__(
        self,
        model,
        *,
        strategy,
        model_dir,
        dataset_fn,
        global_batch_size,
        train_steps,
        checkpoint_every=100,
        log_every=10,
        jit_compile=False,
        config=None,
        hooks=(),
        max_to_keep=3,
        verbose=True,
        steps_per_loop=1,
        eval_dataset_fn=None,
        eval_every=None,
        eval_steps=None,
        eval_extras=(),
        learning_rate_flag="--learning_rate",
        early_stopping=None,
    ):
        replicas = strategy.num_replicas_in_sync
        if global_batch_size < 1 or global_batch_size % replicas:
            raise ZooError(
                f"--global_batch_size={global_batch_size} must be a positive multiple of the replica count "
                f"({replicas}); use e.g. --global_batch_size={max(1, global_batch_size // replicas) * replicas}"
            )
        for name, value in (("train_steps", train_steps), ("checkpoint_every", checkpoint_every),
                            ("log_every", log_every), ("steps_per_loop", steps_per_loop)):
            if value < 1:
                raise ZooError(f"--{name} must be at least 1, got {value}")
        for name, value in (("eval_every", eval_every), ("eval_steps", eval_steps)):
            if value is not None and value < 0:
                raise ZooError(f"--{name} must be 0 (off) or positive, got {value}")
        if not model_dir:
            raise ZooError("--model_dir is required: checkpoints and logs are written there")
        if jit_compile and replicas > 1 and not tf.config.list_logical_devices("GPU") and \
                not isinstance(strategy, tf.distribute.TPUStrategy):
            raise ZooError("--jit_compile needs one device, GPUs or TPUs: XLA cannot reach the other CPU replicas' "
                           "variables; drop --jit_compile or use --strategy=default")
        self.model = model
        self.strategy = strategy
        self.model_dir = model_dir
        self.dataset_fn = dataset_fn
        self.global_batch_size = global_batch_size
        self.train_steps = train_steps
        self.checkpoint_every = checkpoint_every
        self.log_every = log_every
        self.jit_compile = jit_compile
        self.config = config
        self.hooks = list(hooks)
        self.max_to_keep = max_to_keep
        self.verbose = verbose
        self.steps_per_loop = steps_per_loop
        self.eval_dataset_fn = eval_dataset_fn
        self.eval_every = eval_every or None
        self.eval_steps = eval_steps or None
        self.eval_extras = list(eval_extras)
        self.learning_rate_flag = learning_rate_flag
        self.is_chief = is_chief(strategy)
        self.summary_writer = None
        self.eval_writer = None
        self.carried_state = None
        self._progbar = None
        self._eval_function = None
        self._finite_function = None
        with strategy.scope():
            self.step = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="global_step",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
        self.early_stopping = early_stopping.bind(self) if early_stopping is not None else None

    # === Set-up ===

    def _check_config(self):
        if self.is_chief:
            lock_model_dir(self.model_dir)
        if self.config is None:
            return
        config = json.loads(json.dumps(self.config))
        path = os.path.join(self.model_dir, CONFIG_FILE)
        if tf.io.gfile.exists(path):
            try:
                with tf.io.gfile.GFile(path) as f:
                    saved = json.load(f)
                assert isinstance(saved, dict)
            except (ValueError, AssertionError, UnicodeDecodeError):
                raise ZooError(f"{path} is damaged (not a JSON object); restore it from a copy, or use a new "
                               "--model_dir (the checkpoints beside it are left untouched)") from None
            diffs = [
                f"{k}: {saved.get(k)!r} in the checkpoint, {config.get(k)!r} now"
                for k in sorted(set(saved) | set(config))
                if saved.get(k) != config.get(k)
            ]
            if diffs:
                raise ZooError(
                    f"--model_dir={self.model_dir} holds a run with a different config ({'; '.join(diffs)}); "
                    "use a new --model_dir, or the flags of that run to resume it"
                )
        elif self.is_chief:  # a new run, or one whose config.json was lost: record this one from now on
            write_file_atomically(path, json.dumps(config, indent=2, sort_keys=True))

    def _build_state(self, element_spec):
        model = self.model
        with self.strategy.scope():
            unbuilt = [
                c for c in (getattr(model, "_compile_loss", None), getattr(model, "_compile_metrics", None))
                if c is not None and not c.built
            ]
            if unbuilt:  # standard Keras train_step: build its loss/metric state as `fit` does
                model._symbolic_build(data_batch=element_spec)
            if hasattr(model, "build_optimizer_state"):
                model.build_optimizer_state()
            elif getattr(model, "optimizer", None) is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)

    def _restore(self, checkpoint, legacy=None):
        path = restore_newest_intact(checkpoint, self.model_dir, check=self.carried_state.check_layout,
                                     rewrite_bookkeeping=self.is_chief, legacy=legacy)
        if path:
            self.carried_state.scatter()
        if self.early_stopping is not None:
            self.early_stopping.resume(checkpoint, path)

    def _dataset(self, start_step):
        def fn(ctx):
            skip = start_step * ctx.num_replicas_in_sync // ctx.num_input_pipelines
            if skip and getattr(self.dataset_fn, "skips_itself", False):   # starts there without making them
                return self.dataset_fn(ctx, start_batch=skip)
            ds = self.dataset_fn(ctx)
            return ds.skip(skip) if skip else ds

        return self.strategy.distribute_datasets_from_function(fn)

    def _make_train_function(self):
        model, strategy = self.model, self.strategy

        def step_fn(batch):
            return model.train_step(batch)

        # As Keras' own `fit`: the per-replica step is a tf.function of its own (XLA-compiled on request).
        step_fn = tf.function(step_fn, jit_compile=bool(self.jit_compile), reduce_retracing=True)

        def one_step(iterator):
            for metric in model.metrics:  # Keras metrics then report this step alone, like custom logs
                metric.reset_state()
            logs = strategy.run(step_fn, args=(next(iterator),))
            logs = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in logs.items()}
            self.step.assign_add(1)
            return logs

        @tf.function
        def train_function(iterator, num_steps):
            """Runs `num_steps` (>= 1) steps; returns the sums of their logs."""
            sums = one_step(iterator)
            for _ in tf.range(num_steps - 1):
                logs = one_step(iterator)
                sums = {k: sums[k] + logs[k] for k in sums}
            return sums

        return train_function

    def _make_eval_function(self):
        model, strategy = self.model, self.strategy
        reported = set()  # the names test_step returns, noted while tracing

        def replica_step(batch):
            logs = model.test_step(batch)
            reported.update(logs)
            return logs

        @tf.function
        def eval_function(iterator, max_batches):
            for metric in model.metrics:
                metric.reset_state()
            for _ in tf.range(max_batches):
                batch = iterator.get_next_as_optional()  # agrees across replicas and workers on the end
                if not batch.has_value():
                    break
                strategy.run(replica_step, args=(batch.get_value(),))
            results = {}
            for metric in model.metrics:  # read in cross-replica context: summed over replicas and workers
                value = metric.result()
                results.update(value if isinstance(value, dict) else {metric.name: value})
            # Only what test_step reports: a compiled model's loss tracker that a custom step never
            # updates would read 0.
            return {k: v for k, v in results.items() if k in reported}

        return eval_function

    # === Loop ===

    def train(self):
        """Trains up to `train_steps` (or an early stop), resuming from `model_dir`, and evaluates at the
        end (and every `eval_every` steps) when there is evaluation data. Returns the means of the last log
        interval as floats, plus the last evaluation's results under `eval/<name>` keys. A run already at
        `train_steps`, or stopped early, trains no further and evaluates once."""
        self._check_config()
        probe = self.dataset_fn(tf.distribute.InputContext(1, 0, self.strategy.num_replicas_in_sync))
        self._build_state(probe.element_spec)
        self.carried_state = CarriedState(self.model, self.strategy)
        # Dropout's random-number states are not tracked with the model; save them so resumes are exact.
        seeds = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        items = dict(model=self.model, step=self.step, seeds=seeds, **self.carried_state.checkpoint_items())
        checkpoint = legacy = tf.train.Checkpoint(**items)
        # Weights of layers held in lists are out of the model's checkpoint graph: saved by position and name.
        untracked = untracked_weights(self.model)
        if untracked:
            checkpoint = tf.train.Checkpoint(**items, **{UNTRACKED: untracked})
        self._restore(checkpoint, legacy if untracked else None)
        ckpt_dir = self.model_dir if self.is_chief else tempfile.mkdtemp(prefix="zoo-worker-ckpt-")
        manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=self.max_to_keep)
        start = int(self.step.numpy())
        if self.is_chief:
            self.summary_writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "train"))
            if self.eval_dataset_fn is not None:
                self.eval_writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "eval"))
            if start and self.verbose:
                print(f"Resuming from step {start} in {self.model_dir}", flush=True)
        logs, es = {}, self.early_stopping
        try:
            with driving_step(self.step):
                results = es and es.catch_up(start, self._evaluate_and_report)
                stopped = es is not None and es.stopped
                if start < self.train_steps and not stopped:
                    logs = self._loop(start, manager)  # evaluates at its end
                else:
                    if self.verbose and self.is_chief:
                        print(es.stopped_message(start) if stopped else
                              f"{self.model_dir} is already at step {start} >= --train_steps={self.train_steps}")
                    if self.eval_dataset_fn is not None:
                        results = results or self._evaluate_and_report()
                        logs.update({f"eval/{k}": v for k, v in results.items()})
                logs.update(es.logs() if es else {})
        finally:
            for writer in (self.summary_writer, self.eval_writer):
                if writer is not None:
                    writer.flush()
            if not self.is_chief:
                shutil.rmtree(ckpt_dir, ignore_errors=True)
        return logs

    def restore_best(self):
        """Loads the best evaluation's weights (see `early_stopping`) into every replica; returns their path."""
        if self.early_stopping is None:
            raise ZooError("restore_best needs a Trainer made with early_stopping: none keeps best weights")
        return self.early_stopping.restore_best()

    def evaluate(self, dataset_fn=None):
        """Runs `model.test_step` over the evaluation data on every replica (every worker must call it);
        returns `{metric name: global value}`: floats, or numpy arrays for metrics whose result is not a scalar
        (a confusion matrix; those are not printed or written to TensorBoard). Carried state starts from zero
        and is put back. `dataset_fn`: other evaluation data (a test split) through the same compiled step."""
        dataset_fn = dataset_fn or self.eval_dataset_fn
        if dataset_fn is None:
            raise ZooError("this Trainer has no evaluation data (eval_dataset_fn)")
        if self._eval_function is None:
            self._eval_function = self._make_eval_function()
        carried = self.carried_state if self.carried_state is not None else CarriedState(self.model, self.strategy)
        carried.gather()
        carried.reset()
        iterator = iter(self.strategy.distribute_datasets_from_function(dataset_fn))
        limit = self.eval_steps if self.eval_steps else np.iinfo(np.int32).max
        results = self._eval_function(iterator, tf.constant(limit, tf.int32))
        results = {k: _host_value(v) for k, v in results.items()}
        carried.scatter()
        for metric in self.model.metrics:  # training logs start clean
            metric.reset_state()
        for extra in self.eval_extras:
            results.update({k: _host_value(v) for k, v in extra().items()})
        return results

    def _evaluate_and_report(self):
        step = int(self.step.numpy())
        results = self.evaluate()
        if self.is_chief:
            scalars = {k: v for k, v in results.items() if isinstance(v, float)}
            with self.eval_writer.as_default(step=step):
                for k, v in scalars.items():
                    tf.summary.scalar(k, v)
            if self.verbose:
                print(f"eval at step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(scalars.items())),
                      flush=True)
            for hook in self.hooks:
                hook(step, {f"eval/{k}": v for k, v in results.items()})
        return results

    def _loop(self, start, manager):
        iterator = iter(self._dataset(start))
        train_function = self._make_train_function()
        # Logged values are means over the log interval of the per-step logs, summed here as tensors
        # (no host sync per step).
        sums, count, step, values, results = {}, 0, start, {}, {}
        intervals = [self.checkpoint_every, self.log_every] + ([self.eval_every] if self.eval_every else [])
        while step < self.train_steps:
            # Run up to the next checkpoint, log or evaluation step, at most steps_per_loop steps.
            stop = min([self.train_steps, step + self.steps_per_loop] + [(step // n + 1) * n for n in intervals])
            logs = train_function(iterator, tf.constant(stop - step, tf.int32))
            sums = {k: sums[k] + v for k, v in logs.items()} if sums else dict(logs)
            count += stop - step
            step = stop
            last, stopped = step == self.train_steps, False
            evaluate = self.eval_dataset_fn is not None and (last or self.eval_every and step % self.eval_every == 0)
            if step % self.checkpoint_every == 0 or step % self.log_every == 0 or last or evaluate:
                self._stop_if_diverged(sums, step, manager)
            if save := step % self.checkpoint_every == 0 or last:  # before evaluating: kept if evaluation fails
                self._save(manager, step)
            if step % self.log_every == 0 or last:
                values, sums, count = self._log(step, sums, count), {}, 0
            if evaluate:
                results = self._evaluate_and_report()
                stopped = self.early_stopping is not None and self.early_stopping.update(step, results)
                if stopped and not save:  # never a checkpoint number twice (a rewrite is not atomic)
                    self._save(manager, step)
            if stopped:  # after logging the partial interval up to the stop
                if count:
                    values = self._log(step, sums, count, final=True)
                elif self.is_chief and self._progbar is not None:
                    self._progbar.update(step, finalize=True)
                break
        return {**values, **{f"eval/{k}": v for k, v in results.items()}}

    def _save(self, manager, step):
        self.carried_state.gather()
        manager.save(checkpoint_number=step)
        if self.early_stopping is not None:
            self.early_stopping.prune(manager.directory)

    def _stop_if_diverged(self, sums, step, manager):
        """Stops with one line when the logs since the last check or the weights are not finite; nothing
        is saved after that, so the last finite checkpoint stays the latest and nothing is exported.
        Under loss scaling, non-finite logs with finite weights are skipped steps, which are fine."""
        bad = sorted(k for k, v in sums.items() if not np.all(np.isfinite(np.asarray(v, np.float64))))
        weights_finite = self._weights_finite()
        if weights_finite and (not bad or self._loss_scaled()):
            return
        what = " and ".join(filter(None, [", ".join(bad), "" if weights_finite else "weights"]))
        latest = manager.latest_checkpoint
        kept = f"{latest} stays the latest checkpoint" if latest else "no checkpoint was written"
        raise ZooError(
            f"training diverged by step {step}: non-finite {what}; {kept} and nothing was exported. Lower "
            f"{self.learning_rate_flag} (or check the data and --mixed_precision), then rerun to resume from "
            "there")

    def _loss_scaled(self):
        return isinstance(getattr(self.model, "optimizer", None), keras.optimizers.LossScaleOptimizer) or \
            self.model.dtype_policy.name == "mixed_float16"

    def _weights_finite(self):
        if self._finite_function is None:
            variables = [v for v in self.model.weights
                         if "float" in str(v.dtype) and not is_carried_state(v)]

            @tf.function
            def finite():
                flags = [tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))) for v in variables]
                return tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)

            self._finite_function = finite
        return bool(self._finite_function())

    def _log(self, step, sums, count, final=False):
        values = {k: float(np.asarray(v / count)) for k, v in sums.items()}
        if not self.is_chief:
            return values
        lr = _learning_rate(self.model)
        with self.summary_writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(k, v)
            if lr is not None:
                tf.summary.scalar("learning_rate", lr)
        if self.verbose:
            if self._progbar is None:  # shows the latest values, not running averages
                self._progbar = keras.utils.Progbar(self.train_steps, stateful_metrics=list(values), unit_name="step")
            self._progbar.update(step, list(values.items()), finalize=final or step == self.train_steps)
        for hook in self.hooks:
            hook(step, values)
        return values


def _host_value(value):
    """An evaluation result on the host: a float for a scalar, else a numpy array."""
    value = np.asarray(value)
    return float(value) if value.ndim == 0 else value


def _learning_rate(model):
    optimizer = getattr(model, "optimizer", None)
    try:
        return float(np.asarray(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None
