"""Train-step throughput of zoo's BERT pretrainer vs keras-hub's BertMaskedLM, same config, same process.

    python benchmarks/bert_step.py                       # tiny and base, XLA off and on
    python benchmarks/bert_step.py --configs=base --batch_size=32 --mixed_precision=mixed_bfloat16 --xla=on

Both models take the same batch (seq_length tokens, max_predictions masked positions) and run their own
`train_step` in a tf.function (XLA-compiled with --xla=on) with AdamW. zoo's step also has the NSP head
and loss, which keras-hub's MaskedLM lacks. Reported: sequences/s for each and the ratio zoo / keras-hub
(> 1: zoo is faster); with --peak_tflops, model FLOP utilisation of zoo's step (6·N·tokens per step).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_list("configs", ["tiny", "base"], "BERT presets to time.")
flags.DEFINE_list("xla", ["off", "on"], "XLA settings to time.")
flags.DEFINE_integer("batch_size", 8, "Sequences per step.")
flags.DEFINE_integer("seq_length", 128, "Tokens per sequence.")
flags.DEFINE_integer("max_predictions", 20, "Masked positions per sequence.")
flags.DEFINE_integer("steps", 20, "Timed steps (after warm-up).")
flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, compilation).")
flags.DEFINE_string("mixed_precision", "float32", "Keras dtype policy.")
flags.DEFINE_float("peak_tflops", None, "The device's peak TFLOP/s for the policy, to report MFU.")
FLAGS = flags.FLAGS


def make_batch(vocab, batch, seq, predictions):
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab, size=(batch, seq)).astype("int32")
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq - 1), predictions, replace=False)
                                  for _ in range(batch)]), 1).astype("int32")
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids),
            "mask_positions": positions, "mask_ids": np.take_along_axis(ids, positions, 1),
            "mask_weights": np.ones(positions.shape, "float32"), "nsp_labels": rng.integers(0, 2, batch).astype("int32")}


def build(config, which):
    import keras
    import keras_hub

    import zoo
    from zoo.models.bert import BERT_PRESETS, BertPretrainer

    params = {**BERT_PRESETS[f"bert_{config}"], "dropout": 0.1}
    if which == "zoo":
        model = BertPretrainer(zoo.create_model(f"bert_{config}", **params))
        model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    else:
        model = keras_hub.models.BertMaskedLM(keras_hub.models.BertBackbone(**params), preprocessor=None)
        model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), weighted_metrics=[])
    return model


def time_steps(model, which, batch, xla):
    import tensorflow as tf

    data = {k: tf.constant(v) for k, v in batch.items()}
    if which == "zoo":
        step = tf.function(lambda: model.train_step(data), jit_compile=xla)
    else:
        x = {k: data[k] for k in ("token_ids", "segment_ids", "padding_mask", "mask_positions")}
        packed = (x, data["mask_ids"], data["mask_weights"])
        step = tf.function(lambda: model.train_step(packed), jit_compile=xla)
    for _ in range(FLAGS.warmup):
        logs = step()
    float(logs["loss"])
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        logs = step()
    float(logs["loss"])  # waits for the device
    return FLAGS.steps * FLAGS.batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    import keras

    keras.mixed_precision.set_global_policy(FLAGS.mixed_precision)
    print(f"batch {FLAGS.batch_size} x seq {FLAGS.seq_length}, {FLAGS.max_predictions} predictions, "
          f"{FLAGS.mixed_precision}, {FLAGS.steps} timed steps")
    print(f"{'config':7} {'xla':4} {'zoo seq/s':>10} {'hub seq/s':>10} {'zoo/hub':>8} {'zoo MFU':>8}")
    for config in FLAGS.configs:
        for xla in FLAGS.xla:
            rates = {}
            for which in ("zoo", "hub"):
                keras.utils.set_random_seed(0)
                model = build(config, which)
                batch = make_batch(model.get_layer("bert_backbone").vocabulary_size if which == "zoo"
                                   else model.backbone.vocabulary_size,
                                   FLAGS.batch_size, FLAGS.seq_length, FLAGS.max_predictions)
                rates[which] = time_steps(model, which, batch, xla == "on")
                params = model.count_params()
                del model
                keras.backend.clear_session()
            mfu = "-"
            if FLAGS.peak_tflops:
                flops = 6 * params * FLAGS.seq_length * rates["zoo"]
                mfu = f"{flops / (FLAGS.peak_tflops * 1e12):.1%}"
            print(f"{config:7} {xla:4} {rates['zoo']:10.1f} {rates['hub']:10.1f} {rates['zoo'] / rates['hub']:8.2f} "
                  f"{mfu:>8}", flush=True)


if __name__ == "__main__":
    app.run(main)
