"""BERT train-step throughput: zoo against keras-hub on equal work, and the NSP head's cost, in one run.

    python benchmarks/bert_step.py                          # tiny and base, XLA off and on (~3 min, 2 cores)
    python benchmarks/bert_step.py --configs=tiny --shapes=tiny=32x128 --repeats=9
    python benchmarks/bert_step.py --mixed_precision=mixed_bfloat16 --output=/tmp/bert_step.json

Three models per (config, XLA) cell, all with AdamW(1e-4), dropout 0.1, the same batch and weights
drawn from the same seed, each running its own `train_step` in a `tf.function` (XLA-compiled with
--xla=on):

- `zoo_mlm`: zoo's `BertPretrainer` with the NSP loss term dropped (masked-LM loss and accuracy only);
- `hub_mlm`: keras-hub's `BertMaskedLM` over a `BertBackbone` of the same config, no preprocessor,
  compiled with its default loss and weighted accuracy and run through Keras' own `train_step` (what
  `fit` runs per step). Same work as `zoo_mlm`: backbone, tied masked-LM head, loss, accuracy, AdamW;
- `zoo_full`: zoo's real pretraining step (MLM + NSP), to report the NSP head's cost.

Timing: after --warmup untimed steps (tracing, compilation), --repeats rounds; each round times
--steps calls of every model in turn (rotating the order), so load on the machine hits all alike. Per
round: the speed ratio zoo_mlm / hub_mlm (> 1: zoo is faster) and zoo_full / zoo_mlm - 1 (the NSP cost);
reported: the medians over rounds, with ms/step medians per model.
"""

import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_list("configs", ["tiny", "base"], "BERT presets to time (bert_<name>).")
flags.DEFINE_list("xla", ["off", "on"], "XLA settings to time.")
flags.DEFINE_list("shapes", ["tiny=8x128", "base=2x128"], "Per config: <config>=<batch>x<seq_length>.")
flags.DEFINE_integer("max_predictions", 20, "Masked positions per sequence.")
flags.DEFINE_list("steps", ["tiny=10", "base=1"], "Per config: timed calls per model per round.")
flags.DEFINE_integer("repeats", 5, "Timing rounds; medians are reported.")
flags.DEFINE_integer("warmup", 2, "Untimed steps per model first (tracing, compilation).")
flags.DEFINE_string("mixed_precision", "float32", "Keras dtype policy.")
flags.DEFINE_string("output", None, "Also write the results to this JSON file.")
FLAGS = flags.FLAGS

MODELS = ("zoo_mlm", "hub_mlm", "zoo_full")


def per_config(values, config, cast):
    table = dict(v.split("=", 1) for v in values)
    if config not in table:
        raise SystemExit(f"no entry for {config!r} in {values!r}: add {config}=...")
    return cast(table[config])


