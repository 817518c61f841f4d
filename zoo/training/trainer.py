"""The one training loop, shared by every recipe and every strategy.

Keras' `fit` is broken under MultiWorkerMirroredStrategy in Keras 3, so recipes train with this loop over
`strategy.run(model.train_step)`. It knows a model only through the Keras Model API:

- `model.train_step(batch)` returns a dict of scalar logs that are already global (see `zoo.ops`);
- `model.build_optimizer_state()`, if defined, creates every optimizer's variables (else `model.optimizer`
  is built over `model.trainable_variables`), so checkpoints restore into existing slots.

Example:

    strategy = zoo.training.strategy.from_flag("mirrored")
    with strategy.scope():
        model = make_model()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    Trainer(model, strategy=strategy, model_dir="/tmp/run", dataset_fn=dataset_fn,
            global_batch_size=64, train_steps=1000).train()
"""

import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from zoo.errors import ZooError
from zoo.training.strategy import is_chief

CONFIG_FILE = "config.json"


class Trainer:
    """Runs `train_steps` global steps of `model.train_step`, checkpointing and resuming in `model_dir`.

    Args:
        model: a compiled `keras.Model`, created inside `strategy.scope()`.
        strategy: the `tf.distribute.Strategy` (see `zoo.training.strategy.from_flag`).
        model_dir: checkpoints, `config.json` and TensorBoard logs (`train/`).
        dataset_fn: `fn(input_context) -> tf.data.Dataset` of per-replica batches, deterministic and
            repeating; the trainer skips the batches already consumed when it resumes.
        global_batch_size: examples per step over all replicas; must divide by the replica count.
        train_steps: the step count to reach; a resumed run continues up to it.
        checkpoint_every: steps between checkpoints (one is always written at the end).
        log_every: steps between progress-bar, TensorBoard and hook updates; logged values are means over
            the interval.
        jit_compile: compile the per-replica step with XLA.
        config: JSON-able description of the run that must match to resume (model, data, vocabulary).
        hooks: callables `hook(step, logs)` called on the chief every `log_every` steps and at the end.
        verbose: show the Keras progress bar.
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
    ):
        replicas = strategy.num_replicas_in_sync
        if global_batch_size < 1 or global_batch_size % replicas:
            raise ZooError(
                f"--global_batch_size={global_batch_size} must be a positive multiple of the replica count "
                f"({replicas}); use e.g. --global_batch_size={max(1, global_batch_size // replicas) * replicas}"
            )
        for name, value in (("train_steps", train_steps), ("checkpoint_every", checkpoint_every),
                            ("log_every", log_every)):
            if value < 1:
                raise ZooError(f"--{name} must be at least 1, got {value}")
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
        self.is_chief = is_chief(strategy)
        self.summary_writer = None
        self._progbar = None
        with strategy.scope():
            self.step = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="global_step",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )

    # === Set-up ===

    def _check_config(self):
        if self.config is None:
            return
        config = json.loads(json.dumps(self.config))
        path = os.path.join(self.model_dir, CONFIG_FILE)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                saved = json.load(f)
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
        elif self.is_chief and tf.train.latest_checkpoint(self.model_dir) is None:
            tf.io.gfile.makedirs(self.model_dir)
            tmp = path + ".tmp"
            with tf.io.gfile.GFile(tmp, "w") as f:
                json.dump(config, f, indent=2, sort_keys=True)
            tf.io.gfile.rename(tmp, path, overwrite=True)

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

    def _restore(self, checkpoint):
        latest = tf.train.latest_checkpoint(self.model_dir)
        if latest is None:
            return
        try:
            checkpoint.restore(latest).assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError) as e:
            raise ZooError(
                f"the checkpoint {latest} does not fit this model ({str(e).splitlines()[0][:300]}); "
                "was it written with other flags (model config, --vocab_size/--vocab_file)? "
                "Use a new --model_dir or the flags of that run"
            ) from None

    def _dataset(self, start_step):
        def fn(ctx):
            ds = self.dataset_fn(ctx)
            if start_step:
                ds = ds.skip(start_step * ctx.num_replicas_in_sync // ctx.num_input_pipelines)
            return ds

        return self.strategy.distribute_datasets_from_function(fn)

    def _make_train_function(self):
        model, strategy = self.model, self.strategy

        def step_fn(batch):
            return model.train_step(batch)

        # As Keras' own `fit`: the per-replica step is a tf.function of its own (XLA-compiled on request).
        step_fn = tf.function(step_fn, jit_compile=bool(self.jit_compile), reduce_retracing=True)

        @tf.function
        def train_function(iterator):
            for metric in model.metrics:  # Keras metrics then report this step alone, like custom logs
                metric.reset_state()
            logs = strategy.run(step_fn, args=(next(iterator),))
            logs = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in logs.items()}
            self.step.assign_add(1)
            return logs

        return train_function

    # === Loop ===

    def train(self):
        """Trains up to `train_steps`, resuming from `model_dir`; returns the means of the last log interval as floats."""
        self._check_config()
        probe = self.dataset_fn(tf.distribute.InputContext(1, 0, self.strategy.num_replicas_in_sync))
        self._build_state(probe.element_spec)
        # Dropout's random-number states are not tracked with the model; save them so resumes are exact.
        seeds = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        checkpoint = tf.train.Checkpoint(model=self.model, step=self.step, seeds=seeds)
        self._restore(checkpoint)
        ckpt_dir = self.model_dir if self.is_chief else tempfile.mkdtemp(prefix="zoo-worker-ckpt-")
        manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=self.max_to_keep)
        start = int(self.step.numpy())
        if self.is_chief:
            self.summary_writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "train"))
            if start and self.verbose:
                print(f"Resuming from step {start} in {self.model_dir}", flush=True)
        logs = {}
        try:
            if start < self.train_steps:
                logs = self._loop(start, manager)
            elif self.verbose and self.is_chief:
                print(f"{self.model_dir} is already at step {start} >= --train_steps={self.train_steps}")
        finally:
            if self.summary_writer is not None:
                self.summary_writer.flush()
            if not self.is_chief:
                shutil.rmtree(ckpt_dir, ignore_errors=True)
        return logs

    def _loop(self, start, manager):
        iterator = iter(self._dataset(start))
        train_function = self._make_train_function()
        # Logged values are means over the log interval of the per-step logs, summed here as tensors
        # (no host sync per step).
        logs, sums, count, step, values = {}, {}, 0, start, {}
        while step < self.train_steps:
            logs = train_function(iterator)
            sums = {k: sums[k] + v for k, v in logs.items()} if sums else dict(logs)
            count += 1
            step += 1
            last = step == self.train_steps
            if step % self.checkpoint_every == 0 or last:
                manager.save(checkpoint_number=step)
            if step % self.log_every == 0 or last:
                values = {k: float(np.asarray(v / count)) for k, v in sums.items()}
                self._log(step, values)
                sums, count = {}, 0
        return values

    def _log(self, step, values):
        if not self.is_chief:
            return
        lr = _learning_rate(self.model)
        with self.summary_writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(k, v)
            if lr is not None:
                tf.summary.scalar("learning_rate", lr)
        if self.verbose:
            if self._progbar is None:  # shows the latest values, not running averages
                self._progbar = keras.utils.Progbar(self.train_steps, stateful_metrics=list(values), unit_name="step")
            self._progbar.update(step, list(values.items()), finalize=step == self.train_steps)
        for hook in self.hooks:
            hook(step, values)


def _learning_rate(model):
    optimizer = getattr(model, "optimizer", None)
    try:
        return float(np.asarray(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None
