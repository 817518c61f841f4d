"""The shared trainer's overhead: `zoo.training.Trainer` steps/s against a bare `tf.function` step loop.

    python benchmarks/trainer_overhead.py                      # tiny BERT pretrainer, default strategy (~2 min)
    python benchmarks/trainer_overhead.py --strategy=mirrored --steps_per_loop=1,10 --jit_compile

Same model (zoo's BERT-Tiny pretrainer, MLM + NSP, AdamW), same distributed dataset (random examples
cycled through `strategy.distribute_datasets_from_function`), same strategy; for each --steps_per_loop K:

- trainer: `Trainer(..., steps_per_loop=K, log_every=--log_every)` (TensorBoard summaries, log means, a
  host sync per log), timed over each log interval after the first (tracing) and before the last (the
  final checkpoint);
- bare: one `tf.function` that runs K times `strategy.run(model.train_step, (next(iterator),))`, called
  --log_every / K times from inside the trainer's log hook right after each timed interval, so every
  (trainer, bare) pair sees the same load on the machine; no checkpoints, summaries or log means.

Reported: medians over --repeats intervals of each side's steps/s and of the pairs' ratios. The goal
(issue 8): trainer >= 0.90x bare.
"""

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("config", "tiny", "BERT preset (bert_<name>).")
flags.DEFINE_string("strategy", "default", "Distribution strategy (zoo.training.strategy.from_flag).")
flags.DEFINE_integer("global_batch_size", 8, "Sequences per global step.")
flags.DEFINE_integer("seq_length", 128, "Tokens per sequence.")
flags.DEFINE_integer("max_predictions", 20, "Masked positions per sequence.")
flags.DEFINE_list("steps_per_loop", ["1", "10"], "Steps per host call to compare.")
flags.DEFINE_integer("log_every", 20, "The trainer's log interval, a multiple of every --steps_per_loop.")
flags.DEFINE_integer("repeats", 5, "Timed log intervals (each paired with as many bare steps); medians reported.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the per-replica step on both sides.")
FLAGS = flags.FLAGS


def dataset_fn(vocab, examples=64):
    """Per-replica batches of `examples` random pretraining examples, repeated."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    seq, p = FLAGS.seq_length, FLAGS.max_predictions
    ids = rng.integers(5, vocab, size=(examples, seq)).astype("int32")
    positions = np.sort(rng.random((examples, seq - 2)).argsort(1)[:, :p] + 1, 1).astype("int32")
    features = {"token_ids": ids, "segment_ids": np.repeat((np.arange(seq)[None] >= seq // 2), examples, 0)
                .astype("int32"), "padding_mask": np.ones_like(ids), "mask_positions": positions,
                "mask_ids": np.take_along_axis(ids, positions, 1), "mask_weights": np.ones((examples, p), "float32"),
                "nsp_labels": rng.integers(0, 2, examples).astype("int32")}

    def fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices(features).repeat()
        ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        return ds.batch(ctx.get_per_replica_batch_size(FLAGS.global_batch_size), drop_remainder=True).prefetch(2)

    return fn


def build(strategy):
    import keras

    import zoo
    from zoo.models.bert import BERT_PRESETS, BertPretrainer

    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = BertPretrainer(zoo.create_model(f"bert_{FLAGS.config}", **BERT_PRESETS[f"bert_{FLAGS.config}"],
                                                dropout=0.1))
        model.compile(optimizer=keras.optimizers.AdamW(1e-4))
        model.optimizer.build(model.trainable_variables)
    return model


def bare_loop(model, strategy, fn, k):
    """`run(calls)`: runs `calls` calls of a bare K-steps-per-call loop (traced by a first, untimed call)."""
    import tensorflow as tf

    step_fn = tf.function(model.train_step, jit_compile=FLAGS.jit_compile, reduce_retracing=True)

    @tf.function
    def loop(iterator):
        logs = strategy.run(step_fn, args=(next(iterator),))
        for _ in tf.range(k - 1):
            logs = strategy.run(step_fn, args=(next(iterator),))
        return strategy.reduce("MEAN", logs["loss"], axis=None)

    iterator = iter(strategy.distribute_datasets_from_function(fn))
    float(loop(iterator))

    def run(calls):
        for _ in range(calls):
            loss = loop(iterator)
        float(loss)  # waits for the last step

    return run


def compare(model, strategy, fn, k):
    """[(trainer steps/s, bare steps/s)] per log interval: inside the trainer's log hook, the bare loop runs
    as many steps as the trainer's interval had, so each pair sees the same load on the machine."""
    from zoo.training.trainer import Trainer

    every, samples, state = FLAGS.log_every, [], {}
    total = every * (FLAGS.repeats + 2)

    def hook(step, logs):
        now = time.perf_counter()
        if "bare" not in state:  # first interval: tracing; trace the bare loop too
            state["bare"] = bare_loop(model, strategy, fn, k)
        elif step < total:  # the last interval also writes the checkpoint
            start = time.perf_counter()
            state["bare"](every // k)
            samples.append((every / (now - state["time"]), every / (time.perf_counter() - start)))
        state["time"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as model_dir:
        Trainer(model, strategy=strategy, model_dir=model_dir, dataset_fn=fn, global_batch_size=FLAGS.global_batch_size,
                train_steps=total, checkpoint_every=10**9, log_every=every, jit_compile=FLAGS.jit_compile,
                steps_per_loop=k, verbose=False, hooks=[hook]).train()
    return samples


def main(argv):
    del argv
    from zoo.training.strategy import from_flag

    strategy = from_flag(FLAGS.strategy)
    model = build(strategy)
    fn = dataset_fn(model.backbone.vocabulary_size)
    print(f"bert_{FLAGS.config} pretrainer, {FLAGS.strategy} ({strategy.num_replicas_in_sync} replicas), batch "
          f"{FLAGS.global_batch_size}x{FLAGS.seq_length}, XLA {'on' if FLAGS.jit_compile else 'off'}, "
          f"{FLAGS.repeats} x {FLAGS.log_every} timed steps per side (medians)")
    print(f"{'steps_per_loop':>14} {'bare steps/s':>12} {'trainer steps/s':>15} {'trainer/bare':>12}")
    for k in (int(k) for k in FLAGS.steps_per_loop):
        if FLAGS.log_every % k:
            raise SystemExit(f"--log_every={FLAGS.log_every} must be a multiple of every --steps_per_loop ({k})")
        samples = compare(model, strategy, fn, k)
        ratio = statistics.median(t / b for t, b in samples)
        trainer, bare = (statistics.median(column) for column in zip(*samples))
        print(f"{k:14d} {bare:12.2f} {trainer:15.2f} {ratio:11.2f}x"
              f"{'' if ratio >= 0.9 else '  (goal: >= 0.90x)'}", flush=True)


if __name__ == "__main__":
    app.run(main)