def make_batch(vocab, batch, seq, predictions, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(batch, seq)).astype("int32")
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq - 1), predictions, replace=False)
                                  for _ in range(batch)]), 1).astype("int32")
    weights = np.ones(positions.shape, "float32")
    weights[:, predictions - predictions // 4:] = 0.0  # padded prediction slots, as in real batches
    return {"token_ids": ids, "segment_ids": (np.arange(seq)[None] >= seq // 2).astype("int32").repeat(batch, 0),
            "padding_mask": np.ones_like(ids), "mask_positions": positions,
            "mask_ids": np.take_along_axis(ids, positions, 1), "mask_weights": weights,
            "nsp_labels": rng.integers(0, 2, batch).astype("int32")}


def masked_lm_only():
    """`BertPretrainer` whose train step drops the NSP loss term (the NSP head gets no gradient, as
    keras-hub's unused pooler). Defined here until the pretrainer has an option for it."""
    import keras
    import tensorflow as tf
    from keras import ops

    from zoo.models.bert import BertPretrainer
    from zoo.ops import weighted_mean

    class MaskedLMPretrainer(BertPretrainer):
        def train_step(self, data):
            inputs = {k: data[k] for k in ("token_ids", "segment_ids", "padding_mask", "mask_positions")}
            with tf.GradientTape() as tape:
                logits = ops.cast(self(inputs, training=True)["mlm_logits"], "float32")
                ce = keras.losses.sparse_categorical_crossentropy(data["mask_ids"], logits, from_logits=True)
                share, loss = weighted_mean(ce, data["mask_weights"])
                scaled = self.optimizer.scale_loss(share)
            nsp = {id(v) for v in self.nsp_head.trainable_variables}
            variables = [v for v in self.trainable_variables if id(v) not in nsp]
            self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
            hits = ops.cast(ops.equal(ops.argmax(logits, -1), ops.cast(data["mask_ids"], "int64")), "float32")
            _, accuracy = weighted_mean(hits, data["mask_weights"])
            return {"loss": loss, "mlm_loss": loss, "mlm_accuracy": accuracy}

    return MaskedLMPretrainer


def build(config, which):
    import keras
    import keras_hub

    import zoo
    from zoo.models.bert import BERT_PRESETS, BertPretrainer

    params = {**BERT_PRESETS[f"bert_{config}"], "dropout": 0.1, "max_sequence_length": 512}
    keras.utils.set_random_seed(0)
    if which == "hub_mlm":
        model = keras_hub.models.BertMaskedLM(keras_hub.models.BertBackbone(**params), preprocessor=None)
        model.compile(optimizer=keras.optimizers.AdamW(1e-4))  # its defaults: weighted SCE + accuracy
        return model
    cls = masked_lm_only() if which == "zoo_mlm" else BertPretrainer
    model = cls(zoo.create_model(f"bert_{config}", **params))
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    return model


def step_function(model, which, batch, xla):
    import tensorflow as tf

    data = {k: tf.constant(v) for k, v in batch.items()}
    if which == "hub_mlm":  # what `fit` feeds it: (x, y, sample_weight)
        x = {k: data[k] for k in ("token_ids", "segment_ids", "padding_mask", "mask_positions")}
        data = (x, data["mask_ids"], data["mask_weights"])
    model.optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=xla)
    def step():
        return model.train_step(data)["loss"]

    return step


def time_cell(config, xla):
    """{model: [wall seconds per step, one per round]}, the same in process CPU seconds, parameter counts
    and the shape, for one config and XLA setting."""
    import keras

    batch, seq = per_config(FLAGS.shapes, config, lambda s: tuple(int(n) for n in s.split("x")))
    steps = per_config(FLAGS.steps, config, int)
    models, fns = {}, {}
    for which in MODELS:
        models[which] = build(config, which)
        vocab = models[which].backbone.vocabulary_size
        fns[which] = step_function(models[which], which, make_batch(vocab, batch, seq, FLAGS.max_predictions), xla)
        for _ in range(FLAGS.warmup):
            loss = fns[which]()
        float(loss)
    times = {which: [] for which in MODELS}
    cpu = {which: [] for which in MODELS}
    for r in range(FLAGS.repeats):
        order = MODELS[r % len(MODELS):] + MODELS[:r % len(MODELS)]
        for which in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                loss = fns[which]()
            float(loss)  # waits for the step to finish
            times[which].append((time.perf_counter() - start) / steps)
            cpu[which].append((time.process_time() - start_cpu) / steps)
    params = {which: model.count_params() for which, model in models.items()}
    del models, fns
    keras.backend.clear_session()
    return times, cpu, params, (batch, seq, steps)


def main(argv):
    del argv
    import keras

    keras.mixed_precision.set_global_policy(FLAGS.mixed_precision)
    print(f"{FLAGS.mixed_precision}, {FLAGS.max_predictions} predictions/seq, AdamW, dropout 0.1, "
          f"{FLAGS.repeats} interleaved rounds (medians)")
    header = (f"{'config':6} {'batch':>7} {'xla':4} {'zoo_mlm ms':>10} {'hub_mlm ms':>10} {'zoo/hub':>8} "
              f"{'(cpu)':>6} {'zoo_full ms':>11} {'NSP cost':>8}")
    print(header)
    results = []
    for config in FLAGS.configs:
        for xla in FLAGS.xla:
            times, cpu, params, (batch, seq, steps) = time_cell(config, xla == "on")
            speedup = statistics.median(h / z for z, h in zip(times["zoo_mlm"], times["hub_mlm"]))
            cpu_speedup = statistics.median(h / z for z, h in zip(cpu["zoo_mlm"], cpu["hub_mlm"]))
            nsp = statistics.median(f / z - 1 for z, f in zip(times["zoo_mlm"], times["zoo_full"]))
            ms = {which: 1e3 * statistics.median(t) for which, t in times.items()}
            results.append(dict(config=config, xla=xla, batch=batch, seq_length=seq, steps_per_round=steps,
                                ms_per_step=ms, zoo_over_hub_speed=speedup, zoo_over_hub_cpu=cpu_speedup, nsp_cost=nsp,
                                params=params, rounds_ms={k: [1e3 * t for t in v] for k, v in times.items()},
                                rounds_cpu_ms={k: [1e3 * t for t in v] for k, v in cpu.items()}))
            print(f"{config:6} {f'{batch}x{seq}':>7} {xla:4} {ms['zoo_mlm']:10.1f} {ms['hub_mlm']:10.1f} "
                  f"{speedup:7.2f}x {cpu_speedup:5.2f}x {ms['zoo_full']:11.1f} {nsp:+8.1%}", flush=True)
    print("zoo/hub: keras-hub's step time over zoo's, median of per-round ratios (>= 1.00x: zoo is as fast or "
          "faster); (cpu): the same in process CPU time, steadier on a loaded machine. NSP cost: zoo_full's "
          "wall time over zoo_mlm's, minus 1.")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    app.run(main)
